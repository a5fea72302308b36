"use strict";
(function () {
  const { T, api, el, pct } = window.medai;
  api("/api/v1/triage/history").then((r) => {
    if (!r.ok) return;
    const list = document.getElementById("history");
    list.replaceChildren(...r.data.items.map((i) => {
      const top = (i.result.departments || [])[0];
      return el("li", { class: i.urgent ? "is-urgent" : null },
        el("time", { datetime: i.created_at, text: new Date(i.created_at).toLocaleString(document.documentElement.lang) }),
        i.urgent ? el("span", { class: "badge urgent", text: T.urgent }) : "",
        el("p", { text: i.complaint }),
        top ? el("p", { class: "note", text: (document.body.dataset.lang === "en" ? top.name_en : top.name) + " " + pct(top.probability) }) : "");
    }));
    document.getElementById("history-empty").hidden = r.data.items.length > 0;
  });
})();
