"use strict";
(function () {
  const { T, api, el, fill, statusLabel, showError, taskName, fmtTime, personName, labelName, pct } = window.medai;
  const body = document.querySelector("#worklist tbody");
  const filters = document.getElementById("filters");
  // the ordering rule is open on a wide screen; on a phone it is one tap away (the first study
  // on the first screen)
  const rule = document.getElementById("worklist-order-rule");
  if (rule && window.matchMedia("(max-width: 480px)").matches) rule.open = false;
  let timer = null;
  let asked = 0;  // the latest request: an older answer arriving late is dropped
  let shown = null;  // what the table shows: an unchanged answer leaves the rows alone, so a
                     // refresh never swaps a row out from under a finger tapping its link

  async function load() {
    const mine = ++asked;
    const q = new URLSearchParams({ limit: "100" });
    // the default list is what is left to read (unsigned); "signed" shows the signed ones
    const status = filters.status.value;
    if (status === "unsigned" || status === "signed") q.set("signed", String(status === "signed"));
    else if (status) q.set("status", status);
    if (filters.task.value) q.set("task", filters.task.value);
    if (filters.urgent.checked) q.set("urgent", "true");
    if (filters.ai.value) q.set("ai", filters.ai.value);
    if (filters.red_flag.checked) q.set("red_flag", "true");
    const accession = filters.accession.value.trim();
    if (accession) q.set("accession", accession);
    // the study page's next/previous study and next unread one follow this order (shortcuts.js)
    try { sessionStorage.setItem("medai.worklist.query", q.toString()); } catch (e) { /* storage off */ }
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
    body.replaceChildren(...items.map((s) => el("tr", { class: s.status === "entered_in_error" ? "is-retracted" : rankClass(s), "data-id": s.id, "data-rank": s.reading ? s.reading.rank : null },
      // phones: each study is one block, its cells labelled (table.findings), patient in view
      el("td", { class: "row-head" }, el("a", { href: "/studies/" + s.id, class: "study-link", "data-prefix": T.study_title, text: String(s.id), "aria-label": `${T.study_title} ${s.id}` })),
      el("td", {}, el("span", { class: "badge status-" + s.status, "data-status": s.status, text: statusLabel(s.status) })),
      aiCell(s),
      priorityCell(s),
      el("td", { "data-label": T.col_task, text: [taskName(s.task) || "—", s.dicom && s.dicom.modality].filter(Boolean).join(" · ") }),
      el("td", { "data-label": T.col_accession, text: (s.dicom && s.dicom.accession) || "—" }),
      el("td", { "data-label": T.col_patient, text: patient(s) }),
      el("td", { "data-label": T.col_created }, el("time", { datetime: s.created_at, text: fmtTime(s.created_at) })))));
    document.getElementById("worklist-empty").hidden = items.length > 0;
  }

  // --- why a row is where it is (platform.reading_order): the AI column, and each reason
  // apart — "görüntü: …" (what the AI found on the image), "istem: …" (the request's red flag)
  function rankClass(s) {
    const rank = s.reading && s.reading.rank;
    return rank === "ai_urgent" ? "is-urgent" : rank === "red_flag" ? "is-flagged" : null;
  }
  const LANG = document.body.dataset.lang === "en" ? "en" : "tr";
  const names = (task, labels) => (labels || []).map((l) => labelName(task, l)).join(", ");

  function aiCell(s) {
    const ai = (s.reading && s.reading.ai) || { state: "none" };
    const parts = [];
    if (ai.state === "finding") {
      parts.push(el("strong", { text: labelName(s.task, ai.primary) }), " ",
        el("span", { class: "probability", text: pct(ai.probability) }));
      if ((ai.others || []).length) parts.push(" ", el("span", { class: "ai-more", text: fill(T.ai_more, { n: ai.others.length }), title: names(s.task, ai.others) }));
      if (ai.low_confidence) parts.push(" ", el("span", { class: "ai-low", text: T.ai_low_confidence }));
    } else if (ai.state === "undecided") {
      parts.push(fill(T.ai_state_undecided, { labels: names(s.task, ai.candidates) }));
    } else if (ai.state === "conflict") {
      const why = (ai.conflict || []).map((k) => k === "self"
        ? fill(T.ai_conflict_self, { labels: names(s.task, ai.conflict_labels) }) : T["ai_conflict_" + k]);
      parts.push(el("span", { class: "badge ai-conflict", text: T.ai_state_conflict }), " ", why.join("; "));
      if (ai.primary) parts.push(" · ", el("strong", { text: labelName(s.task, ai.primary) }), " ", el("span", { class: "probability", text: pct(ai.probability) }));
    } else {
      parts.push(el("span", { class: "muted", text: T["ai_state_" + ai.state] || T.ai_state_none }));
    }
    if (ai.out_of_scope) parts.push(" ", el("span", { class: "badge ai-out-of-scope", text: T.ai_out_of_scope }));
    return el("td", { class: "ai-cell", "data-label": T.col_ai, "data-ai-state": ai.state }, ...parts);
  }

  function priorityCell(s) {
    const r = s.reading;
    const reasons = [];
    const known = new Set((r && r.known) || []);
    const fresh = r ? (r.ai.urgent || []).filter((u) => !known.has(u.label)) : [];
    if (fresh.length) {
      const found = fresh.map((u) => u.state === "present"
        ? `${labelName(s.task, u.label)} ${pct(u.probability)}` : fill(T.ai_possible, { label: labelName(s.task, u.label) }));
      reasons.push(el("span", { class: "reason reason-image", text: fill(T.reason_image, { finding: found.join(", ") }) }));
    }
    if (known.size) {  // on the patient's signed prior too: known ("bilinen"), not ranked first
      reasons.push(el("span", { class: "reason reason-known", title: T.reason_known_title,
        text: fill(T.reason_known, { finding: names(s.task, [...known]) }) }));
    }
    if (r && r.request.red_flag) {
      const rules = r.request.rules.map((x) => x["name_" + LANG] || x.id).join(", ");
      reasons.push(el("span", { class: "reason reason-request", text: fill(T.reason_request, { rule: rules || T.reason_request_unnamed }) }));
    }
    if (r && r.request.stat) reasons.push(el("span", { class: "reason reason-request", text: T.reason_stat }));
    // a signed study's reasons were read: said, greyed, and it is listed by arrival
    const read = r && r.rank === "rest" ? " is-read" : "";
    return el("td", { class: "priority-cell" + (reasons.length ? read : " is-empty"), "data-label": T.col_priority }, ...(reasons.length ? reasons : ["—"]));
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
  // a birth date is a past day of a life: today at the latest, 150 years back at most
  const today = new Date().toISOString().slice(0, 10);
  uploadForm.patient_birth_date.max = today;
  uploadForm.patient_birth_date.min = `${Number(today.slice(0, 4)) - 150}${today.slice(4)}`;
  uploadForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    uploadKey = uploadKey || newKey();
    const error = document.getElementById("upload-error");
    showError(error, "");
    const done = document.getElementById("upload-done");
    done.hidden = true;
    const data = new FormData();  // the fields every chosen file is sent with
    data.set("task", form.task.value);
    data.set("lang", form.lang.value);
    if (form.patient_ref.value) data.set("patient_ref", form.patient_ref.value);
    if (form.clinical_question.value) data.set("clinical_question", form.clinical_question.value);
    // the patient's sex and birth date, for an image without a DICOM header (a header rules)
    if (form.patient_sex.value) data.set("patient_sex", form.patient_sex.value);
    if (form.patient_birth_date.value) data.set("patient_birth_date", form.patient_birth_date.value);
    // each chosen file its own request, listed with its progress and result (worklist_upload.js;
    // the count and sizes checked first, before any file is read)
    const sent = await window.medai.uploadFiles(form.file.files, data, uploadKey);
    if (sent.refused) { showError(error, sent.refused); return; }
    const results = sent.results, filed = results.filter((x) => x.r.ok);
    if (filed.length < results.length) {
      // an identity conflict is said in the reader's language (kept aside for a radiologist);
      // the form stays as it was: sent again, the files filed already are answered, not refiled
      const r = results.find((x) => !x.r.ok).r;
      const conflict = r.data && r.data.code === "identity_conflict" && T.error_identity_conflict;
      showError(error, results.length === 1 ? conflict || (r.data && r.data.detail) || T.error_generic
        : fill(T.upload_summary, { ok: filed.length, total: results.length }));
      if (filed.length) load();
      return;
    }
    form.reset();
    uploadKey = null;  // the next file is another upload
    // said where the study went: its number, a link, and that the analysis runs now
    const r = results[0].r;
    done.replaceChildren(...(results.length === 1 ? [fill(T.worklist_uploaded, { id: r.data.id }), " ",
      el("a", { href: "/studies/" + r.data.id, text: T.worklist_open_study })]
      : [fill(T.upload_summary, { ok: filed.length, total: results.length })]));
    done.hidden = false;
    load();
  });
  load();
})();
