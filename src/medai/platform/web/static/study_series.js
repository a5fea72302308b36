"use strict";
// The study's series in the viewer: a study of 20-200 slices is scrolled as in a PACS viewer
// (the wheel, ↑/↓, PageUp/PageDown, Home/End; the buttons, the slider and a vertical swipe on
// a phone), with the slice counter "12 / 20", which slices the AI read and which carry its
// suggestion (key slices), opening on the first key slice. The slices come in anatomical order
// from GET /api/v1/studies/{id}/series (the server's, as the AI reads them); each picture is
// fetched once per page and kept as a blob URL (the server sends no-store). study.js asks
// ``M.studySeries`` whether the heatmap belongs to the slice on screen.
(function () {
  const M = window.medai;
  const { T, api, el, fill } = M;
  const $ = (k) => document.getElementById(k);
  const root = $("study");
  if (!root) return;
  const id = root.dataset.studyId;
  const img = $("image"), viewer = $("viewer"), bar = $("series-bar"), slider = $("slice");
  const strip = $("slice-strip"), counter = $("slice-counter"), badge = $("slice-badge");
  const pick = $("series-pick"), live = $("slice-live");
  let data = null;       // GET /series
  let series = null;     // the series on screen
  let at = 0;            // its slice on screen
  let seen = null;       // what the study said when the series were last read
  let multi = false;     // more than one image to show: the series bar is up
  const pictures = new Map();  // url -> Promise of a blob URL

  const slices = () => (series ? series.slices : []);
  const current = () => slices()[at] || null;
  const active = () => slices().length > 1;
  const keys = () => slices().map((s, i) => (s.key ? i : -1)).filter((i) => i >= 0);
  function url(s) {
    return `/api/v1/studies/${id}/instances/${encodeURIComponent(s.sop_uid)}/image${s.frame ? `?frame=${s.frame}` : ""}`;
  }
  function picture(s) {
    const u = url(s);
    if (!pictures.has(u)) {
      const p = fetch(u, { credentials: "same-origin" })
        .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(String(r.status)))))
        .then((b) => URL.createObjectURL(b));
      p.catch(() => pictures.delete(u));  // tried again when the slice is shown again
      pictures.set(u, p);
    }
    return pictures.get(u);
  }
  const what = (x) => [x.modality, x.view_position, x.body_part, x.description].filter(Boolean).join(" · ") || x.series_uid;
  function stateWords(s) {
    const words = [];
    if (s.key) words.push(T.viewer_slice_key);
    const readKnown = slices().some((x) => x.read);
    if (readKnown) words.push(s.read ? T.viewer_slice_read : T.viewer_slice_not_read);
    if (s.heatmap) words.push(T.viewer_slice_heatmap);
    return words;
  }
  function readSummary() {
    const n = slices().length, read = slices().filter((s) => s.read).length;
    const k = keys().map((i) => i + 1);
    const params = { read, total: n, keys: k.length ? k.join(", ") : T.viewer_keys_none };
    if (!read) return T.viewer_read_none;
    const res = (M.studyResult && M.studyResult.read) || {};
    if (read === n) return fill(T.viewer_read_all, params);
    return fill(res.sampled ? T.viewer_read_sampled : T.viewer_read_some, params);
  }
  function drawStrip() {
    strip.replaceChildren(...slices().map((s, i) => el("span", {
      class: ["tick", s.key ? "key" : s.read ? "read" : "unread", i === at ? "here" : null].filter(Boolean).join(" "),
      "data-index": i })));
  }
  function show(index, announce = true) {
    const list = slices();
    if (!list.length) return;
    at = Math.max(0, Math.min(list.length - 1, index));
    const s = list[at];
    const of = fill(T.viewer_slice_of, { n: at + 1, total: list.length });
    counter.textContent = of;
    slider.value = String(at + 1);
    const words = stateWords(s);
    slider.setAttribute("aria-valuetext", [of, ...words].join(" · "));
    $("slice-state").textContent = words.join(" · ");
    root.dataset.slice = String(at + 1);
    root.dataset.sliceKey = s.key ? "true" : "false";
    badge.replaceChildren(el("span", { text: of }),
      ...(s.key ? [el("span", { class: "badge-key", text: T.viewer_slice_key_short })] : []));
    // a series of one film (a chest study's PA beside its lateral) has no slice to find: no
    // "1 / 1 Anahtar kesit" badge on it
    badge.hidden = !multi || list.length < 2;
    strip.querySelectorAll(".tick.here").forEach((t) => t.classList.remove("here"));
    const tick = strip.children[at];
    if (tick) tick.classList.add("here");
    const shown = s;
    picture(s).then((u) => {
      if (current() !== shown) return;  // scrolled on meanwhile
      img.src = u;
      $("slice-failed") && $("slice-failed").remove();
    }, () => {
      if (current() !== shown || $("slice-failed")) return;
      $("slice-state").after(el("p", { id: "slice-failed", class: "note", role: "status", text: T.viewer_slice_failed }));
    });
    for (const d of [1, -1, 2, -2]) if (list[at + d]) picture(list[at + d]);  // the neighbours
    if (announce) {
      clearTimeout(show.timer);  // said once the scrolling stops, not for every slice
      show.timer = setTimeout(() => { live.textContent = [`${T.viewer_slice} ${of}`, ...words].join(". "); }, 400);
    }
    document.dispatchEvent(new CustomEvent("medai:slice"));
    heatNote();
  }
  function step(d) { if (active()) show(at + d); }
  function nextKey() {
    const k = keys();
    if (!k.length) return;
    show(k.find((i) => i > at) ?? k[0]);
  }
  function choose(uid, ref) {
    series = (data.series || []).find((x) => x.series_uid === uid) || data.series.find((x) => x.slices.length) || null;
    if (!series) return;
    bar.hidden = !multi;
    bar.querySelectorAll(".slices-only").forEach((n) => { n.hidden = !active(); });
    slider.max = String(Math.max(1, slices().length));
    $("slice-key-next").hidden = !keys().length;
    $("series-read").textContent = active() ? readSummary() : "";
    drawStrip();
    const i = slices().findIndex((s) => s.ref === ref);
    show(i >= 0 ? i : 0, false);
    keys().forEach((i) => picture(slices()[i]));  // the key slices are looked at first
  }
  function showSeries(body) {
    data = body;
    const withSlices = (body.series || []).filter((x) => x.slices.length);
    multi = withSlices.length > 1 || (withSlices.length === 1 && withSlices[0].slices.length > 1);
    if (!multi) {  // one image: the study's own rendition, as before series were read
      bar.hidden = true;
      if (!img.getAttribute("src")) img.src = `/api/v1/studies/${id}/image`;
      return;
    }
    pick.replaceChildren(...withSlices.map((x) => el("option", { value: x.series_uid,
      text: fill(x.read_by_ai ? T.viewer_series_ai : T.viewer_series_other, { what: what(x), n: x.slices.length }) })));
    $("series-pick-wrap").hidden = withSlices.length < 2;
    const keep = series && current() ? { uid: series.series_uid, ref: current().ref } : null;
    const start = keep || (body.start ? { uid: body.start.series_uid, ref: body.start.ref } : { uid: withSlices[0].series_uid, ref: null });
    pick.value = start.uid;
    choose(start.uid, start.ref);
    viewer.setAttribute("aria-label", active() ? T.viewer_series_label : T.viewer_label);
  }
  async function load() {
    const r = await api(`/api/v1/studies/${id}/series`);
    if (!r.ok) { if (!img.getAttribute("src")) img.src = `/api/v1/studies/${id}/image`; return; }
    showSeries(r.data);
  }

  // --- the heatmap belongs to one slice: shown there, said (with a way there) elsewhere
  const heatOn = $("heatmap-on");
  function heatSlice() {  // {series, index} of the slice the heatmap is of; null: none flagged
    for (const x of (data && data.series) || []) {
      const index = x.slices.findIndex((s) => s.heatmap);
      if (index >= 0) return { series: x, index };
    }
    return null;
  }
  function heatHere() {
    const h = heatSlice();
    return !multi || !h || (series && h.series.series_uid === series.series_uid && h.index === at);
  }
  function heatNote() {
    const note = $("heatmap-elsewhere"), h = heatSlice();
    const wanted = heatOn.checked && !heatOn.closest(".heat-control").hidden;
    note.hidden = !(wanted && !heatHere());
    if (!note.hidden) {
      const where = h.series === series ? h.index + 1 : `${what(h.series)}, ${h.index + 1}`;
      $("heatmap-elsewhere-text").textContent = fill(T.viewer_heatmap_elsewhere, { n: where });
    }
  }
  function goHeat() {
    const h = heatSlice();
    if (!h) return;
    if (h.series !== series) { pick.value = h.series.series_uid; series = null; choose(h.series.series_uid, h.series.slices[h.index].ref); }
    else show(h.index);
  }
  heatOn.addEventListener("change", heatNote);
  $("heatmap-go").addEventListener("click", () => { goHeat(); viewer.focus(); });

  // --- wheel, keys, buttons, slider, strip, swipe
  let wheel = 0;
  function onWheel(e) {  // true: handled (study.js zooms otherwise, and with Ctrl)
    if (!active() || e.ctrlKey || e.metaKey) return false;
    e.preventDefault();
    wheel += e.deltaMode === 1 ? e.deltaY * 33 : e.deltaMode === 2 ? e.deltaY * 400 : e.deltaY;
    const steps = Math.trunc(wheel / 100) || (Math.abs(wheel) >= 50 ? Math.sign(wheel) : 0);
    if (steps) { wheel = 0; step(steps); }
    return true;
  }
  function onKey(e) {  // true: handled (Shift + arrows and ←/→ pan, in study.js)
    if (!active() || e.shiftKey || e.altKey || e.ctrlKey || e.metaKey) return false;
    const page = Math.max(1, Math.round(slices().length / 10));
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page };
    if (e.key in moves) step(moves[e.key]);
    else if (e.key === "Home") show(0);
    else if (e.key === "End") show(slices().length - 1);
    else if (e.key === "k" || e.key === "K") nextKey();
    else return false;
    e.preventDefault();
    return true;
  }
  $("slice-prev").addEventListener("click", () => step(-1));
  $("slice-next").addEventListener("click", () => step(1));
  $("slice-key-next").addEventListener("click", nextKey);
  slider.addEventListener("input", () => show(Number(slider.value) - 1));
  pick.addEventListener("change", () => {
    const x = data.series.find((s) => s.series_uid === pick.value);
    const k = x ? x.slices.findIndex((s) => s.key) : -1;
    series = null;
    choose(pick.value, x && k >= 0 ? x.slices[k].ref : null);
    viewer.setAttribute("aria-label", active() ? T.viewer_series_label : T.viewer_label);
  });
  strip.addEventListener("click", (e) => {
    const box = strip.getBoundingClientRect();
    show(Math.floor(((e.clientX - box.left) / box.width) * slices().length));
  });
  let swipe = null;  // a vertical swipe at zoom 1 scrolls the slices (touch, 360 px)
  viewer.addEventListener("pointerdown", (e) => { swipe = active() && Number($("zoom").value) === 1 ? e.clientY : null; });
  viewer.addEventListener("pointermove", (e) => {
    if (swipe === null) return;
    const d = e.clientY - swipe;
    if (Math.abs(d) >= 24) { step(d > 0 ? 1 : -1); swipe = e.clientY; }
  });
  viewer.addEventListener("pointerup", () => { swipe = null; });
  viewer.addEventListener("pointercancel", () => { swipe = null; });

  M.studySeries = {
    // study.js, on every load of the study: true when the series shows the image (a DICOM
    // study of several instances); the series are read again when what the AI read changed
    update(study) {
      M.studyResult = study.ai_result || null;
      const d = study.dicom;
      const res = study.ai_result || {};
      const now = JSON.stringify([d && d.instances, res.read || null, res.heatmap_instance || null, res.has_heatmap || false, study.status]);
      if (now !== seen) { seen = now; if (d && d.instances > 1) load(); }
      return Boolean(d && d.instances > 1);
    },
    active, heatHere, onWheel, onKey,
  };
})();
