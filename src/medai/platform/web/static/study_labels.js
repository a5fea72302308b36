// The radiologist's verdict on each finding, stored with the signature as the study's labels
// (what the hospital's own models learn from and are validated on). Labels change only by the
// radiologist's hand (issue 59): each starts from the AI's decided state (or the last
// signature's), which signing endorses; one click confirms or rejects an AI finding, adds a
// missing one, or decides one the AI left undecided (Var / Yok: needed before signing). What the
// text on screen suggests (asked of the server as the text changes) is shown beside the label as
// a suggestion, applied only by its own click. Only the clicks travel with the signature.
"use strict";
(function () {
  const M = window.medai;
  const { T, api, el, labelName, fill } = M;
  const root = document.getElementById("study");
  const card = document.getElementById("labels-card");
  if (!root || !card) return;
  const id = root.dataset.studyId;
  const $ = (k) => document.getElementById(k);
  const choices = {};      // label -> true/false: the radiologist's clicks
  let shown = [];          // the last entries shown
  let task = null;
  let aiStates = {};       // label -> the AI's state (GET /studies/{id}: ai_result.findings)
  let aiImplied = {};      // a parent label -> the sub-finding that implies it (never "var" alone)
  let signedVersion = null;
  let timer = null;
  let asked = 0;           // suggestions answered out of order: only the latest is shown
  let ready = Promise.resolve();  // the labels loaded: the sign dialog waits for it
  let latest = Promise.resolve(); // the latest suggestion asked
  let contradictions = [];  // what a signature of the labels shown would be refused for

  const sections = () => Object.fromEntries([...document.querySelectorAll("#report-form textarea")]
    .map((t) => [t.name, t.value || ""]));
  // the hint says the words of the buttons beside it: Var / Yok, or Geçerli / Geçerli değil for a
  // label whose name is a negative ("Bulgu yok")
  const sourceWord = (e) => (e.source === "undecided" && M.isNegativeLabel && M.isNegativeLabel(task, e.label)
    ? T.labels_source_undecided_normal : T["labels_source_" + e.source]) || "";
  const names = (list) => list.map((e) => labelName(task, e.label));
  // Var / Yok, or for a label whose name is a negative ("Bulgu yok") Geçerli / Geçerli değil
  const yesNo = (label, v) => (M.isNegativeLabel && M.isNegativeLabel(task, label))
    ? (v ? T.labels_normal_present : T.labels_normal_absent) : (v ? T.labels_present : T.labels_absent);

  function row(e) {
    const name = labelName(task, e.label);
    // a label whose name is a negative ("Tümör yok") reads Geçerli / Geçerli değil, never "✗ Yok"
    const neg = M.isNegativeLabel(task, e.label);
    const word = e.present ? (neg ? T.labels_normal_present : T.labels_present) : (neg ? T.labels_normal_absent : T.labels_absent);
    const toggle = el("button", { type: "button", class: "label-toggle" + (e.present ? " present" : ""),
      "aria-pressed": e.present ? "true" : "false",
      "aria-label": `${T.labels_verdict}: ${name} — ${word}`,
      text: `${e.present ? "✓" : "✗"} ${word}` });
    toggle.addEventListener("click", () => {
      const v = !e.present, ai = aiStates[e.label];
      // back to the AI's own decided state before any signature: no change of theirs remains
      if (signedVersion === null && e.label in choices && (ai === "present" || ai === "absent") && (ai === "present") === v) delete choices[e.label];
      else choices[e.label] = v;
      suggest();
    });
    // a label in real doubt (the server's needs_decision, the decision rule's questions): the
    // radiologist's choice, Var or Yok, one click each; an undecided label that follows a
    // sub-finding waits for that one's answer and is not asked
    const follows = e.present === null && !e.needs_decision && e.follows
      ? el("span", { class: "label-follows", text: fill(T.labels_follows, { label: labelName(task, e.follows) }) }) : null;
    const choose = e.needs_decision ? el("span", { class: "label-choose", role: "group", "aria-label": `${name}: ${sourceWord({ ...e, source: "undecided" })}` },
      ...[[true, yesNo(e.label, true)], [false, yesNo(e.label, false)]].map(([v, w]) => {
        const b = el("button", { type: "button", class: "label-toggle", "data-choice": String(v), "aria-label": `${T.labels_verdict}: ${name} — ${w}`, text: w });
        b.addEventListener("click", () => { choices[e.label] = v; suggest(); });
        return b;
      })) : null;
    // what the text (or a present sub-finding) suggests: offered, applied only by this click
    let offer = null;
    if (e.suggested !== null && e.suggested !== undefined) {
      const value = yesNo(e.label, e.suggested);
      const why = fill(T["labels_suggest_" + (e.suggested_by || "text")] || T.labels_suggest_text, { value });
      offer = el("button", { type: "button", class: "label-suggestion", "data-suggested": String(e.suggested),
        "aria-label": `${why} — ${T.labels_accept} (${name})`, text: `${why} — ${T.labels_accept}` });
      offer.addEventListener("click", () => { choices[e.label] = e.suggested; suggest(); });
    }
    // the AI's one state of the label (the study's decision: present, absent or undecided),
    // never re-derived; a label the AI does not read has none
    const state = aiStates[e.label] || (e.ai_positive === null ? null : e.ai_positive ? "present" : "absent");
    const ai = aiImplied[e.label] && state === "present"
      ? fill(T.basis_implied, { label: labelName(task, aiImplied[e.label]) })
      : state ? M.stateWord(task, e.label, state) : "—";
    return el("tr", { "data-label": e.label, "data-ai-state": state || "none", "data-present": String(e.present), "data-source": e.source },
      el("th", { scope: "row", text: name }),
      el("td", { "data-label": T.labels_ai, text: ai }),
      el("td", { "data-label": T.labels_verdict }, choose || follows || toggle,
        el("span", { class: "basis", text: follows ? "" : sourceWord(e) }), ...(offer ? [offer] : [])));
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

  // the labels as the text on screen reads them, asked of the server; the sign dialog waits for
  // the latest answer (``ready``)
  function suggest() {
    latest = ask();
    return latest;
  }
  async function ask() {
    const mine = ++asked;
    const r = await api(`/api/v1/studies/${id}/labels/suggest`, { method: "POST",
      json: { sections: sections(), labels: { ...choices } } });
    if (mine !== asked) return;
    if (!r.ok) return;
    const none = !r.data.labels.some((e) => e.present === true || e.present === null);
    contradictions = r.data.contradictions || [];
    show(r.data.labels, signedVersion ? M.fill(T.labels_signed_then_edit, { version: signedVersion })
      : contradictions.length ? explain(contradictions) : none ? T.labels_nothing_learned : T.labels_hint);
  }

  // what contradicts what (the server's rule, core.label_rules: the card's, the sign dialog's
  // and a refused signature's errors), in the reader's language with the labels' own names
  const conj = Intl.ListFormat ? new Intl.ListFormat(M.LOCALE, { type: "conjunction" }) : null;
  const list = (items) => (conj ? conj.format(items) : items.join(", "));
  function explain(found) {
    return found.map((c) => {
      const n = c.labels.map((l) => labelName(task, l));
      return fill(T["labels_contra_" + c.kind] || T.labels_contra_other,
        { first: n[0], rest: list(n.slice(1)), labels: list(n) });
    }).join(" ");
  }

  async function load() {
    const s = await api(`/api/v1/studies/${id}`);
    if (!s.ok) return;
    task = s.data.task;
    const findings = (s.data.ai_result || {}).findings || [];
    aiStates = Object.fromEntries(findings.map((f) => [f.label, f.state]));
    aiImplied = Object.fromEntries(findings.filter((f) => f.state === "present" && f.basis === "implied" && f.implied_by)
      .map((f) => [f.label, f.implied_by]));
    // not analysed yet: no AI label to ask about (a hand-written report signs now); asked again
    if (s.data.status === "received" || s.data.status === "analysing") { setTimeout(() => { ready = load(); }, 1500); return; }
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
    await suggest();
  }

  $("labels-add-button").addEventListener("click", () => {
    const label = $("labels-add").value;
    if (!label) return;
    choices[label] = true;
    suggest();
  });
  // the report form filled (loaded, saved, written by hand): the text on screen changed
  M.hear("medai:report-shown", () => { if (task && signedVersion === null) suggest(); });
  document.addEventListener("input", (ev) => {
    if (!ev.target.id || !ev.target.id.startsWith("sec-")) return;
    clearTimeout(timer);
    timer = setTimeout(suggest, 500);
  });
  // what the sign request carries, and what the sign dialog shows of it
  M.studyLabels = {
    choices: () => ({ ...choices }),
    summary: () => shown.filter((e) => e.present === true).map((e) => labelName(task, e.label)).join(", ") || T.labels_nothing_stored,
    // what the radiologist changed, by their own clicks only (the sign dialog lists exactly
    // these): each clicked label against the AI's state, as the server named it
    changes: () => {
      const mine = shown.filter((e) => e.label in choices);
      const of = (source) => mine.filter((e) => e.source === source);
      return {
        rejected: names(of("rejected")),
        added: names(of("added")),
        confirmed: names(of("confirmed")),
        decided: of("decided").map((e) => `${labelName(task, e.label)}: ${yesNo(e.label, e.present)}`),
      };
    },
    rejected: () => names(shown.filter((e) => e.label in choices && e.source === "rejected")),
    // the labels in real doubt nobody chose (the server's needs_decision): the sign dialog
    // asks Var / Yok of these and of nothing else
    undecided: () => shown.filter((e) => e.needs_decision).map((e) => ({ label: e.label, name: labelName(task, e.label),
      yes: yesNo(e.label, true), no: yesNo(e.label, false) })),
    // what the text on screen suggests and the radiologist has not accepted (a label the AI
    // left undecided is asked in the dialog instead): the sign dialog names each, so nobody
    // signs finding decisions their own text contradicts without being told
    openSuggestions: () => shown
      .filter((e) => e.present !== null && e.suggested !== null && e.suggested !== undefined && e.suggested !== e.present)
      .map((e) => `${labelName(task, e.label)}: ${yesNo(e.label, e.suggested)}`),
    choose: (label, value) => { choices[label] = value; },
    // the labels shown contradict each other (a signature would be refused): why, said
    contradictions: () => contradictions.slice(),
    explain,
    // the contradictions the clicks and the dialog's ``answers`` would make, asked of the
    // server (the rule is the server's alone): the dialog keeps Sign off while there are any
    check: async (answers) => {
      const r = await api(`/api/v1/studies/${id}/labels/suggest`, { method: "POST",
        json: { sections: sections(), labels: { ...choices, ...answers } } });
      return r.ok ? r.data.contradictions || [] : [];
    },
    refresh: () => { signedVersion = null; for (const k of Object.keys(choices)) delete choices[k]; ready = load(); },
    // the sign dialog is built once the labels are shown: a Sign clicked while they load
    // would otherwise ask no Var / Yok question and the server would refuse the signature
    ready: async () => {
      try {
        await ready;
        let seen;
        do { seen = latest; await seen; } while (seen !== latest);
      } catch (e) { /* the card says what failed; the dialog opens all the same */ }
    },
  };
  ready = load();
})();
