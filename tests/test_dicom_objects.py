"""AI results and signed reports as DICOM objects, read back with pydicom and highdicom,
checked by dciodvfy where installed, and stored into a real Orthanc (C-STORE and STOW-RS),
then queried back with QIDO-RS / WADO-RS."""

from __future__ import annotations

import datetime as dt
import io
import logging
import shutil
import subprocess

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medai.core.results import ModelRef
from medai.core.tasks import PRIVATE_SCHEME, Task, TaskError
from medai.core.tasks import get as get_task
from medai.imaging.decision import OperatingPolicy, decide
from medai.imaging.results import Finding, ImagingResult
from medai.platform.integration.dicom_heatmap import (
    heatmap_pm,
    heatmap_sc,
    overlay_on_film,
    pm_suitable,
)
from medai.platform.integration.dicom_objects import (
    DicomObjectError,
    SourceImage,
    findings_sr,
    read_findings_sr,
    save_bytes,
)
from medai.platform.integration.dicom_report import report_sr, report_uids
from medai.platform.integration.dicom_send import (
    NOT_SENT,
    DestinationRejected,
    DestinationUnavailable,
    c_store,
    stow_rs,
)
from orthanc_helpers import MEDAI_AET, orthanc  # noqa: F401 (the fixture)
from platform_helpers import refusing_port

CREATED = dt.datetime(2024, 3, 5, 9, 30, 15)
SIGNED_AT = "2024-03-05T10:02:03.456789Z"
DX = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
MR = "1.2.840.10008.5.1.4.1.1.4"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
SC = "1.2.840.10008.5.1.4.1.1.7"
PATIENT_NAME = "Yılmaz^Ayşe"
PATIENT_ID = "TR-PID-90817"


def model(task: str, version: str = "1.2.0") -> ModelRef:
    return ModelRef(name=f"{task}-tiny", version=version, content_hash="sha256:" + "5e" * 32,
                    task=task, model_type="efficientnet-lite0")


def result(task_name: str, probs: dict[str, float], policy: OperatingPolicy,
           version: str = "1.2.0") -> dict:
    """An imaging result exactly as the platform stores it (ImagingResult JSON)."""
    task = get_task(task_name)
    full = {lab: 0.02 for lab in task.labels} | probs
    decision = decide(task, full, policy)
    findings = [Finding(**row.model_dump()) for row in decision.labels]
    return ImagingResult(status="ai_suggestion", task=task_name, refused=False,
                         findings=findings, primary=decision.primary, decision=decision,
                         model=model(task_name, version)).model_dump(mode="json")


CXR_POLICY = OperatingPolicy(thresholds={"Pneumothorax": 0.6, "Effusion": 0.45},
                             fragile=["Hernia"])
MRI_POLICY = OperatingPolicy(min_confidence=0.5, min_margin=0.15)
# positive (above threshold, and implied parents), negative, fragile
CXR_EXPECTED = {"Pneumothorax": ("present", "above_threshold", 0.91, 0.6),
                "COVID-19": ("present", "above_threshold", 0.83, 0.5),
                "Viral_Pneumonia": ("present", "implied", 0.02, 0.5),
                "Pneumonia": ("present", "implied", 0.02, 0.5),
                "Effusion": ("absent", "below_threshold", 0.40, 0.45),
                "No Finding": ("absent", "below_threshold", 0.10, 0.5)}
MRI_EXPECTED = {"Glioma": ("present", "above_threshold", 0.81, 0.5),
                "Meningioma": ("absent", "not_top", 0.10, 0.5)}
MRI_CLOSE_EXPECTED = {"Glioma": ("indeterminate", "indeterminate", 0.46, 0.5),
                      "Meningioma": ("indeterminate", "not_top", 0.40, 0.5),
                      "Pituitary": ("absent", "not_top", 0.08, 0.5)}
