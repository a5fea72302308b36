"""What an imaging model can and cannot read, and whether this image is outside it.

Every imaging result carries ``scope`` (``Scope``):

- ``detects``: the model's own labels, the normal label left out (it is not a finding);
- ``cannot_detect``: keys of what a radiologist might expect from the examination that the
  model does not read (tuberculosis, nodules, pneumothorax… for a chest model without those
  labels; other tumour types, haemorrhage, stroke… for the brain MRI model). Worked out from
  the model's labels: a hospital model trained with a ``Pneumothorax`` label loses that key.
  Each key is named through ONE words table (``CANNOT_DETECT_WORDS``, English and Turkish),
  which the study page, the draft, the PDF and FHIR all read;
- ``cannot_tell_apart``: keys of patterns the model was never taught that look like its own
  labels and that it would read as one of them (ARDS, tuberculosis, other infections, oedema,
  a large heart for a chest model whose labels are pneumonias; metastasis or abscess for the
  brain MRI model): a finding it reports is a pattern, not a diagnosis (the task's ``look_alikes``);
- ``out_of_scope``: whether this image is unlike the model's training films — ``flagged``,
  the ``score``, the ``threshold`` and the ``reason`` (``unlike_training``, ``lateral_view``,
  or the code of a refusal).

The detector (``OutOfScopeDetector``, ``out_of_scope.json`` in the model directory) is the
gate's feature-space distance (``imaging.gate``) with a tighter threshold: the 99th percentile
of the distances of the validation split's in-label frontal films (the gate itself refuses only
far beyond that, at twice its validation quantile). Chosen on validation against the logits'
energy and the maximum class probability (``benchmarks/out_of_scope_benchmark.py``): on the
shared chest films no score separates the out-of-label diseases (tuberculosis, ARDS) from the
labelled pneumonias — the model maps them onto pneumonia — so the flag catches views and
images unlike the training set, and ``cannot_detect``, which is always shown, is what tells a
reader that a tuberculosis film is outside what the model reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from medai.core.task_registry import Limits, Task, TaskError, get

OUT_OF_SCOPE_FILE = "out_of_scope.json"
SCOPE_QUANTILE = 0.99

# ONE words table: every key ``cannot_detect`` may hold, (en, tr); the page, the draft, the PDF
# and FHIR name the keys through it (``describe``, ``services.imaging.scope_words``)
CANNOT_DETECT_WORDS: dict[str, tuple[str, str]] = {
    "tuberculosis": ("tuberculosis", "tüberküloz"),
    "nodule_mass": ("lung nodules or masses", "akciğer nodülü veya kitlesi"),
    "pneumothorax": ("pneumothorax", "pnömotoraks"),
    "pleural_effusion": ("pleural effusion", "plevral efüzyon"),
    "heart_size": ("heart size (cardiomegaly)", "kalp boyutu (kardiyomegali)"),
    "pulmonary_oedema": ("pulmonary oedema", "pulmoner ödem"),
    "atelectasis": ("atelectasis", "atelektazi"),
    "emphysema_fibrosis": ("emphysema or fibrosis", "amfizem veya fibrozis"),
    "mediastinum": ("mediastinal widening", "mediasten genişlemesi"),
    "fracture": ("fractures", "kırıklar"),
    "lines_tubes": ("the position of tubes and lines", "tüp ve kateterlerin konumu"),
    "lateral_views": ("lateral films", "lateral grafiler"),
    "other_tumours": (
        "other tumour types (metastasis, lymphoma, paediatric tumours and others)",
        "diğer tümör tipleri (metastaz, lenfoma, pediatrik tümörler vb.)",
    ),
    "tumour_extent": ("tumour size or grade", "tümörün boyutu ve derecesi"),
    "haemorrhage": ("haemorrhage", "kanama"),
    "stroke": ("infarction (stroke)", "enfarkt (inme)"),
    "white_matter": (
        "demyelinating and other white-matter disease",
        "demiyelinizan ve diğer beyaz cevher hastalıkları",
    ),
    "hydrocephalus": ("hydrocephalus", "hidrosefali"),
    "other_body_parts": ("other body parts", "diğer vücut bölgeleri"),
    "other_findings": ("findings outside its labels", "etiketleri dışındaki bulgular"),
    "ards": ("ARDS", "ARDS"),
    "cardiomegaly": ("cardiomegaly", "kardiyomegali"),
    "other_infections": (
        "other infections (SARS, Pneumocystis, fungal and others)",
        "diğer enfeksiyonlar (SARS, Pneumocystis, mantar vb.)",
    ),
    "abscess_demyelination": (
        "abscess or tumefactive demyelination",
        "apse veya tümefaktif demiyelinizan lezyon",
    ),
}

# a task whose definition states no limits (``Task.cannot_detect`` None); the chest and brain
# tasks' limits and look-alikes are theirs (``imaging.task_definitions``)
GENERIC: Limits = (("other_findings", ()), ("other_body_parts", ()))

# reasons an image is out of scope (en, tr): the report's sentences; the page's are UI strings
REASON_WORDS: dict[str, tuple[str, str]] = {
    "unlike_training": (
        "Out of scope (AI): this image does not look like the images the model was trained on "
        "(distance {score} > {threshold}); it may show a disease outside the model's labels, "
        "another view or another body part, and the AI findings may not apply.",
        "Kapsam dışı (YZ): bu görüntü modelin eğitildiği görüntülere benzemiyor (uzaklık {score} "
        "> {threshold}); modelin etiketleri dışında bir hastalık, farklı bir çekim ya da başka "
        "bir vücut bölgesi olabilir ve YZ bulguları geçerli olmayabilir.",
    ),
    "lateral_view": (
        "Out of scope (AI): lateral film; the model reads frontal (PA/AP) chest films only and "
        "did not assess it.",
        "Kapsam dışı (YZ): lateral grafi; model yalnızca frontal (PA/AP) akciğer grafilerini "
        "okur, bu grafiyi değerlendirmedi.",
    ),
    "refused": (
        "Out of scope (AI): the model did not assess this image ({reason}).",
        "Kapsam dışı (YZ): model bu görüntüyü değerlendirmedi ({reason}).",
    ),
}
TEXT: dict[str, tuple[str, str]] = {
    "detects": ("The AI model looks for: {labels}.", "YZ modelinin aradığı bulgular: {labels}."),
    # worded so that the report readers (``reporting.findings``) never take a listed finding as
    # stated: a negation in the sentence, and ``SCOPE_SENTENCE`` recognises it
    "cannot_detect": (
        "The AI model does not assess {items}.",
        "{items} YZ modelinin değerlendirme kapsamında değildir.",
    ),
    # states nothing of the patient either (``SCOPE_SENTENCE`` recognises it)
    "cannot_tell_apart": (
        "The AI model cannot tell {items} apart from its own labels: an image showing them may "
        "read as one of them.",
        "YZ modeli {items} tablolarını kendi etiketlerinden ayırt edemez: bunları gösteren bir "
        "görüntü modelin etiketlerinden biri olarak okunabilir.",
    ),
    "title": ("Scope of the AI model", "YZ modelinin kapsamı"),
    "detects_title": ("Looks for", "Aradığı bulgular"),
    "cannot_title": ("Does not assess", "Değerlendirmediği"),
    "flag_title": ("Out of scope", "Kapsam dışı"),
}
# a sentence that lists what the model does not assess states nothing about the patient
SCOPE_SENTENCE = re.compile(
    r"model does not assess|modelinin değerlendirme kapsamında değil|"
    r"model cannot tell .{0,300} apart from its own labels|"
    r"kendi etiketlerinden ayırt edemez",
    re.IGNORECASE,
)


class OutOfScope(BaseModel):
    """Whether this image is outside what the model reads, and by how much."""

    flagged: bool = False
    score: float | None = Field(
        default=None, description="the detector's score (higher: less alike)"
    )
    threshold: float | None = Field(default=None, description="flagged above this score")
    reason: str | None = Field(
        default=None, description="unlike_training | lateral_view | a refusal code; None: in scope"
    )
    detector: str | None = Field(
        default=None,
        description="feature_distance | view_check | the refusal's rule; None: the model has "
        "no detector",
    )


class Scope(BaseModel):
    """What the model detects, what it cannot, and whether this image is out of its scope."""

    detects: list[str] = Field(default_factory=list, description="the model's finding labels")
    cannot_detect: list[str] = Field(
        default_factory=list, description="keys of CANNOT_DETECT_WORDS (imaging.scope)"
    )
    cannot_tell_apart: list[str] = Field(
        default_factory=list,
        description="keys of CANNOT_DETECT_WORDS: patterns outside the labels that the model "
        "would read as one of its labels (the task's look_alikes)",
    )
    out_of_scope: OutOfScope = Field(default_factory=OutOfScope)
    view: dict | None = Field(
        default=None,
        description="the film's view check (imaging.views.ViewCheck), chest films only",
    )


def limits(task: str, labels: Iterable[str]) -> tuple[list[str], list[str]]:
    """(detects, cannot_detect) of a model of ``task`` with these labels."""
    return limits_of(_definition(task), labels)


def limits_of(task: Task | None, labels: Iterable[str]) -> tuple[list[str], list[str]]:
    """``limits`` by the task's definition (None: a task the registry lacks, the generic
    limits)."""
    labels = list(labels)
    have = set(labels)
    normal = task.normal if task is not None else None
    stated = task.cannot_detect if task is not None else None
    detects = [lab for lab in labels if lab != normal]
    cannot = [
        key
        for key, groups in (GENERIC if stated is None else stated)
        if not any(set(group) <= have for group in groups)
    ]
    return detects, cannot


def look_alikes(task: str, labels: Iterable[str]) -> list[str]:
    """Keys of the patterns a model of ``task`` with these labels cannot tell apart from them:
    none when it has no label they are taken for; a pattern one of its labels covers left out."""
    return look_alikes_of(_definition(task), labels)


def look_alikes_of(task: Task | None, labels: Iterable[str]) -> list[str]:
    """``look_alikes`` by the task's definition (None: a task the registry lacks, none)."""
    have = set(labels)
    if task is None or not have & task.look_alike_of:
        return []
    return [
        key for key, groups in task.look_alikes if not any(set(group) <= have for group in groups)
    ]


