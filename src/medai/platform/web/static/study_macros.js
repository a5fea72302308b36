// Report macros on the study page (issue 69 §2): a radiologist types a macro's name in any
// section of the report — ".normal" — and a space, Tab or Enter puts the macro's text in its
// place. The macros are the site's (reading.report_templates), in the report's language, the
// study's task's first and then those of every task; the shortcuts overlay lists them.
"use strict";
(function () {
  const M = window.medai;
  const { T, api, fill } = M;
  const form = document.getElementById("report-form");
  if (!form) return;
  let macros = new Map();  // ".name" -> text
  let task = "", lang = M.LANG;
  let all = [];

  function choose() {
    const mine = new Map();
    // the report's language; a macro of the study's task wins over one of every task
    for (const m of all.filter((x) => x.lang === lang && !x.task)) mine.set(m.name, m);
    for (const m of all.filter((x) => x.lang === lang && x.task === task)) mine.set(m.name, m);
    macros = new Map([...mine].map(([k, m]) => [k, m.sections.text || ""]));
  }
  async function load() {
    const r = await api("/api/v1/report-templates?kind=macro");
    if (!r.ok) return;
    all = r.data;
    choose();
  }
  M.hear("medai:study", (s) => {
    task = (s && s.task) || "";
    lang = (s && s.language) || M.LANG;
    choose();
  });
  // the word before the caret, if it is a macro's name: replaced by its text
  function expand(area) {
    const end = area.selectionStart;
    if (end !== area.selectionEnd) return false;
    const before = area.value.slice(0, end);
    const m = before.match(/(^|\s)(\.[\p{Ll}\d_-]{1,32})$/u);
    if (!m || !macros.has(m[2])) return false;
    const start = end - m[2].length;
    const text = macros.get(m[2]);
    area.setRangeText(text, start, end, "end");
    area.dispatchEvent(new Event("input", { bubbles: true }));  // unsaved, as typing is
    const live = document.getElementById("report-message");
    if (live) live.textContent = fill(T.macro_expanded, { name: m[2] });
    return true;
  }
  form.addEventListener("keydown", (e) => {
    const area = e.target;
    if (!(area instanceof HTMLTextAreaElement) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key !== " " && e.key !== "Tab" && e.key !== "Enter") return;
    if (expand(area)) {
      if (e.key === "Tab") e.preventDefault();  // stays in the section
      else if (e.key === "Enter") { e.preventDefault(); area.setRangeText("\n", area.selectionStart, area.selectionEnd, "end"); }
      else { e.preventDefault(); area.setRangeText(" ", area.selectionStart, area.selectionEnd, "end"); }
      area.dispatchEvent(new Event("input", { bubbles: true }));
    }
  });
  // for the shortcuts overlay: [name, the first words of its text]
  M.macros = () => [...macros].map(([name, text]) => [name, text.length > 70 ? text.slice(0, 69) + "…" : text]);
  load();
})();
