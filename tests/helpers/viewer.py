"""A study with a series for the viewer's tests: small MR slices with their geometry (built with
pydicom, ``helpers.dicom.make_dicom``), filed through the API, and the AI result's ``read``
(which slices were read, which carry the decision) stored through the platform's own
``ai_results.save_result``, so the marks a test checks are known."""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from helpers.dicom import make_dicom

ORIENTATION = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]  # axial: the slice normal is the patient's z


def mr_series(
    folder: Path,
    n: int,
    *,
    study: str,
    series: str | None = None,
    accession: str = "ACC-MR-SERIES",
    description: str | None = "T2 aksiyel beyin",
    geometry: bool = True,
    numbers: list[int] | None = None,
    size: int = 64,
) -> list[tuple[Path, str, float]]:
    """``n`` axial MR slices of one series, in anatomical order (z rising 5 mm a slice):
    (file, SOP Instance UID, z). ``numbers``: their InstanceNumbers (default 1..n in the same
    order); ``geometry`` False leaves out ImagePositionPatient/ImageOrientationPatient."""
    from pydicom.uid import generate_uid

    series = series or generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    frame_of_reference = generate_uid()
    out = []
    for k in range(n):
        sop, z = generate_uid(), -40.0 + 5.0 * k
        extra = {"InstanceNumber": (numbers or list(range(1, n + 1)))[k]}
        if geometry:
            extra.update(
                FrameOfReferenceUID=frame_of_reference,
                ImagePositionPatient=[-90.0, -100.0, z],
                ImageOrientationPatient=ORIENTATION,
                PixelSpacing=[0.9, 0.9],
                SliceThickness=5.0,
            )
        path = make_dicom(
            folder / f"{sop}.dcm",
            "MR",
            body_part="BRAIN",
            view=None,
            study=study,
            series=series,
            sop=sop,
            accession=accession,
            description=description,
            rows=size,
            cols=size,
            seed=100 + k,
            **extra,
        )
        out.append((path, sop, z))
    return out


def settled(p, study_id: int, timeout: float = 240.0) -> None:
    """Wait until no analysis of the study is queued or running (the embedded pool's jobs)."""
    from sqlalchemy import select

    from medai.platform.records.tables import Job, Study

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with p.db.reader() as db:
            busy = db.scalar(
                select(Job.id)
                .where(Job.study_id == study_id, Job.status.in_(("queued", "running")))
                .limit(1)
            )
            status = db.get(Study, study_id).status
        if busy is None and status not in ("received", "analysing"):
            return
        time.sleep(0.1)
    raise AssertionError(f"study {study_id} is still being analysed")


def store_read(
    p,
    study_id: int,
    *,
    series_uid: str,
    read: list[str],
    key: list[str],
    heatmap_instance: str | None = None,
    in_series: int | None = None,
    read_extra: dict | None = None,
    update=None,
) -> dict:
    """A new imaging result of the study (the latest one, as every view reads it): the stored
    result's findings, decision, model and heatmap, with ``read`` naming the slices read and
    the key slices (``ai_results.save_result``, the analysis's own function)."""
    from medai.platform.worklist import ai_results

    with p.db.reader() as db:
        row = ai_results.latest_result(db, study_id)
        payload, heat = dict(row.payload), (row.heatmap_sha256, row.heatmap_label)
        model = SimpleNamespace(
            name=row.model_name, version=row.model_version, content_hash=row.model_hash
        )
    payload["read"] = {
        "series_uid": series_uid,
        "instances_in_series": in_series or len(read),
        "instances_read": len(read),
        "key_instances": key,
        "read_instances": read,
        "sampled": False,
        "cap": 64,
        "rule": "test",
        "series_choice": {"chosen": series_uid, "considered": 1, "why": "the only series"},
    }
    payload["read"] |= read_extra or {}
    if update is not None:  # e.g. the decision of another reading: payload -> payload
        payload = update(payload)
    if heatmap_instance is not None:
        payload["heatmap_instance"] = heatmap_instance
    # another reading of the same model: its own row, the latest (a content hash of its own
    # keeps the older row's unique key out of the way whatever the key's other columns)
    model.content_hash = f"{model.content_hash[:60]}+viewer-{uuid.uuid4().hex[:12]}"
    ai_results.save_result(
        p, study_id, "imaging", model, payload, heat if heat[0] is not None else None
    )
    return payload


@contextmanager
def mri_ui_server(home: Path, answers: dict[str, float], triage_dir: Path, cxr_dir: Path):
    """A real ``medai serve`` (``ui_server``) with one radiologist, ``rad1``, on its own SQLite
    database, whose brain MRI model reads every slice as ``answers``; yields the base URL."""
    from helpers.builders import answering_model
    from helpers.platform import ui_server

    mri = answering_model(home / "mri-model", "mri", answers, {"min_confidence": 0.5})
    with ui_server(
        home,
        {"rad1": "radiologist"},
        MEDAI_DATABASE_URL="",
        MEDAI_MODELS=f"triage={triage_dir},cxr={cxr_dir},mri={mri}",
    ) as base:
        yield base


@contextmanager
def served_platform(home: Path, url: str | None = None):
    """The platform of a ``medai serve`` started with ``MEDAI_HOME=home`` (``ui_server``),
    opened in this process on the same database and keys: what a browser test reads and
    stores beside the server (this process's settings are put back afterwards)."""
    import os

    from medai.platform.boot import open_platform
    from medai.platform.records.crypto import cipher
    from medai.settings import get_settings

    saved = {k: os.environ.get(k) for k in ("MEDAI_HOME", "MEDAI_DATABASE_URL")}
    os.environ["MEDAI_HOME"] = str(home)
    os.environ.pop("MEDAI_DATABASE_URL", None)
    get_settings.cache_clear()
    cipher.cache_clear()
    p = open_platform(url or f"sqlite:///{home / 'medai.db'}", adopt_models=False)
    try:
        yield p
    finally:
        p.db.dispose()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
        cipher.cache_clear()
