// Follows running replies: asks the status endpoint for the text after our cursor,
// holding each request open (?wait) until new text arrives, and appends it.
(function () {
  "use strict";
  var WAIT_SECONDS = 5;
  var STATE_TEXT = { queued: "Waiting in the queue…", running: "Writing…", cancelled: "Stopped.", succeeded: "" };

  function follow(item) {
    var content = item.querySelector(".content");
    var state = item.querySelector(".state");
    var cursor = parseInt(item.dataset.cursor || "0", 10);
    var url = item.dataset.statusUrl;
    var failures = 0;

    function poll() {
      fetch(url + "?cursor=" + cursor + "&wait=" + WAIT_SECONDS, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      })
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (data) {
          failures = 0;
          if (data.text) content.appendChild(document.createTextNode(data.text));
          cursor = data.cursor;
          item.dataset.cursor = String(cursor);
          item.dataset.status = data.status;
          item.className = item.className.replace(/status-\w+/, "status-" + data.status);
          state.textContent = data.status === "failed" ? "Failed: " + (data.error || "unknown error") : STATE_TEXT[data.status] || "";
          if (!data.done) poll();
        })
        .catch(function () {
          failures += 1;
          state.textContent = "Connection lost; retrying…";
          setTimeout(poll, Math.min(1000 * Math.pow(2, failures), 15000));
        });
    }
    poll();
  }

  document.querySelectorAll('.message.assistant[data-status="queued"], .message.assistant[data-status="running"]').forEach(follow);

  var composer = document.querySelector(".composer textarea");
  if (composer) {
    composer.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        if (composer.value.trim()) composer.form.requestSubmit();
      }
    });
    composer.form.addEventListener("submit", function () {
      var button = composer.form.querySelector('[type="submit"]');
      if (button) button.disabled = true; // the one-time token also guards a second submit
    });
  }
})();
