"""The patient's context on a study: sex, birth date and age at the study date, and the same
patient's prior studies.

Sex and birth date come from the DICOM header (PatientSex, PatientBirthDate, else PatientAge
for the age; the StudyDate is the day the age is counted to) or, for an image without a header,
from the upload form. The birth date identifies a patient: it is sealed at rest
(``studies.patient_birth_date``, ``platform.records.sealed``); the sex (M/F/O) and the age in whole
years at the study date are plain columns (migration 0026), what a list needs without opening a
token.

A prior is another study of *the same patient*, matched only by a keyed identity: the keyed
hash of the DICOM PatientID with its issuer (``studies.patient_hash``, ``crypto.Cipher
.pseudonym``; the PatientID itself stays sealed), or the same pseudonymous patient reference
(``patients``, found by its own keyed hash). Never by name or birth date: two patients may share
both. Two studies whose PatientID hashes differ are never priors of each other, whatever
reference they were uploaded with. A retracted study (entered in error) is no one's prior.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from medai.platform.dicom import identity as dicom
from medai.platform.documents.words.finding_states import version_labels
from medai.platform.records.crypto import cipher
from medai.platform.records.tables import ReportVersion, Study

SEXES = ("M", "F", "O")
"""DICOM PatientSex: male, female, other; anything else is unknown (None)."""
OLDEST = 150  # years: a birth date further back, or after the study, is refused or ignored
MAX_PRIORS = 20
RETRACTED = "entered_in_error"


def sex_of(value: str | None) -> str | None:
    v = (value or "").strip().upper()[:1]
    return v if v in SEXES else None


def _day(value: str | None) -> date | None:
    text = (value or "").strip()
    try:
        return datetime.strptime(text[:8], "%Y%m%d").date() if len(text) >= 8 else None
    except ValueError:
        return None


def age_on(birth: str | None, on: str | None) -> int | None:
    """Whole years from ``birth`` to ``on`` (both DICOM DA, YYYYMMDD); None when either is
    missing or the span is not a life (negative, over ``OLDEST``)."""
    b, d = _day(birth), _day(on)
    if b is None or d is None:
        return None
    years = d.year - b.year - ((d.month, d.day) < (b.month, b.day))
    return years if 0 <= years <= OLDEST else None


def months_on(birth: str | None, on: str | None) -> int | None:
    """Whole months from ``birth`` to ``on`` (an infant's age is said in months)."""
    b, d = _day(birth), _day(on)
    if b is None or d is None or d < b:
        return None
    return (d.year - b.year) * 12 + d.month - b.month - (d.day < b.day)


def dicom_age(value: str | None) -> int | None:
    """PatientAge (DICOM AS: ``054Y``, ``006M``, ``010W``, ``003D``) in whole years."""
    raw = (value or "").strip().upper()
    if len(raw) != 4 or not raw[:3].isdigit() or raw[3] not in "DWMY":
        return None
    n = int(raw[:3])
    years = {"Y": n, "M": n // 12, "W": n // 52, "D": n // 365}[raw[3]]
    return years if years <= OLDEST else None


def study_day(study: Study) -> str:
    """The day the study was taken (DICOM StudyDate), else the day it was filed (an upload)."""
    if study.study_date and _day(study.study_date):
        return study.study_date
    return (study.created_at or datetime.now()).strftime("%Y%m%d")


def hash_text(patient_id: str, issuer: str = "") -> str:
    """What the PatientID's keyed hash is taken of: the ID with its issuer (an ID is unique
    only within the system that issued it)."""
    return f"dicom-patient\x1f{issuer}\x1f{patient_id}"


def patient_hash(patient_id: str | None, issuer: str | None = "") -> str | None:
    """The keyed hash (newest key) of a DICOM PatientID, None without one."""
    if not (patient_id or "").strip():
        return None
    # patient_id is non-blank here (checked above)
    return cipher().pseudonym(hash_text(cast(str, patient_id).strip(), (issuer or "").strip()))


def columns(
    identity: dicom.DicomIdentity | None,
    sex: str | None = None,
    birth_date: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A new study's patient columns: from the DICOM header where it says, else from the
    upload form (``sex``, ``birth_date`` YYYYMMDD, already checked by the route). The age is
    counted to the study date (a DICOM StudyDate, else the day of filing)."""
    ident = identity or dicom.DicomIdentity()
    born = ident.birth_date or (birth_date or "")
    day = ident.study_date if _day(ident.study_date) else (now or datetime.now()).strftime("%Y%m%d")
    age = age_on(born, day)
    if age is None and not born:
        age = dicom_age(ident.age)
    return {
        "patient_sex": sex_of(ident.sex) or sex_of(sex),
        "patient_birth_date": born if _day(born) else None,
        "patient_age": age,
        "patient_hash": patient_hash(ident.patient_id, ident.issuer),
    }


def as_dict(study: Study) -> dict[str, Any] | None:
    """The patient's context for the API and the page (None when nothing is known): sex,
    birth date (ISO), age in years at the study date (and in months under two years), and
    the day it is counted to."""
    born = study.patient_birth_date
    sex, age = study.patient_sex, study.patient_age
    if not (sex or born or age is not None):
        return None
    day = study_day(study)
    if born:
        age = age_on(born, day)
    months = months_on(born, day) if born and age is not None and age < 2 else None
    b = _day(born)
    return {
        "sex": sex,
        "birth_date": b.isoformat() if b else None,
        "age_years": age,
        "age_months": months,
        "on": cast(date, _day(day)).isoformat() if _day(day) else None,  # checked: a date
    }


# --- prior studies -----------------------------------------------------------------------------


def _hashed(study: Study) -> str | None:
    """What the study's PatientID hash is taken of (None: it has no PatientID, or its sealed
    ID cannot be opened)."""
    pid = (dicom.unseal(study.patient_key, study.id) or "").strip()
    if not pid:
        return None
    try:
        known = dicom.unseal_json(study.patient_identity, study.id) or {}
    except ValueError:  # not JSON: the identity is unreadable, the issuer unknown
        return None
    return hash_text(pid, (known.get("issuer") or "").strip())


def hash_of(study: Study) -> str | None:
    """The study's PatientID hash under the newest key (what a key rotation stores)."""
    text = _hashed(study)
    return cipher().pseudonym(text) if text else None


def _hashes(study: Study) -> list[str]:
    """The keyed hashes (under every configured key: a rotation may not have re-keyed every
    study yet) of the study's PatientID and issuer; none without a PatientID."""
    text = _hashed(study)
    return cipher().pseudonyms(text) if text else []


def same_patient(db: Session, study: Study) -> list[Study]:
    """Every other study of the study's patient (keyed identity only; retracted ones left
    out)."""
    hashes = _hashes(study)
    match: list[ColumnElement[bool]] = []
    if hashes:
        match.append(Study.patient_hash.in_(hashes))
    if study.patient_id is not None:
        match.append(Study.patient_id == study.patient_id)
    if not match:
        return []
    rows = db.scalars(
        select(Study).where(or_(*match), Study.id != study.id, Study.status != RETRACTED)
    ).all()
    # a PatientID on both sides rules: a shared reference never joins two PatientIDs
    return [
        s
        for s in rows
        if not (hashes and s.patient_hash is not None and s.patient_hash not in hashes)
    ]


def _order(study: Study) -> tuple[str, int]:
    return study_day(study), study.id


def _signed(db: Session, study_id: int) -> ReportVersion | None:
    """The latest signed report version of a study (an unsigned amendment after it aside)."""
    return db.scalar(
        select(ReportVersion)
        .where(ReportVersion.study_id == study_id, ReportVersion.signed_by.is_not(None))
        .order_by(ReportVersion.version.desc())
        .limit(1)
    )


def priors(db: Session, study: Study, limit: int = MAX_PRIORS) -> list[Study]:
    """The same patient's studies taken before this one, newest first."""
    here = _order(study)
    earlier = [s for s in same_patient(db, study) if _order(s) < here]
    return sorted(earlier, key=_order, reverse=True)[:limit]


def prior_list(db: Session, study: Study) -> list[dict[str, Any]]:
    """The priors as the study page lists them: date, task, status and the signed
    impression (only a signed report's: an unsigned draft is no one's word)."""
    out = []
    for s in priors(db, study):
        signed = _signed(db, s.id)
        day = _day(study_day(s))
        out.append(
            {
                "id": s.id,
                "task": s.task,
                "modality": s.modality,
                "status": s.status,
                # the viewer (OHIF) opens current and prior side by side by their UIDs
                "study_uid": s.study_uid,
                "study_date": day.isoformat() if day else None,
                "signed": signed is not None,
                "signed_at": signed.signed_at.isoformat() + "Z"
                if signed is not None and signed.signed_at
                else None,
                "impression": ((signed.sections or {}).get("impression") or "").strip() or None
                if signed is not None
                else None,
            }
        )
    return out


def comparison_prior(db: Session, study: Study) -> dict[str, Any] | None:
    """What the AI draft compares today's findings with: the latest *signed* prior of the
    same patient and the same task (chest with chest, MRI with MRI) and what its signer
    decided of each label (``study_labels`` of that signed version), and who signed it
    (``signed_by``: whose measurements of it count). None: no such prior.
    ``recorded`` is False when that signature stored no labels (nothing to compare)."""
    for s in priors(db, study, limit=10_000):
        if s.task != study.task:
            continue
        signed = _signed(db, s.id)
        if signed is None:
            continue
        labels = version_labels(db, s.id, signed.version)
        return {
            "study_id": s.id,
            "date": study_day(s),
            "version": signed.version,
            "signed_by": signed.signed_by,
            "recorded": bool(labels),
            "present": sorted(r["label"] for r in labels if r["present"]),
            "absent": sorted(r["label"] for r in labels if not r["present"]),
        }
    return None


__all__ = [
    "SEXES",
    "age_on",
    "as_dict",
    "columns",
    "comparison_prior",
    "hash_of",
    "hash_text",
    "patient_hash",
    "prior_list",
    "priors",
    "same_patient",
    "sex_of",
    "study_day",
]
