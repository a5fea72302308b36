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

from helpers.orthanc import MEDAI_AET, orthanc  # noqa: F401 (the fixture)
from helpers.platform import refusing_port
from medai.core.results import ModelRef
from medai.core.task_registry import PRIVATE_SCHEME, Task, TaskError
from medai.core.task_registry import get as get_task
from medai.imaging.decision import OperatingPolicy, decide
from medai.imaging.results import Finding, ImagingResult
from medai.platform.delivery.destinations import DestinationRejected, DestinationUnavailable
from medai.platform.delivery.destinations.dicom import NOT_SENT, c_store
from medai.platform.delivery.destinations.dicomweb import stow_rs
from medai.platform.documents.dicom_objects import DicomObjectError, SourceImage, save_bytes
from medai.platform.documents.sc_pm.dicom_heatmap import (
    heatmap_pm,
    heatmap_region,
    heatmap_sc,
    overlay_on_film,
    pm_suitable,
    region_suitable,
)
from medai.platform.documents.sr.dicom_report import read_report_findings, report_sr, report_uids
from medai.platform.documents.sr.findings_sr import BASES, findings_sr, read_findings_sr
from medai.platform.documents.words.finding_states import with_states
from medai.services.imaging import decision_of

CREATED = dt.datetime(2024, 3, 5, 9, 30, 15)
SIGNED_AT = "2024-03-05T10:02:03.456789Z"
DX = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
MR = "1.2.840.10008.5.1.4.1.1.4"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
SC = "1.2.840.10008.5.1.4.1.1.7"
PATIENT_NAME = "Yılmaz^Ayşe"
PATIENT_ID = "TR-PID-90817"


def model(task: str, version: str = "1.2.0") -> ModelRef:
    return ModelRef(
        name=f"{task}-tiny",
        version=version,
        content_hash="sha256:" + "5e" * 32,
        task=task,
        model_type="efficientnet-lite0",
    )


def result(
    task_name: str, probs: dict[str, float], policy: OperatingPolicy, version: str = "1.2.0"
) -> dict:
    """An imaging result exactly as the platform stores it (ImagingResult JSON)."""
    task = get_task(task_name)
    full = {lab: 0.02 for lab in task.labels} | probs
    decision = decide(task, full, policy)
    findings = [Finding(**row.model_dump()) for row in decision.labels]
    return ImagingResult(
        status="ai_suggestion",
        task=task_name,
        refused=False,
        findings=findings,
        primary=decision.primary,
        decision=decision,
        model=model(task_name, version),
    ).model_dump(mode="json")


CXR_POLICY = OperatingPolicy(thresholds={"Pneumothorax": 0.6, "Effusion": 0.45}, fragile=["Hernia"])
MRI_POLICY = OperatingPolicy(min_confidence=0.5, min_margin=0.15)
# positive (above threshold, and implied parents), negative, fragile
CXR_EXPECTED = {
    "Pneumothorax": ("present", "above_threshold", 0.91, 0.6),
    "COVID-19": ("present", "above_threshold", 0.83, 0.5),
    "Viral_Pneumonia": ("present", "implied", 0.02, 0.5),
    "Pneumonia": ("present", "implied", 0.02, 0.5),
    "Effusion": ("absent", "below_threshold", 0.40, 0.45),
    "No Finding": ("absent", "below_threshold", 0.10, 0.5),
}
MRI_EXPECTED = {
    "Glioma": ("present", "above_threshold", 0.81, 0.5),
    "Meningioma": ("absent", "not_top", 0.10, 0.5),
}
MRI_CLOSE_EXPECTED = {
    "Glioma": ("indeterminate", "candidate", 0.46, 0.5),
    "Meningioma": ("indeterminate", "candidate", 0.40, 0.5),
    "Pituitary": ("absent", "not_top", 0.08, 0.5),
}
CXR_RESULT = result(
    "cxr",
    {"Pneumothorax": 0.91, "Effusion": 0.40, "COVID-19": 0.83, "No Finding": 0.10, "Hernia": 0.05},
    CXR_POLICY,
)
MRI_RESULT = result(
    "mri", {"Glioma": 0.81, "Meningioma": 0.10, "Pituitary": 0.05, "No_Tumor": 0.04}, MRI_POLICY
)
MRI_CLOSE = result(
    "mri", {"Glioma": 0.46, "Meningioma": 0.40, "Pituitary": 0.08, "No_Tumor": 0.06}, MRI_POLICY
)
CXR_DECISION, MRI_DECISION = decision_of(CXR_RESULT), decision_of(MRI_RESULT)


