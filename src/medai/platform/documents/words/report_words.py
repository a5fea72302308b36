"""The words of a report that leaves the system (PDF, FHIR text), in the report's own language.

Every heading, label, status name and the AI disclosure come from here, so a Turkish report is
Turkish throughout. The disclosure follows the report's state: an unsigned AI draft says it
awaits review and claims no signature; a signed one names the signer and the local time; a
report with no AI draft says it was written by hand; an amendment says so.
"""

from __future__ import annotations

import re
from typing import Any

from medai.core.task_registry import TaskError
from medai.core.task_registry import get as get_task
from medai.platform.access.accounts import person_parts, signs_as
from medai.platform.dicom.identity import display_name
from medai.services.imaging import scope_text

LANGUAGES = ("tr", "en")
# A report's sections, in the order every view, document and message prints them: the one list
# (the API's schema, the editor and the exports read it). "measurements": the radiologist's
# viewer measurements (``reading.measurements``), sizes against a prior's (issue 68).
SECTIONS = ("technique", "findings", "measurements", "impression", "recommendation")
# the statuses of a report a radiologist signed (and may have amended since): one list for the
# documents, the delivery and the worklist's signed filter
SIGNED = ("final", "amended")

WORDS: dict[str, dict[str, str]] = {
    "tr": {
        "title": "Radyoloji Raporu",
        "study": "Tetkik no",
        "stamp": "İMZALANMAMIŞ TASLAK",
        "status": "Rapor durumu",
        "version": "sürüm",
        "examination": "Tetkik",
        "patient": "Hasta kodu",
        "patient_context": "Hasta",
        "question": "Klinik soru",
        "sex_F": "Kadın",
        "sex_M": "Erkek",
        "sex_O": "Diğer",
        "sex_unknown": "Cinsiyet bilinmiyor",
        "age_years": "{n} yaş",
        "age_months": "{n} aylık",
        "born": "doğum {date}",
        "signed_by": "İmzalayan",
        "signed_at": "İmza zamanı",
        "not_signed": "İmzalanmadı",
        "version_date": "Sürüm tarihi",
        "ai_model": "Yapay zekâ modeli",
        "ai_suggestion": "yapay zekâ önerisi",
        "ai_refused": "bu görüntüyü değerlendirmedi (YZ taslağı yok)",
        "findings_title": "Yapay zekâ bulguları (öneri)",
        "col_finding": "Bulgu",
        "col_probability": "Olasılık",
        "col_threshold": "Eşik",
        "col_decision": "YZ kararı",
        "present": "var",
        "absent": "yok",
        "undecided": "belirsiz",
        "normal_present": "geçerli",
        "normal_absent": "geçerli değil",
        "implied": "{by} kapsamında",
        "candidate": "{state} (ayırt edilemeyen adaylardan)",
        "threshold_note": "karar eşiği {threshold}",
        "conflict": "{state} (çelişki: model normal ile bulguyu birlikte işaretledi)",
        "col_signer": "Radyolog",
        "confirmed": "radyolog onayladı",
        "rejected": "radyolog reddetti",
        "added": "radyolog ekledi",
        "decided": "radyolog karar verdi: {answer}",
        "not_decided": "radyolog karar vermedi (karar verilmedi)",
        "method_signer": "İmzalayan radyoloğun bulgusu",
        "method_ai_verdict": "Yapay zekâ modeli önerisi (tanı değil); {verdict}",
        "heatmap_rejected": (
            "Isı haritası gösterilmiyor: {label} bulgusunu imzalayan radyolog reddetti"
        ),
        "heatmap_decided_absent": (
            "Isı haritası gösterilmiyor: YZ'nin karar veremediği {label} için imzalayan radyolog "
            "karar verdi: yok"
        ),
        "ai_candidates": "Yapay zekâ kararsız kaldı; adaylar: {labels}",
        "ai_conflict": ("Yapay zekâ çelişkili: {labels} birlikte eşiğin üzerinde"),
        "findings_title_signed": ("Yapay zekâ bulguları (öneri) ve imzalayan radyoloğun kararı"),
        "citation_rejected": (
            "(imzalayan radyoloğun reddettiği yapay zekâ önerisi {label} "
            "hakkında; bu raporun sonucunu desteklemez)"
        ),
        "technique": "Teknik",
        "findings": "Bulgular",
        "measurements": "Ölçümler",
        "impression": "Sonuç",
        "recommendation": "Öneri",
        "sources": "Kaynaklar",
        "ai_appendix": "Ek: yapay zekâ değerlendirmesi (öneri, rapor metninin parçası değildir)",
        "ai_note": "YZ notu",
        "image": "Görüntü",
        "heatmap": "Grad-CAM ısı haritası: {label} (yapay zekâ önerisi)",
        "page": "Tetkik {study} · sürüm {version} · sayfa {page}/{pages}",
        "empty": "—",
        "report_text": "Radyoloji raporu",
        "preliminary": "Ön rapor",
        "final": "Kesin rapor",
        "amended": "Düzeltilmiş rapor",
        "retracted_notice": (
            "GERİ ÇEKİLDİ — hatalı giriş ({reason}): bu çalışma {by} tarafından {when} geri "
            "çekildi. Bu rapor geçersizdir; klinik kararda kullanılmaz."
        ),
        "retract_wrong_patient": "yanlış hasta",
        "retract_wrong_study": "yanlış çalışma / istem",
        "retract_safety": "hasta güvenliği",
        "method_unsigned": "Yapay zekâ modeli önerisi; henüz radyolog incelemesinden geçmedi",
        "method_signed": "Yapay zekâ modeli önerisi; raporu imzalayan radyolog inceledi",
        "ai_unsigned": (
            "Bu rapor yapay zekâ tarafından hazırlanmış bir taslaktır ve henüz bir "
            "radyolog tarafından incelenip onaylanmamıştır. Radyolog onayı "
            "olmadan klinik karar için kullanılmamalıdır."
        ),
        "hand_unsigned": (
            "Bu rapor yapay zekâ taslağı kullanılmadan, elle yazılmaktadır; henüz imzalanmamıştır."
        ),
        "ai_signed": (
            "Taslak yapay zekâ desteğiyle hazırlanmış; {signer} tarafından {when} "
            "tarihinde incelenip imzalanmıştır."
        ),
        "ai_signed_edited": (
            "Taslak yapay zekâ desteğiyle hazırlanmış; {signer} tarafından "
            "incelenip düzenlenmiş ve {when} tarihinde imzalanmıştır."
        ),
        "ai_signed_unchanged": (
            "Taslak yapay zekâ desteğiyle hazırlanmış; {signer} tarafından "
            "incelenmiş ve {when} tarihinde değiştirilmeden "
            "imzalanmıştır."
        ),
        "hand_signed": (
            "Bu rapor yapay zekâ taslağı kullanılmadan {signer} tarafından elle "
            "yazılmış ve {when} tarihinde imzalanmıştır."
        ),
        "amended_signed": "Düzeltilmiş rapor: daha önce imzalanmış bir raporun değişikliğidir.",
        "amended_unsigned": (
            "Düzeltilmiş rapor taslağı: daha önce imzalanmış bir raporda "
            "yapılan bu değişiklik henüz incelenip onaylanmamıştır; onaylanana "
            "kadar klinik karar için kullanılmamalıdır."
        ),
        "ai_first_draft": "İlk taslak yapay zekâ desteğiyle hazırlanmıştı.",
        "not_diagnosis": "Yapay zekâ çıktısı tanı değil, öneridir.",
        "unknown_time": "zamanı bilinmiyor",
        "patient_name": "Hasta adı",
        "patient_id": "Hasta no",
        "accession": "Erişim no",
        "study_date": "Tetkik tarihi",
        "acquisition": "Görüntü",
    },
    "en": {
        "title": "Radiology report",
        "study": "Study no.",
        "stamp": "NOT SIGNED — DRAFT",
        "status": "Report status",
        "version": "version",
        "examination": "Examination",
        "patient": "Patient reference",
        "patient_context": "Patient",
        "question": "Clinical question",
        "sex_F": "Female",
        "sex_M": "Male",
        "sex_O": "Other",
        "sex_unknown": "Sex unknown",
        "age_years": "{n} years",
        "age_months": "{n} months",
        "born": "born {date}",
        "signed_by": "Signed by",
        "signed_at": "Signed at",
        "not_signed": "Not signed",
        "version_date": "Version date",
        "ai_model": "AI model",
        "ai_suggestion": "AI suggestion",
        "ai_refused": "did not assess this image (no AI draft)",
        "findings_title": "AI findings (suggestions)",
        "col_finding": "Finding",
        "col_probability": "Probability",
        "col_threshold": "Threshold",
        "col_decision": "AI decision",
        "present": "present",
        "absent": "absent",
        "undecided": "indeterminate",
        "normal_present": "applies",
        "normal_absent": "does not apply",
        "implied": "included in {by}",
        "candidate": "{state} (one of the candidates it could not separate)",
        "threshold_note": "operating threshold {threshold}",
        "conflict": "{state} (conflict: the model marked normal and a finding together)",
        "col_signer": "Radiologist",
        "confirmed": "confirmed by the signer",
        "rejected": "rejected by the signer",
        "added": "added by the signer",
        "decided": "decided by the signer: {answer}",
        "not_decided": "not decided by the signer",
        "method_signer": "Finding stated by the signing radiologist",
        "method_ai_verdict": "AI model suggestion (not a diagnosis); {verdict}",
        "heatmap_rejected": "Heatmap not shown: the signing radiologist rejected {label}",
        "heatmap_decided_absent": (
            "Heatmap not shown: the AI could not decide {label}; the signing radiologist decided "
            "it absent"
        ),
        "ai_candidates": "The AI was undecided between: {labels}",
        "ai_conflict": "The AI contradicted itself: {labels} all above their thresholds",
        "findings_title_signed": "AI findings (suggestions) and the signing radiologist's verdict",
        "citation_rejected": (
            "(about {label}, an AI suggestion the signing radiologist "
            "rejected; not support for this report's conclusion)"
        ),
        "technique": "Technique",
        "findings": "Findings",
        "measurements": "Measurements",
        "impression": "Impression",
        "recommendation": "Recommendation",
        "sources": "Sources",
        "ai_appendix": "Appendix: the AI's assessment (a suggestion, not part of the report's text)",
        "ai_note": "AI note",
        "image": "Image",
        "heatmap": "Grad-CAM heatmap: {label} (AI suggestion)",
        "page": "Study {study} · version {version} · page {page}/{pages}",
        "empty": "—",
        "report_text": "Radiology report",
        "preliminary": "Preliminary",
        "final": "Final",
        "amended": "Amended",
        "retracted_notice": (
            "RETRACTED — entered in error ({reason}): this study was retracted by {by} on "
            "{when}. This report is void; not for clinical use."
        ),
        "retract_wrong_patient": "wrong patient",
        "retract_wrong_study": "wrong study / order",
        "retract_safety": "patient safety",
        "method_unsigned": "AI model suggestion, not yet reviewed by a radiologist",
        "method_signed": "AI model suggestion, reviewed by the signing radiologist",
        "ai_unsigned": (
            "This report is an AI-generated draft awaiting review: no radiologist "
            "has reviewed or approved it yet. It must not be used for clinical "
            "decisions before a radiologist signs it."
        ),
        "hand_unsigned": "Written by hand without an AI draft; not signed yet.",
        "ai_signed": ("Drafted with AI assistance; reviewed and signed by {signer} on {when}."),
        "ai_signed_edited": (
            "Drafted with AI assistance; reviewed, edited and signed by {signer} on {when}."
        ),
        "ai_signed_unchanged": (
            "Drafted with AI assistance; reviewed and signed without changes by {signer} on {when}."
        ),
        "hand_signed": "Written by {signer} by hand, without an AI draft; signed on {when}.",
        "amended_signed": "Amended report: a change to a report that had been signed.",
        "amended_unsigned": (
            "Amended draft: this change to a report that had been signed has "
            "not been reviewed or approved yet; it must not be used for "
            "clinical decisions before it is."
        ),
        "ai_first_draft": "The first draft was prepared with AI assistance.",
        "not_diagnosis": "AI output is a suggestion, not a diagnosis.",
        "unknown_time": "an unrecorded time",
        "patient_name": "Patient name",
        "patient_id": "Patient ID",
        "accession": "Accession no.",
        "study_date": "Study date",
        "acquisition": "Image",
    },
}


