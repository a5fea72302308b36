"""The imaging tasks (chest X-ray findings, brain MRI tumour class): labels, synonyms, exclusive
classes, and the English/Turkish finding patterns and report phrases of every label."""

from __future__ import annotations

from medai.core.task_registry import DraftWords, Limits, Task, loader_from, register

# the 14 findings of NIH ChestX-ray14, in its column order (``imaging.datasets`` reads its
# layout by these names); the chest X-ray task's labels start with them
NIH_FINDINGS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
CXR_LABELS = (
    *NIH_FINDINGS,
    "Lung Opacity",
    "Lung Lesion",
    "Fracture",
    "Enlarged Cardiomediastinum",
    "COVID-19",
    "Viral_Pneumonia",
    "Bacterial_Pneumonia",
    "Tuberculosis",
    "No Finding",
)
CXR_SYNONYMS = {
    "pleural effusion": "Effusion",
    "effusions": "Effusion",
    "infiltrate": "Infiltration",
    "infiltrates": "Infiltration",
    "pleural thickening": "Pleural_Thickening",
    "airspace opacity": "Lung Opacity",
    "opacity": "Lung Opacity",
    "lesion": "Lung Lesion",
    "enlarged cardiac silhouette": "Enlarged Cardiomediastinum",
    "widened mediastinum": "Enlarged Cardiomediastinum",
    "covid": "COVID-19",
    "covid19": "COVID-19",
    "covid 19": "COVID-19",
    "sars cov 2": "COVID-19",
    "pneumonia viral": "Viral_Pneumonia",
    "viral pneumonia": "Viral_Pneumonia",
    "sars": "Viral_Pneumonia",
    "mers": "Viral_Pneumonia",
    "influenza": "Viral_Pneumonia",
    "pneumonia bacterial": "Bacterial_Pneumonia",
    "bacterial pneumonia": "Bacterial_Pneumonia",
    "streptococcus": "Bacterial_Pneumonia",
    "klebsiella": "Bacterial_Pneumonia",
    "legionella": "Bacterial_Pneumonia",
    "tb": "Tuberculosis",
    "normal": "No Finding",
    "no findings": "No Finding",
    "nofinding": "No Finding",
}
CXR_MENTIONS_EN = {
    "Atelectasis": "atelecta\\w*|collapse of the \\w+ lobe|lobar collapse",
    "Cardiomegaly": "cardiomegaly|(?:heart|cardiac silhouette|cardiac shadow|heart size)(?: is| "
    "appears| remains)?(?: mildly| moderately| markedly| severely)? "
    "(?:enlarged|enlargement)|enlarged (?:heart|cardiac silhouette)",
    "Effusion": "(?:pleural )?effusions?|fluid in the (?:costophrenic|pleural)|blunting of the "
    "(?:\\w+ )?costophrenic",
    "Infiltration": "infiltrat\\w*",
    "Mass": "\\bmass(?:es)?\\b",
    "Nodule": "nodul\\w*|granulomas?\\b",
    "Pneumonia": "pneumoni\\w*",
    "Viral_Pneumonia": "viral pneumoni\\w*|pneumoni\\w* (?:of )?viral|viral (?:lower respiratory "
    "|lung )?infection",
    "Bacterial_Pneumonia": "bacterial pneumoni\\w*|pneumoni\\w* (?:of )?bacterial|lobar "
    "pneumoni\\w*|bacterial (?:lung )?infection",
    "Pneumothorax": "pneumothora\\w*",
    "Consolidation": "consolidat\\w*|airspace (?:disease|opacit\\w*)",
    "Edema": "(?:pulmonary )?o?edema|vascular congestion|interstitial fluid",
    "Emphysema": "emphysema\\w*|hyperinflat\\w*|hyperexpan\\w*|copd\\b",
    "Fibrosis": "fibros\\w*|fibrotic",
    "Pleural_Thickening": "pleural thickening|thickened pleura",
    "Hernia": "hernia\\w*",
    "Lung Opacity": "opacit\\w*|opacification|densit(?:y|ies)",
    "Lung Lesion": "\\blesions?\\b|cavitar\\w*|cavity|cavities",
    "Fracture": "fractur\\w*",
    "Enlarged Cardiomediastinum": "(?:mediastin\\w*|cardiomediastinal silhouette) (?:is |appears "
    ")?(?:widen\\w*|enlarg\\w*)|widened "
    "mediastinum|(?:enlarged|widened) cardiomediastin\\w*",
    "Tuberculosis": "tubercul\\w*|\\btb\\b",
    "COVID-19": "covid(?:-?19)?|sars-cov-2",
}
CXR_MENTIONS_TR = {
    "Atelectasis": "atelekta",
    "Cardiomegaly": "kardiyomegal|kalp gölgesi.{0,20}büyü",
    "Effusion": "efüzyon|plevral sıvı",
    "Infiltration": "infiltra",
    "Mass": "kitle(?!\\s+etki)",
    "Nodule": "nodül",
    "Pneumonia": "pnömoni",
    "Pneumothorax": "pnömotoraks",
    "Viral_Pneumonia": "viral pnömoni|pnömoni\\w* viral|viral enfeksiyon",
    "Bacterial_Pneumonia": "bakteriyel pnömoni|pnömoni\\w* bakteriyel|lober pnömoni|bakteriyel "
    "enfeksiyon",
    "Lung Lesion": "lezyon|kavite|kaviter",
    "Consolidation": "konsolida",
    "Edema": "ödem",
    "Emphysema": "amfizem",
    "Fibrosis": "fibroz",
    "Pleural_Thickening": "plevral kalınlaşma",
    "Hernia": "herni",
    "Lung Opacity": "opasite|opasifikasyon",
    "Fracture": "kırık|fraktür",
    "Enlarged Cardiomediastinum": "mediast\\w*.{0,25}geniş|geniş\\w* kardiyomediast",
    "COVID-19": "cov[iı]d",  # turkish_lower turns "COVID" into "covıd"
    "Tuberculosis": "tüberküloz",
}
CXR_PHRASES = {
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
    "Enlarged Cardiomediastinum": (
        "enlarged cardiomediastinal silhouette",
        "genişlemiş kardiyomediastinal gölge",
    ),
    "COVID-19": ("COVID-19 pneumonia pattern", "COVID-19 pnömonisi paterni"),
    "Viral_Pneumonia": ("viral pneumonia pattern", "viral pnömoni paterni"),
    "Bacterial_Pneumonia": ("bacterial pneumonia pattern", "bakteriyel pnömoni paterni"),
    "Tuberculosis": ("tuberculosis pattern", "tüberküloz paterni"),
    "No Finding": ("no acute abnormality", "akut patoloji saptanmadı"),
}
# the names a findings table uses (en, tr): short nouns, not the report's phrases
CXR_NAMES = {
    "Atelectasis": ("Atelectasis", "Atelektazi"),
    "Cardiomegaly": ("Cardiomegaly", "Kardiyomegali"),
    "Effusion": ("Pleural effusion", "Plevral efüzyon"),
    "Infiltration": ("Infiltration", "İnfiltrasyon"),
    "Mass": ("Mass", "Kitle"),
    "Nodule": ("Nodule", "Nodül"),
    "Pneumonia": ("Pneumonia", "Pnömoni"),
    "Pneumothorax": ("Pneumothorax", "Pnömotoraks"),
    "Consolidation": ("Consolidation", "Konsolidasyon"),
    "Edema": ("Pulmonary oedema", "Pulmoner ödem"),
    "Emphysema": ("Emphysema", "Amfizem"),
    "Fibrosis": ("Fibrosis", "Fibrozis"),
    "Pleural_Thickening": ("Pleural thickening", "Plevral kalınlaşma"),
    "Hernia": ("Hernia", "Herni"),
    "Lung Opacity": ("Lung opacity", "Akciğer opasitesi"),
    "Lung Lesion": ("Lung lesion", "Akciğer lezyonu"),
    "Fracture": ("Fracture", "Kırık"),
    "Enlarged Cardiomediastinum": ("Enlarged cardiomediastinum", "Genişlemiş kardiyomediasten"),
    "COVID-19": ("COVID-19", "COVID-19"),
    "Viral_Pneumonia": ("Viral pneumonia", "Viral pnömoni"),
    "Bacterial_Pneumonia": ("Bacterial pneumonia", "Bakteriyel pnömoni"),
    "Tuberculosis": ("Tuberculosis", "Tüberküloz"),
    "No Finding": ("No finding", "Bulgu yok"),
}
MRI_LABELS = ("Glioma", "Meningioma", "Pituitary", "No_Tumor")
MRI_SYNONYMS = {
    "glioma tumor": "Glioma",
    "glioma tumour": "Glioma",
    "meningioma tumor": "Meningioma",
    "meningioma tumour": "Meningioma",
    "pituitary tumor": "Pituitary",
    "pituitary tumour": "Pituitary",
    "no tumor": "No_Tumor",
    "no tumour": "No_Tumor",
    "notumor": "No_Tumor",
    "notumour": "No_Tumor",
    "normal": "No_Tumor",
    "healthy": "No_Tumor",
}
MRI_MENTIONS_EN = {
    "Glioma": "gliom\\w*|glioblastom\\w*|astrocytom\\w*",
    "Meningioma": "meningiom\\w*",
    "Pituitary": "pituitary (?:adenoma|macroadenoma|microadenoma|tumou?r|lesion)\\w*",
}
MRI_MENTIONS_TR = {
    "Glioma": "gliom|glioblastom",
    "Meningioma": "men[ei]n[gj]iom",  # both Turkish spellings: meningiom, menenjiom
    "Pituitary": "hipofiz (?:adenom|makroadenom|mikroadenom|tümör)",
}
MRI_PHRASES = {
    "Glioma": ("glioma", "gliom"),
    "Meningioma": ("meningioma", "menenjiom"),
    "Pituitary": ("pituitary tumour", "hipofiz tümörü"),
    "No_Tumor": ("no tumour", "tümör saptanmadı"),
}
MRI_NAMES = {
    "Glioma": ("Glioma", "Gliom"),
    "Meningioma": ("Meningioma", "Menenjiom"),
    "Pituitary": ("Pituitary tumour", "Hipofiz tümörü"),
    "No_Tumor": ("No tumour", "Tümör yok"),
}

