// The admin page's kiosk section: register a kiosk (its enrolment code and API token are
// shown once, then leave the page), see each kiosk's quota and today's use, change the
// quota, issue a new enrolment code, revoke.
"use strict";
(function () {
  const { T, api, el, showError } = window.medai;
  const when = (iso) => (window.medai.fmtTime ? window.medai.fmtTime(iso)
    : new Date(iso).toLocaleString(document.documentElement.lang));
  const fillIn = (s, p) => String(s).replace(/\{(\w+)\}/g, (_, k) => (p[k] == null ? "" : String(p[k])));
  const secret = document.getElementById("kiosk-secret");
  const error = document.getElementById("kiosk-error");

  function state(k) {
    if (k.revoked) return T.kiosk_state_revoked;
    if (k.enrolled) return T.kiosk_state_enrolled;
    return k.enrol_code_expires_at ? T.kiosk_state_waiting : T.kiosk_state_not_enrolled;
  }

  function showOnce(name, code, until, token) {
    const close = el("button", { type: "button", text: T.kiosk_secret_done });
    close.addEventListener("click", () => { secret.replaceChildren(); secret.hidden = true; });
    const grouped = code.slice(0, 5) + "-" + code.slice(5);
    const parts = [el("h3", { text: fillIn(T.kiosk_secret_title, { name }) }),
      el("p", { text: fillIn(T.kiosk_secret_code, { path: "/kiosk", until: when(until) }) }),
      el("p", { class: "code", text: grouped })];
    if (token) {
      parts.push(el("label", { for: "kiosk-token", text: T.kiosk_secret_token }),
        el("input", { id: "kiosk-token", readonly: true, value: token, class: "mono" }));
    }
    secret.replaceChildren(...parts, el("div", { class: "buttons" }, close));
    secret.hidden = false;
    secret.scrollIntoView({ block: "nearest" });
  }

  function quotaCell(k) {
    if (k.revoked) return el("td", { text: String(k.daily_quota) });
    const id = "kq-" + k.id;
    const input = el("input", { id, type: "number", min: "0", max: "1000000", step: "1", value: String(k.daily_quota), inputmode: "numeric" });
    const save = el("button", { type: "button", text: T.kiosk_save_quota, "aria-label": `${T.kiosk_save_quota}: ${k.name}` });
    save.addEventListener("click", async () => {
      const r = await api(`/api/v1/admin/kiosks/${k.id}`, { method: "PATCH", json: { daily_quota: Number(input.value) } });
      showError(error, r.ok ? "" : (r.data && r.data.detail) || T.error_generic);
      load();
    });
    return el("td", {}, el("span", { class: "quota-edit" },
      el("label", { for: id, class: "sr-only", text: `${T.kiosk_quota}: ${k.name}` }), input, save));
  }

  function actions(k) {
    if (k.revoked) return el("td", { text: k.revoked_at ? when(k.revoked_at) : "" });
    const code = el("button", { type: "button", text: T.kiosk_new_code, "aria-label": `${T.kiosk_new_code}: ${k.name}` });
    code.addEventListener("click", async () => {
      const r = await api(`/api/v1/admin/kiosks/${k.id}/enrolment`, { method: "POST" });
      if (r.ok) showOnce(k.name, r.data.enrol_code, r.data.enrol_code_expires_at, null);
      load();
    });
    const revoke = el("button", { type: "button", text: T.kiosk_revoke, "aria-label": `${T.kiosk_revoke}: ${k.name}` });
    revoke.addEventListener("click", async () => {
      if (!window.confirm(fillIn(T.kiosk_revoke_confirm, { name: k.name }))) return;
      await api(`/api/v1/admin/kiosks/${k.id}/revoke`, { method: "POST" });
      load();
    });
    return el("td", {}, el("span", { class: "actions" }, code, revoke));
  }

  async function load() {
    const r = await api("/api/v1/admin/kiosks");
    if (!r.ok) return;
    document.querySelector("#kiosks tbody").replaceChildren(...r.data.map((k) =>
      el("tr", { "data-kiosk": k.name, class: k.revoked ? "is-revoked" : null },
        el("td", { text: k.name }), el("td", { text: String(k.used_today) }),
        quotaCell(k), el("td", { text: state(k) }), actions(k))));
    document.getElementById("kiosks-empty").hidden = r.data.length > 0;
  }

  document.getElementById("kiosk-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const quota = document.getElementById("kiosk-quota").value;
    const body = { name: document.getElementById("kiosk-name").value };
    if (quota !== "") body.daily_quota = Number(quota);
    const r = await api("/api/v1/admin/kiosks", { method: "POST", json: body });
    showError(error, r.ok ? "" : (r.data && r.data.detail) || T.error_generic);
    if (!r.ok) return;
    e.target.reset();
    showOnce(r.data.name, r.data.enrol_code, r.data.enrol_code_expires_at, r.data.token);
    load();
  });
  load();
})();
