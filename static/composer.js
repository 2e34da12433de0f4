// The composers of a conversation (static/chat.js loads this on first use). The page's composer posts with
// fetch: the new message and its reply come back as HTML, are appended, and the reply streams in place, with
// no page reload. A refusal is shown beside the composer, its text kept. A message with files, and any answer
// not foreseen, posts the form as the page does without scripting (its one-time token keeps it from being
// saved twice). A message's Edit link opens a form in place.
(function () {
  function classic(form) {
    // The Send button is named "submit", which hides form.submit: the form's own method.
    HTMLFormElement.prototype.submit.call(form);
  }

  function showError(form, message) {
    var error = form.querySelector(".composer-error");
    if (!error) {
      error = document.createElement("p");
      error.className = "errors composer-error";
      error.setAttribute("role", "alert");
      form.querySelector(".composer-box").insertAdjacentElement("afterend", error);
    }
    error.textContent = message;
    form.querySelector("textarea").setAttribute("aria-invalid", "true");
  }

  function randomToken() {
    var bytes = new Uint8Array(18);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  // Edit a message in place: its text becomes a form posting to the edit page's URL (the form the
  // no-JS edit page has). The server keeps the original as another version of the message.
  window.sbEdit = function (link) {
    var item = link.closest(".message.user");
    var csrf = document.querySelector('.composer input[name="csrf_token"]');
    if (!item || !csrf) return window.location.assign(link.href); // no composer: the edit page
    if (item.querySelector("form.edit-form")) return;
    var content = item.querySelector(".content");
    var actions = link.closest(".actions");
    var form = document.createElement("form");
    form.method = "post";
    form.action = link.href;
    form.className = "edit-form";
    [["csrf_token", csrf.value], ["submission_token", randomToken()]].forEach(function (pair) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = pair[0];
      input.value = pair[1];
      form.appendChild(input);
    });
    var label = document.createElement("label");
    label.className = "visually-hidden";
    label.htmlFor = "edit-" + item.id;
    label.textContent = "Edit message";
    var area = document.createElement("textarea");
    area.name = "content";
    area.id = "edit-" + item.id;
    area.rows = 3;
    area.value = content.textContent;
    var buttons = document.createElement("div");
    buttons.className = "edit-buttons";
    var cancel = document.createElement("button");
    cancel.type = "button";
    cancel.textContent = "Cancel";
    var save = document.createElement("button");
    save.type = "submit";
    save.className = "primary";
    save.textContent = "Save and send";
    buttons.appendChild(cancel);
    buttons.appendChild(save);
    form.appendChild(label);
    form.appendChild(area);
    form.appendChild(buttons);
    function close() {
      form.remove();
      content.hidden = false;
      if (actions) actions.hidden = false;
      link.focus();
    }
    cancel.addEventListener("click", close);
    area.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape") {
        ev.preventDefault(); // not the page's Esc (stop a reply)
        close();
      } else if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        if (area.value.trim()) form.requestSubmit();
      }
    });
    form.addEventListener("submit", function () { save.disabled = true; });
    content.hidden = true;
    if (actions) actions.hidden = true;
    item.appendChild(form);
    area.focus();
  };

  window.sbPost = function (form, enhance) {
    var button = form.querySelector('[type="submit"]');
    var textarea = form.querySelector("textarea");
    var files = Array.prototype.some.call(form.querySelectorAll('input[type="file"]'), function (input) {
      return input.files && input.files.length;
    });
    if (files || form.querySelector('input[name="kept_file"]')) return classic(form);
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "X-Composer": "fetch", Accept: "application/json" },
    })
      .then(function (r) {
        if ((r.headers.get("Content-Type") || "").indexOf("application/json") !== 0) throw new Error(r.status);
        return r.json().then(function (data) { return { ok: r.ok, data: data }; });
      })
      .then(function (answer) {
        var data = answer.data;
        if (data.redirect) return window.location.assign(data.redirect);
        if (!answer.ok || !data.message_html) {
          if (!data.error || !data.error.message) throw new Error("unexpected answer");
          showError(form, data.error.message);
          button.disabled = false;
          textarea.focus();
          return;
        }
        var previous = document.getElementById("latest");
        if (previous) {
          // No longer the last reply: its Regenerate, Retry and Continue go, as on a page rendered now.
          previous.removeAttribute("id");
          previous.querySelectorAll('form[action$="/regenerate"], form.continue-form').forEach(function (f) {
            f.remove();
          });
        }
        var holder = document.createElement("template");
        holder.innerHTML = data.message_html + data.reply_html;
        var added = Array.prototype.slice.call(holder.content.children);
        document.querySelector("ol.messages").appendChild(holder.content);
        added.forEach(enhance);
        form.querySelector('input[name="submission_token"]').value = data.submission_token;
        var error = form.querySelector(".composer-error");
        if (error) error.remove();
        textarea.removeAttribute("aria-invalid");
        textarea.value = "";
        textarea.dispatchEvent(new Event("input")); // the composer shrinks back
        button.disabled = false;
        // To the very bottom (the composer below the reply too), so the page follows the reply as it grows.
        window.scrollTo(0, document.documentElement.scrollHeight);
        textarea.focus({ preventScroll: true });
      })
      .catch(function () {
        classic(form);
      });
  };
})();
