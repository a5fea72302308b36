// A new (or reset) user chooses their own password with the one-time code an administrator
// gave them. The server checks the password (common, breached, built from the user name, too
// guessable) and says why it refused; the reason is shown in the page's language.
"use strict";
(function () {
  const { T, api, showError } = window.medai;
  const form = document.getElementById("enrol-form");
  const error = document.getElementById("enrol-error");
  const pw = document.getElementById("enrol-password"), again = document.getElementById("enrol-again");
  document.getElementById("enrol-show").addEventListener("change", (e) => {
    pw.type = again.type = e.target.checked ? "text" : "password";
  });
  function reason(r) {
    if (r.status === 429) return T.login_throttled;
    const code = r.data && r.data.code;
    if (code === "enrol_code_invalid") return T.enrol_failed;
    if (code === "weak_password") {
      const why = r.data.errors && r.data.errors[0] && r.data.errors[0].type;
      return T["password_reason_" + why] || T.password_reason_guessable;
    }
    return (r.data && r.data.detail) || T.error_generic;
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(error, "");
    const code = document.getElementById("enrol-code");
    if (!code.value.trim()) { showError(error, T.enrol_failed); code.focus(); return; }
    if (pw.value !== again.value) { showError(error, T.enrol_mismatch); again.focus(); return; }
    const r = await api("/api/v1/auth/enrol", { method: "POST", json: { code: code.value, password: pw.value } });
    if (!r.ok) {
      showError(error, reason(r));
      (r.data && r.data.code === "weak_password" ? pw : code).focus();
      return;
    }
    pw.value = again.value = code.value = "";
    form.hidden = true;
    document.getElementById("enrol-done-text").textContent = T.enrol_done.replace("{username}", r.data.username);
    document.getElementById("enrol-done").hidden = false;
  });
})();
