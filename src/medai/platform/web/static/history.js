// The patient's own triage requests: each result rendered by the same function, from the same
// stored result, as the screen that answered it (triage_view.js).
"use strict";
(function () {
  const { T, api, el } = window.medai;
  const view = window.medai.triageView;
  const when = (iso) => (window.medai.fmtTime ? window.medai.fmtTime(iso)
    : new Date(iso).toLocaleString(document.documentElement.lang));
  api("/api/v1/triage/history").then((r) => {
    if (!r.ok) return;
    const list = document.getElementById("history");
    list.replaceChildren(...r.data.items.map((i) => el("li", { class: i.urgent ? "is-urgent" : null, "data-id": i.id },
      el("p", { class: "history-meta" }, el("time", { datetime: i.created_at, text: when(i.created_at) })),
      el("blockquote", { class: "complaint", text: i.complaint }),
      view.render({ ...i.result, record_id: i.id }, { live: false }))));  // the number staff ask for
    document.getElementById("history-empty").hidden = r.data.items.length > 0;
  });
})();
