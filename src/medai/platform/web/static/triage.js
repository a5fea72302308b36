"use strict";
(function () {
  const { T, api, el, pct, showError } = window.medai;
  const form = document.getElementById("triage-form");
  const banner = document.getElementById("urgent-banner");
  const result = document.getElementById("triage-result");
  const error = document.getElementById("triage-error");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(error, "");
    const r = await api("/api/v1/triage", { method: "POST", json: { text: form.text.value } });
    if (!r.ok) {
      showError(error, r.status === 429 ? T.triage_quota : (r.data && r.data.detail) || T.triage_error);
      return;
    }
    const data = r.data;
    banner.hidden = !data.urgent;
    if (data.urgent) {
      const advice = document.getElementById("urgent-advice");
      const en = document.body.dataset.lang === "en";
      advice.textContent = data.red_flags.map((f) => (en ? f.name_en + ": " + f.advice_en
        : f.name_tr + ": " + f.advice_tr)).join(" ");
      banner.scrollIntoView({ block: "start" });
      banner.focus && banner.setAttribute("tabindex", "-1");
    }
    document.getElementById("abstain").hidden = !data.abstained;
    const list = document.getElementById("departments");
    list.replaceChildren(...data.departments.map((d) => {
      const bar = el("span", { class: "bar" });
      bar.style.width = pct(d.probability);
      return el("li", {}, el("span", { class: "bar-label", text: document.body.dataset.lang === "en" ? d.name_en : d.name }),
        el("span", { class: "bar-track", role: "img", "aria-label": pct(d.probability) }, bar),
        el("span", { class: "bar-value", text: pct(d.probability) }));
    }));
    result.hidden = false;
  });
})();