# Codes for DICOM SR and FHIR (label -> scheme, value, meaning). Standard concepts are taken
# from DICOM PS3.16 (its SNOMED CT "SCT" and DICOM "DCM" entries) or are well-established
# SNOMED CT concepts; labels no standard concept fits exactly (dataset-specific groupings)
# use the private scheme 99MEDAI, which every document using it declares.
CXR_CODES = {
    "Atelectasis": ("SCT", "46621007", "Atelectasis"),
    "Cardiomegaly": ("SCT", "287272002", "Cardiomegaly"),  # PS3.16 CID 12248
    "Effusion": ("SCT", "60046008", "Pleural effusion"),
    "Infiltration": ("DCM", "112121", "Infiltrate"),  # PS3.16 CID 6102
    "Mass": ("SCT", "4147007", "Mass"),
    "Nodule": ("SCT", "27925004", "Nodule"),
    "Pneumonia": ("SCT", "233604007", "Pneumonia"),
    "Pneumothorax": ("SCT", "36118008", "Pneumothorax"),
    "Consolidation": ("SCT", "95436008", "Lung consolidation"),
    "Edema": ("SCT", "19242006", "Pulmonary edema"),
    "Emphysema": ("SCT", "87433001", "Pulmonary emphysema"),
    "Fibrosis": ("SCT", "112674009", "Fibrosis"),
    "Pleural_Thickening": ("99MEDAI", "CXR-PLEURTHICK", "Pleural thickening"),
    "Hernia": ("SCT", "84089009", "Hiatal hernia"),
    "Lung Opacity": ("DCM", "112001", "Opacity"),  # PS3.16 CID 6102
    "Lung Lesion": ("SCT", "52988006", "Lesion"),
    "Fracture": ("SCT", "125605004", "Fracture of bone"),
    "Enlarged Cardiomediastinum": ("99MEDAI", "CXR-ENLCARDMED", "Enlarged cardiomediastinum"),
    "COVID-19": ("SCT", "840539006", "COVID-19"),
    "Viral_Pneumonia": ("SCT", "75570004", "Viral pneumonia"),
    "Bacterial_Pneumonia": ("SCT", "53084003", "Bacterial pneumonia"),
    "Tuberculosis": ("SCT", "56717001", "Tuberculosis"),
    # "none of the dataset's labels", not "no abnormality": no standard concept says that
    "No Finding": ("99MEDAI", "CXR-NOFINDING", "No finding (of the model's labels)"),
}
MRI_CODES = {
    "Glioma": ("99MEDAI", "MRI-GLIOMA", "Glioma"),
    "Meningioma": ("99MEDAI", "MRI-MENINGIOMA", "Meningioma"),
    "Pituitary": ("99MEDAI", "MRI-PITUITARY", "Pituitary tumour"),
    "No_Tumor": ("99MEDAI", "MRI-NOTUMOR", "No tumour (of the model's classes)"),
}

