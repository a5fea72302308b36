// The admin page's retraining and validation jobs: start a retraining, follow every job's
// progress (polled while one is queued or running), read its outcome — the new candidate, the
// validation's verdict, or why it failed — and cancel it. The registry's "Validate" buttons
// start validation jobs through ``medai.startJob``; a finished job reloads the registry.
"use strict";
(function () {
  const M = window.medai;
  const { T, api, el, fill, showError, taskName, fmtTime } = M;
  const section = document.getElementById("jobs-section");
  if (!section) return;
  const error = document.getElementById("jobs-error");
  const message = document.getElementById("jobs-message");
  let timer = null;
  let active = new Set();  // ids queued or running at the last look

  function say(text) {
    message.textContent = text;
    message.hidden = !text;
  }

  function refusal(r) {
    const code = r.data && r.data.code;
    const detail = (r.data && r.data.detail) || "";
    if (code === "job_running") return T.jobs_err_job_running;
    if (code === "job_refused") return `${T.jobs_err_job_refused} (${detail})`;
    return detail || T.error_generic;
  }

  function outcome(j) {
    if (j.status === "failed") {
      const code = j.result && j.result.error_code;  // in the page's language where known
      const text = code && T["jobs_err_" + code] ? fill(T["jobs_err_" + code], j.result) : j.error;
      return el("span", { class: "error-text", text: text || T.error_generic });
    }
    if (j.status !== "done" || !j.result) return "";
    if (j.kind === "retrain") {
      return fill(T.jobs_candidate, { id: j.result.model.id, studies: j.result.datasheet.studies });
    }
    const v = j.result.validation;
    if (v.outcome === "inconclusive") {  // never a pass: why, with the sample size and minimum
      const why = v.inconclusive || {};
      return el("span", { class: "error-text", "data-outcome": "inconclusive",
        title: (v.metrics && v.metrics.summary) || "",
        text: fill(T.jobs_validation_inconclusive, { why: fill(
          T["validation_inconclusive_" + why.reason] || T.validation_inconclusive_too_few_studies,
          { studies: why.studies, minimum: why.minimum }) }) });
    }
    return fill(v.passed ? T.jobs_validation_passed : T.jobs_validation_failed,
      { summary: (v.metrics && v.metrics.summary) || "" });
  }

  function statusCell(j) {
    const status = T["jobs_status_" + j.status] || j.status;
    const stage = T["jobs_stage_" + j.stage] || j.stage;
    const pct = Math.round(j.progress * 100);
    const parts = [el("span", { class: "badge job-" + j.status, text: status })];
    if (j.status === "running" || j.status === "queued") {
      parts.push(el("progress", { max: "100", value: String(pct),
        "aria-label": `${T["jobs_kind_" + j.kind] || j.kind} #${j.id}: ${pct}%` }),
      el("span", { class: "basis", text: `${stage} · ${pct}%` }));
    }
    return el("td", { "data-label": T.col_status }, ...parts);
  }

  function row(j) {
    const actions = [];
    if (j.status === "queued" || j.status === "running") {
      const b = el("button", { type: "button", text: T.jobs_cancel,
        "aria-label": `${T.jobs_cancel}: #${j.id}`, disabled: j.cancel_requested });
      b.addEventListener("click", async () => {
        const r = await api(`/api/v1/models/jobs/${j.id}/cancel`, { method: "POST" });
        if (!r.ok) { showError(error, refusal(r)); return; }
        showError(error, "");
        say(fill(T.jobs_cancel_asked, { id: j.id }));
        load();
      });
      actions.push(b);
    }
    // phones: each job is one block, its cells labelled (table.findings)
    return el("tr", { "data-job": String(j.id), "data-status": j.status, "data-kind": j.kind },
      el("th", { scope: "row", text: `#${j.id} ${T["jobs_kind_" + j.kind] || j.kind}` }),
      el("td", { "data-label": T.col_task, text: taskName(j.task) + (j.model_id ? ` · #${j.model_id}` : "") }),
      statusCell(j),
      el("td", { class: "outcome", "data-label": T.jobs_outcome }, outcome(j)),
      el("td", { "data-label": T.jobs_started_by, text: `${j.created_by} · ${fmtTime(j.created_at)}` }),
      el("td", {}, ...actions));
  }

  async function load() {
    clearTimeout(timer);
    const r = await api("/api/v1/models/jobs?limit=20");
    if (!r.ok) { showError(error, refusal(r)); return; }
    const items = r.data.items;
    document.querySelector("#model-jobs tbody").replaceChildren(...items.map(row));
    document.getElementById("jobs-empty").hidden = items.length > 0;
    const now = new Set(items.filter((j) => j.status === "queued" || j.status === "running").map((j) => j.id));
    const finished = [...active].some((id) => !now.has(id));
    active = now;
    if (finished) document.dispatchEvent(new CustomEvent("medai:registry-changed"));
    if (now.size) timer = setTimeout(load, 2000);
  }

  async function start(body) {
    const r = await api("/api/v1/models/jobs", { method: "POST", json: body });
    if (!r.ok) { say(""); showError(error, refusal(r)); return false; }
    showError(error, "");
    say(fill(T.jobs_started, { id: r.data.id }));
    load();
    return true;
  }
  M.startJob = start;

  for (const option of document.getElementById("retrain-task").options) option.textContent = taskName(option.value);
  document.getElementById("retrain-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    start({ kind: "retrain", task: document.getElementById("retrain-task").value,
      options: { epochs: Number(document.getElementById("retrain-epochs").value) } });
  });
  load();
})();