def source_image(modality: str = "DX") -> tuple[SourceImage, Dataset]:
    """A small source image (a real DICOM dataset, as a modality sends it) and its values."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = DX if modality == "DX" else MR
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (
        generate_uid(),
        generate_uid(),
        generate_uid(),
    )
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
        ds.SOPClassUID,
        ds.SOPInstanceUID,
    )
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
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 16, 16, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.arange(256, dtype=np.uint8).tobytes()
    return SourceImage.from_dataset(ds), ds


def reread(ds: Dataset) -> Dataset:
    return pydicom.dcmread(io.BytesIO(save_bytes(ds)))


def check_findings(
    read: dict, payload: dict, expected: dict, task: Task, source: SourceImage
) -> None:
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
    assert read["algorithms"] == [
        (m["name"], m["version"], (f"content_hash={m['content_hash']}", f"task={task.name}"))
    ]
    assert (read["completion"], read["verification"], read["preliminary"]) == (
        "PARTIAL",
        "UNVERIFIED",
        "PRELIMINARY",
    )


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
    assert (
        code[0] == PRIVATE_SCHEME
        and len(code[1]) <= 16
        and code
        == Task(name="site-task", kind="triage", loader=loader, labels=("C", "A b")).finding_code(
            "A b"
        )
    )
    assert plain.finding_code("C") != code
    with pytest.raises(TaskError, match="same code"):
        Task(
            name="t",
            kind="triage",
            loader=loader,
            labels=("A", "B"),
            codes={"A": ("SCT", "1", "x"), "B": ("SCT", "1", "y")},
        ).validate()
    with pytest.raises(TaskError, match="at most 16"):
        Task(
            name="t",
            kind="triage",
            loader=loader,
            labels=("A",),
            codes={"A": ("SCT", "12345678901234567", "x")},
        ).validate()
    with pytest.raises(TaskError, match="not among its labels"):
        Task(
            name="t", kind="triage", loader=loader, labels=("A",), codes={"Z": ("SCT", "1", "x")}
        ).validate()


# ---------------------------------------------------------------- findings SR


@pytest.mark.parametrize(
    ("payload", "expected", "modality"),
    [
        (CXR_RESULT, CXR_EXPECTED, "DX"),
        (MRI_RESULT, MRI_EXPECTED, "MR"),
        (MRI_CLOSE, MRI_CLOSE_EXPECTED, "MR"),
    ],
    ids=["cxr", "mri", "mri-indeterminate"],
)
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
    assert (ds.StudyInstanceUID, ds.PatientID, str(ds.PatientName), ds.AccessionNumber) == (
        source.study_instance_uid,
        PATIENT_ID,
        PATIENT_NAME,
        "ACC-2024-77",
    )
    assert ds.SeriesInstanceUID != source.series_instance_uid
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert ds.ConceptNameCodeSequence[0].CodeValue == "126000"  # what OHIF looks for
    assert [s.CodingSchemeDesignator for s in ds.CodingSchemeIdentificationSequence] == [
        PRIVATE_SCHEME
    ]
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == source.study_instance_uid
    assert (
        evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        == source.sop_instance_uid
    )
    library = [i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "111028"]
    image = library[0].ContentSequence[0].ContentSequence[0]
    assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.sop_instance_uid


def test_fragile_operating_points_are_said():
    source, _ = source_image()
    sr = reread(findings_sr(source, CXR_RESULT, created=CREATED))
    report = hd.sr.MeasurementReport.from_sequence([sr])
    fragile = {
        g.tracking_identifier
        for g in report.get_image_measurement_groups()
        if any(q.name.value == "FRAGILE" for q in g.get_qualitative_evaluations())
    }
    assert fragile == {"Hernia"}


def test_findings_sr_is_the_same_object_when_built_again():
    source, _ = source_image()
    first = save_bytes(findings_sr(source, CXR_RESULT, created=CREATED))
    assert save_bytes(findings_sr(source, CXR_RESULT, created=CREATED)) == first
    newer = findings_sr(
        source, result("cxr", {"Pneumothorax": 0.91}, CXR_POLICY, "1.3.0"), created=CREATED
    )
    assert newer.SOPInstanceUID != pydicom.dcmread(io.BytesIO(first)).SOPInstanceUID


def test_refused_or_anonymous_results_make_no_sr():
    source, _ = source_image()
    refused = ImagingResult(
        status="refused",
        task="cxr",
        refused=True,
        reason="not a chest",
        reason_code="wrong_modality",
        model=model("cxr"),
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
    sc = reread(
        heatmap_sc(
            source,
            rgb,
            label="Pneumothorax",
            decision=CXR_DECISION,
            model=CXR_RESULT["model"],
            created=CREATED,
            task=get_task("cxr"),
        )
    )
    assert sc.SOPClassUID == SC and sc.PhotometricInterpretation == "RGB"
    assert np.array_equal(sc.pixel_array, rgb)
    assert sc.StudyInstanceUID == source.study_instance_uid
    assert sc.SeriesInstanceUID not in (source.series_instance_uid,)
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.sop_instance_uid
    assert (sc.PatientID, str(sc.PatientName)) == (PATIENT_ID, PATIENT_NAME)
    assert "Pneumothorax" in sc.SeriesDescription and "not a diagnosis" in sc.ImageComments
    again = heatmap_sc(
        source,
        rgb,
        label="Pneumothorax",
        decision=CXR_DECISION,
        model=CXR_RESULT["model"],
        created=CREATED,
    )
    assert again.SOPInstanceUID == sc.SOPInstanceUID
    with pytest.raises(DicomObjectError):
        heatmap_sc(
            source,
            rgb[..., 0],
            label="x",
            decision=None,
            model=CXR_RESULT["model"],
            created=CREATED,
        )


# ---------------------------------------------------------------- signed report SR

REPORT = {
    "version": 3,
    "status": "final",
    "signed_by": "rad1",
    "signed_at": SIGNED_AT,
    "sections": {
        "technique": "PA akciğer grafisi.",
        "findings": "Sağda pnömotoraks.",
        "impression": "Pnömotoraks.",
        "recommendation": "",
    },
    "ai_assisted": True,
    "ai_disclosure": "Drafted with AI assistance (medai).",
}


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
        heatmap_pm(
            dx,
            np.zeros((16, 16), np.float32),
            label="Pneumothorax",
            decision=None,
            model=CXR_RESULT["model"],
            created=CREATED,
        )
    heat = np.random.default_rng(1).random((40, 48)).astype(np.float32)
    png = io.BytesIO()
    Image.fromarray(overlay_rgba(heat.copy()), mode="RGBA").save(png, format="PNG")
    assert np.array_equal(
        saliency_of_overlay(png.getvalue(), 40, 48), np.floor(heat * 255) / 255
    )  # transparent pixels included
    saliency = saliency_of_overlay(png.getvalue(), 16, 16)  # onto the source's grid
    built = heatmap_pm(
        mr,
        saliency,
        label="Glioma",
        decision=MRI_DECISION,
        model=MRI_RESULT["model"],
        created=CREATED,
    )
    pm = reread(built)
    assert pm.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30" and pm.Modality == "OT"
    assert pm.FrameOfReferenceUID == mr.FrameOfReferenceUID
    assert pm.StudyInstanceUID == mr.StudyInstanceUID and pm.PatientID == PATIENT_ID
    assert np.array_equal(pm.pixel_array, saliency)
    mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert mapping.LUTLabel == "GRADCAM" and float(mapping.RealWorldValueSlope) == 1.0
    assert "not a diagnosis" in pm.ImageComments
    assert save_bytes(
        heatmap_pm(
            mr,
            saliency,
            label="Glioma",
            decision=MRI_DECISION,
            model=MRI_RESULT["model"],
            created=CREATED,
        )
    ) == save_bytes(built)
    with pytest.raises(DicomObjectError):  # not on the source's grid
        heatmap_pm(
            mr,
            saliency[:8],
            label="Glioma",
            decision=MRI_DECISION,
            model=MRI_RESULT["model"],
            created=CREATED,
        )
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
    sr = reread(
        report_sr(source, REPORT, organization="Ankara Test Hastanesi", signer="Demir^Elif")
    )
    assert (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag) == (
        "COMPLETE",
        "VERIFIED",
        "FINAL",
    )
    observer = sr.VerifyingObserverSequence[0]
    assert str(observer.VerifyingObserverName) == "Demir^Elif"
    assert observer.VerifyingOrganization == "Ankara Test Hastanesi"
    assert observer.VerificationDateTime == "20240305100203"
    assert sr.TimezoneOffsetFromUTC == "+0000"
    assert content_text(sr) == {
        "Current Procedure Descriptions": "PA akciğer grafisi.",
        "Findings": "Sağda pnömotoraks.",
        "Impressions": "Pnömotoraks.",
        "Comment": "Drafted with AI assistance (medai).",
    }
    assert sr.StudyInstanceUID == source.study_instance_uid
    assert (sr.SeriesInstanceUID, sr.SOPInstanceUID) == report_uids(source, 3)
    assert "PredecessorDocumentsSequence" not in sr
    amended = reread(
        report_sr(
            source,
            {
                **REPORT,
                "version": 5,
                "status": "amended",
                "sections": {**REPORT["sections"], "impression": "Küçük pnömotoraks."},
            },
            organization="Ankara Test Hastanesi",
            previous_version=3,
        )
    )
    previous = amended.PredecessorDocumentsSequence[0]
    assert previous.StudyInstanceUID == source.study_instance_uid
    ref = previous.ReferencedSeriesSequence[0]
    assert (ref.SeriesInstanceUID, ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID) == (
        sr.SeriesInstanceUID,
        sr.SOPInstanceUID,
    )
    assert amended.SeriesInstanceUID == sr.SeriesInstanceUID
    assert amended.SOPInstanceUID != sr.SOPInstanceUID
    assert str(amended.VerifyingObserverSequence[0].VerifyingObserverName) == "rad1^"


def test_an_unsigned_report_is_not_sent():
    source, _ = source_image()
    with pytest.raises(DicomObjectError, match="signed"):
        report_sr(source, {**REPORT, "status": "preliminary", "signed_by": None}, organization="x")
    with pytest.raises(DicomObjectError, match="earlier"):
        report_sr(source, REPORT, organization="x", previous_version=3)


# ---------------------------------------------------------------- dciodvfy


def all_objects(modality: str = "DX") -> tuple[Dataset, list[Dataset]]:
    source, image = source_image(modality)
    payload = CXR_RESULT if modality == "DX" else MRI_RESULT
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    maps = [
        (heatmap_region if modality == "DX" else heatmap_pm)(
            image,
            np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16),
            label=payload["primary"],
            decision=decision_of(payload),
            model=payload["model"],
            created=CREATED,
        )
    ]
    return image, [
        findings_sr(source, payload, created=CREATED),
        heatmap_sc(
            source,
            rgb,
            label=payload["primary"],
            decision=decision_of(payload),
            model=payload["model"],
            created=CREATED,
        ),
        report_sr(source, REPORT, organization="Test", signer="Demir^Elif"),
        report_sr(
            source,
            {**REPORT, "version": 5, "status": "amended"},
            organization="Test",
            previous_version=3,
        ),
        *maps,
    ]


def test_a_film_gets_its_saliency_region_as_a_binary_seg_over_it():
    """A projection film (no patient geometry) gets a binary SEG of where the saliency is at
    least half its peak, on its grid and referencing it, labelled as the AI's suggestion with
    the model's name, version and content hash; the same object when built again; none of an
    empty map or off the grid, and none for a slice that gets a Parametric Map."""
    dx, mr = source_image("DX")[1], source_image("MR")[1]
    assert region_suitable(dx) and not region_suitable(mr)
    saliency = np.zeros((16, 16), np.float32)
    saliency[2:6, 3:9] = 0.9
    saliency[10:12, 10:12] = 0.3  # under half the peak: not in the region
    built = heatmap_region(
        dx,
        saliency,
        label="Pneumothorax",
        decision=decision_of(CXR_RESULT),
        model=CXR_RESULT["model"],
        created=CREATED,
        task=get_task("cxr"),
    )
    seg = reread(built)
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == dx.StudyInstanceUID and seg.PatientID == PATIENT_ID
    assert "FrameOfReferenceUID" not in seg
    ref = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
    assert ref.SourceImageSequence[0].ReferencedSOPInstanceUID == dx.SOPInstanceUID
    orientation = seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
    assert [float(v) for v in orientation.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    mask = seg.pixel_array
    assert mask.shape == (16, 16) and mask.sum() == 4 * 6 and mask[2:6, 3:9].all()
    segment = seg.SegmentSequence[0]
    assert segment.SegmentLabel.startswith("AI saliency (suggestion): Pneumothorax")
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    model = CXR_RESULT["model"]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == (
        model["name"],
        model["version"],
    )
    assert model["content_hash"] in algorithm.AlgorithmParameters
    assert len(segment.RecommendedDisplayCIELabValue) == 3  # a viewer colours it as given
    assert "not a diagnosis" in seg.ImageComments
    again = heatmap_region(
        dx,
        saliency,
        label="Pneumothorax",
        decision=decision_of(CXR_RESULT),
        model=model,
        created=CREATED,
        task=get_task("cxr"),
    )
    assert save_bytes(again) == save_bytes(built)
    for bad in (np.zeros((16, 16), np.float32), saliency[:8]):  # nothing to draw; off the grid
        with pytest.raises(DicomObjectError):
            heatmap_region(
                dx, bad, label="Pneumothorax", decision=None, model=model, created=CREATED
            )


def test_dciodvfy_finds_no_errors(tmp_path):
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy is not installed (Debian package dicom3tools)")
    _, objects = all_objects()
    _, more = all_objects("MR")
    source = source_image("MR")[0]
    undecided = [  # the objects of #46: an undecided MRI, a corrected and signed film
        findings_sr(source, MRI_UNDECIDED, created=CREATED),
        heatmap_sc(
            source,
            np.zeros((16, 16, 3), np.uint8),
            label="Pituitary",
            decision=decision_of(MRI_UNDECIDED),
            model=MRI_UNDECIDED["model"],
            created=CREATED,
            task=get_task("mri"),
        ),
        report_sr(
            source,
            with_states(REPORT, MRI_UNDECIDED, []),
            organization="Test",
            task=get_task("mri"),
        ),
        report_sr(
            source_image()[0],
            _signed(CORRECTED, CXR_BACTERIAL, {"No Finding"}),
            organization="Test",
            task=get_task("cxr"),
        ),
    ]
    for i, ds in enumerate(
        [
            *objects,
            *more,
            findings_sr(source_image("MR")[0], MRI_CLOSE, created=CREATED),
            *undecided,
        ]
    ):
        path = tmp_path / f"{i}.dcm"
        path.write_bytes(save_bytes(ds))
        out = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
        lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("Error")]
        # the private coding scheme is declared in the document, dciodvfy just lacks it
        # and QUANTITY (Image/Frame Type value 4 of a Parametric Map, highdicom's default
        # Derived Pixel Contrast) is newer than its list of defined terms
        other = [
            ln
            for ln in lines
            if ln.startswith("Warning") and "<99MEDAI>" not in ln and "<QUANTITY>" not in ln
        ]
        assert errors == [] and other == [], (ds.SOPClassUID, lines[:20])


# ---------------------------------------------------------------- a real PACS


def test_c_store_into_orthanc_and_read_back_by_dicomweb(orthanc, caplog):  # noqa: F811
    from dicomweb_client.api import DICOMwebClient

    caplog.set_level(logging.DEBUG)
    image, objects = all_objects()
    sent = [image, *objects]
    outcomes = c_store(sent, orthanc.aet, "127.0.0.1", orthanc.dicom_port, calling_ae=MEDAI_AET)
    assert [o.sop_instance_uid for o in outcomes] == [ds.SOPInstanceUID for ds in sent]
    assert all(o.stored and o.status == 0 for o in outcomes)
    client = DICOMwebClient(orthanc.dicomweb_url)
    study = image.StudyInstanceUID
    series = client.search_for_series(study_instance_uid=study)
    modalities = sorted(pydicom.Dataset.from_json(s).Modality for s in series)
    # source, heatmap, its region, AI SR, report series
    assert modalities == ["DX", "OT", "SEG", "SR", "SR"]
    instances = client.search_for_instances(study_instance_uid=study)
    assert {pydicom.Dataset.from_json(i).SOPInstanceUID for i in instances} == {
        ds.SOPInstanceUID for ds in sent
    }
    sr = objects[0]
    back = client.retrieve_instance(study, sr.SeriesInstanceUID, sr.SOPInstanceUID)
    assert back.StudyInstanceUID == study and back.PatientID == PATIENT_ID
    check_findings(
        read_findings_sr(back),
        CXR_RESULT,
        CXR_EXPECTED,
        get_task("cxr"),
        SourceImage.from_dataset(image),
    )
    report = client.retrieve_instance(
        study, objects[3].SeriesInstanceUID, objects[3].SOPInstanceUID
    )
    assert (
        report.PredecessorDocumentsSequence[0]
        .ReferencedSeriesSequence[0]
        .ReferencedSOPSequence[0]
        .ReferencedSOPInstanceUID
        == objects[2].SOPInstanceUID
    )
    assert content_text(report)["Findings"] == "Sağda pnömotoraks."
    # a resend is the same object: stored again without a second copy
    again = c_store(
        [findings_sr(SourceImage.from_dataset(image), CXR_RESULT, created=CREATED)],
        orthanc.aet,
        "127.0.0.1",
        orthanc.dicom_port,
    )
    assert again[0].stored
    assert len(client.search_for_instances(study_instance_uid=study)) == len(sent)
    # no patient data or UIDs in medai's log lines; no patient text in any library's
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert PATIENT_ID not in text and "Yılmaz" not in text and "Ayşe" not in text
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("medai"))
    assert ours and study not in ours and sr.SOPInstanceUID not in ours


def test_stow_rs_into_orthanc(orthanc):  # noqa: F811
    from dicomweb_client.api import DICOMwebClient

    image, objects = all_objects("MR")
    outcomes = stow_rs([image, *objects], orthanc.dicomweb_url)
    assert all(o.stored for o in outcomes) and len(outcomes) == 6  # the map too
    client = DICOMwebClient(orthanc.dicomweb_url)
    sr = objects[0]
    back = client.retrieve_instance(image.StudyInstanceUID, sr.SeriesInstanceUID, sr.SOPInstanceUID)
    check_findings(
        read_findings_sr(back),
        MRI_RESULT,
        MRI_EXPECTED,
        get_task("mri"),
        SourceImage.from_dataset(image),
    )
    found = client.search_for_instances(
        image.StudyInstanceUID, search_filters={"SOPInstanceUID": objects[1].SOPInstanceUID}
    )
    assert len(found) == 1
    # a corrected, signed film: the PACS keeps the signer's findings and the AI's suggestions
    film = source_image()[0]
    corrected = report_sr(
        film,
        _signed(CORRECTED, CXR_BACTERIAL, {"No Finding"}),
        organization="Test",
        task=get_task("cxr"),
    )
    assert stow_rs([corrected], orthanc.dicomweb_url)[0].stored
    back = read_report_findings(
        client.retrieve_instance(
            film.study_instance_uid, corrected.SeriesInstanceUID, corrected.SOPInstanceUID
        )
    )
    bacterial = get_task("cxr").finding_code("Bacterial_Pneumonia")
    assert dict(back["stated"])[bacterial] == "absent"
    assert {r["code"]: r["verdict"] for r in back["ai"]}[bacterial] == "rejected"


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
        c_store(objects[:1], orthanc.aet, "127.0.0.1", orthanc.dicom_port, calling_ae="STRANGER")


# ---------------------------------------------------------------- one state per finding (#46)

# the tryout's undecided MRI: Pituitary 40.8 % vs Meningioma 36.1 % (margin under 0.15)
MRI_UNDECIDED = result(
    "mri", {"Pituitary": 0.408, "Meningioma": 0.361, "Glioma": 0.15, "No_Tumor": 0.081}, MRI_POLICY
)
# "No Finding" and COVID-19 both above their thresholds: a conflict, left undecided
CXR_CONFLICT = result("cxr", {"No Finding": 0.71, "COVID-19": 0.83}, CXR_POLICY)
# the tryout's corrected film: the AI said bacterial pneumonia; the signer, a normal film
CXR_BACTERIAL = result("cxr", {"Bacterial_Pneumonia": 0.88, "No Finding": 0.10}, CXR_POLICY)


def _findings_only(payload: dict) -> dict:
    """The result as a row that kept its findings table and no decision object."""
    return {**payload, "decision": None}


def _sr_groups(sr: Dataset) -> dict[str, dict]:
    """Per label, through highdicom's TID 1500 reader: the state's code and the basis code."""
    report = hd.sr.MeasurementReport.from_sequence([reread(sr)])
    out = {}
    for group in report.get_image_measurement_groups():
        values = {q.name.value: q.value for q in group.get_qualitative_evaluations()}
        out[group.tracking_identifier] = {
            "state": values[group.finding_type.value],
            "basis": values["BASIS"],
        }
    return out


@pytest.mark.parametrize("stored", [dict, _findings_only], ids=["as-stored", "findings-only"])
def test_findings_sr_of_an_undecided_mri_states_both_candidates_indeterminate(stored):
    from pydicom.sr.codedict import codes

    source, _ = source_image("MR")
    payload = stored(MRI_UNDECIDED)
    groups = _sr_groups(findings_sr(source, payload, created=CREATED))
    for label in ("Pituitary", "Meningioma"):  # neither is absent: the model could not choose
        assert groups[label]["state"] == codes.SCT.Indeterminate, label
        assert groups[label]["basis"].value == "candidate", label
        assert groups[label]["basis"].meaning == BASES["candidate"], label
    for label in ("Glioma", "No_Tumor"):
        assert groups[label]["state"] == codes.SCT.Absent, label
        assert groups[label]["basis"].value == "not_top", label
    assert all(len(meaning) <= 64 for meaning in BASES.values())


def test_findings_sr_of_a_conflict_keeps_the_candidates_parents_undecided():
    """The decision leaves COVID-19's parents undecided with it (not among its candidates):
    the SR says what the decision says, it does not fall back to absent."""
    from pydicom.sr.codedict import codes

    decision = decision_of(CXR_CONFLICT)
    states = {row["label"]: row["state"] for row in decision["labels"]}
    assert decision["state"] == "indeterminate" and decision["conflict"]
    groups = _sr_groups(findings_sr(source_image()[0], CXR_CONFLICT, created=CREATED))
    answer = {
        codes.SCT.Present.value: "present",
        codes.SCT.Absent.value: "absent",
        codes.SCT.Indeterminate.value: "indeterminate",
    }
    assert {label: answer[g["state"].value] for label, g in groups.items()} == states
    assert states["Viral_Pneumonia"] == states["Pneumonia"] == "indeterminate"
    assert groups["No Finding"]["basis"].value == "conflict"
    assert groups["No Finding"]["basis"].meaning == BASES["conflict"]


def test_the_heatmap_of_an_undecided_result_names_its_candidates():
    source, mr = source_image("MR")
    decision = decision_of(MRI_UNDECIDED)
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    sc = reread(
        heatmap_sc(
            source,
            rgb,
            label="Pituitary",
            decision=decision,
            model=MRI_UNDECIDED["model"],
            created=CREATED,
            task=get_task("mri"),
        )
    )
    pm = reread(
        heatmap_pm(
            mr,
            np.zeros((16, 16), np.float32),
            label="Pituitary",
            decision=decision,
            model=MRI_UNDECIDED["model"],
            created=CREATED,
            task=get_task("mri"),
        )
    )
    for ds in (sc, pm):
        assert "undecided" in ds.SeriesDescription and "Meningioma" in ds.SeriesDescription
        assert len(ds.SeriesDescription) <= 64
        for text in (ds.DerivationDescription, ds.ImageComments):
            assert "undecided" in text and "Pituitary tumour" in text and "Meningioma" in text
        assert "not a diagnosis" in ds.ImageComments
    assert "undecided" in pm.ContentDescription
    # a decided result says nothing of the kind
    decided = reread(
        heatmap_sc(
            source,
            rgb,
            label="Glioma",
            decision=MRI_DECISION,
            model=MRI_RESULT["model"],
            created=CREATED,
            task=get_task("mri"),
        )
    )
    assert decided.SeriesDescription == "medai AI heatmap: Glioma"
    assert "undecided" not in decided.ImageComments


def test_the_heatmap_of_a_self_contradicting_result_says_so():
    source, _ = source_image()
    sc = reread(
        heatmap_sc(
            source,
            np.zeros((16, 16, 3), dtype=np.uint8),
            label="COVID-19",
            decision=decision_of(CXR_CONFLICT),
            model=CXR_CONFLICT["model"],
            created=CREATED,
            task=get_task("cxr"),
        )
    )
    assert "conflict" in sc.SeriesDescription and len(sc.SeriesDescription) <= 64
    for text in (sc.DerivationDescription, sc.ImageComments):
        assert "contradicted" in text and "No finding" in text and "COVID-19" in text


def _signed(report: dict, payload: dict, present: set[str]) -> dict:
    """The report as every export reads it (``finding_states``), signed with ``present``
    present and every other label of the task absent (what a signature stores)."""
    task = get_task("cxr")
    labels = [
        {"label": lab, "present": lab in present, "source": "text", "ai_positive": None}
        for lab in task.labels
    ]
    return with_states(report, payload, labels)


def _items(ds: Dataset, path: tuple[str, ...] = ()):
    """Every content item of an SR with the concept names of the containers above it."""
    for item in ds.get("ContentSequence") or []:
        yield path, item
        yield from _items(item, (*path, item.ConceptNameCodeSequence[0].CodeMeaning))


CORRECTED = {
    **REPORT,
    "sections": {
        "technique": "PA akciğer grafisi.",
        "findings": "Akciğer alanları olağan.",
        "impression": "Normal akciğer grafisi.",
        "recommendation": "",
    },
}


def test_signed_report_sr_states_the_signers_findings_and_the_ai_only_as_suggestions():
    """A corrected film: the AI said bacterial pneumonia, the signer rejected it and signed a
    normal film. The SR's findings are the signer's; the AI's pneumonia is only a suggestion
    the signer rejected, never a finding stated present."""
    task = get_task("cxr")
    report = _signed(CORRECTED, CXR_BACTERIAL, {"No Finding"})
    sr = reread(report_sr(source_image()[0], report, organization="Test", task=task))
    bacterial, normal = task.finding_code("Bacterial_Pneumonia"), task.finding_code("No Finding")
    stated = dict(read_report_findings(sr)["stated"])
    assert stated[bacterial] == "absent" and stated[normal] == "present"
    assert {state for code, state in stated.items() if code != normal} == {"absent"}
    # read independently of the reader: the Findings section holds the signer's codes
    present, absent = "52101004", "272519000"
    findings = [
        (path, i) for path, i in _items(sr) if path == ("Findings",) and i.ValueType == "CODE"
    ]
    assert (normal[1], present) in {
        (i.ConceptNameCodeSequence[0].CodeValue, i.ConceptCodeSequence[0].CodeValue)
        for _, i in findings
    }
    # nowhere is bacterial pneumonia a concept stated present
    for _, item in _items(sr):
        if item.ValueType == "CODE" and item.ConceptNameCodeSequence[0].CodeValue == bacterial[1]:
            assert item.ConceptCodeSequence[0].CodeValue == absent
    # the AI's suggestions are marked as such, with the signer's verdict
    ai = {row["code"]: row for row in read_report_findings(sr)["ai"]}
    assert (ai[bacterial]["state"], ai[bacterial]["verdict"]) == ("present", "rejected")
    assert ai[bacterial]["probability"] == pytest.approx(0.88)
    assert (ai[normal]["state"], ai[normal]["verdict"]) == ("absent", "added")
    suggestions = [
        i
        for path, i in _items(sr)
        if i.ValueType == "CODE" and i.ConceptCodeSequence[0].CodeValue == bacterial[1]
    ]
    assert len(suggestions) == 1  # the one AI suggestion, under the AI's own container
    container = next(path for path, i in _items(sr) if i is suggestions[0])
    assert container == ("AI suggestions (not a diagnosis)",)
    assert suggestions[0].ConceptNameCodeSequence[0].CodeMeaning.startswith("AI suggestion")


def test_an_amendment_sr_states_the_amendments_labels():
    task = get_task("cxr")
    bacterial = task.finding_code("Bacterial_Pneumonia")
    source = source_image()[0]
    first = read_report_findings(
        reread(
            report_sr(
                source,
                _signed(CORRECTED, CXR_BACTERIAL, {"No Finding"}),
                organization="Test",
                task=task,
            )
        )
    )
    amended = read_report_findings(
        reread(
            report_sr(
                source,
                _signed(
                    {**CORRECTED, "version": 5, "status": "amended"},
                    CXR_BACTERIAL,
                    {"Bacterial_Pneumonia", "Pneumonia"},
                ),
                organization="Test",
                previous_version=3,
                task=task,
            )
        )
    )
    assert dict(first["stated"])[bacterial] == "absent"
    assert dict(amended["stated"])[bacterial] == "present"
    assert {r["code"]: r["verdict"] for r in amended["ai"]}[bacterial] == "confirmed"


def test_a_signature_without_labels_states_no_findings_and_keeps_the_ai_suggestions():
    """An undecided study signed "not assessable" stored no labels: the SR claims no signer's
    finding; the AI's suggestions stay, undecided, with the candidates named and no verdict."""
    report = with_states(REPORT, MRI_UNDECIDED, [])
    sr = reread(report_sr(source_image("MR")[0], report, organization="Test", task=get_task("mri")))
    read = read_report_findings(sr)
    assert read["stated"] == []
    assert {r["code"][1]: r["state"] for r in read["ai"] if r["state"] != "absent"} == {
        "MRI-PITUITARY": "indeterminate",
        "MRI-MENINGIOMA": "indeterminate",
    }
    assert all("verdict" not in r for r in read["ai"])
    notes = [
        i.TextValue
        for _, i in _items(sr)
        if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeValue == "AI-NOTE"
    ]
    assert notes == ["The AI was undecided between: Pituitary tumour, Meningioma"]