CXR_RESULT = result("cxr", {"Pneumothorax": 0.91, "Effusion": 0.40, "COVID-19": 0.83,
                            "No Finding": 0.10, "Hernia": 0.05}, CXR_POLICY)
MRI_RESULT = result("mri", {"Glioma": 0.81, "Meningioma": 0.10, "Pituitary": 0.05,
                            "No_Tumor": 0.04}, MRI_POLICY)
MRI_CLOSE = result("mri", {"Glioma": 0.46, "Meningioma": 0.40, "Pituitary": 0.08,
                           "No_Tumor": 0.06}, MRI_POLICY)


def source_image(modality: str = "DX") -> tuple[SourceImage, Dataset]:
    """A small source image (a real DICOM dataset, as a modality sends it) and its values."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = DX if modality == "DX" else MR
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (
        generate_uid(), generate_uid(), generate_uid())
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = \
        ds.SOPClassUID, ds.SOPInstanceUID
    ds.Modality, ds.PatientID, ds.PatientName = modality, PATIENT_ID, PATIENT_NAME
    ds.PatientBirthDate, ds.PatientSex, ds.AccessionNumber = "19790412", "F", "ACC-2024-77"
    ds.StudyID, ds.StudyDate, ds.StudyTime = "77", "20240305", "091000"
    ds.ReferringPhysicianName, ds.SeriesNumber, ds.InstanceNumber = "", 1, 1
    ds.BodyPartExamined = "CHEST" if modality == "DX" else "BRAIN"
    if modality == "DX":
        ds.PatientOrientation = ["L", "F"]
    else:  # a slice on the patient's geometry (what a Parametric Map needs)
        ds.FrameOfReferenceUID = generate_uid()
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [-90, -100, 12.5], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.9, 0.9], 5.0
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 16, 16, 1, \
        "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.arange(256, dtype=np.uint8).tobytes()
    return SourceImage.from_dataset(ds), ds


def reread(ds: Dataset) -> Dataset:
    return pydicom.dcmread(io.BytesIO(save_bytes(ds)))


def check_findings(read: dict, payload: dict, expected: dict, task: Task,
                   source: SourceImage) -> None:
    by_label = {f["label"]: f for f in read["findings"]}
    assert set(by_label) == {row["label"] for row in payload["decision"]["labels"]}
    for label, (state, basis, probability, threshold) in expected.items():
        got = by_label[label]
        assert got["code"] == task.finding_code(label), label
        assert (got["state"], got["basis"]) == (state, basis), label
        assert got["probability"] == pytest.approx(probability), label
        assert got["threshold"] == pytest.approx(threshold), label
        assert got["source"] == [(source.sop_class_uid, source.sop_instance_uid)]
    stored = {row["label"]: row for row in payload["decision"]["labels"]}
    for label, got in by_label.items():  # every row equals the stored result's
        assert got["probability"] == pytest.approx(stored[label]["probability"])
        assert got["threshold"] == pytest.approx(stored[label]["threshold"])
        assert (got["state"] == "present") == stored[label]["positive"]
    m = payload["model"]
    assert read["algorithms"] == [(m["name"], m["version"],
                                   (f"content_hash={m['content_hash']}",
                                    f"task={task.name}"))]
    assert (read["completion"], read["verification"], read["preliminary"]) == \
        ("PARTIAL", "UNVERIFIED", "PRELIMINARY")


# ---------------------------------------------------------------- registry codes


def test_every_label_has_a_code_and_codes_are_distinct():
    for name in ("cxr", "mri"):
        task = get_task(name)
        codes = [task.finding_code(lab) for lab in task.labels]
        assert set(task.codes) == set(task.labels)
        assert len(set(codes)) == len(codes)
        assert all(len(value) <= 16 and len(meaning) <= 64 for _, value, meaning in codes)
    cxr = get_task("cxr")
    assert cxr.finding_code("Pneumothorax") == ("SCT", "36118008", "Pneumothorax")
    assert cxr.finding_code("No Finding")[0] == PRIVATE_SCHEME


def test_a_task_without_codes_gets_stable_private_ones_and_bad_codes_are_refused():
    def loader(*a, **k):
        raise NotImplementedError

    plain = Task(name="site-task", kind="triage", loader=loader, labels=("A b", "C"))
    code = plain.finding_code("A b")
    assert code[0] == PRIVATE_SCHEME and len(code[1]) <= 16 and code == Task(
        name="site-task", kind="triage", loader=loader, labels=("C", "A b")).finding_code("A b")
    assert plain.finding_code("C") != code
    with pytest.raises(TaskError, match="same code"):
        Task(name="t", kind="triage", loader=loader, labels=("A", "B"),
             codes={"A": ("SCT", "1", "x"), "B": ("SCT", "1", "y")}).validate()
    with pytest.raises(TaskError, match="at most 16"):
        Task(name="t", kind="triage", loader=loader, labels=("A",),
             codes={"A": ("SCT", "12345678901234567", "x")}).validate()
    with pytest.raises(TaskError, match="not among its labels"):
        Task(name="t", kind="triage", loader=loader, labels=("A",),
             codes={"Z": ("SCT", "1", "x")}).validate()


# ---------------------------------------------------------------- findings SR


@pytest.mark.parametrize(("payload", "expected", "modality"), [
    (CXR_RESULT, CXR_EXPECTED, "DX"), (MRI_RESULT, MRI_EXPECTED, "MR"),
    (MRI_CLOSE, MRI_CLOSE_EXPECTED, "MR")], ids=["cxr", "mri", "mri-indeterminate"])
def test_findings_sr_reads_back_as_the_result(payload, expected, modality, tmp_path):
    source, _ = source_image(modality)
    task = get_task(payload["task"])
    sr = findings_sr(source, payload, created=CREATED)
    path = tmp_path / "sr.dcm"
    path.write_bytes(save_bytes(sr))
    back = hd.sr.srread(path)  # highdicom's reader, from the file
    assert back.SOPClassUID == COMPREHENSIVE_SR
    check_findings(read_findings_sr(back), payload, expected, task, source)
    ds = pydicom.dcmread(path)
    assert (ds.StudyInstanceUID, ds.PatientID, str(ds.PatientName), ds.AccessionNumber) == \
        (source.study_instance_uid, PATIENT_ID, PATIENT_NAME, "ACC-2024-77")
    assert ds.SeriesInstanceUID != source.series_instance_uid
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert ds.ConceptNameCodeSequence[0].CodeValue == "126000"  # what OHIF looks for
    assert [s.CodingSchemeDesignator for s in ds.CodingSchemeIdentificationSequence] == \
        [PRIVATE_SCHEME]
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == source.study_instance_uid
    assert evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0] \
        .ReferencedSOPInstanceUID == source.sop_instance_uid
    library = [i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue
               == "111028"]
    image = library[0].ContentSequence[0].ContentSequence[0]
    assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.sop_instance_uid


def test_fragile_operating_points_are_said():
    source, _ = source_image()
    sr = reread(findings_sr(source, CXR_RESULT, created=CREATED))
    report = hd.sr.MeasurementReport.from_sequence([sr])
    fragile = {g.tracking_identifier for g in report.get_image_measurement_groups()
               if any(q.name.value == "FRAGILE" for q in g.get_qualitative_evaluations())}
    assert fragile == {"Hernia"}


def test_findings_sr_is_the_same_object_when_built_again():
    source, _ = source_image()
    first = save_bytes(findings_sr(source, CXR_RESULT, created=CREATED))
    assert save_bytes(findings_sr(source, CXR_RESULT, created=CREATED)) == first
    newer = findings_sr(source, result("cxr", {"Pneumothorax": 0.91}, CXR_POLICY, "1.3.0"),
                        created=CREATED)
    assert newer.SOPInstanceUID != pydicom.dcmread(io.BytesIO(first)).SOPInstanceUID


def test_refused_or_anonymous_results_make_no_sr():
    source, _ = source_image()
    refused = ImagingResult(status="refused", task="cxr", refused=True, reason="not a chest",
                            reason_code="wrong_modality", model=model("cxr")
                            ).model_dump(mode="json")
    with pytest.raises(DicomObjectError, match="refused"):
        findings_sr(source, refused, created=CREATED)
    with pytest.raises(DicomObjectError, match="no model"):
        findings_sr(source, {**CXR_RESULT, "model": {"name": "x"}}, created=CREATED)


# ---------------------------------------------------------------- heatmap SC


def test_overlay_on_film_keeps_the_film_where_transparent():
    film = np.full((4, 6), 0.5, dtype=np.float32)
    overlay = np.zeros((2, 3, 4), dtype=np.uint8)
    overlay[..., 0] = 255  # red ...
    overlay[0, :, 3] = 255  # ... opaque only in the top row
    rgb = overlay_on_film(film, overlay)
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    assert tuple(rgb[3, 5]) == (128, 128, 128)


def test_heatmap_sc_is_rgb_in_the_study_referencing_the_source():
    source, _ = source_image()
    rgb = np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    sc = reread(heatmap_sc(source, rgb, label="Pneumothorax", model=CXR_RESULT["model"],
                           created=CREATED, task=get_task("cxr")))
    assert sc.SOPClassUID == SC and sc.PhotometricInterpretation == "RGB"
    assert np.array_equal(sc.pixel_array, rgb)
    assert sc.StudyInstanceUID == source.study_instance_uid
    assert sc.SeriesInstanceUID not in (source.series_instance_uid,)
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.sop_instance_uid
    assert (sc.PatientID, str(sc.PatientName)) == (PATIENT_ID, PATIENT_NAME)
    assert "Pneumothorax" in sc.SeriesDescription and "not a diagnosis" in sc.ImageComments
    again = heatmap_sc(source, rgb, label="Pneumothorax", model=CXR_RESULT["model"],
                       created=CREATED)
    assert again.SOPInstanceUID == sc.SOPInstanceUID
    with pytest.raises(DicomObjectError):
        heatmap_sc(source, rgb[..., 0], label="x", model=CXR_RESULT["model"], created=CREATED)


# ---------------------------------------------------------------- signed report SR

REPORT = {"version": 3, "status": "final", "signed_by": "rad1", "signed_at": SIGNED_AT,
          "sections": {"technique": "PA akciğer grafisi.", "findings": "Sağda pnömotoraks.",
                       "impression": "Pnömotoraks.", "recommendation": ""},
          "ai_assisted": True, "ai_disclosure": "Drafted with AI assistance (medai)."}


def test_parametric_map_only_where_the_source_has_geometry_and_from_the_stored_overlay():
    """A radiograph has no patient geometry for a map; an MR slice gets one on its grid, the
    same object when built again, its values the overlay's saliency (8-bit exact)."""
    from medai.imaging.explain import overlay_rgba
    from medai.services.imaging import saliency_of_overlay

    dx, mr = source_image("DX")[1], source_image("MR")[1]
    assert not pm_suitable(dx) and pm_suitable(mr)
    thin = source_image("MR")[1]
    del thin.SliceThickness  # removed by a de-identifier: no map rather than a failed send
    assert not pm_suitable(thin)
    with pytest.raises(DicomObjectError):
        heatmap_pm(dx, np.zeros((16, 16), np.float32), label="Pneumothorax",
                   model=CXR_RESULT["model"], created=CREATED)
    heat = np.random.default_rng(1).random((40, 48)).astype(np.float32)
    png = io.BytesIO()
    Image.fromarray(overlay_rgba(heat.copy()), mode="RGBA").save(png, format="PNG")
    assert np.array_equal(saliency_of_overlay(png.getvalue(), 40, 48),
                          np.floor(heat * 255) / 255)  # transparent pixels included
    saliency = saliency_of_overlay(png.getvalue(), 16, 16)  # onto the source's grid
    built = heatmap_pm(mr, saliency, label="Glioma", model=MRI_RESULT["model"],
                       created=CREATED)
    pm = reread(built)
    assert pm.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30" and pm.Modality == "OT"
    assert pm.FrameOfReferenceUID == mr.FrameOfReferenceUID
    assert pm.StudyInstanceUID == mr.StudyInstanceUID and pm.PatientID == PATIENT_ID
    assert np.array_equal(pm.pixel_array, saliency)
    mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert mapping.LUTLabel == "GRADCAM" and float(mapping.RealWorldValueSlope) == 1.0
    assert "not a diagnosis" in pm.ImageComments
    assert save_bytes(heatmap_pm(mr, saliency, label="Glioma", model=MRI_RESULT["model"],
                                 created=CREATED)) == save_bytes(built)
    with pytest.raises(DicomObjectError):  # not on the source's grid
        heatmap_pm(mr, saliency[:8], label="Glioma", model=MRI_RESULT["model"],
                   created=CREATED)
    with pytest.raises(ValueError):  # a picture that is no overlay of ours
        saliency_of_overlay(_gray_png(), 4, 4)


