"""Report templates and macros (issue 69 §2): what a radiologist writes from, in one place.

A **template** is the report a site writes for one task and one result (a normal chest film,
each pneumonia pattern, a brain MRI without a tumour, each tumour type), per language: its
sections hold the site's own text and placeholders — ``{technique}``, ``{findings}``,
``{measurements}``, ``{impression}``, ``{recommendation}`` — where the AI's draft puts its
sentences (``render``). A slot, ``[…]``, is a value the radiologist fills in (a tumour's size);
the sign dialog warns while one is left. The AI's draft starts from the template of its result
(``platform.reading.report_templates`` keeps the site's versions; these are the built-in
version 0).

A **macro** is text a radiologist types by name in any section: ``.normal`` and a space (or
Tab) becomes the macro's text. A macro may belong to one task (a chest film's ``.normal`` is
not a brain MRI's) or to every task.

Nothing here states a finding the model did not assess: a built-in template is the AI's text
in the site's structure, with slots for what only the radiologist measures; a site's own
template text, and a macro a radiologist types, are the site's and the radiologist's words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SECTIONS = ("technique", "findings", "measurements", "impression", "recommendation")
KINDS = ("template", "macro")
LANGS = ("tr", "en")
SLOT = "[…]"
NORMAL = "normal"  # a template's result: the AI found none of its findings (either task)
MACRO_NAME = re.compile(r"^\.[a-zçğıöşü0-9][a-zçğıöşü0-9_-]{0,31}$")
RESULT_NAME = re.compile(r"^[A-Za-z0-9_ -]{1,48}(\+followup)?$")
FOLLOW_UP = "+followup"  # a result's template when the patient has a signed prior to compare
MAX_TEXT = 4000  # characters of one section or macro
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Template:
    """One template or macro, as built in or as a site saved it (``version`` 0: built in)."""

    kind: str
    task: str  # "" for a macro of every task
    name: str  # a template's result (``NORMAL`` or a label); a macro's ".word"
    lang: str
    title: str
    sections: dict[str, str] = field(default_factory=dict)  # a macro: {"text": …}
    version: int = 0

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.task, self.name, self.lang)


def check(kind: str, task: str, name: str, lang: str, sections: dict[str, str]) -> None:
    """A template or macro a site may save, or ``ValueError`` naming what is wrong and what
    is valid."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {', '.join(LANGS)}")
    if kind == "macro":
        if not MACRO_NAME.match(name):
            raise ValueError(
                "a macro's name is a dot and a lower-case word (letters, digits, _ or -; at "
                "most 32), e.g. .normal"
            )
        if set(sections) != {"text"} or not sections["text"].strip():
            raise ValueError("a macro has one field, text, and it is not empty")
    else:
        if not task:
            raise ValueError("a template belongs to one task")
        if not RESULT_NAME.match(name):
            raise ValueError(
                f"a template's result is '{NORMAL}' or one of the task's labels, with "
                f"'{FOLLOW_UP}' for a follow-up (a signed prior to compare with)"
            )
        unknown = set(sections) - set(SECTIONS)
        if unknown:
            raise ValueError(
                f"unknown section {sorted(unknown)[0]!r}; valid: {', '.join(SECTIONS)}"
            )
        for text in sections.values():
            bad = [p for p in _PLACEHOLDER.findall(text) if p not in SECTIONS]
            if bad:
                raise ValueError(
                    f"unknown placeholder {{{bad[0]}}}; valid: "
                    + ", ".join("{" + s + "}" for s in SECTIONS)
                )
    for text in sections.values():
        if len(text) > MAX_TEXT:
            raise ValueError(f"a section or macro is at most {MAX_TEXT} characters")


def render(template: Template | None, ai: dict[str, str]) -> dict[str, str]:
    """The draft's sections from the template: each placeholder replaced by the AI's section
    of that name. Nothing of the AI's is lost: a section whose template does not place the
    AI's text gets it after the template's own. Without a template, the AI's sections."""
    if template is None:
        return dict(ai)
    out: dict[str, str] = {}
    for name in SECTIONS:
        own = template.sections.get(name)
        said = (ai.get(name) or "").strip()
        if own is None or not own.strip():
            text = said
        else:
            placed = f"{{{name}}}" in own
            text = _PLACEHOLDER.sub(
                lambda m: (ai.get(m.group(1)) or "").strip() if m.group(1) in SECTIONS else "",
                own,
            )
            if said and not placed:
                text = f"{text.rstrip()}\n{said}"
        text = re.sub(r"[ \t]+\n", "\n", re.sub(r"\n{3,}", "\n\n", text)).strip()
        if text or name in ai:
            out[name] = text
    return out


