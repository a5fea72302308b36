// The worklist's approvals section (radiologists only): clinical accounts an administrator
// made wait here until a colleague approves them for patient data (the two-person rule).
// Names and roles only (the section shows only to an approved radiologist, so never their own
// account; the server refuses that anyway).
"use strict";
(function () {
  const { T, api, el, roleName, fill, showError } = window.medai;
  const section = document.getElementById("approvals");
  if (!section) return;
  const list = section.querySelector(".approvals");
  const status = document.getElementById("approvals-status");
  const error = document.getElementById("approvals-error");

  async function approve(name, item) {
    showError(error, "");
    const r = await api("/api/v1/users/" + encodeURIComponent(name) + "/approve", { method: "POST" });
    if (!r.ok) {
      const code = r.data && r.data.code;
      showError(error, (code && T["error_" + code]) || (r.data && r.data.detail) || T.error_generic);
      return;
    }
    item.remove();
    status.textContent = fill(T.approvals_done, { name });
    if (!list.children.length) list.hidden = true;
  }

  async function load() {
    const r = await api("/api/v1/users/pending");
    if (!r.ok) return;
    list.replaceChildren(...r.data.map((u) => {
      const label = el("span", { text: u.username + " · " + roleName(u.role) });
      if (!u.enrolled) {
        // approval waits for the holder's own enrolment (the server answers 409 not_enrolled)
        return el("li", { "data-username": u.username, "data-enrolled": "false" }, label,
          el("span", { class: "hint", title: T.approvals_not_enrolled_hint,
            text: T.approvals_not_enrolled }));
      }
      const button = el("button", { type: "button", class: "primary",
        "aria-label": fill(T.approvals_approve_named, { name: u.username }), text: T.approvals_approve });
      const item = el("li", { "data-username": u.username, "data-enrolled": "true" }, label, button);
      button.addEventListener("click", () => approve(u.username, item));
      return item;
    }));
    section.hidden = r.data.length === 0;
  }
  load();
})();
