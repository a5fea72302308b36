"use strict";
(function () {
  const { T, api, showError } = window.medai;
  const HOME = { admin: "/admin", radiologist: "/worklist", clinician: "/worklist", patient: "/triage" };
  // "next" is followed only to a path of this site: "/\\evil.example" and "//evil" are
  // other hosts to a browser, and a control character can hide one
  function sameOriginPath(raw) {
    if (!raw || raw[0] !== "/" || /[\\\u0000-\u001f\u007f]/.test(raw)) return null;
    let url;
    try { url = new URL(raw, window.location.origin); } catch (e) { return null; }
    return url.origin === window.location.origin ? url.pathname + url.search + url.hash : null;
  }
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(error, "");
    const r = await api("/api/v1/auth/login", { method: "POST", json: {
      username: form.username.value, password: form.password.value } });
    if (r.ok) {
      const next = sameOriginPath(new URLSearchParams(window.location.search).get("next"));
      window.location.assign(next || HOME[r.data.role]);
    } else {
      showError(error, r.status === 429 ? T.login_throttled : T.login_failed);
    }
  });
})();
