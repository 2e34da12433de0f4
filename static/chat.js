// Follows running replies over server-sent events (.../events, resumed with Last-Event-ID), else long-polls
// the status endpoint (?wait); a finished reply is swapped for the server's rendering. Also: Enter sends, Esc
// stops a reply, the composer grows, code gets a copy button, times show in the reader's zone. All of it is
// an enhancement: without it the page refreshes itself and every action is a plain form.
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

  function stateText(data, hasText) {
    if (data.status === "queued") {
      return "Waiting in the queue" + (data.position ? " (position " + data.position + ")" : "") + "…";
    }
    if (data.status === "running") return hasText ? "Writing…" : "Thinking…";
    if (data.status === "cancelled") return "Stopped.";
    if (data.status === "failed") return (data.error_headline || "The reply failed.") + " " + (data.error || "");
    return "";
  }

  // Keep the newest text in view only while the reader is at the bottom; a reader who
  // scrolled up to read keeps their place (no jumping while a reply streams).
  function nearBottom() {
    var doc = document.documentElement;
    return window.innerHeight + window.scrollY >= doc.scrollHeight - 80;
  }

  function keepBottom(wasAtBottom) {
    if (wasAtBottom) window.scrollTo(0, document.documentElement.scrollHeight);
  }

  function replaceWith(item, html) {
    var parsed = new DOMParser().parseFromString("<ol>" + html + "</ol>", "text/html");
    var fresh = parsed.querySelector("li.message");
    if (fresh && item.parentNode) {
      var atBottom = nearBottom();
      var node = document.importNode(fresh, true);
      item.parentNode.replaceChild(node, item);
      enhance(node);
      keepBottom(atBottom);
    }
  }

  function swapIn(item, done) {
    fetch(item.dataset.fragmentUrl, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        replaceWith(item, html);
        done();
      })
      .catch(done);
  }

  var ENDING_WORDS = { succeeded: "Reply finished.", cancelled: "Reply stopped.", failed: "Reply failed." };

  function follow(item) {
    if (item.dataset.following) return;
    item.dataset.following = "1";
    var content = item.querySelector(".content");
    var state = item.querySelector(".state");
    var cursor = parseInt(item.dataset.cursor || "0", 10);
    var failures = 0;

    function show(data, text, newCursor) {
      var atBottom = nearBottom();
      if (text) content.appendChild(document.createTextNode(text));
      cursor = newCursor;
      item.dataset.cursor = String(cursor);
      if (data.status) {
        if (item.dataset.status !== data.status && data.status === "running") announce("Writing the reply…");
        item.dataset.status = data.status;
        item.className = item.className.replace(/status-\w+/, "status-" + data.status);
      }
      state.textContent = stateText({ status: item.dataset.status, position: data.position }, cursor > 0);
      keepBottom(atBottom);
    }

    // Server-sent events: one open request for the whole reply.
    function listen() {
      var source = new EventSource(item.dataset.eventsUrl + "?cursor=" + cursor);
      item.dataset.transport = "events";
      source.addEventListener("status", function (e) {
        show(JSON.parse(e.data), "", cursor);
      });
      source.addEventListener("text", function (e) {
        show({}, JSON.parse(e.data).text, parseInt(e.lastEventId, 10));
      });
      source.addEventListener("fallback", function (e) { // another model answers: name it
        item.querySelector(".model-name").textContent = JSON.parse(e.data).to;
      });
      ["done", "failed", "stopped"].forEach(function (name) {
        source.addEventListener(name, function (e) {
          source.close(); // or EventSource would reconnect to a reply that has ended
          var data = JSON.parse(e.data);
          item.removeAttribute("aria-busy");
          if (data.html) replaceWith(item, data.html);
          announce(ENDING_WORDS[data.status] || "");
        });
      });
      source.addEventListener("reconnect", function (e) {
        // The server could not go on (Redis or the database went away): EventSource reconnects by itself.
        state.textContent = JSON.parse(e.data).message;
      });
      source.addEventListener("error", function () {
        if (source.readyState === EventSource.CLOSED) {
          poll(); // refused (an HTTP error, not a dropped connection): the status endpoint instead
        } else {
          state.textContent = "Connection lost; retrying…"; // EventSource resumes from its last id
        }
      });
    }

    function finished(data) {
      item.removeAttribute("aria-busy");
      swapIn(item, function () {
        announce(ENDING_WORDS[data.status] || "");
      });
    }

    // The fallback: long polling the status endpoint.
    function poll() {
      item.dataset.transport = "polling";
      fetch(item.dataset.statusUrl + "?cursor=" + cursor + "&wait=" + WAIT_SECONDS, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      })
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (data) {
          failures = 0;
          show(data, data.text, data.cursor);
          if (data.status === "failed") state.textContent = stateText(data, cursor > 0);
          if (data.done) finished(data);
          else poll();
        })
        .catch(function () {
          failures += 1;
          state.textContent = "Connection lost; retrying…";
          window.setTimeout(poll, Math.min(1000 * Math.pow(2, failures), 15000));
        });
    }

    if (window.EventSource && item.dataset.eventsUrl) listen();
    else poll();
  }

  function enhanceStop(form) {
    if (form.dataset.enhanced) return;
    form.dataset.enhanced = "1";
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var button = form.querySelector("button");
      if (button) {
        if (button.disabled) return;
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

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      document.body.removeChild(area);
      if (ok) resolve();
      else reject(new Error("copy refused"));
    });
  }

  // The server frames code (div.code-block > div.code-bar naming the language, then the pre): add Copy to its bar.
  function enhanceCode(pre) {
    var bar = pre.parentNode.querySelector(".code-bar");
    if (!bar || bar.querySelector(".copy")) return;
    var code = pre.querySelector("code") || pre;
    var language = (bar.querySelector(".code-lang") || bar).textContent;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy " + language + " code");
    var status = document.createElement("span");
    status.className = "visually-hidden";
    status.setAttribute("role", "status");
    button.addEventListener("click", function () {
      copyText(code.textContent).then(function () {
        button.textContent = "Copied";
        button.classList.add("copied");
        status.textContent = "Code copied to the clipboard.";
      }, function () {
        button.textContent = "Press Ctrl+C";
        var range = document.createRange();
        range.selectNodeContents(code);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      });
      window.setTimeout(function () {
        button.textContent = "Copy";
        button.classList.remove("copied");
        status.textContent = "";
      }, 2000);
    });
    bar.appendChild(button);
    bar.appendChild(status);
  }

  // Times come in UTC from the server; show them in the reader's zone.
  function localTime(el) {
    if (el.dataset.local) return;
    var when = new Date(el.getAttribute("datetime"));
    if (isNaN(when.getTime())) return;
    el.dataset.local = "1";
    var sameDay = when.toDateString() === new Date().toDateString();
    el.textContent = sameDay
      ? when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : when.toLocaleDateString([], { month: "short", day: "numeric" }) + ", " +
        when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    el.title = (el.title.split(" ")[0] || "") + " " + when.toLocaleString();
  }

  // static/composer.js, loaded on first use, edits a message in place and posts the composer with fetch.
  function withComposer(then, otherwise) {
    var form = document.querySelector(".composer[data-composer]"), js = withComposer.js;
    if (window.sbPost || !form) return (window.sbPost ? then : otherwise)();
    if (!js) {
      js = withComposer.js = document.head.appendChild(document.createElement("script"));
      js.src = form.dataset.composer;
      js.onerror = function () { withComposer.js = null; };
    }
    js.addEventListener("load", then);
    js.addEventListener("error", otherwise);
  }

  function enhanceEdit(link) {
    if (link.dataset.enhanced) return;
    link.dataset.enhanced = "1";
    link.addEventListener("click", function (e) {
      e.preventDefault();
      withComposer(function () { window.sbEdit(link); }, function () { location.assign(link.href); });
    });
  }

  // A finished reply gets a "Copy reply" button (its whole text, as shown).
  function enhanceCopyReply(item) {
    var actions = item.querySelector(".actions");
    var content = item.querySelector(".content.markdown");
    if (!actions || !content || actions.querySelector(".copy-reply") || !content.textContent.trim()) return;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "copy-reply";
    button.textContent = "Copy reply";
    var status = document.createElement("span");
    status.className = "visually-hidden";
    status.setAttribute("role", "status");
    button.addEventListener("click", function () {
      copyText(content.innerText.trim()).then(function () {
        button.textContent = "Copied";
        status.textContent = "Reply copied to the clipboard.";
      }, function () {
        button.textContent = "Press Ctrl+C";
        var range = document.createRange();
        range.selectNodeContents(content);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      });
      window.setTimeout(function () {
        button.textContent = "Copy reply";
        status.textContent = "";
      }, 2000);
    });
    actions.insertBefore(button, actions.firstChild);
    actions.appendChild(status);
  }

  // A chat opened without a place to go (no #fragment) starts at its latest message.
  function openAtLatest() {
    if (window.location.hash) return;
    var latest = document.getElementById("latest");
    if (latest) latest.scrollIntoView({ block: "start" });
  }

  function each(root, selector, fn) {
    if (root.matches && root.matches(selector)) fn(root);
    root.querySelectorAll(selector).forEach(fn);
  }

  function enhance(root) {
    each(root, '.message.assistant[data-status="queued"], .message.assistant[data-status="running"]', follow);
    each(root, "form.stop-form", enhanceStop);
    each(root, ".content.markdown pre", enhanceCode);
    each(root, ".message time[datetime]", localTime);
    each(root, ".message.user a.edit-link", enhanceEdit);
    each(root, '.message.assistant[data-status="succeeded"], .message.assistant[data-status="cancelled"]',
         enhanceCopyReply);
  }

  enhance(document);
  openAtLatest();

  // Esc stops the reply being written (the newest running one).
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape" || e.defaultPrevented || e.isComposing) return;
    var forms = document.querySelectorAll(".message.assistant form.stop-form");
    if (!forms.length) return;
    var form = forms[forms.length - 1];
    e.preventDefault();
    if (form.requestSubmit) form.requestSubmit();
    else form.dispatchEvent(new Event("submit", { cancelable: true }));
  });

  var composer = document.querySelector(".composer textarea");
  if (composer) {
    var form = composer.form;
    form.classList.add("grows");
    document.querySelectorAll(".composer-hint .js-only").forEach(function (el) { el.hidden = false; });
    var grow = function () {
      composer.style.height = "auto";
      var max = Math.max(window.innerHeight * 0.4, 120);
      var wanted = composer.scrollHeight + 2;
      composer.style.height = Math.min(wanted, max) + "px";
      composer.classList.toggle("scrolls", wanted > max);
    };
    composer.rows = 1;
    grow();
    composer.addEventListener("input", grow);
    window.addEventListener("resize", grow);
    composer.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        if (composer.value.trim()) form.requestSubmit();
      }
    });
    var posts = form.dataset.composer && window.fetch; // in a conversation: no page reload
    if (posts) composer.addEventListener("input", function () { withComposer(grow, grow); }, { once: true });
    form.addEventListener("submit", function (e) {
      var button = form.querySelector('[type="submit"]');
      if (button && button.disabled) return e.preventDefault();
      if (button) button.disabled = true; // the one-time token also guards a second submit
      if (!posts) return;
      e.preventDefault();
      withComposer(function () { window.sbPost(form, enhance); }, function () {
        HTMLFormElement.prototype.submit.call(form); // "submit" is the Send button's name: the form's own
      });
    });
    // Ready to type at once (not on phones, where focus opens the keyboard).
    if (window.innerWidth > 760 && !document.querySelector(":focus")) composer.focus({ preventScroll: true });
  }

  // Forms that ask for confirmation in place (no inline handlers: CSP).
  document.querySelectorAll("details.rename input[type=text]").forEach(function (input) {
    input.closest("details").addEventListener("toggle", function (e) {
      if (e.target.open) input.focus();
    });
  });
})();