def dicom_rows(study: dict[str, Any], lang: str) -> list[tuple[str, str]]:
    """The DICOM identity a report header prints (patient, order, date, what the image is);
    nothing for an uploaded image without one."""
    d, w = study.get("dicom") or {}, words(lang)
    date = d.get("study_date") or ""
    if len(date) == 8:
        date = (
            f"{date[6:]}.{date[4:6]}.{date[:4]}"
            if lang == "tr"
            else f"{date[:4]}-{date[4:6]}-{date[6:]}"
        )
    image = " · ".join(
        str(d[k])
        for k in ("modality", "view_position", "body_part", "series_description")
        if d.get(k)
    )
    rows = [
        (w["patient_name"], display_name(d.get("patient_name"))),
        (w["patient_id"], d.get("patient_id")),
        (w["accession"], d.get("accession")),
        (w["study_date"], date),
        (w["acquisition"], image),
    ]
    return [(k, str(v)) for k, v in rows if v]


def patient_line(patient: dict[str, Any] | None, lang: str) -> str:
    """The patient's sex and age at the study date as a report says it ("Kadın, 54 yaş ·
    doğum 12.03.1971"; an infant's age in months); '' when nothing is known."""
    if not patient:
        return ""
    w = words(lang)
    age = (
        w["age_months"].format(n=patient["age_months"])
        if patient.get("age_months") is not None
        else w["age_years"].format(n=patient["age_years"])
        if patient.get("age_years") is not None
        else ""
    )
    sex = w.get(f"sex_{patient.get('sex')}") or (w["sex_unknown"] if age else "")
    line = ", ".join(x for x in (sex, age) if x)
    born = str(patient.get("birth_date") or "")
    if len(born) == 10:  # YYYY-MM-DD
        day = f"{born[8:]}.{born[5:7]}.{born[:4]}" if lang == "tr" else born
        line = " · ".join(x for x in (line, w["born"].format(date=day)) if x)
    return line


