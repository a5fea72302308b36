"use strict";
// "Re-analyse as another type" on the study page (POST /api/v1/studies/{id}/reanalyse): a
// study uploaded as the wrong type is read by another type's model instead of being uploaded
// again. Offered while the report is unsigned; a signed one says why not (the server refuses
// it too: 409 report_signed). study.js tells each load of the study (M.hear).
(function () {
  const M = window.medai;
  const { T, api, el, fill, taskName } = M;
  const $ = (k) => document.getElementById(k);
  const box = $("reanalyse"), root = $("study");
  if (!box || !root) return;
  const id = root.dataset.studyId;
  const pick = $("reanalyse-task"), button = $("reanalyse-button"), message = $("reanalyse-message");
  const SIGNED = new Set(["final", "amended"]);
  let busy = false, task = null, said = "";
  const tasks = Object.entries(M.NAMES).filter(([, v]) => v.reads_images);

  function show(s) {
    box.hidden = s.status === "entered_in_error";
    if (task !== s.task) {  // the other types, the study's own left out
      task = s.task;
      pick.replaceChildren(...tasks.filter(([n]) => n !== s.task).map(([n, v]) => el("option", { value: n, text: v.name })));
    }
    const signed = SIGNED.has(s.status), running = s.status === "received" || s.status === "analysing";
    pick.disabled = button.disabled = busy || signed || running || !pick.options.length;
    box.dataset.state = signed ? "signed" : running ? "running" : "open";
    if (signed || running) message.textContent = signed ? T.reanalyse_signed : T.reanalyse_running;
    else if (said !== "error") message.textContent = "";
  }
  M.hear("medai:study", show);
  button.addEventListener("click", async () => {
    if (!pick.value || busy) return;
    busy = true;
    button.disabled = true;
    const chosen = pick.value;
    const r = await api(`/api/v1/studies/${id}/reanalyse`, { method: "POST", json: { task: chosen } });
    busy = false;
    if (r.ok) {
      // the page reads the study again (its new type, then the new draft), saying what was done
      try { sessionStorage.setItem("medai.flash", fill(T.reanalyse_queued, { task: taskName(chosen) })); } catch (e) { /* storage off */ }
      window.location.reload();
      return;
    }
    const code = r.data && r.data.code;
    said = "error";  // kept on screen until the study changes
    message.textContent = code === "report_signed" ? T.reanalyse_signed
      : code === "analysis_running" ? T.reanalyse_running : (r.data && r.data.detail) || T.error_generic;
    button.disabled = false;
  });
})();
