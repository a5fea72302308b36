"use strict";
// The radiologist's study page: viewer, AI findings, and the report. The text on screen is
// what gets signed: an unsaved edit travels with the signature; leaving with one asks first.
// A study the AI refused says why, in the reader's language, and is reported by hand.
(function () {
  const M = window.medai;
  const { T, api, el, statusLabel, pct, fill, fmtTime, labelName, taskName } = M;
  const root = document.getElementById("study");
  const id = root.dataset.studyId;
  const SECTIONS = [...document.querySelectorAll("#report-form textarea")].map((t) => t.name);  // the server's list
  const isRadiologist = document.body.dataset.role === "radiologist";
  const $ = (k) => document.getElementById(k);
  let study = null;
  let report = null;     // the version on screen; {version: 0} while a hand report is new
  let loaded = {};       // its text, to tell an unsaved edit
  let busy = false;
  let signedNow = null;  // GET /labels: the latest signature's labels (report_version null: none)
  let readAfterReport = false;  // the AI result shown is newer than the report (study.reread)

  // --- viewer: zoom (slider, wheel, keys), pan (drag, arrows), window/level as CSS filters
  const stage = $("stage"), viewer = $("viewer"), img = $("image"), heat = $("heatmap");
  const view = { zoom: 1, x: 0, y: 0 };
  function apply() {
    stage.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.zoom})`;
    img.style.filter = `contrast(${$("window").value}%) brightness(${$("level").value}%)`;
    heat.style.opacity = String($("opacity").value / 100);
    $("zoom").value = String(view.zoom);
  }
  function zoomTo(z) { view.zoom = Math.min(6, Math.max(1, z)); if (view.zoom === 1) { view.x = 0; view.y = 0; } apply(); }
  $("zoom").addEventListener("input", (e) => zoomTo(Number(e.target.value)));
  ["window", "level", "opacity"].forEach((k) => $(k).addEventListener("input", apply));
  // a series scrolls with the wheel and ↑/↓ (study_series.js); Ctrl + wheel zooms it
  const sliced = () => M.studySeries || null;
  viewer.addEventListener("wheel", (e) => {
    if (sliced() && sliced().onWheel(e)) return;
    e.preventDefault(); zoomTo(view.zoom * (e.deltaY < 0 ? 1.15 : 1 / 1.15));
  }, { passive: false });
  let drag = null;
  viewer.addEventListener("pointerdown", (e) => { drag = { x: e.clientX - view.x, y: e.clientY - view.y }; viewer.setPointerCapture(e.pointerId); });
  viewer.addEventListener("pointermove", (e) => { if (drag && view.zoom > 1) { view.x = e.clientX - drag.x; view.y = e.clientY - drag.y; apply(); } });
  viewer.addEventListener("pointerup", () => { drag = null; });
  viewer.addEventListener("keydown", (e) => {
    if (sliced() && sliced().onKey(e)) return;
    const step = 30, keys = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
    if (keys[e.key]) { view.x += keys[e.key][0]; view.y += keys[e.key][1]; apply(); e.preventDefault(); }
    if (e.key === "+" || e.key === "=") { zoomTo(view.zoom * 1.25); e.preventDefault(); }
    if (e.key === "-") { zoomTo(view.zoom / 1.25); e.preventDefault(); }
  });
  $("reset-view").addEventListener("click", () => {
    view.zoom = 1; view.x = 0; view.y = 0;
    $("window").value = "100"; $("level").value = "100";
    apply();
  });
  // the keyboard's zoom and picture presets (shortcuts.js): brightness/contrast of the picture
  // on screen (the sliders' CSS filters), named so — not DICOM window/level
  const PRESETS = { 1: [100, 100], 2: [180, 100], 3: [90, 160] };  // [contrast %, brightness %]
  M.studyView = {
    zoomBy: (f) => zoomTo(view.zoom * f),
    reset: () => { view.zoom = 1; view.x = 0; view.y = 0; apply(); },
    preset(n) {
      const [w, l] = PRESETS[n];
      $("window").value = String(w); $("level").value = String(l);
      apply();
      root.dataset.preset = String(n);
      $("preset-live").textContent = fill(T.kb_preset_applied, { name: T["kb_preset_name_" + n] });
    },
  };
  const heatOn = $("heatmap-on"), heatSelect = $("heatmap-label"), caption = $("heatmap-caption");
  function showHeat() {
    // a series' heatmap is of one slice (the key slice): shown there only
    const on = heatOn.checked && Boolean(heatSelect.value) && (!sliced() || sliced().heatHere());
    heat.hidden = !on;
    caption.hidden = !on;
    if (!on) return;
    const src = `/api/v1/studies/${id}/heatmap?label=${encodeURIComponent(heatSelect.value)}`;
    if (heat.getAttribute("src") !== src) heat.src = src;
    const f = ((study.ai_result || {}).findings || []).find((x) => x.label === heatSelect.value);
    const said = signedBy(signedNow) || {};
    caption.textContent = [fill(T.viewer_heatmap_caption, { label: labelName(study.task, heatSelect.value) }),
      f ? fill(T.heatmap_state, { state: decisionWord(study.task, f) }) : "",
      f && verdict(f.state, said[f.label]) === "rejected" ? T.heatmap_state_rejected : ""].filter(Boolean).join(" ");
  }
  heatOn.addEventListener("change", showHeat);
  document.addEventListener("medai:slice", showHeat);
  heatSelect.addEventListener("change", showHeat);

  // --- study, findings, and why the AI gave none
  function refusedOrFailed(s) {
    return s.status === "refused" || s.status === "failed" || s.status === "no_model"
      || Boolean(s.ai_result && s.ai_result.refused);
  }
  function what(d) {  // what a DICOM study is, in its own attributes
    return d ? [d.modality, d.view_position, d.body_part, d.series_description].filter(Boolean).join(" · ") : "";
  }
  function reasonSentence(s) {
    const res = s.ai_result || {};
    const code = s.status === "no_model" ? "no_route"
      : res.reason_code || s.reason_code || (s.status === "failed" ? "failed" : "unknown");
    const params = { task: taskName(s.task), expected: (M.NAMES[s.task] || {}).modalities,
      what: what(s.dicom) || "—", ...(s.reason_params || {}), ...(res.reason_params || {}) };
    return fill(T["reason_" + code] || T.reason_unknown, params);
  }
  // --- findings: each label's one state as the server decided it (never re-derived here from
  // probabilities), why, and after sign-off what the signer said of it
  const names = (task, labels) => list((labels || []).map((l) => labelName(task, l)));
  const conj = Intl.ListFormat ? new Intl.ListFormat(M.LOCALE, { type: "conjunction" }) : null;
  function list(items) { return conj ? conj.format(items) : items.join(", "); }
  // the one state word (app.js stateWord: a negative label such as "Tümör yok" never reads yok/var)
  const stateWord = (task, label, state) => M.stateWord(task, label, state);
  // a parent a sub-finding implies (COVID-19 → viral pneumonia) is not a finding of its own:
  // it reads "COVID-19 kapsamında", never "var" beside its own low probability
  const implied = (f) => f.state === "present" && f.basis === "implied" && Boolean(f.implied_by);
  const decisionWord = (task, f) => implied(f)
    ? fill(T.basis_implied, { label: labelName(task, f.implied_by) }) : stateWord(task, f.label, f.state);
  function basisNote(task, f) {
    if (implied(f)) return "";
    if (f.state === "indeterminate" && f.basis !== "conflict") return T.basis_candidate;
    return { most_likely: T.basis_most_likely, conflict: T.basis_conflict, excluded: T.basis_excluded,
      outweighed: T.basis_outweighed }[f.basis] || "";
  }
  // the signer's verdict on the AI's state of one label (as finding_states.verdict says it);
  // null signer: a signature that stored labels said nothing of it — an undecided label then
  // reads "not decided", never "rejected"
  function verdict(state, signer) {
    if (signer === null && state === "indeterminate") return "not_decided";
    if (signer === null || signer === undefined) return null;
    if (state === "indeterminate") return "decided";
    // the AI read the study again after the report: the signer said nothing of this reading,
    // so a finding of it is "not in the signed report", never "rejected" by the signer
    if (readAfterReport) return signer ? "in_report" : state === "present" ? "not_in_report" : null;
    if (!state) return signer ? "added" : null;
    return (state === "present") === signer ? "confirmed" : state === "present" ? "rejected" : "added";
  }
  function verdictWord(task, label, v, signer) {
    if (!v) return T.verdict_none;
    return v === "decided" ? fill(T.verdict_decided, { answer: stateWord(task, label, signer ? "present" : "absent") }) : T["verdict_" + v];
  }
  const signers = {};  // report version -> who signed it (from the version history)
  function signedNote() {
    const note = $("signed-note"), v = signedNow && signedNow.report_version;
    note.hidden = !(v && signedBy(signedNow) && !$("findings-wrap").hidden);
    note.textContent = note.hidden ? "" : fill(T.findings_signed_note, { version: v, who: signers[v] || "" })
      .replace(" ()", "");
  }
  // a cited passage about an AI finding the signer rejected is said not to support the report
  // (the signed PDF leaves it out or marks it the same way)
  function markCitations() {
    const said = signedBy(signedNow) || {};
    const states = Object.fromEntries(((study && study.ai_result || {}).findings || []).map((f) => [f.label, f.state]));
    document.querySelectorAll("#citations li[data-label]").forEach((li) => {
      const label = li.dataset.label, note = li.querySelector(".citation-rejected");
      const rejected = verdict(states[label], said[label]) === "rejected";
      note.hidden = !rejected;
      note.textContent = rejected ? fill(T.citation_rejected, { label: labelName(study.task, label) }) : "";
    });
  }
  // the labels the latest signature stored ({label: present}); null before any signature
  function signedBy(signed) {
    if (!signed || signed.report_version === null || signed.report_version === undefined) return null;
    return Object.fromEntries(signed.labels.map((x) => [x.label, x.present]));
  }
  function decisionNotes(task, d) {
    const undecided = $("decision-note"), conflict = $("conflict-note");
    undecided.hidden = conflict.hidden = true;
    if (!d) return;
    if ((d.conflict || []).length) {
      conflict.textContent = fill(T.decision_conflict, { labels: names(task, d.conflict) });
      conflict.hidden = false;
    }
    if (d.state === "indeterminate" && (d.candidates || []).length) {
      undecided.textContent = fill(T.decision_undecided, { labels: names(task, d.candidates),
        why: T["decision_why_" + d.indeterminate_reason] || "" }).replace(" ()", "");
      undecided.hidden = false;
    } else if (d.low_confidence) {
      undecided.textContent = T.decision_low_confidence;
      undecided.hidden = false;
    }
  }
  // --- what the series reading found beyond the decision (issue 67): slices suggesting a
  // tumour too few to decide it (where, and why the AI did not decide), and every series of
  // the study, read or named with why not — the draft says the same (reporting.series_words)
  function readNotes(task, read) {
    const small = $("small-lesion-note"), series = $("series-note");
    small.hidden = series.hidden = true;
    small.textContent = series.textContent = "";
    if (!read) return;
    const u = read.undecided_slices;
    if (u && (u.numbers || []).length) {
      const nums = u.numbers.slice().sort((a, b) => a - b), n = nums.length;
      const neighbouring = nums[n - 1] - nums[0] === n - 1;
      const span = neighbouring && n > 1 ? nums[0] + "–" + nums[n - 1] : nums.join(", ");
      const where = fill(n === 1 ? T.read_where_one : neighbouring ? T.read_where_neighbouring : T.read_where_scattered, { n, span });
      const label = labelName(task, u.label);
      const text = fill(T.read_small_lesion, { where, label: label.charAt(0).toLocaleLowerCase(M.LOCALE) + label.slice(1), needed: u.needed });
      small.textContent = text.charAt(0).toLocaleUpperCase(M.LOCALE) + text.slice(1);
      small.hidden = false;
    }
    const accounts = read.series || [];
    const lines = [];
    const nameOf = (a) => fill(T.read_series_name, { number: a.series_number == null ? "?" : a.series_number })
      + (a.description ? " (" + a.description + ")" : "");
    const cap = (x) => x.charAt(0).toLocaleUpperCase(M.LOCALE) + x.slice(1);
    if (accounts.length > 1) {
      const readOnes = accounts.filter((a) => a.read), decides = readOnes.find((a) => a.decides);
      if (decides) lines.push(fill(T.read_series_summary, { read: readOnes.length, total: accounts.length, decides: nameOf(decides) }));
      accounts.filter((a) => !a.read).forEach((a) => lines.push(cap(fill(T.read_not_read, {
        series: nameOf(a), why: T["read_why_" + a.reason] || T.read_why_other }))));
    }
    if ((read.duplicates || []).length) lines.push(fill(T.read_duplicates, { n: read.duplicates.length }));
    series.textContent = lines.join(" ");
    series.hidden = !lines.length;
  }
  // --- the model's scope beside its findings: what it looks for, what it does not assess (the
  // one words table of imaging.scope, in NAMES), and a flag when the image is out of its scope
  const number = new Intl.NumberFormat(M.LOCALE, { maximumFractionDigits: 2, minimumFractionDigits: 2 });
  const num = (x) => (x == null ? "—" : number.format(x));
  function showScope(s) {
    const res = s.ai_result || {}, scope = res.scope, box = $("scope"), flag = $("scope-flag");
    box.hidden = !scope;
    flag.hidden = true;
    flag.textContent = "";
    if (!scope) return;
    const words = (M.NAMES[s.task] || {}).scope_words || {};
    const lower = (n) => (/^[A-ZÇĞİÖŞÜ]{2}/.test(n) ? n : n.charAt(0).toLocaleLowerCase(M.LOCALE) + n.slice(1));
    const detects = (scope.detects || []).map((l) => lower(labelName(s.task, l)));
    $("scope-detects").hidden = !detects.length;
    $("scope-detects").textContent = detects.length ? fill(T.scope_detects, { labels: list(detects) }) : "";
    const cannot = (scope.cannot_detect || []).map((k) => words[k] || k.replace(/_/g, " "));
    $("scope-cannot").hidden = !cannot.length;
    $("scope-cannot").textContent = cannot.length ? fill(T.scope_cannot, { items: list(cannot) }) : "";
    // patterns outside its labels that it would read as one of them: its finding is a pattern
    const apart = (scope.cannot_tell_apart || []).map((k) => words[k] || k.replace(/_/g, " "));
    $("scope-apart").hidden = !apart.length;
    $("scope-apart").textContent = apart.length ? fill(T.scope_apart, { items: list(apart) }) : "";
    const oos = scope.out_of_scope || {}, view = scope.view;
    const checks = [];
    if (view) {
      const source = view.source === "header" ? T.view_source_header
        : view.score == null ? T.view_source_none : fill(T.view_source_image, { score: pct(view.score) });
      checks.push(fill(T.scope_view, { view: T["view_" + view.view] || view.view, source }));
    }
    if (!oos.flagged && oos.detector === "feature_distance" && oos.threshold != null) {
      // its example of a disease it cannot tell apart is the task's own (a brain MRI is never
      // given a chest disease), none when the task names none
      const example = apart.length ? fill(T.scope_in_example, { item: apart[0] }) : "";
      checks.push(fill(T.scope_in, { score: num(oos.score), threshold: num(oos.threshold), example }));
    }
    $("scope-check").hidden = !checks.length;
    $("scope-check").textContent = checks.join(" ");
    // a flagged image that was still read: said plainly above its findings (a refusal says
    // why in the no-AI card instead)
    if (oos.flagged && !res.refused) {
      flag.textContent = oos.reason === "unlike_training"
        ? fill(T.scope_flag_unlike_training, { score: num(oos.score), threshold: num(oos.threshold) })
        : T["scope_flag_" + oos.reason] || T.scope_flag_other;
      flag.hidden = false;
    }
    root.dataset.outOfScope = oos.flagged ? oos.reason || "flagged" : "";
  }
  function showFindings(s, signed) {
    showScope(s);
    const res = s.ai_result;
    const has = Boolean(res && res.findings && res.findings.length && !res.refused);
    $("findings-wrap").hidden = !has;
    $("findings-none").hidden = has || !refusedOrFailed(s);
    const heatmap = has && Boolean(res.has_heatmap);
    document.querySelectorAll(".heat-control").forEach((c) => { c.hidden = !heatmap; });
    const said = has ? signedBy(signed) : null;
    $("col-signer").hidden = !said;
    signedNote();
    decisionNotes(s.task, has ? res.decision : null);
    readNotes(s.task, has ? res.read : null);
    const d = (has && res.decision) || {};
    $("exclusive-note").hidden = d.kind !== "exclusive";
    $("exclusive-note").textContent = d.kind === "exclusive" ? fill(T.findings_exclusive_note, { task: taskName(s.task) }) : "";
    if (!has) { $("model-line").textContent = ""; return; }
    const rows = res.findings.map((f) => ({ ...f, signer: said ? (f.label in said ? said[f.label] : null) : undefined }));
    if (said) {  // labels only the signer named (the AI does not read them): after the AI's
      const read = new Set(res.findings.map((f) => f.label));
      Object.entries(said).filter(([l, present]) => !read.has(l) && present)
        .forEach(([label]) => rows.push({ label, state: null, signer: true }));
    }
    $("findings").tBodies[0].replaceChildren(...rows.map((f) => {
      const note = f.state ? basisNote(s.task, f) : "";
      const v = said ? verdict(f.state, f.signer) : null;
      // bold: what holds — the AI's present findings; once signed, the signer's (the label and
      // the verdict, never the AI's word the signer overruled)
      const holds = said ? (f.signer === true ? "signed-present" : null)
        : f.state === "present" && !implied(f) ? "positive" : null;
      const cells = [
        el("th", { scope: "row", text: labelName(s.task, f.label) }),
        // the probability beside its operating threshold, in one cell (five columns fit a card)
        el("td", { "data-label": T.col_probability, class: "probability" }, f.probability == null ? "—" : pct(f.probability),
          f.threshold == null ? "" : el("span", { class: "basis", text: fill(T.threshold_value, { value: pct(f.threshold) }) })),
        el("td", { "data-label": T.col_decision, class: "state", "data-state": f.state || "none" },
          el("span", { class: "state-word", text: decisionWord(s.task, f) }),
          note ? el("span", { class: "basis", text: note }) : "")];
      if (said) cells.push(el("td", { "data-label": T.col_signer, class: "verdict-cell", "data-verdict": v || "none" },
        el("span", { class: "verdict-word", text: verdictWord(s.task, f.label, v, f.signer) })));
      return el("tr", { class: holds, "data-label": f.label, "data-state": f.state || "none",
        "data-verdict": v || null }, ...cells);
    }));
    if (res.model) {
      // a version that is the model's creation time reads as a local date, not a raw ISO string
      const version = /^\d{4}-\d\d-\d\dT/.test(res.model.version) ? fmtTime(res.model.version) : res.model.version;
      $("model-line").textContent = `${T.col_model}: ${res.model.name} ${version} (${res.model.content_hash.slice(0, 19)}…)`;
    }
    if (!heatSelect.options.length) {
      heatSelect.replaceChildren(...res.findings.map((f) => el("option", {
        value: f.label, selected: f.label === res.heatmap_label, text: labelName(s.task, f.label) })));
    }
    showHeat();
  }
  // --- who and what was asked: patient, order, the clinician's question, why it is urgent
  // the reasons the server kept when it made the study urgent (studies.urgent_because)
  function urgentWhy(s, said) {
    const because = s.urgent_because || [];
    const reasons = [];
    const flags = because.filter((r) => r.code === "question_red_flag");
    if (flags.length) {  // the red-flag rules that fired, by name (the worklist's "istem: …")
      const rules = [...new Set(flags.map((r) => (M.LANG === "en" ? r.name_en : r.name_tr) || "").filter(Boolean))];
      reasons.push(T.urgent_reason_question + (rules.length ? ` (${rules.join(", ")})` : ""));
    }
    if (because.some((r) => r.code === "order_stat")) reasons.push(T.urgent_reason_stat);
    for (const [code, key] of [["ai_finding", "urgent_reason_finding"], ["ai_possible_finding", "urgent_reason_possible"]]) {
      const labels = because.filter((r) => r.code === code && r.label).map((r) => r.label);
      if (!labels.length) continue;
      const rejected = said && labels.every((l) => said[l] === false);
      // read again after the report: the signer's "absent" was of the earlier reading
      const which = rejected ? (readAfterReport ? key + "_not_in_report" : key + "_rejected") : key;
      reasons.push(fill(T[which], { labels: names(s.task, labels) }));
    }
    if (!reasons.length) reasons.push(T.urgent_reason_unknown);
    return fill(T.urgent_why, { reasons: reasons.join("; ") });
  }
  function showHead(s, said) {
    const d = s.dicom || {};
    // the name wraps like words; an ID or reference moves to the next line whole
    const person = [M.personName(d.patient_name), d.patient_id, s.patient_ref && s.patient_ref !== d.patient_id
      ? (d.patient_name || d.patient_id ? fill(T.study_patient_ref, { ref: s.patient_ref }) : s.patient_ref) : ""]
      .filter(Boolean).flatMap((x, k) => [k ? " · " : "", el("span", { class: k ? "id" : null, text: x })]);
    const rows = [["patient", person], ["patient_context", patientLine(s.patient)], ["accession", d.accession],
      ["study_date", studyDate(d)], ["question", s.clinical_question || T.study_question_none], ["order", orderLine(s.order)]];
    $("study-facts").replaceChildren(...rows.filter(([, v]) => v && v.length).flatMap(([k, v]) => [
      el("dt", { text: T[k === "study_date" ? "dicom_study_date" : "study_" + k] }),
      el("dd", { "data-field": k, class: k === "question" && !s.clinical_question ? "none" : null },
        ...(Array.isArray(v) ? v : [String(v)]))]));
    const why = $("study-urgent-why");
    why.hidden = !s.urgent;
    why.textContent = s.urgent ? urgentWhy(s, said) : "";
    $("study-head").hidden = false;
  }
  // --- the HL7 order the study was matched to: priority and who asked ("Acil (STAT) · Dr. …")
  function orderLine(o) {
    if (!o) return "";
    return [o.priority ? T["order_priority_" + o.priority] || o.priority : "", o.ordering_physician || ""]
      .filter(Boolean).join(" · ");
  }
  // --- the patient's context: sex and age at the study date ("Kadın, 54 yaş · doğum 12.03.1971")
  function isoDate(iso) {  // YYYY-MM-DD as the page and the PDF print dates
    return !iso ? "" : M.LANG === "tr" ? `${iso.slice(8, 10)}.${iso.slice(5, 7)}.${iso.slice(0, 4)}` : iso;
  }
  function patientLine(p) {
    if (!p) return "";
    const age = p.age_months != null ? fill(T.patient_age_months, { n: p.age_months })
      : p.age_years != null ? fill(T.patient_age_years, { n: p.age_years }) : "";
    const sex = p.sex ? T["patient_sex_" + p.sex] : age ? T.patient_sex_unknown : "";
    const line = [sex, age].filter(Boolean).join(", ");
    return [line, p.birth_date ? fill(T.patient_born, { date: isoDate(p.birth_date) }) : ""].filter(Boolean).join(" · ");
  }
  // --- the same patient's prior studies (matched by the keyed patient identity, never by name):
  // date, signed impression ("imzasız" otherwise), a link, and the prior's image beside today's
  function showPriors(s) {
    const priors = s.priors || [];
    const known = Boolean((s.dicom && s.dicom.patient_id) || s.patient_ref);
    $("priors").hidden = !priors.length && !known;
    $("priors-none").hidden = priors.length > 0;
    $("priors-list").replaceChildren(...priors.map((p) => {
      const compare = el("button", { type: "button", class: "prior-compare", "data-prior": String(p.id),
        text: T.priors_compare });
      compare.addEventListener("click", () => openPrior(p));
      return el("li", { "data-prior": String(p.id), "data-signed": String(p.signed) },
        el("p", { class: "prior-head" },
          el("a", { href: `/studies/${p.id}`, text: isoDate(p.study_date) || fill(T.priors_open, { id: p.id }) }),
          " · ", taskName(p.task), " · ", fill(T.priors_open, { id: p.id }),
          " ", el("span", { class: "badge", "data-status": p.status, text: statusLabel(p.status) })),
        p.signed && p.impression
          ? el("p", { class: "prior-impression" }, el("strong", { text: T.priors_impression + ": " }), p.impression)
          : el("p", { class: "prior-impression unsigned", text: T.priors_unsigned }),
        compare);
    }));
  }
  async function openPrior(p) {
    // opening a prior is a view of that study: its page's own read (audited as such), then its image
    const r = await api(`/api/v1/studies/${p.id}`);
    if (!r.ok) return;
    $("prior-image").src = `/api/v1/studies/${p.id}/image`;
    $("prior-image").alt = fill(T.priors_prior_caption, { date: isoDate(p.study_date) });
    $("prior-caption").textContent = fill(T.priors_prior_caption, { date: isoDate(p.study_date) })
      + " · " + taskName(p.task) + " · " + (p.signed ? statusLabel(p.status) : T.priors_unsigned);
    $("today-caption").textContent = fill(T.priors_today, { date: isoDate((study.patient || {}).on) || studyDate(study.dicom || {}) });
    $("prior-view").hidden = false;
    $("today-caption").hidden = false;
    $("prior-view").dataset.prior = String(p.id);
    $("viewer-pair").classList.add("comparing");
    $("viewer-pair").scrollIntoView({ block: "nearest" });
  }
  $("prior-close").addEventListener("click", () => {
    $("prior-view").hidden = true;
    $("today-caption").hidden = true;
    $("prior-image").removeAttribute("src");
    $("viewer-pair").classList.remove("comparing");
  });
  // --- the DICOM identity: patient, order, study, the series the AI reads, every series
  function studyDate(d) {
    const [y, m, day] = /^\d{8}$/.test(d.study_date || "") ? [d.study_date.slice(0, 4), d.study_date.slice(4, 6), d.study_date.slice(6)] : [];
    return !y ? "" : M.LANG === "tr" ? `${day}.${m}.${y}` : `${y}-${m}-${day}`;  // as the PDF prints it
  }
  // the diagnostic viewer (OHIF, /viewer): today's study, and its DICOM priors beside it, in a
  // window of its own (a second screen); medai's quick view above stays (phones)
  function showOhif(s) {
    const uid = s.dicom && s.dicom.study_uid;
    $("ohif-open").hidden = !uid || !M.VIEWER;
    if (!uid || !M.VIEWER) return;
    // the server hangs it: beside its prior, or a chest film's PA beside its lateral
    $("ohif-link").href = `/viewer/study/${id}`;
  }
  function showIdentity(d) {
    $("dicom-identity").hidden = !d;
    if (!d) return;
    const date = studyDate(d);
    const series = (d.series || []).map((x) => [x.modality, x.view_position, x.body_part, x.series_description]
      .filter(Boolean).join(" · ") + " — " + fill(T.dicom_images, { n: x.instances.length }));
    const rows = [["patient_name", M.personName(d.patient_name)], ["patient_id", d.patient_id],
      ["accession", d.accession], ["study_date", date], ["modality", d.modality], ["view", d.view_position],
      ["body_part", d.body_part], ["series_description", d.series_description],
      ["series", series.join("; ")], ["study_uid", d.study_uid], ["source", T["dicom_source_" + d.source]]];
    $("dicom-fields").replaceChildren(...rows.filter(([, v]) => v).flatMap(([k, v]) => [
      el("dt", { text: T["dicom_" + k] }), el("dd", { "data-field": k, text: String(v) })]));
  }
  function notFound() {  // a study that does not exist (or was never this user's to see)
    root.replaceChildren(el("h1", { text: `${T.study_title} ${id}` }),
      el("section", { class: "card notice", role: "alert" },
        el("h2", { text: T.study_not_found }), el("p", { text: T.study_not_found_hint }),
        el("a", { href: "/worklist", text: T.study_back_to_worklist })));
  }
  // an image the browser cannot show (an unreadable upload): say so instead of a broken picture
  img.addEventListener("error", () => {
    if (!img.getAttribute("src")) return;
    viewer.hidden = true;
    document.querySelectorAll(".viewer-card .controls").forEach((c) => { c.hidden = true; });
    if (!$("image-missing")) {
      viewer.after(el("p", { id: "image-missing", class: "note", role: "status", text: T.viewer_no_image }));
    }
  });
  async function loadStudy() {
    const r = await api(`/api/v1/studies/${id}`);
    if (!r.ok) { if (r.status === 404 || r.status === 422) notFound(); return; }
    const s = study = r.data;
    $("study-task").textContent = taskName(s.task);
    $("study-task").hidden = !s.task;
    showIdentity(s.dicom);
    showOhif(s);
    showPriors(s);
    const badge = $("study-status");
    badge.textContent = statusLabel(s.status);
    badge.dataset.status = s.status;
    $("study-urgent").hidden = !s.urgent;
    // an instance of another patient or order arrived with this study's UID: said first
    const conflicts = s.identity_conflicts || [];
    $("study-conflict").hidden = conflicts.length === 0;
    $("study-conflict").textContent = conflicts.length
      ? fill(T.study_conflict_banner, { ids: conflicts.join(", ") }) : "";
    showRetraction(s);
    // images arrived after the report was made: the AI read the study again; a signed or
    // edited report was kept as it was, and its reader is told so here
    const rr = s.reread;
    readAfterReport = Boolean(rr);
    $("study-reread").hidden = !rr;
    $("study-reread").textContent = rr ? fill(rr.signed ? T.reread_signed : rr.retask ? T.reread_retask : T.reread_edited, {
      when: fmtTime(rr.at), n: rr.instances == null ? "—" : rr.instances }) : "";
    M.tell("medai:study", s);  // study_reanalyse.js, study_macros.js
    const bySeries = sliced() ? sliced().update(s) : false;  // a DICOM series shows its slices
    if (!img.src && !bySeries) img.src = `/api/v1/studies/${id}/image`;
    const done = s.status !== "received" && s.status !== "analysing";
    const labels = done ? await api(`/api/v1/studies/${id}/labels`) : null;
    signedNow = labels && labels.ok ? labels.data : null;
    if (study !== s) return;  // a newer load overtook this one
    showHead(s, signedBy(signedNow));
    showFindings(s, signedNow);
    markCitations();
    const noAi = refusedOrFailed(s);
    $("no-ai").hidden = !noAi;
    $("no-ai-reason").textContent = noAi ? reasonSentence(s) : "";
    if (s.status === "received" || s.status === "analysing") {
      noReport(T.report_analysing);
      setTimeout(loadStudy, 1500);
    } else if (!report) loadReport();
  }

  // --- retraction: entered in error (by whom, when, why), and the radiologist's action
  const retracted = () => Boolean(study && study.retraction);
  function showRetraction(s) {
    const r = s.retraction, banner = $("study-retracted");
    banner.hidden = !r;
    $("study-retracted-text").textContent = r ? fill(T.retract_banner, {
      by: r.by || "—", when: fmtTime(r.at), reason: T["retract_reason_" + r.reason] || r.reason }) : "";
    $("study-retracted-note").hidden = !(r && r.note);
    $("study-retracted-note").textContent = r && r.note ? fill(T.retract_note_shown, { note: r.note }) : "";
    const button = $("retract");
    if (button) button.hidden = Boolean(r);
    if (r && report) showForm(report);  // read-only from now on
  }
  const retractDialog = $("retract-dialog");
  if (retractDialog) {
    $("retract").addEventListener("click", () => {
      $("retract-error").hidden = true;
      retractDialog.showModal();
      $("retract-cancel").focus();
    });
    $("retract-cancel").addEventListener("click", () => retractDialog.close());
    $("retract-confirm").addEventListener("click", async () => {
      const f = $("retract-form");
      const r = await api(`/api/v1/studies/${id}/retract`, { method: "POST",
        json: { reason: f.elements.reason.value, note: f.elements.note.value } });
      if (!r.ok) {
        $("retract-error").textContent = (r.data && r.data.detail) || T.error_generic;
        $("retract-error").hidden = false;
        return;
      }
      retractDialog.close();
      loadStudy();
      if (M.studyLabels) M.studyLabels.refresh();  // the labels card closes with the study
    });
  }

  // --- report: what is on screen, what was loaded, and the difference between them
  const form = $("report-form"), message = $("report-message"), signBtn = $("sign");
  const onScreen = () => Object.fromEntries(SECTIONS.map((k) => [k, form.elements[k].value]));
  const isEmpty = (sections) => SECTIONS.every((k) => !(sections[k] || "").trim());
  function dirty() {
    if (!report || form.hidden || !isRadiologist || retracted()) return false;
    return SECTIONS.some((k) => form.elements[k].value !== (loaded[k] || ""));
  }
  function refresh() {
    const changed = dirty();
    $("unsaved").hidden = !changed;
    if (signBtn) signBtn.disabled = busy || (Boolean(report && report.signed_by) && !changed);
    $("save").disabled = busy;
  }
  M.guardLeave(dirty);
  form.addEventListener("input", refresh);

  function noReport(text) {
    const none = $("report-none");
    none.textContent = text;
    none.hidden = !text;
  }
  function showForm(r) {
    report = r;
    loaded = { ...(r.sections || {}) };
    const writable = isRadiologist && !retracted();  // a retracted study's report is closed
    SECTIONS.forEach((k) => { form.elements[k].value = loaded[k] || ""; form.elements[k].readOnly = !writable; });
    $("save").hidden = !writable;
    if (signBtn) signBtn.hidden = !writable;
    const fresh = r.version === 0;
    $("report-version").textContent = fresh ? `· ${T.report_new}` : `· ${T.report_version} ${r.version}`;
    const st = $("report-status");
    st.textContent = fresh ? "" : statusLabel(r.status);
    st.hidden = fresh;
    st.dataset.status = r.status || "";
    $("report-by-hand").hidden = !(fresh || r.ai_assisted === false);
    $("export-pdf").hidden = fresh;
    $("export-fhir").hidden = fresh;
    $("citations").replaceChildren(...(r.citations || []).map((c) =>
      el("li", { id: "cite-" + c.n, "data-label": c.label || null }, el("details", {}, el("summary", { text: `[${c.n}] ${c.title || c.source}` }),
        el("blockquote", { text: c.text }), el("p", { class: "note", text: `${c.source}${c.licence ? " · " + c.licence : ""}` })),
        el("p", { class: "citation-rejected", hidden: true }))));
    $("citations-title").hidden = !(r.citations || []).length;
    markCitations();
    showNote(r.ai_note || [], writable);
    form.hidden = false;
    noReport("");
    refresh();
    M.tell("medai:report", r);  // study_measurements.js
    // the labels card reads these sections: tell it they changed without an input event
    M.tell("medai:report-shown");
  }
  // the AI note beside the editor (issue 69): the AI's account of itself, never part of the
  // report's text unless the radiologist inserts a line of it (into Findings, as typed there)
  function showNote(lines, writable) {
    const box = $("ai-note");
    if (!box) return;
    box.hidden = !lines.length;
    $("ai-note-lines").replaceChildren(...lines.map((line) => el("li", {},
      el("span", { text: line }),
      ...(writable ? [on(el("button", { type: "button", class: "link ai-note-insert",
        "aria-label": fill(T.ai_note_insert_label, { line }), text: T.ai_note_insert }),
        () => insertLine(line))] : []))));
  }
  function on(button, handler) { button.addEventListener("click", handler); return button; }
  function insertLine(line) {
    const area = form.elements.findings;
    area.value = area.value.trim() ? `${area.value.trimEnd()} ${line}` : line;
    area.dispatchEvent(new Event("input", { bubbles: true }));
    area.focus();
  }
  async function loadReport() {
    const r = await api(`/api/v1/studies/${id}/report`);
    if (r.ok) { showForm(r.data); loadVersions(); return; }
    if (r.status !== 404) { noReport(T.error_generic); return; }
    const manual = $("manual-report");
    const handWritable = study && refusedOrFailed(study);
    if (manual) { manual.hidden = !handWritable; $("no-ai-hint").hidden = !handWritable; }
    noReport(handWritable && manual ? "" : T.report_missing);
  }
  const manualBtn = $("manual-report");
  if (manualBtn) manualBtn.addEventListener("click", () => {
    manualBtn.hidden = true;
    $("no-ai-hint").hidden = true;
    showForm({ version: 0, sections: {}, status: null, citations: [], ai_assisted: false });
    form.elements.technique.focus();
  });

  // --- version history (times in the hospital's zone) and differences
  function diffLines(a, b) {
    const x = a.split("\n"), y = b.split("\n");
    const n = x.length, m = y.length, L = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
    for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--)
      L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    const out = []; let i = 0, j = 0;
    while (i < n && j < m) {
      if (x[i] === y[j]) { out.push("  " + x[i]); i++; j++; }
      else if (L[i + 1][j] >= L[i][j + 1]) out.push("- " + x[i++]);
      else out.push("+ " + y[j++]);
    }
    while (i < n) out.push("- " + x[i++]);
    while (j < m) out.push("+ " + y[j++]);
    return out.join("\n");
  }
  function asText(v) { return SECTIONS.map((k) => `${T["section_" + k]}:\n${v.sections[k] || ""}`).join("\n"); }
  const when = (iso) => el("time", { datetime: iso, text: fmtTime(iso) });
  async function loadVersions() {
    const r = await api(`/api/v1/studies/${id}/report/versions`);
    if (!r.ok) return;
    const items = r.data.items;
    items.forEach((v) => { if (v.signed_by) signers[v.version] = v.signed_by; });
    signedNote();
    $("versions-title").hidden = !items.length;
    $("versions").replaceChildren(...items.map((v) => {
      // a signed version's author is whoever wrote the text it carries (the server says so)
      const author = v.source === "ai" && !v.author ? T.author_ai : v.author || v.signed_by || "—";
      const li = el("li", { "data-version": v.version },
        `${T.report_version} ${v.version} · ${statusLabel(v.status)} · ${author} · `, when(v.created_at));
      if (v.signed_by) li.append(` · ${T.history_signed_by}: ${v.signed_by}, `, when(v.signed_at));
      // read against the version the server names: a signed one against the previous signed
      // one (a draft and its signed copy carry the same text), else the one before it
      const base = items.find((b) => b.version === v.compare_to);
      if (base) {
        const b = el("button", { type: "button", class: "link", text: T.history_compare });
        b.addEventListener("click", () => {
          const from = asText(base), to = asText(v), d = $("diff"), title = $("diff-title");
          title.textContent = fill(T.history_diff_title, { to: v.version, from: base.version });
          d.textContent = from === to ? fill(T.history_no_change, { from: base.version }) : diffLines(from, to);
          title.hidden = false;
          d.hidden = false;
        });
        li.append(" ", b);
      }
      return li;
    }));
    $("zone-note").textContent = fill(T.time_zone_note, { zone: M.ZONE });
  }

  // --- save and sign: the signed text is the text on screen
  function say(r, okText) {
    if (!r.ok && r.data && r.data.code === "undecided_labels") {  // named, never a bare conflict
      const open = (r.data.errors || []).map((e) => labelName(study && study.task, String(e.loc[e.loc.length - 1])));
      message.textContent = fill(T.sign_undecided_refused, { labels: list(open) });
      return;
    }
    if (!r.ok && r.data && r.data.code === "contradictory_labels" && M.studyLabels) {  // named
      const found = (r.data.errors || []).map((e) => ({ kind: e.type, labels: e.loc.slice(2).map(String) }));
      message.textContent = fill(T.sign_contradictory_refused, { reasons: M.studyLabels.explain(found) });
      return;
    }
    message.textContent = r.ok ? okText : r.status === 409 ? T.report_conflict : (r.data && r.data.detail) || T.error_generic;
  }
  async function save(sections) {
    return api(`/api/v1/studies/${id}/report`, { method: "PUT", json: { version: report.version, sections } });
  }
  async function after(r, okText) {
    say(r, okText);
    if (r.ok) { showForm(r.data); loadVersions(); loadStudy(); }
  }
  async function withBusy(work) {
    busy = true; refresh();
    try { await work(); } finally { busy = false; refresh(); }
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const sections = onScreen();
    if (report.version === 0 && isEmpty(sections)) { message.textContent = T.report_empty; return; }
    withBusy(async () => after(await save(sections), T.report_saved));
  });
  // "Sign and open the next": after this signature the next unread study of the worklist opens
  // (none: the worklist, saying so; shortcuts.js); "Sign this text" stays on the study
  let signNext = false;
  async function sign(sections) {
    const next = signNext;
    signNext = false;
    if (isEmpty(sections)) { message.textContent = T.report_empty; return; }
    // the server saves the text on screen (a first hand-written report, an edit, an amendment of
    // a signed report) and signs that version in one transaction: all or nothing
    const labels = M.studyLabels ? M.studyLabels.choices() : undefined;
    const r = await api(`/api/v1/studies/${id}/report/sign`, { method: "POST", json: { version: report.version, sections, labels } });
    await after(r, T.report_signed);
    if (r.ok && M.studyLabels) M.studyLabels.refresh();
    if (r.ok && next && M.shortcuts) M.shortcuts.afterSign(Number(id));
  }
  const dialog = $("sign-dialog");
  // the AI's words a draft may carry (reporting.templates, reporting.series_words): "YZ önerisi:"
  // opens a decided finding's impression, "(YZ önerisi" closes the others'
  const AI_MARKS = ["YZ önerisi", "AI suggestion", "YZ bu kesit", "YZ bu görüntü", "The AI could not",
    "YZ karar vermedi", "the AI did not decide"];
  if (signBtn) signBtn.addEventListener("click", async () => {
    if (M.studyLabels) await M.studyLabels.ready();  // the Var / Yok questions need the labels
    const sections = onScreen();
    if (isEmpty(sections)) { message.textContent = T.report_empty; return; }
    // the AI's own marks left in the text are signed with it: said here, never removed unasked
    preview(sections);
    dialog.showModal();
    $("sign-cancel").focus();
  });
  // the text to be signed, with what the dialog asks of it; the AI's marks left in it are
  // said, and removed only when the radiologist asks (adopting the text as theirs)
  function preview(sections) {
    $("sign-preview").replaceChildren(el("div", { id: "sign-text" }, ...signText(sections)),
      ...(M.studyLabels ? signLabels() : []));
  }
  function signText(sections, removed = false) {
    const marked = AI_MARKS.some((m) => SECTIONS.some((k) => (sections[k] || "").includes(m)));
    const removable = SECTIONS.some((k) => (sections[k] || "").search(MARKS) >= 0);
    return [
      ...(marked ? [el("div", { id: "sign-ai-marks-box", class: "warning" },
        el("p", { id: "sign-ai-marks", role: "note", text: T.sign_ai_marks }),
        ...(removable ? [on(el("button", { type: "button", id: "sign-remove-marks", text: T.sign_remove_marks }),
          removeMarks)] : []))] : []),
      ...(removed ? [el("p", { id: "sign-marks-removed", class: "note", role: "status", text: T.sign_marks_removed })] : []),
      // a template's slot left to fill ("Lezyon boyutu: […] mm"): said, never signed unseen
      ...(SECTIONS.some((k) => (sections[k] || "").includes("[…]"))
        ? [el("p", { id: "sign-slots", class: "warning", role: "note", text: T.sign_slots })] : []),
      ...SECTIONS.flatMap((k) => [
        el("h3", { text: T["section_" + k] }), el("p", { text: sections[k] || "—" })]),
    ];
  }
  // the mark a draft's own sentences carry ("(YZ önerisi)" closing a finding or the
  // impression); any other AI wording left in the text is the radiologist's to edit by hand
  // (reporting.consistency.AI_MARK; search and replace ignore a global pattern's lastIndex)
  const MARKS = new RegExp(String.raw` ?\((?:YZ önerisi|AI suggestion)\)`, "g");
  function removeMarks() {
    for (const k of SECTIONS) {
      const area = form.elements[k];
      const plain = area.value.replace(MARKS, "");
      if (plain !== area.value) { area.value = plain; area.dispatchEvent(new Event("input", { bubbles: true })); }
    }
    $("sign-text").replaceChildren(...signText(onScreen(), true));
    $("sign-cancel").focus();
  }
  // the labels in the sign dialog: exactly the changes the radiologist made by their clicks
  // (never what the text says), what will be stored, and Var / Yok for each label the AI left
  // undecided — asked here, since signing endorses the findings as the signer's own
  function signLabels() {
    const c = M.studyLabels.changes();
    const lines = [["rejected", "sign_labels_rejected"], ["added", "sign_labels_added"],
      ["confirmed", "sign_labels_confirmed"], ["decided", "sign_labels_decided"]]
      .filter(([k]) => c[k].length)
      .map(([k, key]) => el("li", { id: "sign-labels-" + k, text: fill(T[key], { labels: list(c[k]) }) }));
    const open = M.studyLabels.undecided();
    const questions = open.map((u, i) => el("fieldset", { class: "sign-undecided-label", "data-label": u.label },
      el("legend", { text: u.name }),
      ...[[true, u.yes], [false, u.no]].map(([v, w]) => el("label", {},
        el("input", { type: "radio", name: "undecided-" + i, value: String(v), "data-label": u.label }), " " + w))));
    const contradicted = M.studyLabels.openSuggestions();
    // labels that contradict each other (the server's rule): said, and Sign stays off
    const contra = M.studyLabels.contradictions();
    const clash = el("p", { id: "sign-contradiction", class: "warning", role: "alert", hidden: !contra.length,
      text: contra.length ? fill(T.sign_contradiction, { reasons: M.studyLabels.explain(contra) }) : "" });
    return [
      clash,
      ...(contradicted.length ? [el("p", { id: "sign-text-suggests", class: "warning", role: "note",
        text: fill(T.sign_text_suggests, { labels: list(contradicted) }) })] : []),
      ...(open.length ? [el("div", { id: "sign-undecided", class: "warning", role: "group", "aria-labelledby": "sign-undecided-title" },
        el("h3", { id: "sign-undecided-title", text: T.sign_undecided_title }),
        el("p", { id: "sign-undecided-note", text: T.sign_undecided_pending }), ...questions)] : []),
      el("h3", { text: T.sign_labels_changes_title }),
      lines.length ? el("ul", { id: "sign-label-changes" }, ...lines)
        : el("p", { id: "sign-label-changes", text: T.sign_labels_none }),
      el("h3", { text: T.labels_title }),
      el("p", { id: "sign-labels", text: M.studyLabels.summary() }),
    ];
  }
  // the answers to the dialog's Var / Yok questions (null: one is not answered yet)
  function undecidedAnswers() {
    const out = {};
    for (const f of document.querySelectorAll("#sign-undecided fieldset")) {
      const picked = f.querySelector("input:checked");
      if (!picked) return null;
      out[f.dataset.label] = picked.value === "true";
    }
    return out;
  }
  let checked = 0;  // the dialog's answers asked of the server: only the latest answer counts
  async function gateConfirm() {
    const mine = ++checked, answers = undecidedAnswers(), clash = $("sign-contradiction");
    const gate = (off) => { for (const b of [$("sign-confirm"), $("sign-next")]) if (b) b.disabled = off; };
    gate(answers === null || Boolean(clash && !clash.hidden));
    if (answers === null || !clash || !Object.keys(answers).length) return;
    // asked of the server as the answers change (a Sign clicked before it answers is the
    // server's to refuse, named the same way)
    const found = await M.studyLabels.check(answers);
    if (mine !== checked) return;
    clash.hidden = !found.length;
    clash.textContent = found.length ? fill(T.sign_contradiction, { reasons: M.studyLabels.explain(found) }) : "";
    gate(found.length > 0);
  }
  if (dialog) {
    $("sign-cancel").addEventListener("click", () => dialog.close());
    signBtn.addEventListener("click", () => { signNext = false; });
    $("sign-next").addEventListener("click", () => { signNext = true; $("sign-confirm").click(); });
    dialog.addEventListener("change", gateConfirm);
    new MutationObserver(gateConfirm).observe($("sign-preview"), { childList: true });
    $("sign-confirm").addEventListener("click", () => {
      const sections = onScreen();  // what the dialog showed: nothing can edit behind a modal
      const answers = undecidedAnswers();
      if (answers === null) { gateConfirm(); return; }  // every undecided label answered first
      if (M.studyLabels) Object.entries(answers).forEach(([label, v]) => M.studyLabels.choose(label, v));
      dialog.close();
      withBusy(() => sign(sections));
    });
  }
  apply();
  loadStudy();
})();