def _gray_png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((4, 4, 4), 7, np.uint8), mode="RGBA").save(out, format="PNG")
    return out.getvalue()


def content_text(ds: Dataset) -> dict[str, str]:
    out = {}
    for item in ds.ContentSequence:
        if item.ValueType == "CONTAINER":
            for child in item.ContentSequence:
                if child.ValueType == "TEXT":
                    out[item.ConceptNameCodeSequence[0].CodeMeaning] = child.TextValue
        elif item.ValueType == "TEXT":
            out[item.ConceptNameCodeSequence[0].CodeMeaning] = item.TextValue
    return out


def test_signed_report_sr_names_the_signer_and_amendment_its_predecessor():
    source, _ = source_image()
    sr = reread(report_sr(source, REPORT, organization="Ankara Test Hastanesi",
                          signer="Demir^Elif"))
    assert (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag) == \
        ("COMPLETE", "VERIFIED", "FINAL")
    observer = sr.VerifyingObserverSequence[0]
    assert str(observer.VerifyingObserverName) == "Demir^Elif"
    assert observer.VerifyingOrganization == "Ankara Test Hastanesi"
    assert observer.VerificationDateTime == "20240305100203"
    assert sr.TimezoneOffsetFromUTC == "+0000"
    assert content_text(sr) == {"Current Procedure Descriptions": "PA akciğer grafisi.",
                                "Findings": "Sağda pnömotoraks.",
                                "Impressions": "Pnömotoraks.",
                                "Comment": "Drafted with AI assistance (medai)."}
    assert sr.StudyInstanceUID == source.study_instance_uid
    assert (sr.SeriesInstanceUID, sr.SOPInstanceUID) == report_uids(source, 3)
    assert "PredecessorDocumentsSequence" not in sr
    amended = reread(report_sr(source, {**REPORT, "version": 5, "status": "amended",
                                        "sections": {**REPORT["sections"],
                                                     "impression": "Küçük pnömotoraks."}},
                               organization="Ankara Test Hastanesi", previous_version=3))
    previous = amended.PredecessorDocumentsSequence[0]
    assert previous.StudyInstanceUID == source.study_instance_uid
    ref = previous.ReferencedSeriesSequence[0]
    assert (ref.SeriesInstanceUID, ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID) == \
        (sr.SeriesInstanceUID, sr.SOPInstanceUID)
    assert amended.SeriesInstanceUID == sr.SeriesInstanceUID
    assert amended.SOPInstanceUID != sr.SOPInstanceUID
    assert str(amended.VerifyingObserverSequence[0].VerifyingObserverName) == "rad1^"