def upper(text: str, lang: str) -> str:
    """Capitals with Turkish dotted and dotless i in Turkish (``str.upper`` makes i → I)."""
    if lang == "tr":
        text = text.replace("i", "İ").replace("ı", "I")
    return text.upper()


def language(study: dict[str, Any]) -> str:
    lang = study.get("language")
    return lang if lang in LANGUAGES else "tr"


def words(lang: str) -> dict[str, str]:
    return WORDS[lang if lang in LANGUAGES else "tr"]


def is_signed(report: dict[str, Any]) -> bool:
    return bool(report.get("signed_by"))


def signer_name(report: dict[str, Any]) -> str | None:
    """How the documents name the signer: title and full name ("Uzm. Dr. Ayşe Yılmaz"), the
    user name when no full name is set (``versions.as_dict``'s ``signed_by_name``); None when
    unsigned."""
    if not report.get("signed_by"):
        return None
    return signs_as(
        str(report["signed_by"]), report.get("signed_by_name"), report.get("signed_by_title")
    )


def signer_parts(report: dict[str, Any]) -> dict[str, Any] | None:
    """The signer's name in parts, for a structured name (FHIR HumanName, DICOM PN, HL7 XCN):
    user name, text, family, given names, title; family and given empty when no full name is
    set. None when unsigned."""
    text = signer_name(report)
    if text is None:
        return None
    full = str(report.get("signed_by_name") or "")
    family, given = person_parts(full) if full else ("", [])
    return {
        "username": str(report["signed_by"]),
        "text": text,
        "family": family,
        "given": given,
        "title": str(report.get("signed_by_title") or "") if full else "",
    }


