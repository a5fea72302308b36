// Shared by every page: the translation catalogue and the registry's display names, the API
// helper (cookie session + CSRF header), a safe element builder (text only, never HTML from
// data), times in the hospital's zone, guards against leaving unsaved work, sign-out, the
// service worker.
"use strict";
(function () {
  const T = JSON.parse(document.getElementById("i18n").textContent);
  const namesNode = document.getElementById("names");
  const NAMES = namesNode ? JSON.parse(namesNode.textContent) : {};
  const LANG = document.body.dataset.lang || document.documentElement.lang || "tr";
  const LOCALE = LANG === "en" ? "en-GB" : "tr-TR";
  const VIEWER = document.body.dataset.viewer === "1";  // OHIF installed under /viewer

  function cookie(name) {
    const hit = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return hit ? decodeURIComponent(hit.slice(name.length + 1)) : null;
  }

  // set once sign-out begins: a request still in flight (a page's poll, a list loading) that
  // comes back 401 after the session ended must not send the browser to
  // "/login?next=<this page>" over sign-out's own "/login" (CI saw the admin page race it)
  let signingOut = false;

  async function api(path, options = {}) {
    const opts = { credentials: "same-origin", ...options, headers: { ...(options.headers || {}) } };
    const method = (opts.method || "GET").toUpperCase();
    if (method !== "GET" && method !== "HEAD") {
      const csrf = cookie("medai_csrf");
      if (csrf) opts.headers["X-CSRF-Token"] = csrf;
    }
    if (opts.json !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(opts.json);
      delete opts.json;
    }
    const r = await fetch(path, opts);
    let data = null;
    const type = r.headers.get("content-type") || "";
    if (type.includes("json")) data = await r.json();
    if (r.status === 401 && !signingOut && document.body.dataset.page !== "login" && document.body.dataset.role) {
      window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
    }
    return { ok: r.ok, status: r.status, data, headers: r.headers };
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  // --- names: catalogue keys for platform words, the registry for tasks and labels
  function named(prefix, value) { return value ? T[prefix + value] || value : ""; }
  const statusLabel = (s) => named("status_", s);
  const roleName = (r) => named("role_", r);
  const actionName = (a) => named("audit_", a);
  const outcomeName = (o) => named("outcome_", o);
  function taskName(task) { return (NAMES[task] && NAMES[task].name) || task || ""; }
  // a DICOM person name (Family^Given^Middle^Prefix^Suffix) as PACS viewers print it
  function personName(pn) {
    if (!pn) return "";
    const [family, given, middle, prefix, suffix] = pn.split("=")[0].split("^").map((p) => (p || "").trim());
    const rest = [prefix, given, middle, suffix].filter(Boolean).join(" ");
    return [family, rest].filter(Boolean).join(", ");
  }
  function labelName(task, label) {
    const t = NAMES[task];
    return (t && t.labels && t.labels[label]) || label;
  }
  // a label's state (present, absent, indeterminate) as every page prints it beside the
  // label's name (report_words.state_word): a label whose name is itself a negative (the task's
  // normal class, "Tümör yok", "Bulgu yok") reads "geçerli" / "geçerli değil", never a
  // double negative ("Tümör yok — yok", "Bulgu yok — var")
  function isNegativeLabel(task, label) { return Boolean(label) && (NAMES[task] || {}).normal === label; }
  function stateWord(task, label, state) {
    if (!state) return T.state_not_read;
    if (isNegativeLabel(task, label) && (state === "present" || state === "absent")) return T["state_normal_" + state];
    return T["state_" + state] || state;
  }
  // a model's version as people read it: the version and a short content hash, so two
  // different models never read alike (the registry sends it as display_version)
  function modelVersion(m) {
    if (!m) return "—";
    if (m.display_version) return m.display_version;
    const short = String(m.content_hash || "").split(":").pop().slice(0, 12);
    return short ? `${m.version || "—"} · ${short}` : (m.version || "—");
  }
  // "{a} and {b}" with params; a missing one reads as a dash, never as "{b}"
  function fill(template, params) {
    return String(template).replace(/\{(\w+)\}/g, (_, k) => (params && params[k] != null && params[k] !== "" ? String(params[k]) : "—"));
  }

  // a probability as the reader's language writes a percentage ("%98,4" in Turkish), by the
  // PDF's rule (core.percent): one decimal, and never 100 % nor 0 % — a value that would round
  // to either reads ">%99,9" / "<%0,1" (">99.9%" / "<0.1%")
  const percent = new Intl.NumberFormat(LOCALE, { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const HUNDRED = percent.format(1), ZERO = percent.format(0), NEG_ZERO = percent.format(-0.0001);
  function pct(p) {
    if (p === null || p === undefined || p === "" || Number.isNaN(Number(p))) return "—";
    const v = Number(p), text = percent.format(v);
    if (v >= 1 || text === HUNDRED) return ">" + percent.format(0.999);
    if (v <= 0 || text === ZERO || text === NEG_ZERO) return "<" + percent.format(0.001);
    return text;
  }

  // --- times: ISO UTC instants from the API, shown in the hospital's zone (MEDAI_TIMEZONE)
  const ZONE = document.body.dataset.tz || "Europe/Istanbul";
  let timeFormat;
  try {
    timeFormat = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeStyle: "short", timeZone: ZONE });
  } catch (e) {  // an unknown zone: the browser's own, rather than no time at all
    timeFormat = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeStyle: "short" });
  }
  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : timeFormat.format(d);
  }

  function showError(node, message) {
    node.textContent = message;
    node.hidden = !message;
  }

  // --- unsaved work: a page registers a guard (true while it has unsaved changes); leaving
  // by a link, sign-out or closing the tab asks first
  const guards = [];
  let leaving = false;
  function guardLeave(isDirty) { guards.push(isDirty); }
  function hasUnsaved() { return guards.some((g) => g()); }
  function mayLeave() {
    if (!hasUnsaved()) return true;
    const ok = window.confirm(T.unsaved_leave);
    leaving = ok;
    return ok;
  }
  window.addEventListener("beforeunload", (e) => {
    if (leaving || !hasUnsaved()) return;
    e.preventDefault();
    e.returnValue = "";  // older browsers show the prompt only with this set
  });
  document.addEventListener("click", (e) => {
    const a = e.target.closest && e.target.closest("a[href]");
    // a link into another window (the viewer's, a new tab) leaves nothing: only one that
    // replaces this page asks first
    if (!a || a.hasAttribute("download") || (a.target && a.target !== "_self") || e.defaultPrevented) return;
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const href = a.getAttribute("href");
    if (!href || href.startsWith("#")) return;
    if (!mayLeave()) e.preventDefault();
  });

  const signout = document.getElementById("signout");
  if (signout) {
    signout.addEventListener("click", async () => {
      if (!mayLeave()) return;
      signingOut = true;
      await api("/api/v1/auth/logout", { method: "POST" });
      window.location.assign("/login");
    });
  }
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js").catch(() => {});
  }
  // Submit buttons arrive disabled (data-until-ready): clicked before the page's own script
  // has wired its form, the browser would submit the form itself (a reload that loses what
  // was typed). Deferred scripts have all run when DOMContentLoaded fires, so every form's
  // handler is in place by then.
  document.addEventListener("DOMContentLoaded", () => {
    for (const button of document.querySelectorAll("[data-until-ready]")) {
      button.removeAttribute("data-until-ready");
      button.disabled = false;
    }
  });
  // What one of the page's scripts tells the others (the study page: each load of the study,
  // of its report). A script that starts listening after something was told is handed the
  // latest at once: deferred scripts run one after another and the page's first fetches can
  // answer in between, so a plain event listener could miss it (the re-analyse control then
  // stayed hidden for good on a settled study).
  const told = new Map();
  function tell(name, detail) {
    told.set(name, detail);
    document.dispatchEvent(new CustomEvent(name, { detail }));
  }
  function hear(name, fn) {
    document.addEventListener(name, (e) => fn(e.detail));
    if (told.has(name)) fn(told.get(name));
  }
  window.medai = {
    T, NAMES, LANG, LOCALE, ZONE, VIEWER, api, el, statusLabel, roleName, actionName, outcomeName,
    taskName, personName, labelName, isNegativeLabel, stateWord, modelVersion, fill, pct, fmtTime, showError, cookie, guardLeave, hasUnsaved, mayLeave,
    tell, hear,
  };
})();
