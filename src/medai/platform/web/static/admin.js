"use strict";
(function () {
  const { T, api, el, showError } = window.medai;
  async function users() {
    const r = await api("/api/v1/users");
    if (!r.ok) return;
    document.querySelector("#users tbody").replaceChildren(...r.data.map((u) => {
      const b = el("button", { type: "button", text: u.active ? T.admin_disable : T.admin_enable,
        "aria-label": `${u.active ? T.admin_disable : T.admin_enable}: ${u.username}` });
      b.addEventListener("click", async () => {
        await api(`/api/v1/users/${encodeURIComponent(u.username)}/${u.active ? "disable" : "enable"}`, { method: "POST" });
        users();
      });
      return el("tr", {}, el("td", { text: u.username }), el("td", { text: u.role }),
        el("td", { text: u.active ? T.yes : T.no }), el("td", {}, b));
    }));
  }
  async function models() {
    const r = await api("/api/v1/models");
    if (!r.ok) return;
    document.querySelector("#models tbody").replaceChildren(...Object.entries(r.data).map(([task, m]) => {
      const card = m.card ? el("details", {}, el("summary", { text: T.admin_card }),
        el("pre", { class: "card-json", text: JSON.stringify({ description: m.card.description,
          intended_use: m.card.intended_use, data: m.card.data, metrics: m.card.metrics,
          thresholds: m.card.thresholds, licence_notes: m.card.licence_notes }, null, 2) })) : "";
      return el("tr", {}, el("td", { text: task }),
        el("td", {}, m.model ? m.model.name : (m.error || "—"), card),
        el("td", { text: m.model ? m.model.version : "—" }),
        el("td", { class: "mono", text: m.model ? m.model.content_hash.slice(0, 23) + "…" : "—" }),
        el("td", { text: m.ready ? T.yes : T.no }));
    }));
  }
  async function audit() {
    const q = new URLSearchParams({ limit: "200" });
    const action = document.getElementById("a-action").value, actor = document.getElementById("a-actor").value;
    if (action) q.set("action", action);
    if (actor) q.set("actor", actor);
    const r = await api("/api/v1/audit?" + q);
    if (!r.ok) return;
    document.querySelector("#audit tbody").replaceChildren(...r.data.items.slice().reverse().map((e) =>
      el("tr", {}, el("td", { text: new Date(e.at).toLocaleString(document.documentElement.lang) }),
        el("td", { text: e.actor }), el("td", { text: e.action }),
        el("td", { text: [e.target_type, e.target_id].filter(Boolean).join(" ") }), el("td", { text: e.outcome }))));
  }
  document.getElementById("user-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const r = await api("/api/v1/users", { method: "POST", json: {
      username: document.getElementById("new-username").value,
      password: document.getElementById("new-password").value,
      role: document.getElementById("new-role").value } });
    showError(document.getElementById("user-error"), r.ok ? "" : (r.data && r.data.detail) || T.error_generic);
    if (r.ok) { e.target.reset(); users(); audit(); }
  });
  document.getElementById("audit-filter").addEventListener("submit", (e) => { e.preventDefault(); audit(); });
  users(); models(); audit();
})();
