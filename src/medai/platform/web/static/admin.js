"use strict";
(function () {
  const { T, api, el, fill, showError, roleName, actionName, outcomeName, taskName, labelName, modelVersion, fmtTime, LOCALE, LANG } = window.medai;
  // --- users: an admin never sets or sees a password; a new or reset account gets a
  // one-time enrolment code, shown here once, with which its user chooses one at /enrol
  const userSecret = document.getElementById("user-secret");
  function showCode(u) {
    const close = el("button", { type: "button", text: T.kiosk_secret_done });
    close.addEventListener("click", () => { userSecret.replaceChildren(); userSecret.hidden = true; });
    const c = u.enrol_code;
    userSecret.replaceChildren(el("h3", { text: fill(T.admin_code_title, { username: u.username }) }),
      el("p", { text: fill(T.admin_code_text, { path: "/enrol", until: fmtTime(u.enrol_code_expires_at) }) }),
      el("p", { class: "code", text: c.slice(0, 4) + "-" + c.slice(4, 8) + "-" + c.slice(8) }),
      el("div", { class: "buttons" }, close));
    userSecret.hidden = false;
    userSecret.scrollIntoView({ block: "nearest" });
  }
  function passwordState(u) {
    if (u.internal) return T.admin_internal_account;  // nobody signs in as it
    // the two-person rule: a clinical account reads no patient data until a radiologist approves it
    const approval = u.approval_pending ? " · " + T.admin_approval_pending : "";
    if (u.enrolled) return T.admin_enrolled + approval;
    return (u.enrol_code_expires_at ? fill(T.admin_enrol_waiting, { until: fmtTime(u.enrol_code_expires_at) }) : T.admin_enrol_expired) + approval;
  }
  async function users() {
    const r = await api("/api/v1/users");
    if (!r.ok) return;
    document.querySelector("#users tbody").replaceChildren(...r.data.map((u) => {
      const b = el("button", { type: "button", text: u.active ? T.admin_disable : T.admin_enable,
        "aria-label": `${u.active ? T.admin_disable : T.admin_enable}: ${u.username}` });
      b.addEventListener("click", async () => {
        await api(`/api/v1/users/${encodeURIComponent(u.username)}/${u.active ? "disable" : "enable"}`, { method: "POST" });
        users();
      });
      const reset = el("button", { type: "button", text: T.admin_reset, "aria-label": `${T.admin_reset}: ${u.username}` });
      reset.addEventListener("click", async () => {
        if (!window.confirm(fill(T.admin_reset_confirm, { username: u.username }))) return;
        const done = await api(`/api/v1/users/${encodeURIComponent(u.username)}/reset`, { method: "POST" });
        showError(document.getElementById("user-error"), done.ok ? "" : (done.data && done.data.detail) || T.error_generic);
        if (done.ok) { showCode(done.data); users(); audit(); }
      });
      const signsAs = u.full_name ? (u.title ? u.title + " " : "") + u.full_name : "";
      return el("tr", {}, el("td", {}, u.username, signsAs ? el("div", { class: "hint", text: signsAs }) : ""),
        el("td", { text: u.internal ? T.admin_internal_role : roleName(u.role) }),
        el("td", { text: u.active ? T.yes : T.no }), el("td", { text: passwordState(u) }),
        el("td", {}, u.internal ? "" : el("span", { class: "actions" }, reset, b)));
    }));
  }

  // --- model cards: a readable page per served model, not raw JSON
  const num = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 3 });
  const isScalar = (v) => v === null || ["string", "number", "boolean"].includes(typeof v);
  const show = (v) => (v === null || v === undefined || v === "" ? "—" : typeof v === "number" ? num.format(v) : String(v));
  const metricName = (k) => T["metric_" + k] || k;
  function table(caption, head, rows) {
    return el("div", { class: "table-wrap" }, el("table", { class: "list compact" },
      el("caption", { text: caption }),
      el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...rows.map((cells) => el("tr", {}, el("th", { scope: "row", text: cells[0] }),
        ...cells.slice(1).map((c) => el("td", { text: show(c) })))))));
  }
  function facts(pairs) {
    return el("dl", { class: "facts" }, ...pairs.filter(([, v]) => v !== undefined).flatMap(([k, v, cls]) =>
      [el("dt", { text: k }), el("dd", { class: cls || null, text: show(v) })]));
  }
  function labelsTable(task, card) {
    const perLabel = (card.metrics || {}).per_label_auroc || {};
    const hasAuroc = Object.keys(perLabel).length > 0;
    const head = [T.card_label, T.card_label_id, T.card_threshold, ...(hasAuroc ? ["AUROC"] : [])];
    return table(T.card_labels, head, (card.labels || []).map((lab) => [labelName(task, lab), lab,
      card.thresholds ? card.thresholds[lab] : null, ...(hasAuroc ? [perLabel[lab]] : [])]));
  }
  function metricsTables(task, metrics) {
    const out = [];
    const scalars = Object.entries(metrics).filter(([, v]) => isScalar(v));
    if (scalars.length) out.push(table(T.card_metrics_overall, [T.card_metric, T.card_value], scalars.map(([k, v]) => [metricName(k), v])));
    for (const [k, v] of Object.entries(metrics)) {
      if (isScalar(v) || k === "per_label_auroc" || typeof v !== "object") continue;
      const rows = Object.entries(v);
      if (rows.every(([, x]) => isScalar(x))) {
        out.push(table(metricName(k), [T.card_metric, T.card_value], rows.map(([a, x]) => [labelName(task, a), x])));
      } else if (rows.every(([, x]) => x && typeof x === "object" && Object.values(x).every(isScalar))) {
        const cols = [...new Set(rows.flatMap(([, x]) => Object.keys(x)))];
        out.push(table(metricName(k), [T.metric_source, ...cols.map(metricName)], rows.map(([a, x]) => [a, ...cols.map((c) => x[c])])));
      } else {  // deeper than a table: still readable, as indented text
        out.push(el("h4", { text: metricName(k) }), el("pre", { class: "card-json", text: JSON.stringify(v, null, 2) }));
      }
    }
    return out;
  }
  function systemName(name) {
    // method names are data; the prefixes that say what a row is are the page's language
    return name.replace(/^baseline:\s*/, T.card_baseline_prefix + ": ").replace(/^ceiling:\s*/, T.card_ceiling_prefix + ": ");
  }
  function baselinesVerdict(entry, secondary) {
    const outcomes = entry.outcomes || Object.fromEntries(Object.entries(entry.beats || {}).map(([n, ok]) => [n, ok ? "beats" : "loses"]));
    const named = (kind) => Object.entries(outcomes).filter(([, o]) => kind.includes(o)).map(([n]) => systemName(n));
    const lost = named(["loses", "unmeasured"]), tied = named(["ties"]);
    // only the deciding comparison says whether the model should be the default
    const template = lost.length ? (secondary ? T.card_beats_not_split : T.card_beats_not) : tied.length ? T.card_ties : T.card_beats_all;
    return el("p", { class: lost.length ? "verdict warn" : tied.length ? "verdict tie" : "verdict",
      text: template.replace("{names}", (lost.length ? lost : tied).join(", "))
        .replace("{metric}", metricName(entry.metric)).replace("{on}", entry.on || "") });
  }
  function baselinesBlock(entry) {
    const rows = Object.entries(entry.table || {});
    if (!rows.length) return [];
    const cols = [...new Set(rows.flatMap(([, x]) => Object.keys(x)))];
    const out = [el("h4", { text: T.card_baselines }), baselinesVerdict(entry)];
    for (const other of [entry.validation, entry.test]) if (other && other.table) out.push(baselinesVerdict(other, true));
    if (entry.kept_because) out.push(el("p", {}, T.card_kept_because + " ", prose(entry, "kept_because")));
    out.push(table(entry.on || "", [T.card_system, ...cols.map(metricName)],
      rows.map(([n, x]) => [n === entry.model ? n + " ★" : systemName(n), ...cols.map((c) => x[c])])));
    return out;
  }
  function dataBlock(task, entries) {
    return (entries || []).flatMap((d) => {
      const rep = d.report || {};
      const parts = [facts([[T.card_data_file, d.path, "mono"], ["SHA-256", d.sha256, "mono"],
        [T.card_data_images, rep.images], [T.card_data_split, d.split ? Object.entries(d.split).map(([k, n]) => `${k}: ${num.format(n)}`).join(" · ") : undefined],
        [T.card_data_sources, rep.sources ? Object.entries(rep.sources).map(([k, n]) => `${k} (${num.format(n)})`).join(", ") : undefined]])];
      if (rep.positives) parts.push(table(T.card_data_positives, [T.card_label, T.card_data_images], Object.entries(rep.positives).map(([lab, n]) => [labelName(task, lab), n])));
      return parts;
    });
  }
  // the model's scope (imaging.scope, `medai imaging fit-scope`): what it looks for, what it does
  // not assess (the one words table, in NAMES), its out-of-scope threshold and view check
  function scopeBlock(task, scope) {
    const words = ((window.medai.NAMES || {})[task] || {}).scope_words || {};
    const oos = scope.out_of_scope || {}, check = scope.view_check || {}, cv = check.cross_validated || {};
    const pairs = [
      [T.card_scope_detects, (scope.detects || []).map((l) => labelName(task, l)).join(", ") || undefined],
      [T.card_scope_cannot, (scope.cannot_detect || []).map((k) => words[k] || k).join(", ") || undefined],
      [T.card_scope_flag, oos.threshold == null ? undefined : fill(T.card_scope_flag_value, {
        threshold: num2.format(oos.threshold), quantile: Math.round((oos.quantile || 0) * 100), n: oos.n,
        flagged: num2.format((oos.flagged_share || 0) * 100) })],
      [T.card_scope_view, cv.laterals != null ? fill(T.card_scope_view_value, {
        caught: cv.laterals_caught, laterals: cv.laterals, flagged: cv.frontals_flagged, frontals: cv.frontals })
        : check.skipped || undefined],
    ];
    const out = [el("h4", { text: T.card_scope }), facts(pairs)];
    if (scope.command) out.push(el("pre", { class: "card-json", text: scope.command }));
    return out;
  }
  const num2 = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 2 });
  // the card's prose in the page's language (GET /models card_text); a field no template covers
  // stays in the card's English and is marked so (lang attribute, "(İngilizce)")
  let cardText = { text: {}, lang: {} };
  function prose(card, key) {
    const text = cardText.text[key] || card[key], lang = cardText.lang[key] || "en";
    const span = el("span", { lang, text });
    return lang === LANG ? span : el("span", {}, span, " ", el("small", { class: "basis", text: T.card_original_language }));
  }
  function modelCard(task, m) {
    const card = m.card || {};
    cardText = m.card_text || { text: {}, lang: {} };
    const body = [
      facts([[T.card_name, m.model.name], [T.card_version, modelVersion(m.model)], [T.card_hash, m.model.content_hash, "mono"],
        [T.card_task, `${taskName(task)} (${task})`], [T.card_type, card.model_type],
        [T.card_created, card.created_at ? fmtTime(card.created_at) : undefined], [T.card_medai, card.medai_version]]),
    ];
    if (card.description) body.push(el("h4", { text: T.card_description }), el("p", {}, prose(card, "description")));
    if (card.intended_use) body.push(el("h4", { text: T.card_intended_use }), el("p", {}, prose(card, "intended_use")));
    if (card.labels && card.labels.length) body.push(labelsTable(task, card));
    if (card.params && card.params.scope) body.push(...scopeBlock(task, card.params.scope));
    if (card.baselines && card.baselines.table) body.push(...baselinesBlock(card.baselines));
    if (card.metrics && Object.keys(card.metrics).length) body.push(el("h4", { text: T.card_metrics }), ...metricsTables(task, card.metrics));
    if (card.data && card.data.length) body.push(el("h4", { text: T.card_data }), ...dataBlock(task, card.data));
    if (card.training_command) body.push(el("h4", { text: T.card_training_command }), el("pre", { class: "card-json", text: card.training_command }));
    if (card.licence_notes) body.push(el("h4", { text: T.card_licence }), el("p", {}, prose(card, "licence_notes")));
    return el("details", { class: "model-card", id: "card-" + task },
      el("summary", { text: `${T.card_open}: ${taskName(task)} — ${m.model.name} ${modelVersion(m.model)}` }), ...body);
  }
  async function models() {
    const r = await api(`/api/v1/models?lang=${LANG}`);
    if (!r.ok) return;
    const entries = Object.entries(r.data);
    document.querySelector("#models tbody").replaceChildren(...entries.map(([task, m]) =>
      el("tr", {}, el("td", { text: taskName(task) }),
        el("td", {}, m.model ? el("a", { href: "#card-" + task, text: m.model.name }) : (m.error || T.card_not_loaded)),
        el("td", { text: m.model ? modelVersion(m.model) : "—" }),
        el("td", { class: "mono", text: m.model ? m.model.content_hash.slice(0, 23) + "…" : "—" }),
        el("td", { text: m.ready ? T.yes : T.no }))));
    document.getElementById("model-cards").replaceChildren(...entries.filter(([, m]) => m.model).map(([task, m]) => modelCard(task, m)));
    document.querySelectorAll("#models a[href^='#card-']").forEach((a) => a.addEventListener("click", () => {
      const d = document.getElementById(a.getAttribute("href").slice(1));
      if (d) d.open = true;
    }));
  }
  // --- the audit log: newest first by default, a page at a time of the total; the first page's
  // newest event (until_id) holds the pages still while new events arrive. Targets and actions
  // in the page's language, a user or kiosk by its name, each event linked to its study.
  const AUDIT_PAGE = 50;
  const auditState = { offset: 0, untilId: null, total: 0 };
  const targetName = (type) => (type ? T["audit_target_" + type] || type : "");
  function auditTarget(e) {
    const what = targetName(e.target_type);
    if (!what) return "—";
    const which = e.target_name || e.target_id;
    if (!which || (e.study_id !== null && e.study_id !== undefined && String(e.study_id) === e.target_id)) return what;
    return `${what}: ${which}`;
  }
  function auditRow(e) {
    const study = e.study_id ? el("a", { href: `/studies/${e.study_id}`, class: "audit-study", text: fill(T.audit_study_link, { id: e.study_id }) }) : null;
    const target = el("td", { "data-label": T.col_target });
    if (e.target_type !== "study" || !study) target.append(el("span", { class: "audit-target", text: auditTarget(e) }));
    if (study) target.append(...(target.childNodes.length ? [" · "] : []), study);
    return el("tr", { "data-id": e.id },
      el("td", { "data-label": T.col_when }, el("time", { datetime: e.at, text: fmtTime(e.at) })),
      el("td", { "data-label": T.col_actor, text: e.role ? `${e.actor} (${roleName(e.role)})` : e.actor }),
      el("td", { "data-label": T.col_action, text: actionName(e.action) }), target,
      el("td", { "data-label": T.col_outcome, class: e.outcome === "ok" ? null : "error", text: outcomeName(e.outcome) }));
  }
  async function audit(fresh = true) {
    if (fresh) { auditState.offset = 0; auditState.untilId = null; }
    const order = document.getElementById("a-order").value;
    const q = new URLSearchParams({ limit: String(AUDIT_PAGE), offset: String(auditState.offset), order });
    const action = document.getElementById("a-action").value, actor = document.getElementById("a-actor").value;
    const study = document.getElementById("a-study").value.trim();
    if (action) q.set("action", action);
    if (actor) q.set("actor", actor);
    if (/^[1-9][0-9]*$/.test(study)) q.set("study_id", study);
    if (auditState.untilId) q.set("until_id", String(auditState.untilId));
    const r = await api("/api/v1/audit?" + q);
    if (!r.ok) return;
    auditState.total = r.data.total;
    auditState.untilId = r.data.until_id;
    document.querySelector("#audit tbody").replaceChildren(...r.data.items.map(auditRow));
    const n = r.data.items.length, from = auditState.offset + 1, to = auditState.offset + n;
    document.getElementById("audit-range").textContent = n
      ? fill(T.audit_page, { from: from.toLocaleString(LOCALE), to: to.toLocaleString(LOCALE), total: r.data.total.toLocaleString(LOCALE) })
      : T.audit_page_empty;
    const prev = document.getElementById("audit-prev"), next = document.getElementById("audit-next");
    prev.textContent = order === "asc" ? T.audit_prev_asc : T.audit_prev;
    next.textContent = order === "asc" ? T.audit_next_asc : T.audit_next;
    prev.disabled = auditState.offset === 0;
    next.disabled = to >= r.data.total;
  }
  document.getElementById("audit-prev").addEventListener("click", () => {
    auditState.offset = Math.max(0, auditState.offset - AUDIT_PAGE); audit(false);
  });
  document.getElementById("audit-next").addEventListener("click", () => {
    auditState.offset += AUDIT_PAGE; audit(false);
  });
  document.getElementById("user-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const r = await api("/api/v1/users", { method: "POST", json: {
      username: document.getElementById("new-username").value,
      role: document.getElementById("new-role").value } });
    showError(document.getElementById("user-error"), r.ok ? "" : (r.data && r.data.detail) || T.error_generic);
    if (r.ok) { e.target.reset(); showCode(r.data); users(); audit(); }
  });
  document.getElementById("audit-filter").addEventListener("submit", (e) => { e.preventDefault(); audit(); });
  document.addEventListener("medai:models-changed", () => { models(); audit(); });
  users(); models(); audit();
})();
