// The admin page's report templates and macros (reading.report_templates): those in use, each
// edited as a new version (the version it was made from is sent: another admin's newer save is
// refused, never overwritten), a site's own withdrawn.
"use strict";
(function () {
  const { T, api, el, showError, fill } = window.medai;
  const $ = (id) => document.getElementById(id);
  const table = $("templates");
  if (!table) return;
  const form = $("tpl-form"), error = $("tpl-error"), status = $("tpl-status");
  const SECTIONS = ["technique", "findings", "measurements", "impression", "recommendation"];
  let editing = null;

  const kindName = (k) => T["tpl_kind_" + k] || k;
  // "Beyin MR · Gliom · takip": a template's result by its label's name, its follow-up said
  function result(t) {
    const follow = t.name.endsWith("+followup"), base = follow ? t.name.slice(0, -"+followup".length) : t.name;
    const named = base === "normal" ? T.tpl_result_normal : window.medai.labelName(t.task, base);
    return follow ? `${named} · ${T.tpl_follow_up}` : named;
  }
  const label = (t) => [t.task ? (window.medai.taskName(t.task) || t.task) : T.tpl_any_task,
    t.kind === "macro" ? t.name : result(t)].join(" · ");

  function open(t, fresh) {
    editing = t;
    $("tpl-kind").value = t.kind;
    $("tpl-base").value = String(t.version || 0);
    $("tpl-task").value = t.task || "";
    $("tpl-lang").value = t.lang || window.medai.LANG;
    $("tpl-name").value = t.name || "";
    $("tpl-title-field").value = t.title || "";
    for (const box of form.querySelectorAll(".tpl-section")) {
      const s = box.dataset.section;
      box.hidden = t.kind === "macro" ? s !== "text" : s === "text";
      $("tpl-" + s).value = (t.sections || {})[s] || "";
    }
    // a template's or macro's key is what it is; only a new macro names itself
    for (const id of ["tpl-task", "tpl-lang", "tpl-name"]) $(id).disabled = !fresh;
    $("tpl-name-hint").hidden = t.kind !== "macro";
    $("tpl-withdraw").hidden = fresh || t.built_in;
    $("tpl-form-title").textContent = fresh ? T.tpl_new_macro : `${kindName(t.kind)}: ${label(t)} (${t.lang})`;
    showError(error, "");
    form.hidden = false;
    $("tpl-name").disabled ? $("tpl-title-field").focus() : $("tpl-name").focus();
  }

  function row(t) {
    const edit = el("button", { type: "button", text: T.tpl_edit, "aria-label": `${T.tpl_edit}: ${label(t)} (${t.lang})` });
    edit.addEventListener("click", () => open(t, false));
    const version = t.built_in ? T.tpl_built_in : fill(T.tpl_version_by, { version: t.version, by: t.saved_by || "—" });
    return el("tr", { "data-key": [t.kind, t.task, t.name, t.lang].join("|") },
      el("td", { "data-label": T.tpl_col_kind, text: kindName(t.kind) }), el("td", { class: "tpl-name", text: label(t) }),
      el("td", { "data-label": T.tpl_col_lang, text: t.lang.toUpperCase() }),
      el("td", { "data-label": T.tpl_col_version, text: version }), el("td", { class: "tpl-edit" }, edit));
  }

  async function load() {
    const r = await api("/api/v1/admin/report-templates");
    if (!r.ok) { showError(error, (r.data && r.data.detail) || T.error_generic); return; }
    table.tBodies[0].replaceChildren(...r.data.map(row));
  }

  async function send(active) {
    const kind = $("tpl-kind").value;
    const sections = {};
    for (const s of kind === "macro" ? ["text"] : SECTIONS) {
      const v = $("tpl-" + s).value;
      if (v.trim() || kind === "macro") sections[s] = v;
    }
    const body = { kind, task: $("tpl-task").value, name: $("tpl-name").value.trim(), lang: $("tpl-lang").value,
      title: $("tpl-title-field").value, sections, base_version: Number($("tpl-base").value), active };
    const r = await api("/api/v1/admin/report-templates", { method: "POST", json: body });
    if (!r.ok) {
      showError(error, r.status === 409 ? T.tpl_stale : (r.data && r.data.detail) || T.error_generic);
      if (r.status === 409) await load();
      return;
    }
    form.hidden = true;
    await load();  // the list shows the new version before the line says it is saved
    status.textContent = fill(active ? T.tpl_saved : T.tpl_withdrawn, { name: label(r.data), version: r.data.version });
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); send(true); });
  $("tpl-withdraw").addEventListener("click", () => { if (window.confirm(T.tpl_withdraw_confirm)) send(false); });
  $("tpl-cancel").addEventListener("click", () => { form.hidden = true; editing = null; });
  $("tpl-new-macro").addEventListener("click", () => open({ kind: "macro", task: "", name: ".", lang: window.medai.LANG, sections: {}, version: 0 }, true));
  load();
})();
