// Staff record, by the record number the triage screen showed, the department a patient was
// actually sent to and whether they judged it urgent: the triage model's labels (what it is
// retrained and monitored on). The AI's suggestion is shown as it was given.
"use strict";
(function () {
  const M = window.medai;
  const { T, api, el, fill, showError, fmtTime } = M;
  const $ = (k) => document.getElementById(k);
  let current = null;

  function departments(selected) {
    const names = (M.NAMES.triage && M.NAMES.triage.labels) || {};
    const ids = Object.keys(names).sort((a, b) => names[a].localeCompare(names[b], M.LOCALE));
    $("outcome-department").replaceChildren(el("option", { value: "", text: T.outcome_choose }),
      ...ids.map((id) => el("option", { value: id, text: names[id], selected: id === selected })));
  }

  function show(r) {
    current = r;
    $("outcome-card").hidden = false;
    $("outcome-card-title").textContent = fill(T.triage_record_no, { id: r.id }) + " · " + fmtTime(r.created_at);
    $("outcome-complaint").textContent = r.complaint;
    $("outcome-ai").replaceChildren(M.triageView.render({ ...r.result, record_id: r.id }));
    departments(r.outcome ? r.outcome.department : "");
    $("outcome-urgent").checked = r.outcome ? r.outcome.urgent : false;
    $("outcome-message").textContent = r.outcome ? fill(T.outcome_recorded, { at: fmtTime(r.outcome.at) }) : "";
  }

  $("outcome-find").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await api(`/api/v1/triage/${encodeURIComponent($("outcome-id").value)}`);
    showError($("outcome-error"), r.ok ? "" : r.status === 404 ? T.outcome_not_found : (r.data && r.data.detail) || T.error_generic);
    if (r.ok) show(r.data); else $("outcome-card").hidden = true;
  });
  $("outcome-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!current) return;
    const r = await api(`/api/v1/triage/${current.id}/outcome`, { method: "POST",
      json: { department: $("outcome-department").value, urgent: $("outcome-urgent").checked } });
    showError($("outcome-error"), r.ok ? "" : (r.data && r.data.detail) || T.error_generic);
    if (r.ok) show(r.data);
  });
  const asked = new URLSearchParams(window.location.search).get("record");
  if (asked) { $("outcome-id").value = asked; $("outcome-find").requestSubmit(); }
})();