// static/attachments.js (previews, checks, drop, paste) loads on first use; until then the file input works alone.
(function () {
  var box = document.querySelector(".composer-files");
  if (!box) return;
  var pending = (window.sbAttachPending = []), form = box.closest("form");
  function load(e, files) {
    if (window.sbAttach || (files && !files.length)) return;
    if (files) {
      e.preventDefault();
      pending.push.apply(pending, files);
    }
    if (load.done) return;
    load.done = document.head.appendChild(document.createElement("script"));
    load.done.src = box.dataset.script;
  }
  box.querySelector("input").addEventListener("change", function (e) { load(e, e.target.files); }); // a pick replaces the last: keep each
  form.addEventListener("dragover", function (e) { if (!window.sbAttach) e.preventDefault(); });
  form.addEventListener("drop", function (e) { load(e, e.dataTransfer ? e.dataTransfer.files : []); });
  form.addEventListener("paste", function (e) { load(e, e.clipboardData ? e.clipboardData.files : []); });
  // A new chat's model picker: the hint says at once whether the chosen model reads images.
  var select = document.getElementById("new-model"), hint = document.getElementById("attach-hint");
  if (select && hint && box.dataset.vision !== undefined) {
    var blind = ". This model cannot read images", seeing = box.dataset.vision.split(" ");
    var plain = hint.textContent.replace(blind, "");
    select.addEventListener("change", function () {
      hint.textContent = plain + (seeing.indexOf(select.value) >= 0 ? "" : blind);
    });
  }
})();