def scope_for(
    task: str | Task,
    labels: Iterable[str],
    out_of_scope: OutOfScope | None = None,
    view: dict | None = None,
) -> Scope:
    """The scope of a model of ``task`` (its name: one the registry lacks gets the generic
    limits; or its definition) with these labels."""
    return _scope(task if isinstance(task, Task) else _definition(task), labels, out_of_scope, view)


def scope_of(
    task: Task,
    labels: Iterable[str],
    out_of_scope: OutOfScope | None = None,
    view: dict | None = None,
) -> Scope:
    """``scope_for`` a model's own task definition (resolved once, by its predictor)."""
    return _scope(task, labels, out_of_scope, view)


def _scope(task: Task | None, labels, out_of_scope, view) -> Scope:
    labels = list(labels)
    detects, cannot = limits_of(task, labels)
    return Scope(
        detects=detects,
        cannot_detect=cannot,
        cannot_tell_apart=look_alikes_of(task, labels),
        out_of_scope=out_of_scope or OutOfScope(),
        view=view,
    )


def _definition(task: str) -> Task | None:
    try:
        return get(task)
    except TaskError:
        return None


def of_payload(payload: dict | None) -> Scope | None:
    """A stored imaging result's scope: its own, or for a result stored before scopes what its
    task and labels say (its out-of-scope check then unknown: no detector)."""
    if not isinstance(payload, dict):
        return None
    raw = payload.get("scope")
    if isinstance(raw, dict):
        try:
            scope = Scope.model_validate(raw)
        except ValueError:
            pass
        else:  # a result stored before look-alikes were said: its task and labels say them
            if "cannot_tell_apart" not in raw and payload.get("task"):
                normal = get_normal(str(payload["task"]))
                detects = [*scope.detects, *([normal] if normal is not None else [])]
                scope.cannot_tell_apart = look_alikes(str(payload["task"]), detects)
            return scope
    task = str(payload.get("task") or "")
    labels = [f.get("label") for f in payload.get("findings") or [] if isinstance(f, dict)]
    if not task or not labels:
        return None
    try:
        return scope_for(task, [lab for lab in labels if lab])
    except ValueError:
        return None