def status_name(report: dict[str, Any], lang: str) -> str:
    status = str(report.get("status") or "")
    return (
        words(lang).get(status, status) if status in ("preliminary", "final", "amended") else status
    )


def _task(name: str | None):

    try:
        return get_task(name) if name else None
    except TaskError:
        return None


def examination(study: dict[str, Any], lang: str) -> str:
    """The task's name for people (its definition's ``display``, else the study's modality,
    else the task's name)."""
    task = _task(study.get("task"))
    named = getattr(task, "display", None) or {}
    return named.get(lang) or str(study.get("modality") or study.get("task") or "")


def label_name(task_name: str | None, label: str, lang: str) -> str:
    """A finding's name in ``lang``: the registry's table name, else its report phrase (the
    first letter raised), else the label itself."""
    task = _task(task_name)
    if task is not None and label in (getattr(task, "label_names", None) or {}):
        return task.label_name(label, lang)
    pair = (getattr(task, "phrases", None) or {}).get(label)
    if pair:
        text = pair[1] if lang == "tr" else pair[0]
        return upper(text[:1], lang) + text[1:]
    return label.replace("_", " ")


def is_negative_label(task_name: str | None, label: str | None) -> bool:
    """Whether a label's name is itself a negative ("Bulgu yok", "Tümör yok": the task's
    normal class): present/absent beside it would read as a double negative."""
    task = _task(task_name)
    return bool(label) and label == getattr(task, "normal", None)


