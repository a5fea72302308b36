"""The AI's key slices as an IHE Key Image Note (``documents.ko.dicom_key_images``), read back
with pydicom and highdicom: titled "Of Interest", the model as the observer that selected them,
said to be an AI suggestion in the report's language, the key images (a frame of a multi-frame
instance by number) in its content and evidence under the SR's patient and study; the same
object on every rebuild; no note where there is nothing of interest. Checked by dciodvfy where
it is installed."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess

import pydicom
import pytest

from helpers.viewer import mr_series
from medai.core.results import ModelRef
from medai.core.task_registry import get as get_task
from medai.imaging.decision import OperatingPolicy, decide
from medai.imaging.results import Finding, ImagingResult
from medai.platform.documents.dicom_objects import DicomObjectError, SourceImage, save_bytes
from medai.platform.documents.ko.dicom_key_images import (
    key_image_note,
    key_refs,
    read_key_image_note,
)
from medai.platform.documents.ko.dicom_kos import KOS_SOP_CLASS
from medai.platform.documents.sr.findings_sr import findings_sr

CREATED = dt.datetime(2024, 3, 5, 9, 30, 15, tzinfo=dt.UTC)
MR = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"  # a multi-frame SOP class
POLICY = OperatingPolicy(min_confidence=0.5, min_margin=0.15)


def result(probs: dict[str, float], read: dict | None) -> dict:
    """An MRI result as the platform stores it (ImagingResult JSON), with its ``read``."""
    task = get_task("mri")
    decision = decide(task, {lab: 0.02 for lab in task.labels} | probs, POLICY)
    payload = ImagingResult(
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
    payload["read"] = read
    return payload


GLIOMA = {"Glioma": 0.81, "Meningioma": 0.10, "Pituitary": 0.05, "No_Tumor": 0.04}


@pytest.fixture
def series(tmp_path):
    """Five MR slices and a three-frame instance of one study: their headers, the source."""
    from pydicom.uid import generate_uid

    study = generate_uid()
    slices = mr_series(tmp_path, 5, study=study, accession="ACC-KIN")
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path, _sop, _z in slices]
    mf = pydicom.dcmread(slices[0][0])
    mf.SOPInstanceUID = mf.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    mf.SOPClassUID = mf.file_meta.MediaStorageSOPClassUID = ENHANCED_MR
    mf.NumberOfFrames = 3
    headers.append(mf)
    return SourceImage.from_dataset(headers[0]), headers


def _read(sops, key):
    return {
        "series_uid": "1.2.3",
        "instances_in_series": len(sops),
        "instances_read": len(sops),
        "key_instances": key,
        "read_instances": sops,
        "sampled": False,
        "cap": 200,
        "rule": "run",
    }


def test_the_note_references_the_key_slices_under_the_sr_s_patient_and_study(series):
    source, headers = series
    sops = [str(h.SOPInstanceUID) for h in headers]
    mf = sops[5]
    payload = result(GLIOMA, _read(sops[:5] + [f"{mf}#2"], [sops[3], sops[2], f"{mf}#2"]))
    kos = pydicom.dcmread(
        io.BytesIO(
            save_bytes(key_image_note(source, payload, headers, created=CREATED, language="en"))
        )
    )
    assert kos.SOPClassUID == KOS_SOP_CLASS and kos.Modality == "KO"
    said = read_key_image_note(kos)
    assert said["code"] == ("DCM", "113000", "Of Interest")  # the IHE key image note's title
    assert said["images"] == [(MR, sops[3], []), (MR, sops[2], []), (ENHANCED_MR, mf, [2])]
    assert said["evidence"] == sorted([(MR, sops[3]), (MR, sops[2]), (ENHANCED_MR, mf)])
    assert said["observers"] == ["mri-tiny"]  # the AI selected them, not a person
    assert "AI suggestion, not a diagnosis" in said["description"]
    assert "Glioma" in said["description"] and "mri-tiny 1.2.0" in said["description"]
    sr = findings_sr(source, payload, created=CREATED)
    for keyword in (
        "PatientID",
        "PatientName",
        "PatientBirthDate",
        "StudyInstanceUID",
        "AccessionNumber",
        "StudyID",
        "StudyDate",
    ):
        assert kos.get(keyword) == sr.get(keyword), keyword
    assert kos.SeriesInstanceUID != sr.SeriesInstanceUID
    assert "not a diagnosis" in kos.SeriesDescription


def test_the_note_is_in_the_report_s_language():
    from pydicom.uid import generate_uid

    ds = pydicom.Dataset()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Rows, ds.Columns = MR, generate_uid(), 64, 64
    ds.PatientID, ds.PatientName, ds.Modality = "P1", "Yılmaz^Ayşe", "MR"
    source = SourceImage.from_dataset(ds)
    payload = result(GLIOMA, _read([ds.SOPInstanceUID], [ds.SOPInstanceUID]))
    said = read_key_image_note(key_image_note(source, payload, [ds], created=CREATED))
    assert "Gliom" in said["description"] and "tanı değildir" in said["description"]


def test_a_rebuild_is_the_same_object_and_other_key_slices_another(series):
    source, headers = series
    sops = [str(h.SOPInstanceUID) for h in headers[:5]]
    payload = result(GLIOMA, _read(sops, [sops[1], sops[2]]))
    first = save_bytes(key_image_note(source, payload, headers, created=CREATED))
    assert save_bytes(key_image_note(source, payload, headers, created=CREATED)) == first
    other = key_image_note(
        source, result(GLIOMA, _read(sops, [sops[2], sops[3]])), headers, created=CREATED
    )
    assert other.SOPInstanceUID != pydicom.dcmread(io.BytesIO(first)).SOPInstanceUID
    assert other.SeriesInstanceUID == pydicom.dcmread(io.BytesIO(first)).SeriesInstanceUID


def test_nothing_of_interest_makes_no_note(series):
    source, headers = series
    sops = [str(h.SOPInstanceUID) for h in headers[:5]]
    normal = {"No_Tumor": 0.9, "Glioma": 0.04, "Meningioma": 0.03, "Pituitary": 0.03}
    assert key_refs(result(GLIOMA, _read(sops, [sops[1]]))) == [sops[1]]
    assert key_refs(result(normal, _read(sops, [sops[1]]))) == []  # a normal read
    assert key_refs(result(GLIOMA, _read(sops, []))) == []  # no key slices
    assert key_refs(result(GLIOMA, None)) == []  # a result stored before series were read
    assert key_refs({**result(GLIOMA, _read(sops, [sops[1]])), "refused": True}) == []
    # a study's only image, or every one of its images: a selection that selects nothing
    one = result(GLIOMA, _read(sops[:1], sops[:1]))
    assert key_refs(one, images=1) == [] and key_refs(one, images=2) == sops[:1]
    assert key_refs(result(GLIOMA, _read(sops, sops)), images=5) == []
    with pytest.raises(DicomObjectError):
        key_image_note(source, result(GLIOMA, _read(sops, [sops[1]])), [], created=CREATED)


def test_dciodvfy_finds_no_errors_in_the_note(series, tmp_path):
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy is not installed (Debian package dicom3tools)")
    source, headers = series
    sops = [str(h.SOPInstanceUID) for h in headers]
    payload = result(GLIOMA, _read(sops, [sops[2], f"{sops[5]}#3"]))
    path = tmp_path / "kos.dcm"
    path.write_bytes(save_bytes(key_image_note(source, payload, headers, created=CREATED)))
    out = subprocess.run([tool, "-new", str(path)], capture_output=True, text=True, timeout=60)
    errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]
    assert errors == [], out.stdout + out.stderr
