// The monitoring page: for each active model, its numbers from /api/v1/models/monitoring and
// small SVG plots drawn here (no library, no CDN): positive rates of the reference and the
// latest window per label, the mean brightness of the latest analyses against the reference
// median, and agreement with signatures with 95% intervals. Open alerts come first.
"use strict";
(function () {
  const { T, api, el, fill, showError, taskName, labelName, modelVersion, fmtTime } = window.medai;
  const SVG = "http://www.w3.org/2000/svg";
  const fmt = (v, d = 3) => (v === null || v === undefined ? "—" : Number(v).toFixed(d));
  const pctv = (v) => (v === null || v === undefined ? "—" : (100 * v).toFixed(1) + "%");
  const pv = (v) => (v === null || v === undefined ? "—" : v < 1e-4 ? v.toExponential(1) : v.toFixed(4));

  function svg(tag, attrs, ...kids) {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
    kids.forEach((k) => n.appendChild(typeof k === "string" ? document.createTextNode(k) : k));
    return n;
  }

  function alertText(a) {
    const kind = T["monitor_kind_" + a.kind] || a.kind;
    const key = a.key === "department" ? T.monitor_department
      : a.kind === "output" || a.kind === "agreement" ? labelName(a.task, a.key)
      : a.kind === "input" ? (T["monitor_stat_" + a.key] || a.key)
      : a.kind === "metadata" ? (T["monitor_field_" + a.key] || a.key) : a.key;
    return `${taskName(a.task)} · ${kind}: ${key} — ${fill(T.monitor_value, { value: fmt(a.value), threshold: fmt(a.threshold) })} · ${fmtTime(a.at)}`;
  }

  // paired bars per label: reference (light) and latest window (dark)
  function rateChart(task, labels) {
    const names = Object.keys(labels);
    const rowH = 22, left = 150, width = 260, h = names.length * rowH + 10;
    const chart = svg("svg", { viewBox: `0 0 ${left + width + 120} ${h}`, role: "img", class: "chart",
      "aria-label": T.monitor_positive_rates });
    names.forEach((label, i) => {
      const r = labels[label].reference_positive_rate || 0, w = labels[label].window_positive_rate;
      const y = 5 + i * rowH;
      chart.appendChild(svg("text", { x: left - 6, y: y + 13, "text-anchor": "end", class: "chart-label" }, labelName(task, label)));
      chart.appendChild(svg("rect", { x: left, y, width: Math.max(1, r * width), height: 8, class: "bar-ref" }));
      if (w !== null && w !== undefined) chart.appendChild(svg("rect", { x: left, y: y + 9, width: Math.max(1, w * width), height: 8, class: "bar-win" }));
      chart.appendChild(svg("text", { x: left + width + 6, y: y + 13, class: "chart-label" }, `${pctv(r)} → ${pctv(w)}`));
    });
    return chart;
  }

  // the latest analyses' mean brightness, with the reference median as a line
  function seriesChart(series, refMedian) {
    const pts = series.filter((s) => s.mean !== null && s.mean !== undefined);
    const w = 480, h = 90;
    const chart = svg("svg", { viewBox: `0 0 ${w} ${h}`, role: "img", class: "chart", "aria-label": T.monitor_intensity });
    chart.appendChild(svg("rect", { x: 0, y: 0, width: w, height: h, class: "chart-frame" }));
    if (pts.length > 1) {
      const xy = pts.map((s, i) => `${(i / (pts.length - 1)) * (w - 10) + 5},${h - 5 - s.mean * (h - 10)}`);
      chart.appendChild(svg("polyline", { points: xy.join(" "), class: "line-win" }));
    }
    if (refMedian !== null && refMedian !== undefined) {
      const y = h - 5 - refMedian * (h - 10);
      chart.appendChild(svg("line", { x1: 0, x2: w, y1: y, y2: y, class: "line-ref" }));
    }
    return chart;
  }

  function table(head, rows, rowHeads = true) {
    return el("div", { class: "table-wrap" }, el("table", { class: "list" },
      el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...rows.map((r) => el("tr", {},
        ...(rowHeads ? [el("th", { scope: "row", text: r[0] })] : []),
        ...r.slice(rowHeads ? 1 : 0).map((c) => el("td", { text: c })))))));
  }

  const ci = (t) => (t && t[0] !== null ? `${pctv(t[0])} (${pctv(t[1])}–${pctv(t[2])})` : "—");
  // a comparison with no sample on a side has no statistic: "—" and n, never 0.000 / 1.0000
  const empty = (x) => !x || x.window_n === 0 || x.reference_n === 0;
  const noData = (x) => fill(T.monitor_no_data, { n: x && x.window_n === 0 ? 0 : (x ? x.reference_n : 0) });
  const testLine = (x) => (empty(x) ? noData(x) : `${T.monitor_psi} ${fmt(x.psi)} · χ² p ${pv(x.p)}`);

  function modelCard(m) {
    const task = m.model.task, v = m.volume, s = m.settings;
    const validated = m.reference && m.reference.kind === "site_validation";
    // a task whose outcomes staff record (Task.recorded_outcomes) is judged on them, not on drift
    const recorded = m.triage != null;
    const need = recorded ? 0 : validated ? Math.max(0, s.min_window - v.window_n)
      : Math.max(0, s.reference_n + s.min_window - v.total);
    const open = m.alerts.filter((a) => !a.cleared_at);
    const parts = [
      el("h2", { text: `${taskName(task)} — ${m.model.name} ${modelVersion(m.model)}` }),
      el("p", { class: "note mono", text: m.model.content_hash }),
      table([T.monitor_volume, T.monitor_refused, T.monitor_abstained, T.monitor_latency], [[
        `${v.total} (${T.monitor_reference} ${v.reference_n}, ${T.monitor_window} ${v.window_n})`,
        ci(m.rates.refused), ci(m.rates.abstained),
        `${fmt(m.latency_ms.p50, 0)} / ${fmt(m.latency_ms.p95, 0)} ms`]], false),
    ];
    if (!recorded && m.reference) parts.push(el("p", { class: "note", "data-reference": m.reference.kind,
      text: fill(validated ? T.monitor_reference_validation : T.monitor_reference_first, { n: m.reference.n }) }));
    if (need > 0 && v.total) parts.push(el("p", { class: "note", text: fill(T.monitor_waiting, { need, ref: s.reference_n, win: s.min_window }) }));
    if (recorded) {  // staff's recorded departments and urgency
      const t = m.triage;  // never null here: that is what `recorded` asks
      parts.push(el("h3", { text: T.monitor_triage_title }), t.n
        ? table([T.monitor_n, T.monitor_abstained, T.monitor_department, T.monitor_red_sens, T.monitor_red_ppv],
          [[String(t.n), String(t.abstained), ci(t.department), ci(t.red_flag_sensitivity), ci(t.red_flag_ppv)]], false)
        : el("p", { class: "note", text: T.monitor_triage_none }));
      return el("section", { class: "card monitor-model" + (open.length ? " alerting" : ""),
        "data-task": task, "data-alerts": String(open.length) }, ...parts);
    }
    if (!v.total) {
      parts.push(el("p", { class: "note", text: T.monitor_no_samples }));
      return el("section", { class: "card monitor-model", "data-task": task, "data-alerts": "0" }, ...parts);
    }
    parts.push(el("h3", { text: T.monitor_positive_rates }), rateChart(task, m.labels),
      table([T.col_finding, T.monitor_window_n, T.monitor_psi, T.monitor_p], Object.entries(m.labels).map(([l, x]) =>
        [labelName(task, l), String(x.window_n ?? "—"), empty(x) ? noData(x) : fmt(x.psi), empty(x) ? "—" : pv(x.p)])));
    parts.push(el("h3", { text: T.monitor_intensity }),
      seriesChart(m.series, m.inputs.mean ? m.inputs.mean.reference_median : null),
      table([T.monitor_inputs, T.monitor_median_ref, T.monitor_median_win, T.monitor_p],
        Object.entries(m.inputs).map(([k, x]) => [T["monitor_stat_" + k] || k, fmt(x.reference_median),
          empty(x) ? noData(x) : fmt(x.window_median), empty(x) ? "—" : pv(x.p)])));
    const mix = m.metadata;
    parts.push(el("h3", { text: T.monitor_mix }),
      table(["", T.monitor_reference, T.monitor_window], [...new Set([...Object.keys(mix.reference), ...Object.keys(mix.window)])]
        .map((k) => [k, pctv(mix.reference[k] || 0), mix.window_n === 0 ? "—" : pctv(mix.window[k] || 0)])),
      el("p", { class: "note", text: testLine(mix) }));
    const population = Object.entries(m.population || {});
    if (population.length) {
      parts.push(el("h3", { text: T.monitor_population }));
      for (const [field, x] of population) {
        const keys = [...new Set([...Object.keys(x.reference), ...Object.keys(x.window)])];
        parts.push(el("div", { class: "population", "data-field": field },
          table([T["monitor_field_" + field] || field, T.monitor_reference, T.monitor_window],
            keys.map((k) => [k || T.monitor_unknown, pctv(x.reference[k] || 0), x.window_n === 0 ? "—" : pctv(x.window[k] || 0)])),
          el("p", { class: "note", text: testLine(x) })));
      }
    }
    const e = m.embedding || {};
    parts.push(el("h3", { text: T.monitor_stat_embedding }), el("p", { class: "note", id: `embedding-${task}`,
      text: e.window_n && e.p !== null && e.p !== undefined ? fill(T.monitor_embedding, { distance: fmt(e.distance), threshold: fmt(s.embedding_shift),
        p: pv(e.p), dims: e.dimensions, n: `${e.reference_n} + ${e.window_n}` }) : T.monitor_embedding_none }));
    const agree = Object.entries(m.agreement);
    parts.push(el("h3", { text: T.monitor_agreement }), agree.length
      ? table([T.col_finding, T.monitor_n, T.monitor_agree, T.monitor_sensitivity, T.monitor_ppv],
        agree.map(([l, a]) => [labelName(task, l), String(a.n), ci(a.agreement), ci(a.sensitivity), ci(a.ppv)]))
      : el("p", { class: "note", text: T.monitor_agreement_none }));
    return el("section", { class: "card monitor-model" + (open.length ? " alerting" : ""),
      "data-task": task, "data-alerts": String(open.length) }, ...parts);
  }

  async function load() {
    const r = await api("/api/v1/models/monitoring");
    if (!r.ok) { showError(document.getElementById("monitor-error"), (r.data && r.data.detail) || T.error_generic); return; }
    const models = r.data.models;
    document.getElementById("monitor-none").hidden = models.length > 0;
    document.getElementById("monitor-models").replaceChildren(...models.map(modelCard));
    const open = models.flatMap((m) => m.alerts.filter((a) => !a.cleared_at));
    const box = document.getElementById("monitor-alerts");
    box.hidden = false;
    box.classList.toggle("alerting", open.length > 0);
    box.replaceChildren(el("h2", { text: T.monitor_alerts_open }), open.length
      ? el("ul", { id: "open-alerts" }, ...open.map((a) => el("li", { "data-kind": a.kind, text: alertText(a) })))
      : el("p", { class: "note", text: T.monitor_no_alerts }));
  }
  document.getElementById("monitor-refresh").addEventListener("click", load);
  load();
})();