def get_normal(task: str) -> str | None:
    """The task's normal label (None for a task the registry lacks)."""
    try:
        return get(task).normal
    except TaskError:
        return None


def word(key: str, lang: str) -> str:
    en, tr = CANNOT_DETECT_WORDS.get(key, (key.replace("_", " "), key.replace("_", " ")))
    return tr if lang == "tr" else en


def words(lang: str) -> dict[str, str]:
    """Every key's name in ``lang``."""
    return {key: word(key, lang) for key in CANNOT_DETECT_WORDS}


def join(items: list[str], lang: str, conj: str | None = None) -> str:
    conj = conj or ("ve" if lang == "tr" else "and")
    if not items:
        return ""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {conj} {items[-1]}"


def _lower_first(name: str, lang: str) -> str:
    """A label's name inside a sentence: first letter lowered, an acronym (COVID-19) kept."""
    if not name or name[:2].isupper():
        return name
    first = name[0]
    if lang == "tr":
        first = {"I": "ı", "İ": "i"}.get(first, first.lower())
    else:
        first = first.lower()
    return first + name[1:]


def _upper_first(text: str, lang: str) -> str:
    if not text:
        return text
    first = text[0]
    if lang == "tr":
        first = {"i": "İ", "ı": "I"}.get(first, first.upper())
    else:
        first = first.upper()
    return first + text[1:]