def test_the_findings_sr_says_where_a_small_lesion_is_and_names_every_series(tmp_path):
    """Issue 67: the SR of a series left undecided for a small lesion says where its slices
    are and why the AI did not decide, and names each series it did not read, as the page and
    the draft do (a PACS reader sees no 'no tumour' over those slices)."""
    from medai.imaging.series_rule import _small_lesion

    source, _ = source_image("MR")
    normal = decide(
        get_task("mri"),
        {"Glioma": 0.03, "No_Tumor": 0.9, "Meningioma": 0.04, "Pituitary": 0.03},
        MRI_POLICY,
    )
    decision = _small_lesion(normal, "Glioma", "No_Tumor")
    payload = ImagingResult(
        status="ai_suggestion",
        task="mri",
        refused=False,
        findings=[Finding(**row.model_dump()) for row in decision.labels],
        decision=decision,
        model=model("mri"),
        read={
            "series_uid": "1.2",
            "undecided_slices": {
                "label": "Glioma",
                "numbers": [10, 11],
                "instances": ["1.2.10", "1.2.11"],
                "needed": 3,
                "min_probability": 0.9,
            },
            "series": [
                {
                    "series_uid": "1.1",
                    "series_number": 1,
                    "description": "LOC",
                    "read": False,
                    "reason": "localizer",
                },
                {
                    "series_uid": "1.2",
                    "series_number": 3,
                    "read": True,
                    "state": "indeterminate",
                    "decides": True,
                },
            ],
        },
    ).model_dump(mode="json")
    sr = reread(findings_sr(source, payload, created=CREATED))
    if (tool := shutil.which("dciodvfy")) is not None:  # the notes keep the SR valid
        path = tmp_path / "notes.dcm"
        path.write_bytes(save_bytes(sr))
        out = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
        errors = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]
        assert errors == [], errors
    notes = [i.TextValue for i in sr.ContentSequence if i.ValueType == "TEXT"]
    assert any("2 neighbouring slices (10–11)" in n and "did not decide" in n for n in notes)
    assert any("Series 1 (LOC) was not read by the AI: a localizer" in n for n in notes)
    states = {
        k: v[0]
        for k, v in {r["label"]: (r["state"],) for r in read_findings_sr(sr)["findings"]}.items()
    }
    assert states["No_Tumor"] == "indeterminate" and states["Glioma"] == "indeterminate"


def test_every_basis_a_decision_can_give_has_its_meaning_in_the_sr():
    from medai.imaging.decision import BASES as DECISION_BASES

    assert set(DECISION_BASES) <= set(BASES), set(DECISION_BASES) - set(BASES)
