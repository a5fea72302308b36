"use strict";
(function () {
  const { T, api, showError } = window.medai;
  const HOME = { admin: "/admin", radiologist: "/worklist", clinician: "/worklist", patient: "/triage" };
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(error, "");
    const r = await api("/api/v1/auth/login", { method: "POST", json: {
      username: form.username.value, password: form.password.value } });
    if (r.ok) {
      const next = new URLSearchParams(window.location.search).get("next");
      window.location.assign(next && next.startsWith("/") && !next.startsWith("//") ? next : HOME[r.data.role]);
    } else {
      showError(error, r.status === 429 ? T.login_throttled : T.login_failed);
    }
  });
})();