def _number(x: Any, lang: str = "en") -> str:
    try:
        text = f"{float(x):.2f}"
    except (TypeError, ValueError):
        return "?"
    return text.replace(".", ",") if lang == "tr" else text


def describe(
    scope: Scope | dict | None,
    task: str,
    lang: str,
    name: Callable[[str], str] | None = None,
) -> dict[str, str]:
    """The scope in sentences of a report (``lang`` tr or en): ``detects``, ``cannot_detect``
    and ``out_of_scope`` (empty when not flagged). ``name``: how a label is named (default the
    task's findings-table names)."""
    if scope is None:
        return {"detects": "", "cannot_detect": "", "cannot_tell_apart": "", "out_of_scope": ""}
    if isinstance(scope, dict):
        scope = Scope.model_validate(scope)
    i = 1 if lang == "tr" else 0
    if name is None:
        try:
            spec = get(task)
            name = lambda lab: spec.label_name(lab, lang)  # noqa: E731
        except TaskError:
            name = str
    labels = [_lower_first(name(lab), lang) for lab in scope.detects]
    detects = TEXT["detects"][i].format(labels=join(labels, lang)) if labels else ""
    items = [word(k, lang) for k in scope.cannot_detect]
    cannot = ""
    if items:
        listed = join(items, lang, "ve" if lang == "tr" else "or")
        cannot = TEXT["cannot_detect"][i].format(items=listed)
        cannot = _upper_first(cannot, lang)
    alike = [word(k, lang) for k in scope.cannot_tell_apart]
    apart = (
        TEXT["cannot_tell_apart"][i].format(items=join(alike, lang, "ve" if lang == "tr" else "or"))
        if alike
        else ""
    )
    return {
        "detects": detects,
        "cannot_detect": cannot,
        "cannot_tell_apart": apart,
        "out_of_scope": flag_sentence(scope, lang),
    }


