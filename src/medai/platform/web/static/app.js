// Shared by every page: the translation catalogue, the API helper (cookie session + CSRF
// header), a safe element builder (text only, never HTML from data), sign-out, the service worker.
"use strict";
(function () {
  const T = JSON.parse(document.getElementById("i18n").textContent);

  function cookie(name) {
    const hit = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return hit ? decodeURIComponent(hit.slice(name.length + 1)) : null;
  }

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
    if (r.status === 401 && document.body.dataset.page !== "login" && document.body.dataset.role) {
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

  function statusLabel(s) { return T["status_" + s] || s; }

  function pct(p) { return (100 * p).toFixed(1) + "%"; }

  function showError(node, message) {
    node.textContent = message;
    node.hidden = !message;
  }

  const signout = document.getElementById("signout");
  if (signout) {
    signout.addEventListener("click", async () => {
      await api("/api/v1/auth/logout", { method: "POST" });
      window.location.assign("/login");
    });
  }
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js").catch(() => {});
  }
  window.medai = { T, api, el, statusLabel, pct, showError, cookie };
})();
