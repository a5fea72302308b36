"use strict";
(function () {
  const { T, api, el, statusLabel, showError, taskName, fmtTime } = window.medai;
  const body = document.querySelector("#worklist tbody");
  const filters = document.getElementById("filters");
  let timer = null;

  async function load() {
    const q = new URLSearchParams({ limit: "100" });
    if (filters.status.value) q.set("status", filters.status.value);
    if (filters.task.value) q.set("task", filters.task.value);
    if (filters.urgent.checked) q.set("urgent", "true");
    const r = await api("/api/v1/studies?" + q);
    if (!r.ok) return;
    body.replaceChildren(...r.data.items.map((s) => el("tr", { class: s.urgent ? "is-urgent" : null, "data-id": s.id },
      el("td", {}, el("a", { href: "/studies/" + s.id, text: String(s.id) })),
      el("td", {}, el("span", { class: "badge status-" + s.status, "data-status": s.status, text: statusLabel(s.status) }),
        s.urgent ? el("span", { class: "badge urgent", text: T.urgent }) : ""),
      el("td", { text: taskName(s.task) }),
      el("td", { text: s.patient_ref || "—" }),
      el("td", {}, el("time", { datetime: s.created_at, text: fmtTime(s.created_at) })))));
    document.getElementById("worklist-empty").hidden = r.data.items.length > 0;
    const busy = r.data.items.some((s) => s.status === "received" || s.status === "analysing");
    clearTimeout(timer);
    timer = setTimeout(load, busy ? 1500 : 8000);  // live status while analysis runs
  }

  filters.addEventListener("change", load);
  document.getElementById("upload-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    const error = document.getElementById("upload-error");
    showError(error, "");
    const data = new FormData();
    data.set("file", form.file.files[0]);
    data.set("task", form.task.value);
    data.set("lang", form.lang.value);
    if (form.patient_ref.value) data.set("patient_ref", form.patient_ref.value);
    if (form.clinical_question.value) data.set("clinical_question", form.clinical_question.value);
    const r = await api("/api/v1/studies", { method: "POST", body: data });
    if (!r.ok) { showError(error, (r.data && r.data.detail) || T.error_generic); return; }
    form.reset();
    load();
  });
  load();
})();
