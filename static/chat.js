// Follows running replies: asks the status endpoint for the text after our cursor,
// holding each request open (?wait) until new text arrives, and appends it. When a
// reply is done it swaps in the server's rendering (sanitized Markdown, actions).
// Everything here is an enhancement: without it the page refreshes itself and every
// action is a plain form.
(function () {
  "use strict";
  var WAIT_SECONDS = 5;
  var announcer = document.getElementById("chat-announcer");

  function announce(text) {
    if (!announcer) return;
    announcer.textContent = "";
    // A fresh text node so screen readers read it even when it repeats.
    window.setTimeout(function () { announcer.textContent = text; }, 50);
  }

  function stateText(data) {
    if (data.status === "queued") {
      return "Waiting in the queue" + (data.position ? " (position " + data.position + ")" : "") + "…";
    }
    if (data.status === "running") return "Writing…";
    if (data.status === "cancelled") return "Stopped.";
    if (data.status === "failed") return (data.error_headline || "The reply failed.") + " " + (data.error || "");
    return "";
  }

  function swapIn(item, done) {
    fetch(item.dataset.fragmentUrl, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        var parsed = new DOMParser().parseFromString("<ol>" + html + "</ol>", "text/html");
        var fresh = parsed.querySelector("li.message");
        if (fresh && item.parentNode) {
          item.parentNode.replaceChild(document.importNode(fresh, true), item);
          enhance(document);
        }
        done();
      })
      .catch(done);
  }

  function follow(item) {
    if (item.dataset.following) return;
    item.dataset.following = "1";
    var content = item.querySelector(".content");
    var state = item.querySelector(".state");
    var cursor = parseInt(item.dataset.cursor || "0", 10);
    var url = item.dataset.statusUrl;
    var failures = 0;

    function finished(data) {
      item.removeAttribute("aria-busy");
      var words = { succeeded: "Reply finished.", cancelled: "Reply stopped.", failed: "Reply failed." };
      swapIn(item, function () {
        announce(words[data.status] || "");
      });
    }

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
          if (item.dataset.status !== data.status && data.status === "running") announce("Writing the reply…");
          item.dataset.status = data.status;
          item.className = item.className.replace(/status-\w+/, "status-" + data.status);
          state.textContent = stateText(data);
          if (data.done) finished(data);
          else poll();
        })
        .catch(function () {
          failures += 1;
          state.textContent = "Connection lost; retrying…";
          window.setTimeout(poll, Math.min(1000 * Math.pow(2, failures), 15000));
        });
    }
    poll();
  }

  function enhanceStop(form) {
    if (form.dataset.enhanced) return;
    form.dataset.enhanced = "1";
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var button = form.querySelector("button");
      if (button) {
        button.disabled = true;
        button.textContent = "Stopping…";
      }
      // The follower sees the reply finish (cancelled) and swaps in the final version.
      fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      }).catch(function () {
        form.submit();
      });
    });
  }

  function enhance(root) {
    root.querySelectorAll('.message.assistant[data-status="queued"], .message.assistant[data-status="running"]').forEach(follow);
    root.querySelectorAll("form.stop-form").forEach(enhanceStop);
  }

  enhance(document);

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

  // Forms that ask for confirmation in place (no inline handlers: CSP).
  document.querySelectorAll("details.rename input[type=text]").forEach(function (input) {
    input.closest("details").addEventListener("toggle", function (e) {
      if (e.target.open) input.focus();
    });
  });
})();
