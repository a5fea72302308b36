// Identity conflicts (the worklist for radiologists, the admin page for admins): instances that
// carry a study's UID but name another patient or order, kept aside, never merged or analysed.
// A radiologist sees both identities side by side and decides (a separate study, or reject);
// an admin sees them masked (admins read no patient data) and chases the sender.
"use strict";
(function () {
  const { T, api, el, fill, showError, personName } = window.medai;
  const section = document.getElementById("conflicts");
  if (!section) return;
  const list = section.querySelector(".conflicts");
  const status = document.getElementById("conflicts-status");
  const error = document.getElementById("conflicts-error");
  const ATTRS = ["patient_id", "issuer", "patient_name", "birth_date", "accession", "patient_ref"];
  // the DICOM keyword each attribute is named by in ``fields`` (what disagreed)
  const KEYWORD = { patient_id: "PatientID", issuer: "IssuerOfPatientID", patient_name: "PatientName",
    birth_date: "PatientBirthDate", accession: "AccessionNumber", patient_ref: "patient_ref" };

  function shown(attr, value, masked) {
    if (!value) return "—";
    return attr === "patient_name" && !masked && personName ? personName(value) : value;
  }

  async function decide(c, op, card) {
    showError(error, "");
    const r = await api(`/api/v1/conflicts/${c.id}/${op}`, { method: "POST" });
    if (!r.ok) {
      const code = r.data && r.data.code;
      showError(error, (code && T["error_" + code]) || (r.data && r.data.detail) || T.error_generic);
      return;
    }
    card.remove();
    status.textContent = op === "reassign"
      ? fill(T.conflicts_reassigned, { id: c.id, study: r.data.resolved_study_id })
      : fill(T.conflicts_rejected, { id: c.id });
    if (!list.children.length) list.hidden = true;
  }

  // where it came from: the calling AE title of a DICOM sender, or an upload
  function from(c) {
    const source = T["conflicts_source_" + c.source] || c.source;
    return c.calling_ae ? fill(T.conflicts_from, { id: c.id, source, ae: c.calling_ae })
      : fill(T.conflicts_from_upload, { id: c.id, source });
  }

  function card(c) {
    const rows = ATTRS.filter((a) => c.study[a] || c.incoming[a]).map((a) => {
      const differs = c.fields.includes(KEYWORD[a]);
      return el("tr", { class: differs ? "differs" : null },
        el("th", { scope: "row", text: T["conflicts_attr_" + a] || a }),
        el("td", { "data-label": T.conflicts_col_study, text: shown(a, c.study[a], c.masked) }),
        el("td", { "data-label": T.conflicts_col_incoming,
          text: shown(a, c.incoming[a], c.masked) + (differs ? " ≠" : "") }));
    });
    // a stored instance resent under another study, series or SOP class: named by the DICOM
    // keyword (a series another study holds says so in the reason instead)
    const uids = c.reason === "series_elsewhere" ? []
      : ["StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID"].filter((k) => c.fields.includes(k));
    for (const keyword of uids) {
      rows.push(el("tr", { class: "differs" }, el("th", { scope: "row", text: keyword }),
        el("td", { "data-label": T.conflicts_col_study, text: "…" }),
        el("td", { "data-label": T.conflicts_col_incoming, text: "≠" })));
    }
    if (c.fields.includes("PixelData")) {
      rows.push(el("tr", { class: "differs" }, el("th", { scope: "row", text: T.conflicts_attr_pixels }),
        el("td", { "data-label": T.conflicts_col_study, text: "…" }),
        el("td", { "data-label": T.conflicts_col_incoming, text: "≠" })));
    }
    const studyLink = c.masked ? el("span", { text: fill(T.conflicts_study, { id: c.study_id }) })
      : el("a", { href: `/studies/${c.study_id}`, text: fill(T.conflicts_study, { id: c.study_id }) });
    const item = el("li", { class: "card conflict", "data-conflict": String(c.id) },
      el("h3", {}, studyLink, " · ", el("span", { text: T["conflicts_reason_" + c.reason] || c.reason })),
      el("p", { class: "hint", text: from(c) }),
      el("div", { class: "table-wrap", tabindex: "0", role: "region",
        "aria-label": from(c) },
      el("table", { class: "list findings conflict-identities" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: T.conflicts_col_attr }),
          el("th", { scope: "col", text: T.conflicts_col_study }),
          el("th", { scope: "col", text: T.conflicts_col_incoming }))),
        el("tbody", {}, ...rows))));
    if (!c.masked) {
      const reassign = el("button", { type: "button", class: "primary", text: T.conflicts_reassign,
        "aria-label": fill(T.conflicts_reassign_named, { id: c.id }) });
      const reject = el("button", { type: "button", text: T.conflicts_reject,
        "aria-label": fill(T.conflicts_reject_named, { id: c.id }) });
      reassign.addEventListener("click", () => decide(c, "reassign", item));
      reject.addEventListener("click", () => decide(c, "reject", item));
      item.append(el("p", { class: "hint", text: T.conflicts_decide_hint }),
        el("div", { class: "actions" }, reassign, reject));
    }
    return item;
  }

  async function load() {
    const r = await api("/api/v1/conflicts?state=open&limit=100");
    if (!r.ok) return;
    list.replaceChildren(...r.data.items.map(card));
    list.hidden = r.data.items.length === 0;
    section.hidden = r.data.items.length === 0;
    if (r.data.items.length && r.data.items[0].masked) {
      section.querySelector(".conflicts-masked").hidden = false;
    }
  }
  window.medai.reloadConflicts = load;
  load();
})();
