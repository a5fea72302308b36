// One rendering of a triage result, shared by the triage / kiosk screen and the patient's own
// history: the same stored result gives the same screen. One outcome leads and nothing below
// it contradicts it, in the predictor's order: a red flag (the emergency banner, no department
// bars), a complaint not in Turkish, a complaint outside the model's departments, a model not
// sure enough (the general triage desk, no bars), else the suggested department with its bars.
// Fields a result may not carry yet (language, abstain_reason) read as null.
"use strict";
(function () {
  const { T, el, pct } = window.medai;
  const LEVELS = ["call_112", "emergency_department_now", "urgent_same_day"];

  function outcome(r) {
    const rec = r.recommendation || {};
    if (r.urgent || rec.kind === "emergency" || (r.red_flags || []).length) return "emergency";
    const reason = r.abstain_reason || null;
    if (reason === "not_turkish" || (r.language && r.language !== "tr")) return "not_turkish";
    if (reason === "out_of_scope" || r.out_of_scope) return "out_of_scope";
    if (reason || r.abstained || rec.kind === "general_triage") return "low_confidence";
    return (r.departments || []).length ? "department" : "none";
  }

  function fillIn(template, params) {
    return String(template).replace(/\{(\w+)\}/g, (_, k) => (params[k] == null ? "" : String(params[k])));
  }

  function disclosure() {
    return el("p", { class: "disclosure", text: T.ai_disclosure });
  }

  // the page's language first; a complaint not in Turkish also gets the other language
  function flagLines(flags, langs) {
    return el("ul", { class: "flag-list" }, ...flags.map((f) => el("li", {}, ...langs.map((lang, i) =>
      el("p", { lang, class: i ? "other-lang" : null },
        el("strong", { text: (lang === "en" ? f.name_en : f.name_tr) + ": " }),
        lang === "en" ? f.advice_en : f.advice_tr)))));
  }

  function emergency(r, lang, live) {
    const flags = r.red_flags || [];
    const rec = r.recommendation || {};
    const level = [r.urgency_level, rec.level, flags[0] && flags[0].level].find((l) => LEVELS.includes(l)) || "call_112";
    const otherLang = lang === "en" ? "tr" : "en";
    const both = !!(r.language && r.language !== "tr");
    const banner = el("div", { class: "urgent-banner", role: live ? "alert" : null, tabindex: live ? "-1" : null, "data-level": level },
      el("h2", {}, T["triage_level_" + level],
        both ? el("span", { class: "other-lang", lang: otherLang, text: " / " + T["triage_level_" + level + "_other"] }) : ""),
      flags.length ? flagLines(flags, both ? [lang, otherLang] : [lang])
        : el("p", { text: lang === "en" ? rec.text_en : rec.text_tr }),
      level === "call_112" ? "" : el("p", { text: T.triage_urgent_call }));
    // one neutral line below the banner, which also says the warning is AI-assisted
    return [banner, el("p", { class: "neutral-line" }, T.triage_emergency_no_department,
      both ? el("span", { class: "other-lang", lang: otherLang, text: " / " + T.triage_emergency_no_department_other }) : "")];
  }

  function referral(kind) {
    const other = kind === "not_turkish";
    const otherLang = document.body.dataset.lang === "en" ? "tr" : "en";
    return [el("div", { class: "outcome-card referral" },
      el("p", { class: "ai-label", text: T.triage_ai_label }),
      el("h2", { tabindex: "-1" }, T.triage_desk_title,
        other ? el("span", { class: "other-lang", lang: otherLang, text: " / " + T.triage_desk_title_other }) : ""),
      el("p", { text: T["triage_" + kind] }),
      other ? el("p", { class: "other-lang", lang: otherLang, text: T.triage_not_turkish_other }) : ""),
    disclosure()];
  }

  function department(r, lang) {
    const deps = r.departments || [];
    const name = (d) => (lang === "en" ? d.name_en : d.name);
    return [el("div", { class: "outcome-card" },
      el("p", { class: "ai-label", text: T.triage_ai_label }),
      el("h2", { tabindex: "-1", text: fillIn(T.triage_suggested, { name: name(deps[0]) }) }),
      el("p", { class: "bars-caption", text: T.triage_probabilities }),
      el("ul", { class: "bars" }, ...deps.map((d) => {
        const bar = el("span", { class: "bar" });
        // a CSS length, whatever the reader's language writes ("%97,7" is no width)
        bar.style.width = `${(100 * d.probability).toFixed(1)}%`;
        return el("li", {}, el("span", { class: "bar-label", text: name(d) }),
          el("span", { class: "bar-track", role: "img", "aria-label": `${name(d)} ${pct(d.probability)}` }, bar),
          el("span", { class: "bar-value", text: pct(d.probability) }));
      }))),
    disclosure()];
  }

  // live: the screen that just answered (the banner is an alert and takes focus); the
  // history renders the same without interrupting a screen reader
  function render(result, options = {}) {
    const lang = document.body.dataset.lang === "en" ? "en" : "tr";
    const kind = outcome(result || {});
    const parts = kind === "emergency" ? emergency(result, lang, !!options.live)
      : kind === "department" ? department(result, lang)
        : kind === "none" ? [disclosure()] : referral(kind);
    if (result && result.record_id) {  // staff record where the patient was sent with it
      parts.push(el("p", { class: "record-no", id: "triage-record-no",
        text: window.medai.fill(T.triage_record_no, { id: result.record_id }) }));
    }
    return el("div", { class: "triage-outcome", "data-outcome": kind }, ...parts);
  }

  window.medai.triageView = { outcome, render };
})();
