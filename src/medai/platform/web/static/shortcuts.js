"use strict";
// Keyboard shortcuts of the reading room, on the study page and the worklist, listed on a `?`
// overlay (a modal dialog: focus kept inside, Esc closes, focus back where it was). None fires
// while a text field has the focus, except Ctrl+S (save) and Ctrl+Enter (open the sign
// dialog: nothing is ever signed without its confirmation), nor while a dialog is open.
// Next / previous study and, after a signature, the next unread study follow the worklist's
// own order and filters: the query the worklist last asked GET /api/v1/studies with
// (worklist.js keeps it for this tab), asked again here; the server's order, never re-sorted.
(function () {
  const M = window.medai;
  const { T, api, el, fill } = M;
  const page = document.body.dataset.page;
  const $ = (k) => document.getElementById(k);
  const QUERY = "medai.worklist.query", FLASH = "medai.flash";
  const DONE = new Set(["final", "amended", "entered_in_error"]);  // signed, or retracted

  // --- the worklist's order
  function worklistQuery() {
    let saved = null;
    try { saved = sessionStorage.getItem(QUERY); } catch (e) { saved = null; }
    const q = new URLSearchParams(saved || "");
    q.set("limit", "500");  // the whole list the worklist shows, and beyond its first page
    q.set("offset", "0");
    return q;
  }
  async function worklistOrder() {
    const r = await api("/api/v1/studies?" + worklistQuery());
    return r.ok ? r.data.items : null;
  }
  function flash(text) {
    try { sessionStorage.setItem(FLASH, text); } catch (e) { /* storage off: no message */ }
  }
  function say(text) {
    let node = $("kb-flash");
    if (!node) {
      node = el("p", { id: "kb-flash", class: "notice-line", role: "status" });
      const h1 = document.querySelector("main h1");
      (h1 || $("main").firstChild).after(node);
    }
    node.textContent = text;
    node.hidden = !text;
  }
  try {  // a message the previous page left (a signature, then the next study)
    const left = sessionStorage.getItem(FLASH);
    if (left) { sessionStorage.removeItem(FLASH); document.addEventListener("DOMContentLoaded", () => say(left)); }
  } catch (e) { /* storage off */ }

  function go(url) {
    if (!M.mayLeave()) return;  // an unsaved report asks first
    window.location.assign(url);
  }
  const studyId = () => { const r = $("study"); return r ? Number(r.dataset.studyId) : null; };
  async function step(d) {
    const items = await worklistOrder();
    if (!items) return;
    const at = items.findIndex((s) => s.id === studyId());
    const next = at < 0 ? (d > 0 ? items[0] : null) : items[at + d];
    if (next) go("/studies/" + next.id);
    else say(d > 0 ? T.kb_no_next : T.kb_no_prev);
  }
  // after a signature: the next study in the worklist's order not yet signed (wrapping to the
  // top: one skipped earlier is still to read), never the one just signed; none: the worklist
  async function afterSign(signed) {
    const items = (await worklistOrder()) || [];
    const at = items.findIndex((s) => s.id === signed);
    const ordered = at < 0 ? items : [...items.slice(at + 1), ...items.slice(0, at)];
    const next = ordered.find((s) => s.id !== signed && !DONE.has(s.status));
    if (next) {
      flash(fill(T.sign_next_opened, { id: signed }));
      window.location.assign("/studies/" + next.id);
    } else {
      flash(fill(T.worklist_all_read, { id: signed }));
      window.location.assign("/worklist");
    }
  }

  // --- the overlay
  const STUDY_KEYS = [
    ["kb_group_study", [
      [["N"], "kb_next"], [["P"], "kb_prev"], [["Ctrl", "S"], "kb_save"], [["Ctrl", "Enter"], "kb_sign"]]],
    ["kb_group_viewer", [
      [["+"], "kb_zoom_in"], [["-"], "kb_zoom_out"], [["0"], "kb_zoom_reset"],
      [["1"], "kb_preset_1"], [["2"], "kb_preset_2"], [["3"], "kb_preset_3"],
      [["↑", "↓"], "kb_slices", "/"], [["K"], "kb_key_slice"]]],
  ];
  const WORKLIST_KEYS = [
    ["kb_group_worklist", [[["J", "N"], "kb_rows_next", "/"], [["K", "P"], "kb_rows_prev", "/"], [["Enter"], "kb_open"]]],
  ];
  const COMMON = [[["?"], "kb_help"], [["Esc"], "kb_escape"]];
  let dialog = null, before = null;
  function keys(list, joiner) {
    return list.flatMap((k, i) => [i ? (joiner ? ` ${joiner} ` : " + ") : "", el("kbd", { text: k })]);
  }
  // the site's report macros (study_macros.js): typed by name in the report
  function macroTable() {
    const list = page !== "worklist" && window.medai.macros ? window.medai.macros() : [];
    if (!list.length) return [];
    return [el("table", { class: "list kb-table", id: "kb-macros" },
      el("caption", { text: T.kb_group_macros }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: T.kb_col_keys }), el("th", { scope: "col", text: T.tpl_text }))),
      el("tbody", {}, ...list.map(([name, text]) => el("tr", { "data-macro": name },
        el("td", { class: "kb-keys" }, el("kbd", { text: name })), el("td", { text }))))) ];
  }
  function build() {
    const groups = page === "worklist" ? WORKLIST_KEYS : STUDY_KEYS;
    const table = ([title, rows]) => el("table", { class: "list kb-table" },
      el("caption", { text: T[title] }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: T.kb_col_keys }), el("th", { scope: "col", text: T.kb_col_action }))),
      el("tbody", {}, ...rows.map(([k, what, joiner]) => el("tr", { "data-action": what },
        el("td", { class: "kb-keys" }, ...keys(k, joiner)), el("td", { text: T[what] })))));
    const close = el("button", { type: "button", id: "kb-close", class: "primary", text: T.kb_close });
    dialog = el("dialog", { id: "kb-dialog", class: "sign-dialog kb-dialog", "aria-labelledby": "kb-title", "aria-describedby": "kb-intro" },
      el("h2", { id: "kb-title", text: T.kb_title }),
      el("p", { id: "kb-intro", class: "note", text: T.kb_intro }),
      ...groups.map(table),
      ...macroTable(),
      table(["kb_group_common", COMMON]),
      ...(page === "worklist" ? [] : [el("p", { class: "note", text: T.kb_preset_note })]),
      el("div", { class: "buttons" }, close));
    close.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => { if (before && before.focus) before.focus(); });
    dialog.addEventListener("keydown", (e) => {  // Tab and Shift+Tab stay inside
      if (e.key !== "Tab") return;
      const f = [...dialog.querySelectorAll("button, [href], input, select, textarea, [tabindex]:not([tabindex='-1'])")]
        .filter((x) => !x.disabled && !x.hidden);
      if (!f.length) return;
      const first = f[0], last = f[f.length - 1];
      if (e.shiftKey && document.activeElement === first) { last.focus(); e.preventDefault(); }
      else if (!e.shiftKey && document.activeElement === last) { first.focus(); e.preventDefault(); }
    });
    document.body.append(dialog);
  }
  function openHelp() {
    if (!dialog) build();
    if (dialog.open) return;
    before = document.activeElement;
    dialog.showModal();
    $("kb-close").focus();
  }
  // a way to it without a keyboard, and a sign that it exists
  document.addEventListener("DOMContentLoaded", () => {
    const h1 = document.querySelector("main h1");
    if (!h1) return;
    const b = el("button", { type: "button", id: "kb-open", class: "link kb-open", "aria-haspopup": "dialog", text: T.kb_button });
    b.addEventListener("click", openHelp);
    h1.after(el("p", { class: "kb-line" }, b));
  });

  // --- the keys
  const NOT_TYPING = new Set(["button", "checkbox", "radio", "range", "submit", "reset", "file", "color", "image"]);
  function typing(t) {
    if (!t || !t.tagName) return false;
    if (t.isContentEditable || t.tagName === "TEXTAREA" || t.tagName === "SELECT") return true;
    return t.tagName === "INPUT" && !NOT_TYPING.has((t.type || "text").toLowerCase());
  }
  function usable(id) { const b = $(id); return b && !b.hidden && !b.disabled && b.offsetParent !== null ? b : null; }
  function onStudyKey(e, ctrl, key) {
    if (ctrl && (key === "s" || key === "S")) {
      e.preventDefault();  // never the browser's "save page"
      const save = usable("save");
      if (save) save.click();
      return;
    }
    if (ctrl && key === "Enter") {
      e.preventDefault();
      const sign = usable("sign");
      if (sign) sign.click();  // opens the dialog; only its own button signs
      return;
    }
    if (ctrl || e.altKey || typing(e.target)) return;
    const view = M.studyView;
    const acts = {
      n: () => step(1), N: () => step(1), p: () => step(-1), P: () => step(-1),
      "+": () => view && view.zoomBy(1.25), "=": () => view && view.zoomBy(1.25),
      "-": () => view && view.zoomBy(1 / 1.25), 0: () => view && view.reset(),
      1: () => view && view.preset(1), 2: () => view && view.preset(2), 3: () => view && view.preset(3),
    };
    if (!acts[key]) return;
    e.preventDefault();
    acts[key]();
  }
  function onWorklistKey(e, ctrl, key) {
    if (ctrl || e.altKey || typing(e.target)) return;
    const d = { j: 1, J: 1, n: 1, N: 1, k: -1, K: -1, p: -1, P: -1 }[key];
    if (!d) return;
    const links = [...document.querySelectorAll("#worklist tbody tr a[href^='/studies/']")];
    if (!links.length) return;
    e.preventDefault();
    const at = links.indexOf(document.activeElement);
    const to = links[Math.max(0, Math.min(links.length - 1, at < 0 ? (d > 0 ? 0 : links.length - 1) : at + d))];
    to.focus();
    to.closest("tr").scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || e.isComposing) return;
    if (document.querySelector("dialog[open]")) return;  // a dialog's own keys (Esc: native)
    const ctrl = e.ctrlKey || e.metaKey, key = e.key;
    if (key === "?" && !ctrl && !typing(e.target)) { e.preventDefault(); openHelp(); return; }
    if (page === "study") onStudyKey(e, ctrl, key);
    else if (page === "worklist") onWorklistKey(e, ctrl, key);
  });
  M.shortcuts = { afterSign, openHelp, worklistOrder };
})();