# What a template draft says of the examination (en, tr), in a radiologist's register: the
# report is the radiologist's text, so it holds the examination and the findings, never the AI's
# account of itself (what it read, its scope, its doubts: the AI note,
# ``reporting.templates.ai_note``). A model that found none of its labels names the findings it
# looked for (``{findings}``, the labels it decided absent) as not seen — never "normal" or "the
# lungs are clear", which is the radiologist's to write (the note says what the model does not
# assess).
CXR_DRAFT = DraftWords(
    technique=("Chest radiograph.", "Akciğer grafisi."),
    technique_with_view=("{view} chest radiograph.", "{view} akciğer grafisi."),
    normal=("No {findings}.", "{findings} izlenmedi."),
    normal_impression=(
        "No {findings} (AI suggestion).",
        "{findings} izlenmedi (YZ önerisi).",
    ),
)
MRI_DRAFT = DraftWords(
    technique=("Brain MRI (single slice).", "Beyin MR incelemesi (tek kesit)."),
    technique_series=("Brain MRI series.", "Beyin MR serisi."),
    normal=("No {findings}.", "{findings} izlenmedi."),
    normal_impression=(
        "No {findings} (AI suggestion).",
        "{findings} izlenmedi (YZ önerisi).",
    ),
    # one class per slice: an undecided result leaves the classification to the radiologist
    indeterminate=(
        "The AI could not decide on one class for this slice between {candidates}; "
        "classification is left to the radiologist.",
        "YZ bu kesit için tek bir sınıfa karar veremedi: {candidates}; sınıflandırma "
        "radyoloğa bırakılmıştır.",
    ),
)


