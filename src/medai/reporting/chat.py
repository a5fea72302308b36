"""Answers to a clinician's question about a study's image, grounded in its AI findings.

With an LLM backend configured the model answers from the findings (and the draft's
impression) given as context and is told to say so when the findings cannot answer; without
one (or when it fails) the answer is the findings themselves with the template explanation.
Either way the answer is an AI suggestion, never a diagnosis.
"""

from __future__ import annotations

from typing import Any

NOTE = {"en": "AI suggestion for a clinician to review; not a diagnosis.",
        "tr": "Yapay zekâ önerisidir, tanı değildir; klinisyen değerlendirmelidir."}
SYSTEM = ("You are a radiology assistant inside a hospital. Answer the clinician's question "
          "about one image using ONLY the AI findings and the draft impression given. Never "
          "state a finding that is not listed as positive. If the findings cannot answer, say "
          "so and suggest asking the radiologist. Answer in {lang_name}, in at most 5 sentences.")
MAX_HISTORY = 6


def _findings_text(findings: list[dict[str, Any]], lang: str) -> str:
    pos = [f for f in findings if f.get("positive")]
    neg = [f for f in findings if not f.get("positive")]
    fmt = "{label} ({p:.0%}, threshold {t:.0%})" if lang == "en" else \
        "{label} (%{p100:.0f}, eşik %{t100:.0f})"

    def one(f):
        p, t = float(f.get("probability") or 0), float(f.get("threshold") or 0)
        return fmt.format(label=f["label"], p=p, t=t, p100=p * 100, t100=t * 100)

    if lang == "tr":
        return (f"Eşiği aşan bulgular: {', '.join(map(one, pos)) or 'yok'}. "
                f"Eşiğin altında kalanlar: {', '.join(f['label'] for f in neg) or 'yok'}.")
    return (f"Findings above their threshold: {', '.join(map(one, pos)) or 'none'}. "
            f"Below threshold: {', '.join(f['label'] for f in neg) or 'none'}.")


def template_answer(findings: list[dict[str, Any]], impression: str | None, lang: str) -> str:
    lead = ("Yapılandırılmış bir dil modeli yok; bu görüntü için yapay zekâ bulguları:"
            if lang == "tr" else "No language model is configured; the AI findings for this "
                                 "image are:")
    parts = [lead, _findings_text(findings, lang)]
    if impression:
        parts.append(("Taslak izlenim: " if lang == "tr" else "Draft impression: ") + impression)
    parts.append(NOTE.get(lang, NOTE["en"]))
    return " ".join(parts)


def answer(backend, question: str, findings: list[dict[str, Any]], impression: str | None,
           lang: str, history: list[tuple[str, str]]) -> tuple[str, str]:
    """(answer text, backend name). ``history``: earlier (role, text) turns, oldest first."""
    if backend is None:
        return template_answer(findings, impression, lang), "template"
    context = _findings_text(findings, "en")
    if impression:
        context += f"\nDraft impression: {impression}"
    turns = "\n".join(f"{role}: {text}" for role, text in history[-MAX_HISTORY:])
    user = f"AI findings:\n{context}\n\nEarlier conversation:\n{turns or '(none)'}\n\n" \
           f"Question: {question}"
    try:
        text = backend.complete(SYSTEM.format(lang_name="Turkish" if lang == "tr" else "English"),
                                user).strip()
    except Exception:  # a failing backend falls back to the findings (said in the answer)
        return template_answer(findings, impression, lang), "template"
    return f"{text}\n\n{NOTE.get(lang, NOTE['en'])}", type(backend).__name__.lower()
