// The composer's attachments (loaded by chat.js on first use): previews, removal, drop, paste, checks before
// sending. The files stay in the form's own <input type=file multiple> (set through a DataTransfer), so the form
// posts them as it does without script: CSRF and the one-time token are the form's own.
(function () {
  "use strict";
  var box = document.querySelector(".composer-files");
  if (!box || typeof DataTransfer === "undefined") return;
  window.sbAttach = true;
  var form = box.closest("form"), input = box.querySelector("input[type=file]");
  var list = box.querySelector(".attach-previews"), d = box.dataset;
  var max = (d.max || "5,10485760").split(","), maxFiles = +max[0], maxBytes = +max[1];
  var types = input.accept.split(","), vision = d.vision === undefined ? null : d.vision.split(" ");
  var files = Array.prototype.slice.call(input.files || []), urls = [];

  function say(text) {
    var p = box.querySelector(".attach-error");
    if (!p) {
      p = document.createElement("p");
      p.className = "errors attach-error";
      p.setAttribute("role", "alert");
      box.appendChild(p);
    }
    p.textContent = text;
    p.hidden = !text;
  }
  function size(n) {
    return n >= 1048576 ? (n / 1048576).toFixed(1) + " MB" : Math.max(1, Math.round(n / 1024)) + " KB";
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    e.className = cls;
    if (text) e.textContent = text;
    return e;
  }
  function readsImages() {
    var select = document.getElementById("new-model");
    return vision && select ? vision.indexOf(select.value) >= 0 : d.blind === undefined;
  }
  function checkModel() {
    var image = files.some(function (f) { return f.type.indexOf("image/") === 0; });
    var ok = !image || readsImages();
    say(ok ? "" : "This model cannot read images: pick a model that can, or remove the image.");
    return ok;
  }
  function sync() {
    var transfer = new DataTransfer();
    files.forEach(function (f) { transfer.items.add(f); });
    input.files = transfer.files;
    urls.forEach(URL.revokeObjectURL);
    urls = [];
    list.textContent = "";
    files.forEach(function (file, i) {
      var item = el("li", "attach-preview"), pdf = file.type === "application/pdf";
      if (pdf) item.appendChild(el("span", "file-name", file.name));
      else {
        var img = el("img", "");
        img.src = urls[urls.push(URL.createObjectURL(file)) - 1];
        img.alt = file.name;
        item.appendChild(img);
      }
      var meta = item.appendChild(el("span", "file-meta", (pdf ? "PDF · " : "") + size(file.size)));
      if (pdf) file.arrayBuffer().then(function (buffer) {
        // Page objects counted: enough for a preview (the server reads the real count with pypdf).
        var pages = (new TextDecoder("latin1").decode(buffer).match(/\/Type\s*\/Page(?![s\w])/g) || []).length;
        if (pages) meta.textContent += " · " + pages + (pages === 1 ? " page" : " pages");
      });
      var remove = item.appendChild(el("button", "link attach-remove", "Remove"));
      remove.type = "button";
      remove.setAttribute("aria-label", "Remove " + file.name);
      remove.addEventListener("click", function () { files.splice(i, 1); sync(); });
      list.appendChild(item);
    });
    checkModel();
  }
  function add(incoming) {
    var refused = [];
    Array.prototype.forEach.call(incoming, function (f) {
      // Pasted screenshots are all "image.png": numbered, so the list tells them apart.
      if (f.name === "image.png") f = new File([f], "pasted-" + (files.length + 1) + ".png", { type: f.type });
      if (types.indexOf(f.type) < 0) refused.push(f.name + " is not an image (PNG, JPEG, WebP, GIF) or a PDF");
      else if (f.size > maxBytes) refused.push(f.name + " is larger than " + size(maxBytes));
      else if (files.length >= maxFiles) refused.push(f.name + ": at most " + maxFiles + " files per message");
      else files.push(f);
    });
    sync();
    if (refused.length) say("Not attached: " + refused.join("; ") + ".");
  }

  input.addEventListener("change", function () {
    var picked = Array.prototype.slice.call(input.files || []);
    add(picked.filter(function (f) { return files.indexOf(f) < 0; }));
  });
  form.addEventListener("dragover", function (e) {
    if (e.dataTransfer && Array.prototype.indexOf.call(e.dataTransfer.types, "Files") >= 0) {
      e.preventDefault();
      form.classList.add("dragging");
    }
  });
  form.addEventListener("dragleave", function () { form.classList.remove("dragging"); });
  form.addEventListener("drop", function (e) {
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    e.preventDefault();
    form.classList.remove("dragging");
    add(e.dataTransfer.files);
  });
  form.addEventListener("paste", function (e) {
    var pasted = e.clipboardData ? e.clipboardData.files : [];
    if (!pasted.length) return; // text pastes as usual
    e.preventDefault();
    add(pasted);
  });
  form.addEventListener("submit", function (e) {
    if (checkModel()) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    var button = form.querySelector("[type=submit]");
    if (button) button.disabled = false;
  }, true);
  var select = document.getElementById("new-model");
  if (select) select.addEventListener("change", checkModel);
  files = [];
  // What was picked, dropped or pasted before this script arrived, then whatever the input holds besides.
  var waiting = (window.sbAttachPending || []).slice();
  Array.prototype.forEach.call(input.files || [], function (f) { if (waiting.indexOf(f) < 0) waiting.push(f); });
  add(waiting);
})();
