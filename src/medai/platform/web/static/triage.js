// The triage screen: send the complaint, show the one rendering of its result
// (triage_view.js). On a shared screen (a registered kiosk, or anyone not signed in) each
// patient starts clean: after a result, the screen clears itself after data-idle-s seconds
// without a touch, at once with "New patient", and when the page is left; the text box, the
// banner and the result leave the DOM, nothing is written to browser storage, and a screen
// left in English goes back to Turkish for the next patient.
"use strict";
(function () {
  const { T, api, showError } = window.medai;
  const view = window.medai.triageView;
  const screen = document.getElementById("triage-screen");
  const form = document.getElementById("triage-form");
  const text = document.getElementById("complaint");
  const result = document.getElementById("triage-result");
  const error = document.getElementById("triage-error");
  const again = document.getElementById("new-patient");
  const submit = form.querySelector("button[type=submit]");
  const shared = screen.dataset.mode !== "user";
  const idleMs = Math.max(10, Number(screen.dataset.idleS) || 75) * 1000;
  let timer = null;

  function dirty() {
    return text.value !== "" || !result.hidden || !error.hidden;
  }

  function arm() {
    if (!shared) return;
    clearTimeout(timer);
    timer = dirty() ? setTimeout(() => clear("idle"), idleMs) : null;
  }

  // why: "hand" (New patient), "idle" (nobody touched it), "leave" (the page is going away:
  // no navigation of our own then)
  function clear(why) {
    clearTimeout(timer);
    timer = null;
    form.reset();
    text.value = "";
    result.replaceChildren();
    result.hidden = true;
    showError(error, "");
    again.hidden = true;
    window.scrollTo(0, 0);
    if (shared && why !== "leave" && document.body.dataset.lang !== "tr") {  // next one: Turkish
      window.location.replace(window.location.pathname + "?lang=tr");
      return;
    }
    if (why === "hand") text.focus();
  }

  function failure(r) {
    const code = r.data && r.data.code;
    if (code === "kiosk_quota_exhausted") return T.kiosk_quota_exhausted;
    if (code === "kiosk_revoked" || code === "kiosk_unknown") return T.kiosk_not_enrolled;
    if (r.status === 429) return T.triage_quota;
    return (r.data && r.data.detail) || T.triage_error;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(error, "");
    submit.disabled = true;
    let r;
    try {
      r = await api("/api/v1/triage", { method: "POST", json: { text: text.value } });
    } catch (err) {
      r = { ok: false, status: 0, data: null };
    } finally {
      submit.disabled = false;
    }
    if (!r.ok) {
      showError(error, failure(r));
      again.hidden = !shared;
      arm();
      return;
    }
    result.replaceChildren(view.render(r.data, { live: true }));
    result.hidden = false;
    again.hidden = false;
    const lead = result.querySelector(".urgent-banner, h2");
    window.scrollTo(0, 0);  // the result is the first thing on the page
    if (lead) lead.focus({ preventScroll: true });
    arm();
  });

  again.addEventListener("click", () => clear("hand"));
  for (const ev of ["pointerdown", "keydown", "input", "touchstart", "wheel"]) {
    document.addEventListener(ev, arm, { passive: true });
  }
  if (shared) {  // leaving the page (or the kiosk browser hiding it) ends the patient's visit
    window.addEventListener("pagehide", () => clear("leave"));
    window.addEventListener("pageshow", (e) => { if (e.persisted) clear("leave"); });
  }
})();