def state_word(task_name: str | None, label: str | None, state: str | None, lang: str) -> str:
    """The one word for a label's state (present, absent, indeterminate) as every output
    prints it beside the label's name. A label whose name is a negative reads "geçerli" /
    "geçerli değil" ("applies" / "does not apply"), never "Tümör yok — yok" or "Bulgu yok —
    var". The web UI's ``medai.stateWord`` (``static/app.js``) follows the same rule."""
    w = words(lang)
    if state == "indeterminate":
        return w["undecided"]
    if state not in ("present", "absent"):
        return w["empty"]
    if is_negative_label(task_name, label):
        return w[f"normal_{state}"]
    return w[state]


def decision(finding: dict[str, Any], lang: str, task: str | None = None) -> str:
    """The AI's answer for one finding as people read it: its ``state`` (the decision's, never
    re-derived), with why when it matters — implied by which finding, one of the undecided
    candidates, one side of a conflict. A label only the signer named has none (—)."""
    w = words(lang)
    state = finding.get("state")
    if state not in ("present", "absent", "indeterminate"):
        return w["empty"]
    text = state_word(task, finding.get("label"), state, lang)
    basis = finding.get("basis")
    if state == "present" and basis == "implied" and finding.get("implied_by"):
        # a parent its sub-finding implies is not a finding of its own: never "var" beside its
        # own low probability (COVID-19 → viral pneumonia)
        return w["implied"].format(by=label_name(task, str(finding["implied_by"]), lang))
    if basis == "conflict":
        return w["conflict"].format(state=text)
    if state == "indeterminate":
        return w["candidate"].format(state=text)
    return text


def verdict(finding: dict[str, Any], lang: str, task: str | None = None) -> str:
    """The signer's verdict on the AI's answer (— when nothing was signed for the label; an
    undecided label the signer did not choose reads "not decided", never "rejected")."""
    w, v = words(lang), finding.get("verdict")
    if v is None:
        return w["empty"]
    if v == "decided":
        answer = state_word(
            task, finding.get("label"), "present" if finding.get("signer") else "absent", lang
        )
        return w["decided"].format(answer=answer)
    return w[v]


def decision_note(decision: dict[str, Any] | None, task: str | None, lang: str) -> str:
    """One line for an undecided or self-contradicting AI result, naming its labels; '' else."""
    if not decision:
        return ""
    w = words(lang)
    names = ", ".join(label_name(task, str(x), lang) for x in decision.get("conflict") or [])
    if decision.get("conflict"):
        return w["ai_conflict"].format(labels=names)
    if decision.get("state") == "indeterminate" and decision.get("candidates"):
        return w["ai_candidates"].format(
            labels=", ".join(label_name(task, str(x), lang) for x in decision["candidates"])
        )
    return ""


