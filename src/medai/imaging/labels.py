"""Unified label spaces by modality, with the synonyms real datasets use.

NIH ChestX-ray14, CheXpert, MIMIC-CXR and COVID-era collections name the same finding
differently ("Pleural Effusion", "Effusion"; "Pneumonia (viral)", "Viral_Pneumonia"). Every
spelling resolves to one canonical label; a label that resolves to nothing is reported by the
readers, never silently treated as negative.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LabelSpace:
    task: str
    modality: str
    labels: tuple[str, ...]
    multilabel: bool
    synonyms: dict[str, str] = field(default_factory=dict)
    dicom_modalities: tuple[str, ...] = ()

    def index(self, label: str) -> int:
        return self.labels.index(label)


def _key(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", label.lower().replace("ı", "i")).strip()


CXR_LABELS = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening",
    "Hernia", "Lung Opacity", "Lung Lesion", "Fracture", "Enlarged Cardiomediastinum",
    "COVID-19", "Viral_Pneumonia", "Bacterial_Pneumonia", "Tuberculosis", "No Finding",
)
CXR = LabelSpace(
    task="cxr", modality="chest X-ray", labels=CXR_LABELS, multilabel=True,
    synonyms={
        "pleural effusion": "Effusion", "effusions": "Effusion",
        "infiltrate": "Infiltration", "infiltrates": "Infiltration",
        "pleural thickening": "Pleural_Thickening", "airspace opacity": "Lung Opacity",
        "opacity": "Lung Opacity", "lesion": "Lung Lesion", "enlarged cardiac silhouette":
        "Enlarged Cardiomediastinum", "widened mediastinum": "Enlarged Cardiomediastinum",
        "covid": "COVID-19", "covid19": "COVID-19", "covid 19": "COVID-19", "sars cov 2":
        "COVID-19", "pneumonia viral": "Viral_Pneumonia", "viral pneumonia": "Viral_Pneumonia",
        "sars": "Viral_Pneumonia", "mers": "Viral_Pneumonia", "influenza": "Viral_Pneumonia",
        "pneumonia bacterial": "Bacterial_Pneumonia", "bacterial pneumonia":
        "Bacterial_Pneumonia", "streptococcus": "Bacterial_Pneumonia", "klebsiella":
        "Bacterial_Pneumonia", "legionella": "Bacterial_Pneumonia", "tb": "Tuberculosis",
        "normal": "No Finding", "no findings": "No Finding", "nofinding": "No Finding",
    },
    dicom_modalities=("CR", "DX", "DR", "RG"),
)
MRI = LabelSpace(
    task="mri", modality="brain MRI", labels=("Glioma", "Meningioma", "Pituitary", "No_Tumor"),
    multilabel=False,
    synonyms={
        "glioma tumor": "Glioma", "glioma tumour": "Glioma", "meningioma tumor": "Meningioma",
        "meningioma tumour": "Meningioma", "pituitary tumor": "Pituitary",
        "pituitary tumour": "Pituitary", "no tumor": "No_Tumor", "no tumour": "No_Tumor",
        "notumor": "No_Tumor", "notumour": "No_Tumor", "normal": "No_Tumor",
        "healthy": "No_Tumor",
    },
    dicom_modalities=("MR",),
)
SPACES: dict[str, LabelSpace] = {"cxr": CXR, "mri": MRI}

_LOOKUP: dict[str, dict[str, str]] = {
    task: {**{_key(lab): lab for lab in space.labels},
           **{_key(k): v for k, v in space.synonyms.items()}}
    for task, space in SPACES.items()
}


def space(task: str) -> LabelSpace:
    try:
        return SPACES[task]
    except KeyError:
        raise ValueError(f"unknown imaging task {task!r}; choose one of {sorted(SPACES)}") from None


def resolve(task: str, raw: str) -> str | None:
    """Canonical label for any known spelling in the task's label space, else None."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    return _LOOKUP[space(task).task].get(_key(raw))