def test_an_unsigned_report_is_not_sent():
    source, _ = source_image()
    with pytest.raises(DicomObjectError, match="signed"):
        report_sr(source, {**REPORT, "status": "preliminary", "signed_by": None},
                  organization="x")
    with pytest.raises(DicomObjectError, match="earlier"):
        report_sr(source, REPORT, organization="x", previous_version=3)


# ---------------------------------------------------------------- dciodvfy


def all_objects(modality: str = "DX") -> tuple[Dataset, list[Dataset]]:
    source, image = source_image(modality)
    payload = CXR_RESULT if modality == "DX" else MRI_RESULT
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    maps = [] if modality == "DX" else [heatmap_pm(
        image, np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16),
        label=payload["primary"], model=payload["model"], created=CREATED)]
    return image, [
        findings_sr(source, payload, created=CREATED),
        heatmap_sc(source, rgb, label=payload["primary"], model=payload["model"],
                   created=CREATED),
        report_sr(source, REPORT, organization="Test", signer="Demir^Elif"),
        report_sr(source, {**REPORT, "version": 5, "status": "amended"}, organization="Test",
                  previous_version=3), *maps]


def test_dciodvfy_finds_no_errors(tmp_path):
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy is not installed (Debian package dicom3tools)")
    _, objects = all_objects()
    _, more = all_objects("MR")
    for i, ds in enumerate([*objects, *more, findings_sr(source_image("MR")[0], MRI_CLOSE,
                                                         created=CREATED)]):
        path = tmp_path / f"{i}.dcm"
        path.write_bytes(save_bytes(ds))
        out = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
        lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("Error")]
        # the private coding scheme is declared in the document, dciodvfy just lacks it
        # and QUANTITY (Image/Frame Type value 4 of a Parametric Map, highdicom's default
        # Derived Pixel Contrast) is newer than its list of defined terms
        other = [ln for ln in lines if ln.startswith("Warning") and "<99MEDAI>" not in ln
                 and "<QUANTITY>" not in ln]
        assert errors == [] and other == [], (ds.SOPClassUID, lines[:20])