def citation_line(citation: dict[str, Any], study: dict[str, Any], lang: str) -> str:
    """``title — source — licence``; a title that is a label of the study's task (the bundled
    knowledge base titles its passages so) is named in ``lang``."""
    title = str(citation.get("title") or "")
    task = _task(study.get("task"))
    by_key = {lab.replace("_", " ").lower(): lab for lab in getattr(task, "labels", ())}
    if title.replace("_", " ").lower() in by_key:
        title = label_name(study.get("task"), by_key[title.replace("_", " ").lower()], lang)
    return " — ".join(
        p
        for p in (title, str(citation.get("source") or ""), str(citation.get("licence") or ""))
        if p
    )


def citation_label(citation: dict[str, Any], task_name: str | None) -> str | None:
    """The label of the study's task a cited passage is about, or None (a site document about
    no one label). Citations carry no label (``reporting.draft``: id, n, source, licence,
    title, text); the bundled knowledge base tags each passage with one and gives it an id
    ``medai-<label>-<lang>`` and a title that is the label's name in the passage's language
    ("Bakteriyel pnömoni", "Bacterial Pneumonia"). In order: a ``label`` the citation names;
    the title naming a label (either language, any case, ``_``/``-``/space alike); the id."""
    task = _task(task_name)
    labels = tuple(getattr(task, "labels", ()) or ())
    named = citation.get("label")
    if isinstance(named, str) and named and (named in labels or not labels):
        return named

    def key(text: Any) -> str:
        return " ".join(re.split(r"[\s_\-]+", str(text))).strip().casefold()

    names: dict[str, str] = {}
    for lab in labels:
        for name in (lab, label_name(task_name, lab, "en"), label_name(task_name, lab, "tr")):
            names.setdefault(key(name), lab)
    title = key(citation.get("title") or "")
    if title in names:
        return names[title]
    bundled = re.fullmatch(r"medai-(.+)-[a-z]{2}", str(citation.get("id") or ""))
    return names.get(key(bundled.group(1))) if bundled else None


def scope(report: dict[str, Any], study: dict[str, Any], lang: str) -> dict[str, str]:
    """The AI model's scope in the report's words (``services.imaging.scope_text``: the one
    words table): ``detects``, ``cannot_detect``, ``cannot_tell_apart`` (what it would read
    as one of its labels), ``out_of_scope`` (the flag, '' when in scope) and the headings; {}
    when the report has no AI result."""
    if not report.get("scope"):
        return {}

    return scope_text(report["scope"], str(study.get("task") or ""), lang)


def scope_paragraph(report: dict[str, Any], study: dict[str, Any], lang: str) -> str:
    """The scope as one paragraph of plain text (FHIR's report text and notes)."""
    s = scope(report, study, lang)
    if not s:
        return ""
    keys = ("out_of_scope", "detects", "cannot_detect", "cannot_tell_apart")
    lines = [s[k] for k in keys if s.get(k)]
    return f"{upper(s['title'], lang)} ({words(lang)['ai_suggestion']}):\n" + "\n".join(lines)


def report_text(report: dict[str, Any], lang: str) -> str:
    """The sections as plain text under the language's headings; empty sections left out."""
    w, sections = words(lang), report.get("sections") or {}
    return "\n\n".join(
        f"{upper(w[name], lang)}:\n{sections[name].strip()}"
        for name in SECTIONS
        if (sections.get(name) or "").strip()
    )


