// A kiosk browser's one-time enrolment: the code the admin was shown becomes an HttpOnly
// cookie set by the server (the page never sees the credential), then the kiosk screen opens.
"use strict";
(function () {
  const { T, api, showError } = window.medai;
  const form = document.getElementById("enrol-form");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const code = document.getElementById("enrol-code");
    const r = await api("/api/v1/kiosk/enrol", { method: "POST", json: { code: code.value } });
    code.value = "";
    if (r.ok) {
      window.location.replace("/kiosk");
      return;
    }
    showError(document.getElementById("enrol-error"), r.status === 429 ? T.login_throttled : T.kiosk_enrol_failed);
  });
})();
