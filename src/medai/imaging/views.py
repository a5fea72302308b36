"""The view of a chest film: frontal (PA/AP), lateral, or unknown — from the DICOM header where
it says, else from the image.

The chest X-ray models are trained and validated on frontal films; a lateral film read as a
frontal gets findings that mean nothing (a tuberculosis-free lateral was once reported
"COVID-19 99.7 %"). So before a chest film is read its view is checked:

1. **Header** (``header_view``): ``ViewPosition`` (PA, AP, LL, RL, LATERAL…), else the first item
   of ``ViewCodeSequence`` (SNOMED CT projection codes, or their meaning), else
   ``PatientOrientation`` (a frontal film's rows run left–right, L or R; a lateral's run
   anterior–posterior, A or P). Obliques, decubitus and unknown values decide nothing here.
2. **Image** (``ViewChecker``), for PNG/JPEG uploads that carry no header: a logistic
   regression on the model's own penultimate features (the features the gate reads), fitted on
   films whose view is known (``medai imaging fit-scope``; stored as ``view_check.npz`` in the
   model directory, a few kilobytes, sealed with the model). Each training film also enters
   mirrored, since a lateral is a lateral whichever way it faces.

A model directory without ``view_check.npz`` has no image check: a header-less film's view is
then ``unknown`` and it is read (the result's scope says the model reads frontal films only).
What a lateral film gets is decided by the predictor (``imaging.predict``): a refusal with the
code ``lateral_view`` — no findings, no heatmap, no draft; the radiologist reports it by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

VIEW_CHECK_FILE = "view_check.npz"
View = Literal["frontal", "lateral", "unknown"]

# DICOM ViewPosition (0018,5101) defined terms and the spellings modalities and PACS use
FRONTAL_POSITIONS = frozenset(
    {"PA", "AP", "APS", "APE", "PAE", "AP SUPINE", "AP ERECT", "PA ERECT"}
)
LATERAL_POSITIONS = frozenset(
    {"LL", "RL", "LAT", "LATERAL", "L", "LLAT", "RLAT", "LEFT LATERAL", "RIGHT LATERAL"}
)
# SNOMED CT projections (DICOM CID 4010 and the chest radiography view codes)
FRONTAL_CODES = frozenset({"399348003", "272479007"})  # antero-posterior, postero-anterior
LATERAL_CODES = frozenset({"399067008", "399173006", "399198007", "399352003", "49370004"})
_FRONTAL_MEANING = re.compile(r"\b(?:postero-?anterior|antero-?posterior|pa|ap)\b")
_OBLIQUE_OR_DECUBITUS = re.compile(r"oblique|decubitus")
_LATERAL_MEANING = re.compile(r"\blateral\b")


@dataclass(frozen=True)
class ViewCheck:
    """What is known of a film's view: ``view``, where it was read (``header`` or ``image``),
    the image check's score (the probability of a lateral; None for a header or no check),
    the threshold it was compared with, and the header value that decided (e.g. ``LL``)."""

    view: View
    source: Literal["header", "image"]
    score: float | None = None
    threshold: float | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["score"] is not None:
            out["score"] = round(float(out["score"]), 4)
        if out["threshold"] is not None:
            out["threshold"] = round(float(out["threshold"]), 4)
        return out


def _position(value: Any) -> str:
    return re.sub(r"[\s_\-]+", " ", str(value or "")).strip().upper()


def header_fields(ds) -> dict[str, str]:
    """The view attributes of a DICOM header (a pydicom Dataset), as plain strings: what
    ``LoadedImage.metadata`` keeps for ``header_view`` (empty strings when absent)."""
    out = {
        "view_position": str(ds.get("ViewPosition", "") or "").strip().upper()[:16],
        "view_code": "",
        "view_code_meaning": "",
        "patient_orientation": "",
    }
    try:
        items = ds.get("ViewCodeSequence") or []
        if len(items):
            item = items[0]
            out["view_code"] = str(item.get("CodeValue", "") or "").strip()[:32]
            out["view_code_meaning"] = str(item.get("CodeMeaning", "") or "").strip()[:64]
    except (TypeError, AttributeError, ValueError):  # a malformed sequence decides nothing
        pass
    orientation = ds.get("PatientOrientation", "") or ""
    if not isinstance(orientation, str):
        try:
            orientation = "\\".join(str(v) for v in orientation)
        except TypeError:
            orientation = str(orientation)
    out["patient_orientation"] = orientation.strip().upper()[:16]
    return out


def header_view(meta: Mapping[str, Any]) -> ViewCheck | None:
    """The view a DICOM header states (``header_fields`` keys), or None when it states none
    that decides: ViewPosition first, then ViewCodeSequence, then PatientOrientation."""
    position = _position(meta.get("view_position"))
    if position in FRONTAL_POSITIONS or position.split(" ")[0] in ("PA", "AP"):
        return ViewCheck("frontal", "header", detail=f"ViewPosition {position}")
    if position in LATERAL_POSITIONS:
        return ViewCheck("lateral", "header", detail=f"ViewPosition {position}")
    code = str(meta.get("view_code") or "").strip()
    meaning = str(meta.get("view_code_meaning") or "").strip().lower()
    if code or meaning:
        detail = f"ViewCodeSequence {code} {meaning}".strip()
        if not _OBLIQUE_OR_DECUBITUS.search(meaning):
            if code in LATERAL_CODES or (
                code not in FRONTAL_CODES and _LATERAL_MEANING.search(meaning)
            ):
                return ViewCheck("lateral", "header", detail=detail)
            if code in FRONTAL_CODES or _FRONTAL_MEANING.search(meaning):
                return ViewCheck("frontal", "header", detail=detail)
    orientation = str(meta.get("patient_orientation") or "").strip().upper()
    row = orientation.split("\\")[0][:1] if orientation else ""
    if row in ("L", "R"):
        return ViewCheck("frontal", "header", detail=f"PatientOrientation {orientation}")
    if row in ("A", "P"):
        return ViewCheck("lateral", "header", detail=f"PatientOrientation {orientation}")
    return None


@dataclass
class ViewChecker:
    """The image check: P(lateral) = σ(w · (f − mean) / scale + b) on the model's penultimate
    features ``f``; a film is lateral when P ≥ ``threshold``."""

    mean: np.ndarray  # D
    scale: np.ndarray  # D
    coef: np.ndarray  # D
    intercept: float
    threshold: float = 0.5

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def lateral_probability(self, feats: np.ndarray) -> np.ndarray:
        z = (np.asarray(feats, dtype=np.float64) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(z @ self.coef + self.intercept)))

    def check(self, feats: np.ndarray) -> list[ViewCheck]:
        return [
            ViewCheck(
                "lateral" if p >= self.threshold else "frontal",
                "image",
                score=float(p),
                threshold=float(self.threshold),
            )
            for p in self.lateral_probability(np.atleast_2d(feats))
        ]

    @classmethod
    def fit(
        cls,
        frontal: np.ndarray,
        lateral: np.ndarray,
        c: float = 0.01,
        threshold: float = 0.5,
        mirrored: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> ViewChecker:
        """A class-balanced, strongly regularised logistic regression (few laterals: a
        hospital's set may have tens, the shared one has eight). ``mirrored``: the same
        films' features with each image flipped left-right, added to each class."""
        from sklearn.linear_model import LogisticRegression

        if len(lateral) < 2 or len(frontal) < 2:
            raise ValueError(
                f"a view check needs lateral and frontal films ({len(lateral)} lateral, "
                f"{len(frontal)} frontal)"
            )
        x = np.concatenate([frontal, lateral]).astype(np.float64)
        y = np.r_[np.zeros(len(frontal)), np.ones(len(lateral))]
        if mirrored is not None:
            x = np.concatenate([x, mirrored[0], mirrored[1]]).astype(np.float64)
            y = np.r_[y, np.zeros(len(mirrored[0])), np.ones(len(mirrored[1]))]
        mean = x.mean(0)
        scale = x.std(0)
        scale = np.where(scale > 1e-8, scale, 1.0)
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
        model.fit((x - mean) / scale, y)
        return cls(
            mean.astype(np.float32),
            scale.astype(np.float32),
            model.coef_[0].astype(np.float32),
            float(model.intercept_[0]),
            float(threshold),
        )

    def save(self, directory: Path) -> Path:
        path = Path(directory) / VIEW_CHECK_FILE
        np.savez(
            path,
            mean=self.mean,
            scale=self.scale,
            coef=self.coef,
            intercept=self.intercept,
            threshold=self.threshold,
        )
        return path

    @classmethod
    def load(cls, directory: Path | None) -> ViewChecker | None:
        if directory is None:
            return None
        path = Path(directory) / VIEW_CHECK_FILE
        if not path.is_file():
            return None
        with np.load(path) as z:
            return cls(
                z["mean"], z["scale"], z["coef"], float(z["intercept"]), float(z["threshold"])
            )


def view_of(
    image: Any = None, checker: ViewChecker | None = None, features: np.ndarray | None = None
) -> ViewCheck:
    """The view of one film: its header's (``image`` a ``LoadedImage``, a pydicom Dataset or a
    mapping of ``header_fields``) when it states one, else the image check's on the model's
    ``features`` of it, else ``unknown``."""
    meta: Mapping[str, Any] = {}
    if image is not None:
        if hasattr(image, "metadata"):
            meta = image.metadata
        elif isinstance(image, Mapping):
            meta = image
        elif hasattr(image, "get"):  # a pydicom Dataset
            meta = header_fields(image)
    stated = header_view(meta)
    if stated is not None:
        return stated
    if checker is not None and features is not None:
        feats = np.atleast_2d(np.asarray(features))
        if feats.shape[1] == checker.dim:
            return checker.check(feats[:1])[0]
    return ViewCheck("unknown", "image")


def is_frontal(check: ViewCheck) -> bool:
    return check.view == "frontal"


def preference(check: ViewCheck) -> tuple[int, int]:
    """Sort key for choosing the film a chest study is decided from: a frontal before an
    unknown before a lateral; a header's word before the image check's."""
    order = {"frontal": 0, "unknown": 1, "lateral": 2}[check.view]
    return order, 0 if check.source == "header" else 1


# --- fitting on a labelled set: the films' views from a manifest's ``view`` column

VIEW_WORDS = {
    "frontal": {"PA", "AP", "AP SUPINE", "AP ERECT", "PA ERECT", "FRONTAL", "APS"},
    "lateral": {"L", "LL", "RL", "LAT", "LATERAL"},
}


def manifest_views(manifest: Path) -> dict[str, tuple[str, str]]:
    """Resolved image path → (view, patient) from a manifest CSV's ``view`` column (``frontal``
    / ``lateral`` / ``unknown`` for a blank or another value); {} when it has no such column."""
    import csv

    manifest = Path(manifest)
    if not manifest.is_file():
        return {}
    with manifest.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = {f.strip().lower(): f for f in reader.fieldnames or []}
        if "view" not in fields or not ({"file", "path"} & set(fields)):
            return {}
        col = fields.get("file") or fields["path"]
        out = {}
        for row in reader:
            raw = _position(row.get(fields["view"]))
            view = next((v for v, words in VIEW_WORDS.items() if raw in words), "unknown")
            patient = str(row.get(fields.get("patient", ""), "") or "").strip()
            path = (manifest.parent / str(row.get(col) or "")).resolve()
            out[str(path)] = (view, patient)
        return out


def cross_validated(
    frontal: np.ndarray,
    lateral: np.ndarray,
    frontal_groups: list[str],
    lateral_groups: list[str],
    mirrored: tuple[np.ndarray, np.ndarray] | None = None,
    c: float = 0.01,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold P(lateral) of every film: one fold per patient with a lateral (their
    frontals join that fold), the other frontal patients spread over those folds, so each film
    is scored by a check that never saw its patient. Returns (frontal scores, lateral scores)."""
    lat_patients = sorted(set(lateral_groups))
    if len(lat_patients) < 2:
        raise ValueError("cross-validation needs laterals of at least two patients")
    rng = np.random.default_rng(0)
    others = sorted(set(frontal_groups) - set(lat_patients))
    rng.shuffle(others)
    fold_of = {p: k for k, p in enumerate(lat_patients)}
    fold_of.update({p: k % len(lat_patients) for k, p in enumerate(others)})
    f_fold = np.array([fold_of[g] for g in frontal_groups])
    l_fold = np.array([fold_of[g] for g in lateral_groups])
    f_out, l_out = np.zeros(len(frontal)), np.zeros(len(lateral))
    for k in range(len(lat_patients)):
        mir = None
        if mirrored is not None:
            mir = (mirrored[0][f_fold != k], mirrored[1][l_fold != k])
        check = ViewChecker.fit(frontal[f_fold != k], lateral[l_fold != k], c=c, mirrored=mir)
        f_out[f_fold == k] = check.lateral_probability(frontal[f_fold == k])
        l_out[l_fold == k] = check.lateral_probability(lateral[l_fold == k])
    return f_out, l_out
