"""How the template drafter names each label, in English and Turkish (noun phrases)."""

from __future__ import annotations

PHRASES: dict[str, tuple[str, str]] = {
    "Atelectasis": ("atelectasis", "atelektazi"),
    "Cardiomegaly": ("cardiomegaly", "kardiyomegali"),
    "Effusion": ("pleural effusion", "plevral efüzyon"),
    "Infiltration": ("pulmonary infiltrate", "akciğer infiltrasyonu"),
    "Mass": ("lung mass", "akciğer kitlesi"),
    "Nodule": ("pulmonary nodule", "pulmoner nodül"),
    "Pneumonia": ("pneumonia", "pnömoni"),
    "Pneumothorax": ("pneumothorax", "pnömotoraks"),
    "Consolidation": ("consolidation", "konsolidasyon"),
    "Edema": ("pulmonary edema", "pulmoner ödem"),
    "Emphysema": ("emphysema", "amfizem"),
    "Fibrosis": ("pulmonary fibrosis", "pulmoner fibrozis"),
    "Pleural_Thickening": ("pleural thickening", "plevral kalınlaşma"),
    "Hernia": ("hiatal hernia", "hiatal herni"),
    "Lung Opacity": ("lung opacity", "akciğer opasitesi"),
    "Lung Lesion": ("focal lung lesion", "fokal akciğer lezyonu"),
    "Fracture": ("fracture", "kırık"),
    "Enlarged Cardiomediastinum": ("enlarged cardiomediastinal silhouette",
                                   "genişlemiş kardiyomediastinal gölge"),
    "COVID-19": ("COVID-19 pneumonia pattern", "COVID-19 pnömonisi paterni"),
    "Viral_Pneumonia": ("viral pneumonia pattern", "viral pnömoni paterni"),
    "Bacterial_Pneumonia": ("bacterial pneumonia pattern", "bakteriyel pnömoni paterni"),
    "Tuberculosis": ("tuberculosis pattern", "tüberküloz paterni"),
    "No Finding": ("no acute abnormality", "akut patoloji saptanmadı"),
    "Glioma": ("glioma", "gliom"),
    "Meningioma": ("meningioma", "meningiom"),
    "Pituitary": ("pituitary tumour", "hipofiz tümörü"),
    "No_Tumor": ("no tumour", "tümör saptanmadı"),
}
NORMAL = {"No Finding", "No_Tumor"}


def phrase(label: str, lang: str) -> str:
    en, tr = PHRASES.get(label, (label.replace("_", " ").lower(),) * 2)
    return tr if lang == "tr" else en