# what each model may be unable to detect, said with every result (``imaging.scope``): (key,
# alternative groups of labels that cover it — a group covers the key when the model has every
# label of it; no group: never covered by any label of the task). Words: ``CANNOT_DETECT_WORDS``
CXR_CANNOT_DETECT: Limits = (
    ("tuberculosis", (("Tuberculosis",),)),
    ("nodule_mass", (("Nodule", "Mass"), ("Lung Lesion",))),
    ("pneumothorax", (("Pneumothorax",),)),
    ("pleural_effusion", (("Effusion",),)),
    ("heart_size", (("Cardiomegaly",),)),
    ("pulmonary_oedema", (("Edema",),)),
    ("atelectasis", (("Atelectasis",),)),
    ("emphysema_fibrosis", (("Emphysema", "Fibrosis"),)),
    ("mediastinum", (("Enlarged Cardiomediastinum",),)),
    ("fracture", (("Fracture",),)),
    ("lines_tubes", ()),
    ("lateral_views", ()),
    ("other_body_parts", ()),
)
MRI_CANNOT_DETECT: Limits = (
    ("other_tumours", ()),
    ("tumour_extent", ()),
    ("haemorrhage", ()),
    ("stroke", ()),
    ("white_matter", ()),
    ("hydrocephalus", ()),
    ("other_body_parts", ()),
)
# patterns outside the labels that look like them (measured on the shared chest films: every
# ARDS, tuberculosis and SARS film was read COVID-19, docs/benchmarks/out_of_scope.md), as (key,
# groups of labels that cover it — a model with such labels tells it apart), listed only for a
# model that has a label they are taken for (``look_alike_of``)
CXR_LOOK_ALIKES: Limits = (
    ("ards", ()),
    ("tuberculosis", (("Tuberculosis",),)),
    ("other_infections", ()),
    ("pulmonary_oedema", (("Edema",),)),
    ("cardiomegaly", (("Cardiomegaly",),)),
)
CXR_LOOK_ALIKE_OF = frozenset(
    {
        "Pneumonia",
        "COVID-19",
        "Viral_Pneumonia",
        "Bacterial_Pneumonia",
        "Lung Opacity",
        "Consolidation",
        "Infiltration",
    }
)
MRI_LOOK_ALIKES: Limits = (("other_tumours", ()), ("abscess_demyelination", ()))
MRI_LOOK_ALIKE_OF = frozenset({"Glioma", "Meningioma", "Pituitary"})


