// The admin page's deliveries section: per destination, how many deliveries are queued,
// retrying (with the next attempt), delivered, failed or skipped and the last problem; the
// waiting and failed deliveries, a failed one with a button that sends it again. The API
// gives ids, destinations and states only (no patient data).
"use strict";
(function () {
  const { T, api, el, fill, showError } = window.medai;
  const when = (iso) => (iso ? (window.medai.fmtTime ? window.medai.fmtTime(iso)
    : new Date(iso).toLocaleString(document.documentElement.lang)) : "");
  const word = (prefix, key) => (key ? T[prefix + key] || key : "");
  const error = document.getElementById("outbox-error");

  function problem(p) {
    if (!p) return "";
    return `#${p.id} ${word("outbox_code_", p.code)}${p.reason ? ": " + p.reason : ""}`;
  }

  function destinationRow(d) {
    const c = d.counts;
    const name = d.configured ? d.name : `${d.name} (${T.outbox_not_configured})`;
    return el("tr", { "data-destination": d.name },
      el("th", { scope: "row" }, el("span", { text: name }), el("br", {}),
        el("span", { class: "hint mono", text: [d.kind, d.where].filter(Boolean).join(" · ") })),
      el("td", { text: String(c.queued + c.sending) +
        (c.held ? ` (${fill(T.outbox_held_count, { n: c.held })})` : "") }),
      el("td", { text: String(c.retrying) }),
      el("td", { text: String(c.delivered) }), el("td", { text: String(c.failed) }),
      el("td", { text: String(c.skipped) }),
      el("td", { text: c.retrying ? when(d.next_attempt_at) : "" }),
      el("td", { text: problem(d.last_problem) }));
  }

  function itemRow(i) {
    let action = el("td", {});
    if (i.state === "failed") {
      const retry = el("button", { type: "button", text: T.outbox_retry,
        "aria-label": `${T.outbox_retry}: #${i.id}` });
      retry.addEventListener("click", async () => {
        const r = await api(`/api/v1/admin/outbox/${i.id}/retry`, { method: "POST" });
        showError(error, r.ok ? "" : (r.data && r.data.detail) || T.error_generic);
        load();
      });
      action = el("td", {}, retry);
    }
    const state = word("outbox_state_", i.state) +
      (i.state === "retrying" && i.next_attempt_at ? ` (${when(i.next_attempt_at)})` : "");
    return el("tr", { "data-delivery": String(i.id) },
      el("td", { text: String(i.id) }), el("td", { text: i.destination }),
      el("td", { text: word("outbox_event_", i.event) +
        (i.report_version ? ` v${i.report_version}` : "") }),
      el("td", { text: String(i.study_id) }), el("td", { text: state }),
      el("td", { text: String(i.attempts) }),
      el("td", { text: i.code ? `${word("outbox_code_", i.code)}${i.reason ? ": " + i.reason : ""}` : "" }),
      action);
  }

  async function load() {
    const [failed, retrying, held] = await Promise.all([
      api("/api/v1/admin/outbox?state=failed&limit=100"),
      api("/api/v1/admin/outbox?state=retrying&limit=100"),
      api("/api/v1/admin/outbox?state=held&limit=100")]);
    if (!failed.ok || !retrying.ok || !held.ok) {
      showError(error, T.error_generic);
      return;
    }
    const dests = failed.data.destinations;
    document.querySelector("#outbox-destinations tbody").replaceChildren(...dests.map(destinationRow));
    document.getElementById("outbox-empty").hidden = dests.length > 0;
    const items = [...retrying.data.items, ...held.data.items, ...failed.data.items]
      .sort((a, b) => b.id - a.id);
    document.querySelector("#outbox-items tbody").replaceChildren(...items.map(itemRow));
    document.getElementById("outbox-items-empty").hidden = items.length > 0;
  }

  document.getElementById("outbox-refresh").addEventListener("click", load);
  load();
})();
