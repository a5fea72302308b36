"use strict";
// The report's Measurements section from the viewer: a length or bidirectional measurement the
// radiologist saves in OHIF (a TID 1500 SR over STOW-RS) is read back here
// (GET /api/v1/studies/{id}/measurements) as lines, sizes compared with the prior's. An empty
// section is filled; one holding other text is left alone and a button offers the lines. The
// text filled is an unsaved edit of the radiologist's (saved or signed with the rest), never a
// version made behind their back. Read again when the page gets the focus back (the viewer is
// another window) and on each load of the report ("medai:report" from study.js).
(function () {
  const M = window.medai;
  const { T, api } = M;
  const $ = (k) => document.getElementById(k);
  const root = $("study"), field = $("sec-measurements"), form = $("report-form");
  if (!root || !field || !form || document.body.dataset.role !== "radiologist") return;
  const id = root.dataset.studyId;
  const pull = $("measurements-pull"), note = $("measurements-note");
  let offered = "";    // the lines the server gave last
  let filled = null;   // the text this page put in the section (replaced while untouched)
  let phrase = null;   // [without sizes, with sizes] of the findings' comparison sentence
  let asking = 0;

  function changed() { form.dispatchEvent(new Event("input", { bubbles: true })); }
  function put() {
    field.value = offered;
    filled = offered;
    const findings = $("sec-findings");
    if (phrase && findings && findings.value.includes(phrase[0])) {
      findings.value = findings.value.split(phrase[0]).join(phrase[1]);
    }
    note.textContent = T.measurements_filled;
    note.hidden = false;
    changed();
  }
  function show() {
    const current = field.value.trim();
    const open = offered && current !== offered && !field.readOnly;
    if (open && (!current || current === filled)) { put(); pull.hidden = true; return; }
    pull.hidden = !open;
  }
  async function read() {
    const mine = ++asking;
    const r = await api(`/api/v1/studies/${id}/measurements`);
    if (mine !== asking || !r.ok) return;
    offered = (r.data.lines || []).join("\n");
    phrase = r.data.compared ? r.data.phrase : null;
    show();
  }
  pull.addEventListener("click", () => { put(); pull.hidden = true; field.focus(); });
  M.hear("medai:report", read);
  window.addEventListener("focus", read);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) read(); });
})();
