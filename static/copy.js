// A Copy button beside text shown once (a new API key): <button data-copy="ID" hidden>. Without this
// script the button stays hidden and a click on the text selects all of it (CSS user-select: all).
(function () {
  "use strict";
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.dataset.copy);
    var status = document.getElementById(button.dataset.copy + "-status");
    if (!source) return;
    var label = button.textContent;
    button.hidden = false;
    function say(text, note) {
      button.textContent = text;
      if (status) status.textContent = note;
      window.setTimeout(function () { button.textContent = label; if (status) status.textContent = ""; }, 2000);
    }
    function selectText() {
      var range = document.createRange();
      range.selectNodeContents(source);
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      say("Press Ctrl+C", "");
    }
    button.addEventListener("click", function () {
      if (!navigator.clipboard || !window.isSecureContext) return selectText();
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        say("Copied", "Copied to the clipboard.");
      }, selectText);
    });
  });
})();