def result_of(decision: dict | None) -> str | None:
    """The result a draft's template is chosen by: ``NORMAL`` when the AI found none of its
    findings, the leading label of a decided finding; None when it did not decide or
    contradicts itself (the radiologist writes that report: no template speaks for it)."""
    if not decision or decision.get("conflict"):
        return None
    if decision.get("state") in ("normal", "none"):
        return NORMAL
    if decision.get("state") == "abnormal" and decision.get("primary"):
        return str(decision["primary"])
    return None


def slots(sections: dict[str, str]) -> int:
    """How many slots (``SLOT``) are left to fill."""
    return sum((text or "").count(SLOT) for text in sections.values())


def _same(lang: str, tr: str, en: str) -> str:
    return tr if lang == "tr" else en


def _templates() -> list[Template]:
    out: list[Template] = []
    plain = {s: f"{{{s}}}" for s in SECTIONS}
    for lang in LANGS:
        out.append(
            Template(
                "template",
                "cxr",
                NORMAL,
                lang,
                _same(lang, "Normal akciğer grafisi", "Normal chest film"),
                plain,
            )
        )
        for label, tr, en in (
            ("COVID-19", "COVID-19 pnömonisi paterni", "COVID-19 pneumonia pattern"),
            ("Viral_Pneumonia", "Viral pnömoni paterni", "Viral pneumonia pattern"),
            ("Bacterial_Pneumonia", "Bakteriyel pnömoni paterni", "Bacterial pneumonia pattern"),
            ("Pneumonia", "Pnömoni", "Pneumonia"),
        ):
            out.append(Template("template", "cxr", label, lang, _same(lang, tr, en), plain))
        out.append(
            Template(
                "template",
                "mri",
                NORMAL,
                lang,
                _same(lang, "Tümör izlenmeyen beyin MR", "Brain MRI without a tumour"),
                plain,
            )
        )
        size = _same(
            lang,
            f"Lezyon boyutu: {SLOT} × {SLOT} mm (kesit {SLOT}).\n"
            f"Önceki tetkikte: {SLOT} × {SLOT} mm.",
            f"Lesion size: {SLOT} × {SLOT} mm (slice {SLOT}).\nOn the prior study: {SLOT} × "
            f"{SLOT} mm.",
        )
        for label, tr, en in (
            ("Glioma", "Gliom", "Glioma"),
            ("Meningioma", "Menenjiom", "Meningioma"),
            ("Pituitary", "Hipofiz tümörü", "Pituitary tumour"),
        ):
            out.append(Template("template", "mri", label, lang, _same(lang, tr, en), plain))
            # a follow-up (a signed prior to compare with): the sizes only the radiologist
            # measures, today's and the prior's, as slots
            sections = {**plain, "measurements": f"{{measurements}}\n{size}"}
            title = _same(lang, f"{tr} takibi", f"{en} follow-up")
            out.append(Template("template", "mri", label + FOLLOW_UP, lang, title, sections))
    return out


def _macros() -> list[Template]:
    rows = (
        (
            "cxr",
            ".normal",
            "Her iki akciğer parankimi doğal görünümdedir. Kostofrenik sinüsler açıktır. "
            "Kardiyotorasik oran normal sınırlardadır.",
            "Both lungs are clear. The costophrenic angles are sharp. The cardiothoracic ratio "
            "is within normal limits.",
        ),
        (
            "mri",
            ".normal",
            "Beyin parankiminde kitle ya da patolojik kontrastlanma izlenmedi. Ventrikül "
            "sistemi ve sulkuslar normal genişliktedir. Orta hat yapıları santraldir.",
            "No mass or abnormal enhancement in the brain parenchyma. The ventricles and sulci "
            "are of normal size. The midline structures are central.",
        ),
        (
            "",
            ".stabil|.stable",
            "Önceki tetkikle karşılaştırıldığında belirgin değişiklik izlenmedi.",
            "No significant change compared with the prior study.",
        ),
        (
            "",
            ".korelasyon|.correlate",
            "Klinik korelasyon önerilir.",
            "Clinical correlation is advised.",
        ),
    )
    out = []
    for task, names, tr, en in rows:
        name_tr, _, name_en = names.partition("|")
        for lang in LANGS:
            text = _same(lang, tr, en)
            name = _same(lang, name_tr, name_en or name_tr)
            out.append(Template("macro", task, name, lang, text[:60], {"text": text}))
    return out


BUILT_IN: tuple[Template, ...] = (*_templates(), *_macros())