# The model card's prose in the UI's language. Cards are sealed English JSON (``model_card.json``
# of each model dir, ``docs/model-cards``); the sentences medai's trainers write are known and
# rendered from these localized templates. Other prose (a card written by hand) is shown as
# written, marked with its own language so the page says so.
CARD_SENTENCES: dict[str, dict[str, str]] = {
    "Suggest findings for a radiologist to review.": {
        "tr": "Radyoloğun incelemesi için bulgu önerir.",
    },
    "Suggest a caption for a radiologist to edit.": {
        "tr": "Radyoloğun düzenlemesi için görüntü açıklaması önerir.",
    },
    "Suggest a hospital department for a patient's free-text complaint, for staff review. "
    "Not a diagnosis; red-flag rules run independently.": {
        "tr": "Hastanın serbest metin yakınması için personelin incelemesine bir hastane bölümü "
        "önerir. Tanı değildir; kırmızı bayrak kuralları bağımsız çalışır.",
    },
}
CARD_PREFIXES: dict[str, dict[str, str]] = {
    "Trained on the images recorded under 'data'.": {
        "tr": "'data' altında kayıtlı görüntülerle eğitildi. Açık görüntü setleri çoğu zaman "
        "ticari olmayan ya da belirtilmemiş lisanslar taşır (her kaynağın PROVENANCE "
        "dosyasına bakın); modeli yeniden dağıtmadan önce denetleyin.",
    },
    "Trained on the data recorded under 'data'.": {
        "tr": "'data' altında kayıtlı verilerle eğitildi. Sağlık soru-cevap sitelerinden "
        "toplanan metinler kullanıcıların yazdığıdır ve çoğunlukla lisanssızdır: modeli "
        "yeniden dağıtmadan önce kaynağınızın koşullarını denetleyin ve eğitimden önce kişi "
        "adlarını çıkarın (--redact).",
    },
    "The baseline is this model without class weights and without calibration.": {
        "tr": "Temel yöntem, bu modelin sınıf ağırlıkları ve kalibrasyon olmadan eğitilmiş "
        "hâlidir. Makro-F1'leri berabere kaldığında yalnızca bu modelin olasılıkları "
        "kalibre edilmiştir (ECE yaklaşık 0,02'ye karşı 0,24); çekimser kalma eşiği ve kapsam "
        "dışı yönlendirmesi buna dayanır.",
    },
    "Captions are quoted from the training pairs": {
        "tr": "Açıklamalar eğitim çiftlerinden alıntılanır: dizin metinlerini yeniden dağıtır, "
        "dolayısıyla açıklama setinin lisansını devralır (PROVENANCE dosyasına bakın).",
    },
}
CARD_PATTERNS: tuple[tuple[str, dict[str, str]], ...] = (
    (
        r"(?P<task>\S+) findings \((?P<kind>[^)]+)\), (?P<n>\d+) labels",
        {
            "en": "{task_name} findings ({kind}), {n} labels",
            "tr": "{task_name} bulguları ({kind}), {n} etiket",
        },
    ),
    (
        r"Complaint → department \((?P<kind>[^)]+)\), (?P<n>\d+) departments\.",
        {
            "en": "Complaint → department ({kind}), {n} departments.",
            "tr": "Yakınma → bölüm ({kind}), {n} bölüm.",
        },
    ),
    (
        r"retrieval captioner \((?P<kind>.+)\)",
        {
            "en": "retrieval captioner ({kind})",
            "tr": "erişim tabanlı açıklama önerici ({kind})",
        },
    ),
)
CARD_PROSE = ("description", "intended_use", "licence_notes")


def card_sentence(text: str, lang: str) -> tuple[str, str]:
    """One prose field of a model card in ``lang``: (text, the language it is in)."""
    if lang == "en" or not text:
        return text, "en"
    if text in CARD_SENTENCES and lang in CARD_SENTENCES[text]:
        return CARD_SENTENCES[text][lang], lang
    for prefix, words_ in CARD_PREFIXES.items():
        if text.startswith(prefix) and lang in words_:
            return words_[lang], lang
    for pattern, templates in CARD_PATTERNS:
        m = re.fullmatch(pattern, text.strip())
        if m and lang in templates:
            found = m.groupdict()
            task = _task(found.get("task"))
            name = task.display_name(lang) if task is not None else found.get("task", "")
            return templates[lang].format(task_name=name, **found), lang
    return text, "en"


def card_text(card: dict[str, Any] | None, lang: str) -> dict[str, Any]:
    """The card's prose fields in ``lang`` (``text``) and the language each is in (``lang``:
    a field no template covers stays in the card's own English and says so)."""
    lang = lang if lang in LANGUAGES else "tr"
    text, langs = {}, {}
    for key in CARD_PROSE:
        value = (card or {}).get(key)
        if isinstance(value, str) and value:
            text[key], langs[key] = card_sentence(value, lang)
    kept = ((card or {}).get("baselines") or {}).get("kept_because")
    if isinstance(kept, str) and kept:
        text["kept_because"], langs["kept_because"] = card_sentence(kept, lang)
    return {"text": text, "lang": langs}
