// The signed-in user's own account: the full name and title signed reports name them by
// (PATCH /api/v1/users/{name}/profile; a user may change only their own). The preview shows
// the name as the PDF, FHIR, DICOM SR and HL7 will print it.
"use strict";
(function () {
  const { T, api, showError } = window.medai;
  const form = document.getElementById("account-form");
  const username = document.getElementById("account").dataset.username;
  const title = document.getElementById("account-title"), name = document.getElementById("account-full-name");
  const preview = document.getElementById("account-signs-as");
  const error = document.getElementById("account-error"), done = document.getElementById("account-done");
  const clean = (v) => v.split(/\s+/).filter(Boolean).join(" ");
  function showPreview() {
    const n = clean(name.value), t = clean(title.value);
    preview.textContent = n ? (t ? t + " " + n : n) : username;
  }
  for (const input of [title, name]) input.addEventListener("input", () => { done.hidden = true; showPreview(); });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(error, "");
    done.hidden = true;
    const r = await api(`/api/v1/users/${encodeURIComponent(username)}/profile`, {
      method: "PATCH", json: { full_name: name.value, title: title.value } });
    if (!r.ok) {
      const code = r.data && r.data.code;
      showError(error, code === "not_own_account" ? T.account_not_own : r.status === 422 ? T.account_invalid : (r.data && r.data.detail) || T.error_generic);
      (r.status === 422 && title.value.length > 24 ? title : name).focus();
      return;
    }
    name.value = r.data.full_name || "";
    title.value = r.data.title || "";
    preview.textContent = r.data.signs_as;
    done.hidden = false;
  });
})();