# ---------------------------------------------------------------- a real PACS


def test_c_store_into_orthanc_and_read_back_by_dicomweb(orthanc, caplog):  # noqa: F811
    from dicomweb_client.api import DICOMwebClient

    caplog.set_level(logging.DEBUG)
    image, objects = all_objects()
    sent = [image, *objects]
    outcomes = c_store(sent, orthanc.aet, "127.0.0.1", orthanc.dicom_port,
                       calling_ae=MEDAI_AET)
    assert [o.sop_instance_uid for o in outcomes] == [ds.SOPInstanceUID for ds in sent]
    assert all(o.stored and o.status == 0 for o in outcomes)
    client = DICOMwebClient(orthanc.dicomweb_url)
    study = image.StudyInstanceUID
    series = client.search_for_series(study_instance_uid=study)
    modalities = sorted(pydicom.Dataset.from_json(s).Modality for s in series)
    assert modalities == ["DX", "OT", "SR", "SR"]  # source, heatmap, AI SR, report series
    instances = client.search_for_instances(study_instance_uid=study)
    assert {pydicom.Dataset.from_json(i).SOPInstanceUID for i in instances} == \
        {ds.SOPInstanceUID for ds in sent}
    sr = objects[0]
    back = client.retrieve_instance(study, sr.SeriesInstanceUID, sr.SOPInstanceUID)
    assert back.StudyInstanceUID == study and back.PatientID == PATIENT_ID
    check_findings(read_findings_sr(back), CXR_RESULT, CXR_EXPECTED, get_task("cxr"),
                   SourceImage.from_dataset(image))
    report = client.retrieve_instance(study, objects[3].SeriesInstanceUID,
                                      objects[3].SOPInstanceUID)
    assert report.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0] \
        .ReferencedSOPSequence[0].ReferencedSOPInstanceUID == objects[2].SOPInstanceUID
    assert content_text(report)["Findings"] == "Sağda pnömotoraks."
    # a resend is the same object: stored again without a second copy
    again = c_store([findings_sr(SourceImage.from_dataset(image), CXR_RESULT,
                                 created=CREATED)], orthanc.aet, "127.0.0.1",
                    orthanc.dicom_port)
    assert again[0].stored
    assert len(client.search_for_instances(study_instance_uid=study)) == len(sent)
    # no patient data or UIDs in medai's log lines; no patient text in any library's
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert PATIENT_ID not in text and "Yılmaz" not in text and "Ayşe" not in text
    ours = "\n".join(r.getMessage() for r in caplog.records
                     if r.name.startswith("medai"))
    assert ours and study not in ours and sr.SOPInstanceUID not in ours


