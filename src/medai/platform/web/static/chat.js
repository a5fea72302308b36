"use strict";
(function () {
  const { T, api, el, LANG } = window.medai;
  const root = document.getElementById("chat");
  const study = root.dataset.studyId;
  const form = document.getElementById("chat-form");
  let current = null;

  function show(messages) {
    document.getElementById("messages").replaceChildren(...messages.map((m) =>
      el("li", { class: "msg msg-" + m.role }, el("strong", { text: m.role === "user" ? T.chat_you : T.chat_ai }),
        el("p", { text: m.text }))));
  }
  async function open(cid) {
    const r = await api(`/api/v1/conversations/${cid}`);
    if (!r.ok) return;
    current = cid;
    show(r.data.messages);
    form.hidden = false;
  }
  async function list() {
    const r = await api("/api/v1/conversations");
    if (!r.ok) return;
    document.getElementById("conversations").replaceChildren(...r.data.items.map((c) => {
      const b = el("button", { type: "button", class: "link", text: `#${c.id} · ${T.study_title} ${c.study_id}` });
      b.addEventListener("click", () => open(c.id));
      return el("li", {}, b);
    }));
    return r.data.items;
  }
  const start = document.getElementById("new-conversation");
  if (start) start.addEventListener("click", async () => {
    const r = await api(`/api/v1/studies/${study}/conversations`, { method: "POST" });
    if (r.ok) { await list(); open(r.data.id); }
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = document.getElementById("chat-text");
    const r = await api(`/api/v1/conversations/${current}/messages`, { method: "POST", json: { text: text.value, lang: LANG } });
    if (r.ok) { text.value = ""; open(current); }
  });
  list().then((items) => {
    const mine = (items || []).find((c) => String(c.study_id) === study);
    if (mine) open(mine.id);
  });
})();