CXR = Task(
    name="cxr",
    kind="imaging",
    loader=loader_from("medai.imaging.predict:load_predictor"),
    labels=CXR_LABELS,
    modality="chest X-ray",
    multilabel=True,
    synonyms=CXR_SYNONYMS,
    exclusive=("No Finding", "Bacterial_Pneumonia", "Viral_Pneumonia", "COVID-19"),
    normal="No Finding",
    urgent=("Pneumothorax",),
    parents={
        "COVID-19": "Viral_Pneumonia",
        "Viral_Pneumonia": "Pneumonia",
        "Bacterial_Pneumonia": "Pneumonia",
    },
    siblings=(("Bacterial_Pneumonia", "Viral_Pneumonia"),),
    dicom_modalities=("CR", "DX", "DR", "RG"),
    # frontal chest radiographs (the model never saw a lateral view)
    dicom_body_parts=("CHEST", "THORAX", "LUNG", "LUNGS", "PORT CHEST", "TORAKS", "AKCIGER"),
    dicom_views=("PA", "AP"),
    dicom_description=r"\b(chest|thorax|thoracic|lungs?|cxr|akciger\w*|akciğer\w*|toraks|"
    r"gogus|göğüs)\b",
    mentions_en=CXR_MENTIONS_EN,
    mentions_tr=CXR_MENTIONS_TR,
    phrases=CXR_PHRASES,
    display={"tr": "Akciğer grafisi", "en": "Chest X-ray"},
    label_names=CXR_NAMES,
    codes=CXR_CODES,
    draft=CXR_DRAFT,
    flip_augment=False,  # the heart's side matters (a mirrored film shows dextrocardia)
    default=True,  # the upload form's and the CLI's task when none is named
    cannot_detect=CXR_CANNOT_DETECT,
    look_alikes=CXR_LOOK_ALIKES,
    look_alike_of=CXR_LOOK_ALIKE_OF,
)
MRI = Task(
    name="mri",
    kind="imaging",
    loader=loader_from("medai.imaging.predict:load_predictor"),
    labels=MRI_LABELS,
    modality="brain MRI",
    multilabel=False,
    synonyms=MRI_SYNONYMS,
    exclusive=("Glioma", "Meningioma", "Pituitary", "No_Tumor"),
    normal="No_Tumor",
    # a glioma is read first (often high grade: oedema and mass effect that need a prompt call
    # to the clinician); a meningioma or a pituitary adenoma is usually slow-growing
    urgent=("Glioma",),
    dicom_modalities=("MR",),
    dicom_body_parts=("BRAIN", "HEAD", "SKULL", "CRANIUM", "BEYIN", "KAFA"),
    dicom_description=r"\b(brain|head|cranial|cerebr\w*|neuro\w*|beyin|kafa|kranial|"
    r"serebral)\b",
    mentions_en=MRI_MENTIONS_EN,
    mentions_tr=MRI_MENTIONS_TR,
    phrases=MRI_PHRASES,
    display={"tr": "Beyin MR", "en": "Brain MRI"},
    label_names=MRI_NAMES,
    codes=MRI_CODES,
    draft=MRI_DRAFT,
    reads_series=True,  # a study is a series of slices, read whole (imaging.series)
    flip_augment=True,  # a tumour's class does not depend on the hemisphere it is in
    cannot_detect=MRI_CANNOT_DETECT,
    look_alikes=MRI_LOOK_ALIKES,
    look_alike_of=MRI_LOOK_ALIKE_OF,
)


def register_tasks() -> None:
    """Entry point ``medai.tasks``: imaging."""
    register(CXR)
    register(MRI)
