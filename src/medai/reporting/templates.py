"""The template drafter: report sections written from the findings alone, in English or Turkish,
citing the retrieved passages. Used when no LLM is configured or an LLM draft is refused."""

from __future__ import annotations

import re

from medai.imaging.labels import space
from medai.reporting.draft_input import DraftContext, Finding
from medai.reporting.phrases import NORMAL, phrase
from medai.reporting.safety import _implied

NORMAL_SENTENCES = {
    "cxr": ("The heart size and mediastinal contours are within normal limits. The lungs are "
            "clear.", "Kalp boyutu ve mediasten konturları normal sınırlardadır. Akciğerler "
                      "temizdir."),
    "mri": ("No tumour is suggested on this slice.", "Bu kesitte tümör düşündüren bulgu yoktur."),
}
NORMAL_IMPRESSIONS = {
    "cxr": ("No acute cardiopulmonary abnormality (AI suggestion).",
            "Akut kardiyopulmoner patoloji saptanmadı (YZ önerisi)."),
    "mri": ("No tumour suggested (AI suggestion).", "Tümör düşündüren bulgu yok (YZ önerisi)."),
}




def _prob(f: Finding, lang: str) -> str:
    if f.probability is None:
        return ""
    p = f"{f.probability:.2f}"
    t = f"{f.threshold:.2f}" if f.threshold is not None else None
    if lang == "tr":
        p = p.replace(".", ",")
        return f" (YZ olasılığı {p}" + (f"; eşik {t.replace('.', ',')})" if t else ")")
    return f" (AI probability {p}" + (f"; threshold {t})" if t else ")")


def _technique(ctx: DraftContext) -> str:
    modality = space(ctx.task).modality
    tr = ctx.lang == "tr"
    if ctx.image:
        size = f"{ctx.image.get('width')}×{ctx.image.get('height')}"
        fmt = str(ctx.image.get("format", "")).upper()
        kind = ("Akciğer grafisi" if ctx.task == "cxr" else "Beyin MR kesiti") if tr else \
            modality[0].upper() + modality[1:]
        base = f"{kind}, {fmt} görüntü, {size} piksel" if tr else f"{kind}, {fmt} image, {size} px"
    else:
        base = ("Görüntü taslak oluşturucuya verilmedi; bulgular girdi olarak sağlandı" if tr
                else "Image not supplied to the drafter; findings were given as input")
    if ctx.model:
        base += f"; {'YZ modeli' if tr else 'AI model'} {ctx.model}"
    return base + "."


def template_sections(ctx: DraftContext, cite: dict[str, int]) -> dict[str, str]:
    """The deterministic draft: only input findings, each positive one with its numbers."""
    tr = ctx.lang == "tr"
    lines = []
    for f in sorted(ctx.positives, key=lambda f: -(f.probability or 1.0)):
        name = phrase(f.label, ctx.lang)
        lines.append(f"{name[0].upper()}{name[1:]} izlenmektedir{_prob(f, 'tr')}." if tr
                     else f"{name[0].upper()}{name[1:]}{_prob(f, 'en')}.")
    # a negative that a positive finding implies (pneumonia below threshold, COVID-19 above)
    # is left unsaid rather than contradicting the positive
    implied = _implied({f.label for f in ctx.positives})
    negatives = [f for f in ctx.negatives if f.label not in implied]
    if negatives:
        names = [phrase(f.label, ctx.lang) for f in negatives]
        if tr:
            lines.append("Şu bulgular saptanmadı: " + ", ".join(names) + ".")
        else:  # short lists, as reports write them ("No pneumothorax or pleural effusion.")
            lines += [f"No {_join(names[i:i + 3])}." for i in range(0, len(names), 3)]
    normal_given = any(f.positive and f.label in NORMAL for f in ctx.findings)
    if not ctx.positives and normal_given:
        lines.insert(0, NORMAL_SENTENCES[ctx.task][1 if tr else 0])
    if not lines:
        lines.append("Değerlendirilen bulgularda anormallik saptanmadı." if tr
                     else "No abnormality among the assessed findings.")
    if ctx.positives:
        names = _join([phrase(f.label, ctx.lang) for f in ctx.positives], "ve" if tr else "and")
        impression = (f"{names[0].upper()}{names[1:]} ile uyumlu görünüm (YZ önerisi)." if tr
                      else f"Appearance consistent with {names} (AI suggestion).")
    elif normal_given:
        impression = NORMAL_IMPRESSIONS[ctx.task][1 if tr else 0]
    else:
        normal = "No Finding" if ctx.task == "cxr" else "No_Tumor"
        impression = ("Modelin değerlendirdiği bulgular açısından akut patoloji saptanmadı." if tr
                      else "No acute abnormality among the findings the model assessed."
                      ) if normal not in {f.label for f in ctx.findings if not f.positive} else (
            "Belirgin bulgu yok; klinik korelasyon önerilir." if tr
            else "No definite finding; clinical correlation is recommended.")
    recs = []
    for hit in ctx.hits:
        sentence = _recommendation(hit.chunk.text, ctx.lang)
        if sentence and hit.chunk.id in cite:
            recs.append(f"{sentence} [{cite[hit.chunk.id]}]")
    if not recs:
        recs.append("Klinik korelasyon önerilir." if tr else "Clinical correlation is recommended.")
    return {"technique": _technique(ctx), "findings": " ".join(lines),
            "impression": impression, "recommendation": " ".join(recs)}


def _join(items: list[str], conj: str = "or") -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {conj} {items[-1]}"


def _recommendation(text: str, lang: str) -> str | None:
    sentences = re.split(r"(?<=[.!?])\s+", text)
    key = "önerilir" if lang == "tr" else "recommend"
    for s in sentences:
        if key in s.lower():
            return s.strip()
    return None