def test_stow_rs_into_orthanc(orthanc):  # noqa: F811
    from dicomweb_client.api import DICOMwebClient

    image, objects = all_objects("MR")
    outcomes = stow_rs([image, *objects], orthanc.dicomweb_url)
    assert all(o.stored for o in outcomes) and len(outcomes) == 6  # the map too
    client = DICOMwebClient(orthanc.dicomweb_url)
    sr = objects[0]
    back = client.retrieve_instance(image.StudyInstanceUID, sr.SeriesInstanceUID,
                                    sr.SOPInstanceUID)
    check_findings(read_findings_sr(back), MRI_RESULT, MRI_EXPECTED, get_task("mri"),
                   SourceImage.from_dataset(image))
    found = client.search_for_instances(image.StudyInstanceUID, search_filters={
        "SOPInstanceUID": objects[1].SOPInstanceUID})
    assert len(found) == 1


def test_a_rejected_object_is_a_named_error(orthanc):  # noqa: F811
    _, objects = all_objects()
    broken = objects[1]
    del broken.SeriesInstanceUID  # Orthanc refuses an instance it cannot file
    with pytest.raises(DestinationRejected) as caught:
        c_store([objects[0], broken], orthanc.aet, "127.0.0.1", orthanc.dicom_port)
    first, second = caught.value.outcomes
    assert first.stored and not second.stored and second.status == 0xA700
    with pytest.raises(DestinationRejected) as caught:
        stow_rs([broken], orthanc.dicomweb_url)
    assert not caught.value.outcomes[0].stored
    odd = Dataset()  # a SOP class Orthanc does not accept: no presentation context
    odd.SOPClassUID, odd.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.999.1", generate_uid()
    odd.file_meta = FileMetaDataset()
    odd.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    with pytest.raises(DestinationRejected) as caught:
        c_store([odd], orthanc.aet, "127.0.0.1", orthanc.dicom_port)
    assert caught.value.outcomes[0].status == NOT_SENT
    with pytest.raises(DestinationRejected, match="association rejected"):
        c_store([objects[0]], "NOT_ORTHANC", "127.0.0.1", orthanc.dicom_port)


def test_a_destination_that_is_down_is_a_named_error(orthanc):  # noqa: F811
    _, objects = all_objects()
    with refusing_port() as closed, pytest.raises(DestinationUnavailable) as caught:
        c_store(objects, "ANY", "127.0.0.1", closed, timeout=5)
    assert [o.stored for o in caught.value.outcomes] == [False] * len(objects)
    with pytest.raises(DestinationUnavailable):
        stow_rs(objects, f"http://127.0.0.1:{closed}/dicom-web", timeout=5)
    # an AE the PACS does not know: Orthanc aborts the association at the first C-STORE
    with pytest.raises(DestinationUnavailable, match="connection lost"):
        c_store(objects[:1], orthanc.aet, "127.0.0.1", orthanc.dicom_port,
                calling_ae="STRANGER")
