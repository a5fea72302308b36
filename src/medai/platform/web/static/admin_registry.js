// The admin page's model registry: the registered models of every task with their states,
// and the moves an admin makes — shadow, promote (the site validation, or an override), roll
// back, retire — each asking for the reason the audit log keeps. The served models table
// above is reloaded after a promotion or rollback (this server swaps before answering).
"use strict";
(function () {
  const { T, api, el, fill, showError, taskName, modelVersion, fmtTime } = window.medai;
  const error = document.getElementById("registry-error");
  const message = document.getElementById("registry-message");
  const form = document.getElementById("registry-move");
  const reason = document.getElementById("registry-reason");
  const override = document.getElementById("registry-override");
  let pending = null; // { url, extra, what }

  // the API's refusal in the page's language; the technical detail (which labels, which
  // path) follows where the admin needs it
  function refusal(r) {
    const code = r.data && r.data.code;
    const detail = (r.data && r.data.detail) || "";
    const known = code && T["registry_err_" + code];
    if (!known) return detail || T.error_generic;
    // the detail names the model, version, hash, labels or path the admin needs
    return ["model_refused", "path_not_allowed", "not_non_inferior", "already_registered",
      "version_taken", "validation_inconclusive", "no_rollback_target", "empty_site_set"].includes(code)
      ? `${known} (${detail})` : known;
  }

  // "#3 cxr-site 2026-11 · 1a2b3c4d5e6f": a model as people tell it apart
  const modelName = (m) => `#${m.id} ${m.name} ${modelVersion(m)}`;

  // the latest validation's outcome, in the page's language (inconclusive: why, with n)
  function validationNote(v) {
    const outcome = v.outcome || (v.passed ? "passed" : "not_non_inferior");
    const why = v.inconclusive || {};
    const text = outcome === "inconclusive"
      ? fill(T["validation_inconclusive_" + why.reason] || T.validation_inconclusive_too_few_studies,
        { studies: why.studies, minimum: why.minimum })
      : outcome === "passed" ? T.registry_validated : T.registry_not_validated;
    return el("span", { class: "basis", "data-outcome": outcome, title: v.summary || "",
      text: `${outcome === "inconclusive" ? T.registry_inconclusive + ": " : ""}${text} (v${v.site_set})` });
  }

  function say(text) {
    message.textContent = text;
    message.hidden = !text;
  }

  function ask(what, url, extra, canOverride) {
    pending = { url, extra, what };
    document.getElementById("registry-move-title").textContent = what;
    document.getElementById("registry-override-row").hidden = !canOverride;
    override.checked = false;
    reason.value = "";
    form.hidden = false;
    showError(error, "");
    reason.focus();
  }

  function moveButton(label, what, url, extra, canOverride) {
    const b = el("button", { type: "button", text: label, "aria-label": what });
    b.addEventListener("click", () => ask(what, url, extra, canOverride));
    return b;
  }

  function actions(m) {
    const name = modelName(m);
    const out = [];
    if (m.served === false) { // a record of versions (the red-flag engine): no move applies
      return el("span", { class: "basis", text: T.registry_record_only,
        title: T.registry_err_not_served });
    }
    if (m.state === "candidate" || m.state === "retired") {
      out.push(moveButton(T.registry_shadow, `${T.registry_shadow}: ${name}`,
        `/api/v1/models/registry/${m.id}/shadow`, {}, false));
    }
    if (m.state !== "active") {
      out.push(moveButton(T.registry_promote, `${T.registry_promote}: ${name}`,
        `/api/v1/models/registry/${m.id}/promote`, {}, true));
    }
    if ((m.state === "candidate" || m.state === "shadow") && window.medai.startJob) {
      const v = el("button", { type: "button", text: T.registry_validate,
        "aria-label": `${T.registry_validate}: ${name}` });
      v.addEventListener("click", () => window.medai.startJob({ kind: "validate", model_id: m.id }));
      out.push(v);
    }
    if (m.state === "candidate" || m.state === "shadow") {
      out.push(moveButton(T.registry_retire, `${T.registry_retire}: ${name}`,
        `/api/v1/models/registry/${m.id}/retire`, {}, false));
    }
    if (m.state === "active" && m.rollback_to) {  // the server's target: never one rolled back from
      const to = m.rollback_to;
      const what = fill(T.registry_rollback_to, { task: taskName(m.task), from: name, to: modelName(to) });
      out.push(moveButton(T.registry_rollback, what, "/api/v1/models/rollback",
        { task: m.task, to: to.id }, false));
    }
    return el("span", { class: "actions" }, ...out);
  }

  function row(m) {
    const state = T["registry_state_" + m.state] || m.state;
    return el("tr", { "data-model": String(m.id), "data-state": m.state },
      el("td", { text: String(m.id) }), el("td", { text: taskName(m.task) }),
      el("td", { text: m.name }), el("td", { class: "model-version", text: modelVersion(m), title: m.content_hash }),
      el("td", { class: "mono", text: m.content_hash.slice(0, 19) + "…", title: m.content_hash }),
      el("td", {}, el("span", { class: "badge state-" + m.state, text: state }),
        m.validation ? validationNote(m.validation) : ""),
      el("td", { text: `${m.registered_by} · ${fmtTime(m.registered_at)}` }),
      el("td", {}, actions(m)));
  }

  async function load() {
    const r = await api("/api/v1/models/registry");
    if (!r.ok) {
      showError(error, (r.data && r.data.detail) || T.error_generic);
      return;
    }
    document.querySelector("#registry tbody").replaceChildren(...r.data.items.map(row));
    document.getElementById("registry-empty").hidden = r.data.items.length > 0;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!pending) return;
    const body = { ...pending.extra, reason: reason.value };
    if (!document.getElementById("registry-override-row").hidden) body.override = override.checked;
    const r = await api(pending.url, { method: "POST", json: body });
    if (!r.ok) {
      say("");
      showError(error, refusal(r));
      return;
    }
    showError(error, "");
    say(fill(T.registry_done, { what: pending.what }));
    form.hidden = true;
    pending = null;
    load();
    document.dispatchEvent(new CustomEvent("medai:models-changed"));
  });
  document.getElementById("registry-cancel").addEventListener("click", () => {
    form.hidden = true;
    pending = null;
    showError(error, "");
  });
  document.getElementById("registry-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const task = document.getElementById("registry-task").value;
    const r = await api("/api/v1/models/registry", { method: "POST",
      json: { path: document.getElementById("registry-path").value, task: task || null } });
    if (!r.ok) {
      say("");
      showError(error, refusal(r));
      return;
    }
    showError(error, "");
    say(fill(r.data.new ? T.registry_registered_new : T.registry_registered_again,
      { id: r.data.id, name: r.data.name, version: modelVersion(r.data),
        state: T["registry_state_" + r.data.state] || r.data.state }));
    load();
  });
  document.addEventListener("medai:registry-changed", load);  // a retraining or validation ended
  load();
})();
