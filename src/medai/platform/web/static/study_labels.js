// The radiologist's verdict on each finding, stored with the signature as the study's labels
// (what the hospital's own models learn from and are validated on). Each label starts from what
// the text on screen states (asked of the server as the text changes); one click confirms or
// rejects an AI finding, or adds a missing one. Only the clicks travel with the signature; the
// server fills every other label from the signed text, the same way this card did.
"use strict";
(function () {
  const M = window.medai;
  const { T, api, el, labelName } = M;
  const root = document.getElementById("study");
  const card = document.getElementById("labels-card");
  if (!root || !card) return;
  const id = root.dataset.studyId;
  const $ = (k) => document.getElementById(k);
  const choices = {};      // label -> true/false: the radiologist's clicks
  let shown = [];          // the last entries shown
  let task = null;
  let aiStates = {};       // label -> the AI's state (GET /studies/{id}: ai_result.findings)
  let signedVersion = null;
  let timer = null;
  let asked = 0;           // suggestions answered out of order: only the latest is shown

  const sections = () => Object.fromEntries(["technique", "findings", "impression", "recommendation"]
    .map((k) => [k, ($("sec-" + k) || {}).value || ""]));
  const sourceWord = (e) => T["labels_source_" + e.source] || "";

  function row(e) {
    const name = labelName(task, e.label);
    const toggle = el("button", { type: "button", class: "label-toggle" + (e.present ? " present" : ""),
      "aria-pressed": e.present ? "true" : "false",
      "aria-label": `${T.labels_verdict}: ${name} — ${e.present ? T.labels_present : T.labels_absent}`,
      text: e.present ? `✓ ${T.labels_present}` : `✗ ${T.labels_absent}` });
    toggle.addEventListener("click", () => {
      choices[e.label] = !e.present;
      suggest();
    });
    // the AI's one state of the label (the study's decision: present, absent or undecided),
    // never re-derived; a label the AI does not read has none
    const state = aiStates[e.label] || (e.ai_positive === null ? null : e.ai_positive ? "present" : "absent");
    const ai = state ? T["state_" + state] : "—";
    return el("tr", { "data-label": e.label, "data-ai-state": state || "none", "data-present": String(e.present), "data-source": e.source },
      el("th", { scope: "row", text: name }),
      el("td", { "data-label": T.labels_ai, text: ai }),
      el("td", { "data-label": T.labels_verdict }, toggle,
        el("span", { class: "basis", text: sourceWord(e) })));
  }

  function show(entries, note) {
    shown = entries;
    $("labels").tBodies[0].replaceChildren(...entries.map(row));
    $("labels-note").textContent = note || "";
    const listed = new Set(entries.map((e) => e.label));
    const names = (M.NAMES[task] && M.NAMES[task].labels) || {};
    const add = $("labels-add");
    add.replaceChildren(el("option", { value: "", text: T.labels_add_choose }),
      ...Object.keys(names).filter((l) => !listed.has(l))
        .map((l) => el("option", { value: l, text: labelName(task, l) })));
  }

  async function suggest() {
    const mine = ++asked;
    const r = await api(`/api/v1/studies/${id}/labels/suggest`, { method: "POST",
      json: { sections: sections(), labels: { ...choices } } });
    if (mine !== asked) return;
    if (!r.ok) return;
    const none = !r.data.labels.some((e) => e.present);
    show(r.data.labels, signedVersion ? M.fill(T.labels_signed_then_edit, { version: signedVersion })
      : none ? T.labels_nothing_learned : T.labels_hint);
  }

  async function load() {
    const s = await api(`/api/v1/studies/${id}`);
    if (!s.ok) return;
    task = s.data.task;
    aiStates = Object.fromEntries(((s.data.ai_result || {}).findings || []).map((f) => [f.label, f.state]));
    if (s.data.status === "received" || s.data.status === "analysing") { setTimeout(load, 1500); return; }
    // a retracted study (entered in error) is never signed: its labels would be another's
    card.hidden = s.data.status === "entered_in_error";
    if (card.hidden) return;
    const stored = await api(`/api/v1/studies/${id}/labels`);
    if (stored.ok && stored.data.report_version !== null) {
      signedVersion = stored.data.report_version;
      asked++;  // a suggestion still in flight must not cover the stored labels
      for (const k of Object.keys(choices)) delete choices[k];
      show(stored.data.labels, M.fill(T.labels_signed, { version: signedVersion }));
      return;
    }
    suggest();
  }

  $("labels-add-button").addEventListener("click", () => {
    const label = $("labels-add").value;
    if (!label) return;
    choices[label] = true;
    suggest();
  });
  // the report form filled (loaded, saved, written by hand): the text on screen changed
  document.addEventListener("medai:report-shown", () => { if (task && signedVersion === null) suggest(); });
  document.addEventListener("input", (ev) => {
    if (!ev.target.id || !ev.target.id.startsWith("sec-")) return;
    clearTimeout(timer);
    timer = setTimeout(suggest, 500);
  });
  // what the sign request carries, and what the sign dialog shows of it
  M.studyLabels = {
    choices: () => ({ ...choices }),
    summary: () => shown.filter((e) => e.present).map((e) => labelName(task, e.label)).join(", ") || T.labels_nothing_stored,
    // the AI's present findings this signature says are absent (named in the sign dialog)
    rejected: () => shown.filter((e) => !e.present && aiStates[e.label] === "present").map((e) => labelName(task, e.label)),
    refresh: () => { signedVersion = null; for (const k of Object.keys(choices)) delete choices[k]; load(); },
  };
  load();
})();
