// Image chat: the study's image beside the conversation. Opening chat from a study starts no
// conversation: the first question creates it (a conversation opened and left unused is never
// stored, and the list shows only conversations with a message).
"use strict";
(function () {
  const { T, api, el, fill, LANG } = window.medai;
  const root = document.getElementById("chat");
  const study = root.dataset.studyId;
  const form = document.getElementById("chat-form");
  const $ = (k) => document.getElementById(k);
  let current = null;       // the open conversation's id (null: a new one, not stored yet)
  let currentStudy = study || null;

  function showImage(sid) {
    currentStudy = sid ? String(sid) : null;
    $("chat-figure").hidden = !currentStudy;
    if (!currentStudy) return;
    const img = $("chat-image"), src = `/api/v1/studies/${currentStudy}/image`;
    if (img.getAttribute("src") !== src) img.src = src;
    img.alt = fill(T.chat_image, { id: currentStudy });
    $("chat-study-link").href = `/studies/${currentStudy}`;
  }
  function show(messages) {
    $("messages").replaceChildren(...messages.map((m) =>
      el("li", { class: "msg msg-" + m.role }, el("strong", { text: m.role === "user" ? T.chat_you : T.chat_ai }),
        el("p", { text: m.text }))));
  }
  async function open(cid) {
    const r = await api(`/api/v1/conversations/${cid}`);
    if (!r.ok) return;
    current = cid;
    showImage(r.data.study_id);
    show(r.data.messages);
    $("chat-starts").hidden = true;
    form.hidden = false;
  }
  // a new conversation about the study: nothing is stored until the first question
  function draft() {
    current = null;
    showImage(study);
    show([]);
    $("chat-starts").hidden = false;
    form.hidden = false;
  }
  async function list() {
    const r = await api("/api/v1/conversations");
    if (!r.ok) return;
    $("conversations").replaceChildren(...r.data.items.map((c) => {
      const b = el("button", { type: "button", class: "link", text: `#${c.id} · ${T.study_title} ${c.study_id}` });
      b.addEventListener("click", () => open(c.id));
      return el("li", {}, b);
    }));
    $("conversations-none").hidden = r.data.items.length > 0;
    return r.data.items;
  }
  const start = $("new-conversation");
  if (start) start.addEventListener("click", draft);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("chat-text");
    if (!text.value.trim()) return;
    if (current === null) {  // the first question: now the conversation exists
      const c = await api(`/api/v1/studies/${study}/conversations`, { method: "POST" });
      if (!c.ok) return;
      current = c.data.id;
    }
    const r = await api(`/api/v1/conversations/${current}/messages`, { method: "POST", json: { text: text.value, lang: LANG } });
    if (r.ok) { text.value = ""; await open(current); list(); }
  });
  list().then((items) => {
    const mine = (items || []).find((c) => String(c.study_id) === study);
    if (mine) open(mine.id);
    else if (study) draft();
  });
})();
