"use strict";
// The upload form's working speed: the study type chosen last is remembered in this browser
// (localStorage) and preselected next time; several files upload at once (chosen or dropped),
// each its own request — a new study, or for DICOM instances of one study the same study, as
// the server files them — with its progress and result listed per file. The count and each
// file's size are checked from the files' metadata before any is read or sent.
(function () {
  const M = window.medai;
  const { T, el, fill } = M;
  const form = document.getElementById("upload-form");
  if (!form) return;
  const KEY = "medai.upload.task";
  const MAX_FILES = Number(form.dataset.maxFiles || 20);
  const MAX_BYTES = Number(form.dataset.maxBytes || 64 * 1024 * 1024);
  const mb = (n) => (n / (1024 * 1024)).toLocaleString(M.LOCALE, { maximumFractionDigits: 1 });

  // --- the remembered type
  function remembered() {
    try { return localStorage.getItem(KEY); } catch (e) { return null; }  // storage off: none
  }
  function restore() {
    const task = remembered();
    if (task && [...form.task.options].some((o) => o.value === task)) form.task.value = task;
  }
  form.task.addEventListener("change", () => {
    try { localStorage.setItem(KEY, form.task.value); } catch (e) { /* storage off */ }
  });
  form.addEventListener("reset", () => setTimeout(restore));  // a reset keeps the chosen type
  restore();

  // --- dropping files on the form
  const input = form.elements.file;
  const zone = document.getElementById("upload-drop") || input;
  ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => {
    e.preventDefault(); zone.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, () => zone.classList.remove("dragging")));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    input.files = e.dataTransfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  });

  // --- the checks before anything is read: how many, how large
  function refusal(files) {
    if (!files.length) return T.upload_none;
    if (files.length > MAX_FILES) return fill(T.upload_too_many, { n: MAX_FILES, count: files.length });
    const big = files.find((f) => f.size > MAX_BYTES);
    return big ? fill(T.upload_too_big, { name: big.name, size: mb(big.size), mb: mb(MAX_BYTES) }) : "";
  }

  // one file, one request (XMLHttpRequest: its upload reports progress)
  function send(file, fields, key, onProgress) {
    return new Promise((resolve) => {
      const data = new FormData();
      for (const [k, v] of fields) data.append(k, v);
      data.set("file", file);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/v1/studies");
      const csrf = M.cookie("medai_csrf");
      if (csrf) xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("Idempotency-Key", key);
      xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
      xhr.addEventListener("load", () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        resolve({ ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status, data: body });
      });
      xhr.addEventListener("error", () => resolve({ ok: false, status: 0, data: null }));
      xhr.send(data);
    });
  }

  const percent = new Intl.NumberFormat(M.LOCALE, { style: "percent", maximumFractionDigits: 0 });
  // Upload ``files`` with the form's other ``fields`` (a FormData without the file), one after
  // another; ``key``: the form's Idempotency-Key (each file's is key-index: a retry of the same
  // choice files nothing twice). Lists each file's state in #upload-list; returns
  // {refused: why} before anything is sent, else {results: [{file, r}]}.
  async function uploadFiles(files, fields, key) {
    files = [...files];
    const why = refusal(files);
    const list = document.getElementById("upload-list");
    if (why) return { refused: why };
    const rows = files.map((f) => {
      const state = el("span", { class: "upload-state", text: T.upload_waiting });
      const li = el("li", { "data-state": "waiting" }, el("span", { class: "upload-name", text: f.name }), " — ", state);
      return { li, state };
    });
    list.replaceChildren(...rows.map((x) => x.li));
    list.hidden = false;
    const results = [];
    for (const [i, file] of files.entries()) {
      const { li, state } = rows[i];
      li.dataset.state = "sending";
      state.textContent = fill(T.upload_sending, { pct: percent.format(0) });
      const r = await send(file, fields, `${key}-${i}`, (p) => { state.textContent = fill(T.upload_sending, { pct: percent.format(p) }); });
      results.push({ file, r });
      if (r.ok) {
        li.dataset.state = r.status === 201 ? "new" : "joined";
        li.dataset.study = String(r.data.id);
        state.replaceChildren(el("a", { href: "/studies/" + r.data.id,
          text: fill(r.status === 201 ? T.upload_new : T.upload_joined, { id: r.data.id }) }));
      } else {
        li.dataset.state = "failed";
        const conflict = r.data && r.data.code === "identity_conflict" && T.error_identity_conflict;
        state.textContent = fill(T.upload_failed, { error: conflict || (r.data && r.data.detail) || T.error_generic });
        if (conflict && M.reloadConflicts) M.reloadConflicts();
      }
    }
    return { results };
  }
  M.uploadFiles = uploadFiles;
})();
