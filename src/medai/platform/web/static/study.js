"use strict";
(function () {
  const { T, api, el, statusLabel, pct } = window.medai;
  const root = document.getElementById("study");
  const id = root.dataset.studyId;
  const SECTIONS = ["technique", "findings", "impression", "recommendation"];
  let report = null;
  let heatLabel = null;

  // --- viewer: zoom (slider, wheel, keys), pan (drag, arrows), window/level as CSS filters
  const stage = document.getElementById("stage");
  const viewer = document.getElementById("viewer");
  const img = document.getElementById("image");
  const heat = document.getElementById("heatmap");
  const view = { zoom: 1, x: 0, y: 0 };
  function apply() {
    stage.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.zoom})`;
    const w = document.getElementById("window").value, l = document.getElementById("level").value;
    img.style.filter = `contrast(${w}%) brightness(${l}%)`;
    heat.style.opacity = String(document.getElementById("opacity").value / 100);
    document.getElementById("zoom").value = String(view.zoom);
  }
  function zoomTo(z) { view.zoom = Math.min(6, Math.max(1, z)); if (view.zoom === 1) { view.x = 0; view.y = 0; } apply(); }
  document.getElementById("zoom").addEventListener("input", (e) => zoomTo(Number(e.target.value)));
  ["window", "level", "opacity"].forEach((k) => document.getElementById(k).addEventListener("input", apply));
  viewer.addEventListener("wheel", (e) => { e.preventDefault(); zoomTo(view.zoom * (e.deltaY < 0 ? 1.15 : 1 / 1.15)); }, { passive: false });
  let drag = null;
  viewer.addEventListener("pointerdown", (e) => { drag = { x: e.clientX - view.x, y: e.clientY - view.y }; viewer.setPointerCapture(e.pointerId); });
  viewer.addEventListener("pointermove", (e) => { if (drag && view.zoom > 1) { view.x = e.clientX - drag.x; view.y = e.clientY - drag.y; apply(); } });
  viewer.addEventListener("pointerup", () => { drag = null; });
  viewer.addEventListener("keydown", (e) => {
    const step = 30, keys = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
    if (keys[e.key]) { view.x += keys[e.key][0]; view.y += keys[e.key][1]; apply(); e.preventDefault(); }
    if (e.key === "+" || e.key === "=") zoomTo(view.zoom * 1.25);
    if (e.key === "-") zoomTo(view.zoom / 1.25);
  });
  document.getElementById("reset-view").addEventListener("click", () => {
    view.zoom = 1; view.x = 0; view.y = 0;
    document.getElementById("window").value = "100"; document.getElementById("level").value = "100";
    apply();
  });
  const heatOn = document.getElementById("heatmap-on");
  const heatSelect = document.getElementById("heatmap-label");
  function showHeat() {
    heat.hidden = !heatOn.checked;
    if (heatOn.checked && heatSelect.value) {
      heat.src = `/api/v1/studies/${id}/heatmap?label=${encodeURIComponent(heatSelect.value)}`;
    }
  }
  heatOn.addEventListener("change", showHeat);
  heatSelect.addEventListener("change", showHeat);

  // --- study and findings
  async function loadStudy() {
    const r = await api(`/api/v1/studies/${id}`);
    if (!r.ok) return;
    const s = r.data;
    const badge = document.getElementById("study-status");
    badge.textContent = statusLabel(s.status);
    badge.dataset.status = s.status;
    document.getElementById("study-urgent").hidden = !s.urgent;
    const reason = document.getElementById("study-reason");
    reason.textContent = s.reason || "";
    reason.hidden = !s.reason;
    if (!img.src) img.src = `/api/v1/studies/${id}/image`;
    const res = s.ai_result;
    if (res && res.findings) {
      document.querySelector("#findings tbody").replaceChildren(...res.findings.map((f) =>
        el("tr", { class: f.positive ? "positive" : null },
          el("th", { scope: "row", text: f.label }), el("td", { text: pct(f.probability) }),
          el("td", { text: pct(f.threshold) }), el("td", { text: f.positive ? T.yes : T.no }))));
      document.getElementById("model-line").textContent =
        `${T.col_model}: ${res.model.name} ${res.model.version} (${res.model.content_hash.slice(0, 19)}…)`;
      if (!heatSelect.options.length) {
        heatLabel = res.heatmap_label;
        heatSelect.replaceChildren(...res.findings.map((f) => el("option", { value: f.label, selected: f.label === heatLabel, text: f.label })));
      }
    }
    if (s.status === "received" || s.status === "analysing") setTimeout(loadStudy, 1500);
    else if (!report) loadReport();
  }

  // --- report, citations, versions
  const form = document.getElementById("report-form");
  const message = document.getElementById("report-message");
  function fill(r) {
    report = r;
    document.getElementById("report-version").textContent = `· ${T.report_version} ${r.version}`;
    const st = document.getElementById("report-status");
    st.textContent = statusLabel(r.status);
    st.dataset.status = r.status;
    SECTIONS.forEach((k) => { form.elements[k].value = r.sections[k] || ""; });
    const readOnly = document.body.dataset.role !== "radiologist";
    SECTIONS.forEach((k) => { form.elements[k].readOnly = readOnly; });
    document.getElementById("save").hidden = readOnly;
    const sign = document.getElementById("sign");
    if (sign) sign.disabled = Boolean(r.signed_by);
    document.getElementById("citations").replaceChildren(...(r.citations || []).map((c) =>
      el("li", { id: "cite-" + c.n }, el("details", {}, el("summary", { text: `[${c.n}] ${c.title || c.source}` }),
        el("blockquote", { text: c.text }), el("p", { class: "note", text: `${c.source}${c.licence ? " · " + c.licence : ""}` })))));
    form.hidden = false;
    document.getElementById("report-none").hidden = true;
  }
  async function loadReport() {
    const r = await api(`/api/v1/studies/${id}/report`);
    if (r.status === 404) { document.getElementById("report-none").hidden = false; return; }
    if (r.ok) { fill(r.data); loadVersions(); }
  }
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
  async function loadVersions() {
    const r = await api(`/api/v1/studies/${id}/report/versions`);
    if (!r.ok) return;
    const items = r.data.items;
    document.getElementById("versions").replaceChildren(...items.map((v, k) => {
      const li = el("li", {}, `${T.report_version} ${v.version} · ${statusLabel(v.status)} · ${v.author || "AI"}` +
        (v.signed_by ? ` · ${T.history_signed_by}: ${v.signed_by}` : ""));
      if (k > 0) {
        const b = el("button", { type: "button", class: "link", text: T.history_compare });
        b.addEventListener("click", () => {
          const d = document.getElementById("diff");
          d.textContent = diffLines(asText(items[k - 1]), asText(v));
          d.hidden = false;
        });
        li.append(" ", b);
      }
      return li;
    }));
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const sections = Object.fromEntries(SECTIONS.map((k) => [k, form.elements[k].value]));
    const r = await api(`/api/v1/studies/${id}/report`, { method: "PUT", json: { version: report.version, sections } });
    message.textContent = r.ok ? T.report_saved : r.status === 409 ? T.report_conflict : (r.data && r.data.detail) || T.error_generic;
    if (r.ok) { fill(r.data); loadVersions(); loadStudy(); }
  });
  const sign = document.getElementById("sign");
  if (sign) sign.addEventListener("click", async () => {
    const r = await api(`/api/v1/studies/${id}/report/sign`, { method: "POST", json: { version: report.version } });
    message.textContent = r.ok ? T.report_signed : r.status === 409 ? T.report_conflict : (r.data && r.data.detail) || T.error_generic;
    if (r.ok) { fill(r.data); loadVersions(); loadStudy(); }
  });
  apply();
  loadStudy();
})();