def flag_sentence(scope: Scope | dict | None, lang: str) -> str:
    """The out-of-scope sentence of a report ('' when the image is in scope)."""
    if scope is None:
        return ""
    if isinstance(scope, dict):
        scope = Scope.model_validate(scope)
    oos = scope.out_of_scope
    if not oos.flagged:
        return ""
    i = 1 if lang == "tr" else 0
    reason = oos.reason or "unlike_training"
    if reason in REASON_WORDS and reason != "refused":
        return REASON_WORDS[reason][i].format(
            score=_number(oos.score, lang), threshold=_number(oos.threshold, lang)
        )
    return REASON_WORDS["refused"][i].format(reason=reason)


def series_scope(predictor, distances=None, refusal=None) -> Scope:
    """The scope of a result read from a series of slices (``imaging.series``): a refused
    series is out of scope for its refusal's reason (as ``ImagingPredictor.scope``); otherwise
    the series is flagged when the median gate distance of the slices it used exceeds the
    model's out-of-scope threshold (one odd slice does not flag a series; most slices unlike
    the training images do), the median being the score."""
    import numpy as np

    if refusal is not None:
        return predictor.scope(refusal=refusal)
    values = [float(d) for d in (distances or []) if d is not None]
    detector = getattr(predictor, "out_of_scope", None)
    if not values:
        judged = OutOfScope()
    elif detector is None:
        judged = OutOfScope(score=round(float(np.median(values)), 4))
    else:
        judged = detector.judge(float(np.median(values)))
    return scope_of(predictor.space, predictor.labels, judged)


# --- the out-of-scope detector of a model directory


@dataclass
class OutOfScopeDetector:
    """Flag an image whose gate distance (``FeatureGate.distance``) exceeds ``threshold``."""

    threshold: float
    detector: str = "feature_distance"
    quantile: float = SCOPE_QUANTILE
    chosen_on: dict[str, Any] = field(default_factory=dict)

    def judge(self, distance: float) -> OutOfScope:
        flagged = bool(distance > self.threshold)
        return OutOfScope(
            flagged=flagged,
            score=round(float(distance), 4),
            threshold=round(float(self.threshold), 4),
            reason="unlike_training" if flagged else None,
            detector=self.detector,
        )

    @classmethod
    def fit(cls, distances, quantile: float = SCOPE_QUANTILE, **chosen_on) -> OutOfScopeDetector:
        import numpy as np

        distances = np.asarray(distances, dtype=np.float64)
        if len(distances) < 10:
            raise ValueError(
                f"the out-of-scope threshold needs at least 10 validation images ({len(distances)})"
            )
        threshold = float(np.quantile(distances, quantile))
        return cls(
            threshold,
            quantile=quantile,
            chosen_on={
                "split": "validation",
                "n": len(distances),
                "flagged_share": float(np.mean(distances > threshold)),
                **chosen_on,
            },
        )

    def save(self, directory: Path) -> Path:
        path = Path(directory) / OUT_OF_SCOPE_FILE
        body = {
            "schema": 1,
            "detector": self.detector,
            "threshold": self.threshold,
            "quantile": self.quantile,
            "chosen_on": self.chosen_on,
        }
        path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: Path | None) -> OutOfScopeDetector | None:
        if directory is None:
            return None
        path = Path(directory) / OUT_OF_SCOPE_FILE
        if not path.is_file():
            return None
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            float(raw["threshold"]),
            str(raw.get("detector") or "feature_distance"),
            float(raw.get("quantile") or SCOPE_QUANTILE),
            dict(raw.get("chosen_on") or {}),
        )
