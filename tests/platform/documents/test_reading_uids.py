"""Each reading of a study has AI objects of its own (issue 67): the findings SR, the heatmap
Secondary Capture, its Parametric Map and the key image note of a later reading (instances
that arrived after the first reading) get SOP Instance UIDs (and, for the SR, SC and map, a
Series Instance UID) of their own, so a PACS that keeps the first copy of a UID never keeps
the earlier reading's content under them; the same reading built again is byte for byte the
same object (an idempotent resend); the first reading keeps the UIDs medai gave before
readings had their own (what a PACS already holds). The rejection note that withdraws a
replaced reading is titled CID 7011's "Rejected for Quality Reasons" and is one per
replacing reading."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from helpers.viewer import mr_series
from medai.core.results import ModelRef
from medai.core.task_registry import get as get_task
from medai.imaging.decision import OperatingPolicy, decide
from medai.imaging.results import Finding, ImagingResult
from medai.platform.documents.dicom_objects import SourceImage, save_bytes, uid
from medai.platform.documents.ko.dicom_key_images import key_image_note
from medai.platform.documents.ko.dicom_rejection import (
    SUPERSEDED,
    read_rejection_note,
    rejection_note,
)
from medai.platform.documents.sc_pm.dicom_heatmap import heatmap_pm, heatmap_sc
from medai.platform.documents.sr.findings_sr import findings_sr

CREATED = dt.datetime(2024, 3, 5, 9, 30, 15, tzinfo=dt.UTC)
LATER = dt.datetime(2024, 3, 5, 9, 41, 2, tzinfo=dt.UTC)
READINGS = ("", "20:41", "20:41#77")  # the first reading; instances 21..40; another request
POLICY = OperatingPolicy(min_confidence=0.5, min_margin=0.15)


def payload(probs: dict[str, float], keys: list[str]) -> dict:
    """An MRI result as the platform stores it (ImagingResult JSON) with key slices."""
    task = get_task("mri")
    decision = decide(task, {lab: 0.02 for lab in task.labels} | probs, POLICY)
    out = ImagingResult(
        status="ai_suggestion",
        task="mri",
        refused=False,
        findings=[Finding(**row.model_dump()) for row in decision.labels],
        primary=decision.primary,
        decision=decision,
        model=ModelRef(
            name="mri-tiny",
            version="1.2.0",
            content_hash="sha256:" + "5e" * 32,
            task="mri",
            model_type="efficientnet-lite0",
        ),
    ).model_dump(mode="json")
    out["read"] = {
        "series_uid": "1.2.3",
        "instances_in_series": 3,
        "instances_read": 3,
        "key_instances": keys,
        "read_instances": keys,
        "sampled": False,
        "cap": 200,
        "rule": "run",
    }
    return out


@pytest.fixture
def study(tmp_path):
    """Three MR slices with geometry (a Parametric Map's source): the headers, the source."""
    slices = mr_series(tmp_path, 3, study=generate_uid(), accession="ACC-READ")
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path, _sop, _z in slices]
    return SourceImage.from_dataset(headers[0]), headers


def objects(study, reading: str, result: dict) -> list[pydicom.Dataset]:
    """Every AI object of one reading, built as the outbox builds them."""
    source, headers = study
    model, decision = result["model"], result["decision"]
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    saliency = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    common = {"created": CREATED, "reading": reading}
    return [
        findings_sr(source, result, **common),
        heatmap_sc(source, rgb, label="Glioma", decision=decision, model=model, **common),
        heatmap_pm(headers[0], saliency, label="Glioma", decision=decision, model=model, **common),
        key_image_note(source, result, headers, **common),
    ]


def test_each_reading_has_objects_of_its_own_and_a_resend_is_the_same(study):
    _source, headers = study
    keys = [str(h.SOPInstanceUID) for h in headers[1:]]
    result = payload({"Glioma": 0.81, "Meningioma": 0.1}, keys)
    built = {reading: objects(study, reading, result) for reading in READINGS}
    sops = [str(ds.SOPInstanceUID) for reading in READINGS for ds in built[reading]]
    assert len(set(sops)) == len(sops) == 4 * len(READINGS)  # same content, other reading
    for kind in range(3):  # the SR, the picture and the map: a series per reading
        series = {str(built[reading][kind].SeriesInstanceUID) for reading in READINGS}
        assert len(series) == len(READINGS)
    for reading in READINGS:  # built again (a resend): the very same objects
        assert [save_bytes(ds) for ds in objects(study, reading, result)] == [
            save_bytes(ds) for ds in built[reading]
        ]


def test_the_first_reading_keeps_the_uids_objects_were_sent_under(study):
    """A PACS holds objects medai sent before readings had UIDs of their own: the first
    reading's are those (a later rejection names what the PACS holds)."""
    source, _headers = study
    result = payload({"Glioma": 0.81}, [])
    m = result["model"]
    sr = findings_sr(source, result, created=CREATED)
    assert str(sr.SOPInstanceUID) == uid(
        "ai-sr", source.sop_instance_uid, m["content_hash"], m["version"]
    )
    assert str(sr.SeriesInstanceUID) == uid(
        "ai-sr-series", source.study_instance_uid, m["content_hash"]
    )
    later = findings_sr(source, result, created=CREATED, reading="20:41")
    assert later.SOPInstanceUID != sr.SOPInstanceUID


def test_a_replaced_reading_is_rejected_for_quality_reasons_once_per_replacing_reading(study):
    source, headers = study
    keys = [str(h.SOPInstanceUID) for h in headers[1:]]
    old = objects(study, "", payload({"Glioma": 0.62}, keys))
    kwargs = {"reason": SUPERSEDED, "retracted_at": LATER, "destination": "pacs"}
    note = rejection_note(source, old, replaced_by="12", **kwargs)
    said = read_rejection_note(note)
    assert said["code"] == ("DCM", "113001", "Rejected for Quality Reasons")
    assert said["rejected"] == sorted((str(ds.SOPClassUID), str(ds.SOPInstanceUID)) for ds in old)
    (text,) = [item.TextValue for item in note.ContentSequence if item.ValueType == "TEXT"]
    assert "later AI reading" in text
    assert save_bytes(rejection_note(source, old, replaced_by="12", **kwargs)) == save_bytes(note)
    other = rejection_note(source, old, replaced_by="13", **kwargs)
    assert other.SOPInstanceUID != note.SOPInstanceUID
    retraction = rejection_note(
        source, old, reason="wrong_patient", retracted_at=LATER, destination="pacs"
    )
    assert retraction.SOPInstanceUID not in (note.SOPInstanceUID, other.SOPInstanceUID)
