"""The site's labelled studies as a training set: ``medai dataset export`` writes, for one
task, every study with signed labels (the latest signed version's) in the format
``medai imaging train --data`` reads — ``manifest.csv`` (``file,label,patient,src``, labels
``A|B``) beside an ``images/`` folder — and a ``datasheet.json`` naming the data: study ids,
label counts, how each label was reached, the signing date range, and one content hash of the
manifest and images.

With ``deidentify``, DICOM files go through the PS3.15 Basic Profile (``dicom.deid``;
an instance declaring burned-in annotation is left out and counted) and PNG/JPEG uploads are
re-encoded from their pixels alone (no text chunks, no EXIF). The patient column is always the
site's pseudonym (an HMAC of the patient's identifier), so a patient-grouped split needs no
identity."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from medai.core import task_registry
from medai.core.errors import MedaiError
from medai.core.task_kinds import kind_of
from medai.core.text import redact_pii
from medai.platform.dicom.deid import Deidentifier, site_secret
from medai.platform.dicom.identity_conflicts import has_open
from medai.platform.lifecycle.labels import labelled_image, labelled_versions
from medai.platform.lifecycle.site_sets import held_out
from medai.platform.lifecycle.triage_labels import labelled
from medai.platform.records.crypto import cipher
from medai.platform.records.db import utcnow
from medai.platform.records.localtime import iso_utc
from medai.platform.records.tables import Patient, Study, StudyLabel
from medai.platform.worklist.study_state import RETRACTED

MANIFEST, DATASHEET, IMAGES = "manifest.csv", "datasheet.json", "images"


class DatasetError(MedaiError, ValueError):
    """An export that cannot be written as asked (the message says why)."""

    code = "dataset"


def _patient_key(db, study: Study, pseudonym) -> str:
    if study.patient_key:
        return pseudonym(cipher().decrypt(study.patient_key))
    if study.patient_id is not None:
        patient = db.get(Patient, study.patient_id)
        if patient is not None:
            return pseudonym("ref:" + patient.ref)
    return pseudonym(f"study:{study.id}")


def _clean_image(data: bytes) -> tuple[bytes, str]:
    """A PNG/JPEG upload re-encoded from its pixels alone (PNG, lossless)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        pixels = (
            Image.frombytes(im.mode, im.size, im.tobytes())
            if im.mode in ("L", "I;16", "I", "RGB", "RGBA", "LA")
            else im.convert("RGB")
        )
        out = io.BytesIO()
        pixels.save(out, format="PNG")
    return out.getvalue(), ".png"


