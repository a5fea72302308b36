"use strict";
(function () {
  const { T, api, el, fill, statusLabel, showError, taskName, fmtTime, personName } = window.medai;
  const body = document.querySelector("#worklist tbody");
  const filters = document.getElementById("filters");
  let timer = null;
  let asked = 0;  // the latest request: an older answer arriving late is dropped
  let shown = null;  // what the table shows: an unchanged answer leaves the rows alone, so a
                     // refresh never swaps a row out from under a finger tapping its link

  async function load() {
    const mine = ++asked;
    const q = new URLSearchParams({ limit: "100" });
    if (filters.status.value) q.set("status", filters.status.value);
    if (filters.task.value) q.set("task", filters.task.value);
    if (filters.urgent.checked) q.set("urgent", "true");
    const accession = filters.accession.value.trim();
    if (accession) q.set("accession", accession);
    const r = await api("/api/v1/studies?" + q);
    if (!r.ok || mine !== asked) return;
    const seen = JSON.stringify(r.data.items);
    if (seen !== shown) render(r.data.items);
    shown = seen;
    const busy = r.data.items.some((s) => s.status === "received" || s.status === "analysing");
    clearTimeout(timer);
    timer = setTimeout(load, busy ? 1500 : 8000);  // live status while analysis runs
  }

  function render(items) {
    body.replaceChildren(...items.map((s) => el("tr", { class: s.status === "entered_in_error" ? "is-retracted" : s.urgent ? "is-urgent" : null, "data-id": s.id },
      // phones: each study is one block, its cells labelled (table.findings), patient in view
      el("td", { class: "row-head" }, el("a", { href: "/studies/" + s.id, text: String(s.id), "aria-label": `${T.study_title} ${s.id}` })),
      el("td", {}, el("span", { class: "badge status-" + s.status, "data-status": s.status, text: statusLabel(s.status) }),
        s.urgent ? el("span", { class: "badge urgent", text: T.urgent }) : ""),
      el("td", { "data-label": T.col_task, text: [taskName(s.task) || "—", s.dicom && s.dicom.modality].filter(Boolean).join(" · ") }),
      el("td", { "data-label": T.col_accession, text: (s.dicom && s.dicom.accession) || "—" }),
      el("td", { "data-label": T.col_patient, text: patient(s) }),
      el("td", { "data-label": T.col_created }, el("time", { datetime: s.created_at, text: fmtTime(s.created_at) })))));
    document.getElementById("worklist-empty").hidden = items.length > 0;
  }

  // a DICOM study names its patient (name, ID); an upload its pseudonymous reference
  function patient(s) {
    const d = s.dicom;
    if (!d) return s.patient_ref || "—";
    return [personName(d.patient_name), d.patient_id].filter(Boolean).join(" · ") || s.patient_ref || "—";
  }
  filters.addEventListener("change", load);
  filters.addEventListener("submit", (e) => { e.preventDefault(); load(); });
  let typing = null;
  filters.accession.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(load, 300); });
  // One Idempotency-Key per chosen file and its fields: a retry of the same upload (an answer
  // lost to the network or a restarted server, a second tap) answers the study already filed
  // instead of filing it again. Changing the file or a field starts a new upload, a new key.
  const uploadForm = document.getElementById("upload-form");
  let uploadKey = null;
  function newKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    // randomUUID needs a secure context (HTTPS or localhost); a site on plain HTTP has this
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  for (const type of ["input", "change"]) uploadForm.addEventListener(type, () => { uploadKey = null; });
  uploadForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    uploadKey = uploadKey || newKey();
    const error = document.getElementById("upload-error");
    showError(error, "");
    const done = document.getElementById("upload-done");
    done.hidden = true;
    const data = new FormData();
    data.set("file", form.file.files[0]);
    data.set("task", form.task.value);
    data.set("lang", form.lang.value);
    if (form.patient_ref.value) data.set("patient_ref", form.patient_ref.value);
    if (form.clinical_question.value) data.set("clinical_question", form.clinical_question.value);
    const r = await api("/api/v1/studies", { method: "POST", body: data, headers: { "Idempotency-Key": uploadKey } });
    if (!r.ok) {
      // an identity conflict is said in the reader's language (kept aside for a radiologist)
      const conflict = r.data && r.data.code === "identity_conflict" && T.error_identity_conflict;
      showError(error, conflict || (r.data && r.data.detail) || T.error_generic);
      if (conflict && window.medai.reloadConflicts) window.medai.reloadConflicts();
      return;
    }
    form.reset();
    uploadKey = null;  // the next file is another upload
    // said where the study went: its number, a link, and that the analysis runs now
    done.replaceChildren(fill(T.worklist_uploaded, { id: r.data.id }), " ",
      el("a", { href: "/studies/" + r.data.id, text: T.worklist_open_study }));
    done.hidden = false;
    load();
  });
  load();
})();