def _clean_dicom(data: bytes, deid) -> bytes | None:
    """The DICOM de-identified, or None when it declares burned-in annotation."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        return None
    deid.dataset(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _suffix(study: Study, data: bytes) -> str:
    if data[128:132] == b"DICM" or (study.content_type or "").endswith("dicom"):
        return ".dcm"
    return {"image/png": ".png", "image/jpeg": ".jpg"}.get(study.content_type, ".png")


def export(
    p,
    task: str,
    out: Path,
    since: datetime | None = None,
    deidentify: bool = False,
    actor: str = "cli",
    exclude_site_set: bool = False,
) -> dict[str, Any]:
    """Write the task's labelled studies into ``out`` (new or empty); returns the datasheet.
    ``exclude_site_set``: leave out the studies held out for site validation (retraining
    never sees them)."""
    spec = task_registry.get(task)
    out = Path(out).resolve()
    if out.is_relative_to(Path(p.home).resolve() / "blobs"):
        raise DatasetError("refusing to write into medai's own blob store")
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out} is not empty; give a new folder")
    if kind_of(spec.kind).export == "texts":
        return export_triage(p, out, since, deidentify, actor)
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    deid = Deidentifier(site_secret())
    fraction = p.settings.models.site_set_fraction
    rows: list[Any] = []
    ids: list[Any] = []
    counts: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    first = last = None
    digest = hashlib.sha256()
    with p.db.reader() as db:
        for study, version, signed_at in labelled_versions(db, task, since):
            if exclude_site_set and held_out(task, study.id, fraction):
                skipped["held_out_for_validation"] += 1
                continue
            if has_open(db, study.id):  # a study in doubt of its patient teaches nothing
                skipped["identity_conflict"] += 1
                continue
            if study.status == RETRACTED:  # entered in error: its labels are another's
                skipped["entered_in_error"] += 1
                continue
            labels = db.scalars(
                select(StudyLabel).where(
                    StudyLabel.study_id == study.id, StudyLabel.report_version == version
                )
            ).all()
            present = [x.label for x in labels if x.present and x.label != spec.normal]
            if not present and spec.normal is None:
                skipped["no_label"] += 1
                continue
            data = p.store.read(labelled_image(db, study, signed_at))
            suffix = _suffix(study, data)
            if deidentify:
                try:
                    if suffix == ".dcm":
                        cleaned = _clean_dicom(data, deid)
                        if cleaned is None:
                            skipped["burned_in_annotation"] += 1
                            continue
                        data = cleaned
                    else:
                        data, suffix = _clean_image(data)
                except Exception as exc:  # broad: site files' decoders: counted by type
                    skipped[f"unreadable:{type(exc).__name__}"] += 1
                    continue
            name = f"{IMAGES}/{len(rows) + 1:06d}{suffix}"
            (out / name).write_bytes(data)
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
            label = "|".join(present) or spec.normal
            rows.append(
                {
                    "file": name,
                    "label": label,
                    "patient": _patient_key(db, study, deid.pseudonym),
                    "src": "site",
                }
            )
            ids.append(study.id)
            counts.update(present or [spec.normal])
            sources.update(x.source for x in labels)
            first = first or signed_at
            last = signed_at
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=["file", "label", "patient", "src"], lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    (out / MANIFEST).write_text(buf.getvalue(), encoding="utf-8")
    digest.update(buf.getvalue().encode())
    sheet = {
        "task": task,
        "studies": len(ids),
        "study_ids": ids,
        "label_counts": dict(sorted(counts.items())),
        "label_sources": dict(sorted(sources.items())),
        "signed_from": iso_utc(first),
        "signed_to": iso_utc(last),
        "since": since.isoformat() if since else None,
        "deidentified": deidentify,
        "skipped": dict(skipped),
        "content_hash": "sha256:" + digest.hexdigest(),
        "manifest": MANIFEST,
        "exported_at": iso_utc(utcnow()),
        "exported_by": actor,
        "format": "medai imaging train --data manifest.csv (file,label,patient,src)",
    }
    (out / DATASHEET).write_text(
        json.dumps(sheet, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return sheet


def export_triage(
    p, out: Path, since: datetime | None, deidentify: bool, actor: str
) -> dict[str, Any]:
    """Triage records with a recorded outcome as ``complaints.csv`` (``text,label``: the
    format ``medai triage train --data`` reads); ``deidentify`` masks names, phone numbers
    and national ids in the text (``core.text.redact_pii``)."""

    out.mkdir(parents=True, exist_ok=True)
    rows, ids = [], []
    counts: Counter[str] = Counter()
    with p.db.reader() as db:
        for record, outcome in labelled(db):
            if since is not None and record.created_at < since:
                continue
            text = cipher().decrypt(record.complaint)
            rows.append(
                {"text": redact_pii(text) if deidentify else text, "label": outcome.department}
            )
            ids.append(record.id)
            counts[outcome.department] += 1
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["text", "label"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (out / "complaints.csv").write_text(buf.getvalue(), encoding="utf-8")
    sheet = {
        "task": "triage",
        "records": len(ids),
        "studies": len(ids),
        "triage_ids": ids,
        "label_counts": dict(sorted(counts.items())),
        "deidentified": deidentify,
        "since": since.isoformat() if since else None,
        "content_hash": "sha256:" + hashlib.sha256(buf.getvalue().encode()).hexdigest(),
        "manifest": "complaints.csv",
        "exported_at": iso_utc(utcnow()),
        "exported_by": actor,
        "format": "medai triage train --data complaints.csv",
    }
    (out / DATASHEET).write_text(
        json.dumps(sheet, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return sheet
