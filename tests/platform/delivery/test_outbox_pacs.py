"""Results back to a real PACS (Orthanc, ``helpers.orthanc``) through the outbox: a DICOM study
uploaded, analysed → the findings SR and the heatmap SC appear under its StudyInstanceUID
(the SR read back equals the API's result); signed → the report SR, and the FHIR server gets
a final report naming the ImagingStudy; amended → an SR naming its predecessor. Orthanc
stopped: the results wait and arrive when it is back, once; a sender killed after the
C-STORE sends the same objects again without a second copy; STOW-RS to the same PACS adds no
copy either; a PACS that refuses the association leaves a failed delivery for an admin.
SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import io
import json
import random
import shutil
import subprocess
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest

from helpers.dicom import PATIENT_ID, make_dicom
from helpers.orthanc import (
    ORTHANC,
    OrthancUnavailable,
    _answers,
    _dicom_listens,
    _stop,
    start_orthanc,
)
from helpers.outbox_peers import FhirServer
from helpers.platform import bearer, clinic, decided, wait_status

pytestmark = [pytest.mark.server]


@pytest.fixture(scope="module")
def pacs():
    """A real Orthanc that a test may stop and start again on the same ports."""
    home = Path(tempfile.mkdtemp(prefix="medai-pacs-"))
    try:
        box = {"server": start_orthanc(home)}
    except OrthancUnavailable as exc:
        shutil.rmtree(home, ignore_errors=True)
        pytest.skip(str(exc))
    yield box
    _stop(box["server"].process)
    shutil.rmtree(home, ignore_errors=True)


def pacs_down(box) -> None:
    _stop(box["server"].process)


def pacs_up(box) -> None:
    """Orthanc again with the same configuration, storage and ports."""
    server = box["server"]
    log = server.home / "orthanc.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [ORTHANC, f"--logfile={log}", str(server.home / "orthanc.json")],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    box["server"] = server = dataclasses.replace(server, process=process)
    deadline = time.monotonic() + 20
    while not (_answers(server.url) and _dicom_listens(server.dicom_port)):
        assert process.poll() is None and time.monotonic() < deadline, server.log[-2000:]
        time.sleep(0.05)


def stored(box, study_uid: str) -> list[pydicom.Dataset]:
    """Every instance Orthanc holds in the study, read back as DICOM."""
    server = box["server"]
    ids = server.rest(
        "/tools/find",
        "POST",
        json.dumps({"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}}).encode(),
    )
    return [pydicom.dcmread(io.BytesIO(_raw(server, f"/instances/{i}/file"))) for i in ids]


def _raw(server, path: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(server.url + path, timeout=10) as resp:
        return resp.read()


class Clock:
    def __init__(self) -> None:
        from medai.platform.records.db import utcnow

        self.now = utcnow()

    def __call__(self):
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def hosp(request, pacs, tmp_path, tfidf_model_dir, tiny_imaging_dir, tiny_mri_dir, monkeypatch):
    server = pacs["server"]
    fhir = FhirServer().start()
    (tmp_path / "destinations.yaml").write_text(
        "destinations:\n"
        f"  - {{name: pacs, kind: dicom, ae_title: {server.aet}, host: 127.0.0.1, "
        f"port: {server.dicom_port}}}\n"
        f"  - {{name: his, kind: fhir, url: '{fhir.url}'}}\n"
    )
    monkeypatch.setenv("MEDAI_DESTINATIONS_FILE", str(tmp_path / "destinations.yaml"))
    monkeypatch.setenv("MEDAI_INSTITUTION_NAME", "Ankara Test Hastanesi")
    try:
        with clinic(
            request.param,
            tmp_path / "home",
            tfidf_model_dir,
            tiny_imaging_dir,
            models={"mri": str(tiny_mri_dir)},
            outbox_threads=0,
        ) as (app, client):
            yield app, client, fhir, Clock()
    finally:
        fhir.stop()


def loop(app, clock, **options):
    from medai.platform.delivery.delivery import DeliveryLoop
    from medai.platform.delivery.outbox import Backoff

    return DeliveryLoop(
        app.state.platform,
        clock=clock,
        rng=random.Random(3),
        backoff=Backoff(10, 60),
        lease_s=60,
        **options,
    )


def dicom_study(client, tmp_path: Path, seed: int) -> tuple[int, str, dict]:
    from pydicom.uid import generate_uid

    uid = generate_uid()
    path = make_dicom(
        tmp_path / f"cr{seed}.dcm",
        "CR",
        study=uid,
        seed=seed,
        rows=96,
        cols=80,
        accession=f"ACC-{seed}",
    )
    rad = bearer(client, "rad1")
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr"},
        files={"file": ("cr.dcm", path.read_bytes(), "application/dicom")},
    )
    assert r.status_code == 201, r.text
    study = wait_status(client, rad, r.json()["id"], {"ai_drafted"})
    assert study["dicom"]["study_uid"] == uid
    return study["id"], uid, study


def sign(client, sid: int, text: str | None = None, labels: dict | None = None) -> dict:
    rad = bearer(client, "rad1")
    version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    body = {
        "version": version,
        **({"sections": {"findings": text}} if text else {}),
        "labels": decided(client, rad, sid, labels),
    }
    r = client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_results_and_reports_reach_the_pacs_under_the_study(hosp, pacs, tmp_path):
    from medai.core.task_registry import get as get_task
    from medai.platform.documents.sr.findings_sr import read_findings_sr

    app, client, fhir, clock = hosp
    sid, uid, study = dicom_study(client, tmp_path, 1)
    assert loop(app, clock).run_once() == {"delivered": 2}
    objects = stored(pacs, uid)
    by_modality = {ds.Modality: ds for ds in objects}
    # the findings SR, the heatmap picture and, a film having no geometry for a Parametric
    # Map, the heatmap's region as a SEG over it
    assert sorted(by_modality) == ["OT", "SEG", "SR"] and len(objects) == 3
    sr, sc, region = by_modality["SR"], by_modality["OT"], by_modality["SEG"]
    ref = region.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
    assert ref.SourceImageSequence[0].ReferencedSOPInstanceUID == study["dicom"]["sop_uid"]
    assert sr.PatientID == PATIENT_ID and sr.AccessionNumber == "ACC-1"
    assert sr.InstitutionName == "Ankara Test Hastanesi"
    read = read_findings_sr(sr)
    api = {f["label"]: f for f in study["ai_result"]["decision"]["labels"]}
    got = {f["label"]: f for f in read["findings"]}
    assert set(got) == set(api)
    task = get_task("cxr")
    for label, f in got.items():
        assert f["code"] == task.finding_code(label)
        assert f["probability"] == pytest.approx(api[label]["probability"])
        assert f["state"] == api[label]["state"]  # the decision's one state, not re-derived
        assert f["source"] == [(study["dicom"]["sop_class"], study["dicom"]["sop_uid"])]
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == study["dicom"]["sop_uid"]
    assert sc.SamplesPerPixel == 3 and sc.Rows > 0
    assert fhir.reports()[f"medai-report-{sid}"]["status"] == "preliminary"

    # the signer's label, not the AI's (the film then not normal, whatever the AI said of it)
    sign(client, sid, labels={"Pneumothorax": True, "No Finding": False})
    assert loop(app, clock).run_once() == {"delivered": 2}
    reports = [ds for ds in stored(pacs, uid) if ds.get("VerificationFlag") == "VERIFIED"]
    assert (
        len(reports) == 1
        and reports[0].VerifyingObserverSequence[0].VerifyingObserverName.family_name == "rad1"
    )
    # the signed SR states the signature's labels; the AI's states only as its suggestions
    from medai.platform.documents.sr.dicom_report import read_report_findings

    said = read_report_findings(reports[0])
    labels = client.get(f"/api/v1/studies/{sid}/labels", headers=bearer(client, "rad1")).json()
    assert dict(said["stated"]) == {
        task.finding_code(x["label"]): "present" if x["present"] else "absent"
        for x in labels["labels"]
    }
    assert dict(said["stated"])[task.finding_code("Pneumothorax")] == "present"
    assert {r["code"]: r["state"] for r in said["ai"]} == {
        task.finding_code(label): f["state"] for label, f in api.items()
    }
    dr = fhir.reports()[f"medai-report-{sid}"]
    assert dr["status"] == "final"
    imaging = fhir.resources[("ImagingStudy", f"medai-study-{sid}")]
    assert dr["imagingStudy"] == [{"reference": f"ImagingStudy/medai-study-{sid}"}]
    assert imaging["identifier"][0]["value"] == f"urn:oid:{uid}"

    sign(client, sid, "Sağ alt lobda konsolidasyon (düzeltildi).")
    assert loop(app, clock).run_once() == {"delivered": 2}
    reports = sorted(
        (ds for ds in stored(pacs, uid) if ds.get("VerificationFlag") == "VERIFIED"),
        key=lambda ds: int(ds.InstanceNumber),
    )
    assert len(reports) == 2 and len(stored(pacs, uid)) == 5
    assert (
        reports[1]
        .PredecessorDocumentsSequence[0]
        .ReferencedSeriesSequence[0]
        .ReferencedSOPSequence[0]
        .ReferencedSOPInstanceUID
        == reports[0].SOPInstanceUID
    )
    assert fhir.reports()[f"medai-report-{sid}"]["status"] == "amended"


def test_a_slice_with_geometry_also_gets_its_saliency_as_a_parametric_map(hosp, pacs, tmp_path):
    """An MR slice (Frame of Reference, image plane) gets, beside the SR and the picture, the
    Grad-CAM as a Parametric Map on its own grid and geometry; its float values are the
    stored overlay's saliency, 0..1, peaking at 1."""
    import highdicom as hd
    import numpy as np
    from pydicom.uid import generate_uid

    from medai.services.imaging import saliency_of_overlay

    app, client, _fhir, clock = hosp
    uid, frame = generate_uid(), generate_uid()
    path = make_dicom(
        tmp_path / "mr.dcm",
        "MR",
        body_part="BRAIN",
        view=None,
        study=uid,
        rows=72,
        cols=64,
        accession="ACC-MR",
        FrameOfReferenceUID=frame,
        ImagePositionPatient=[-90.0, -100.0, 12.5],
        ImageOrientationPatient=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        PixelSpacing=[0.9, 0.9],
        SliceThickness=5.0,
    )
    rad = bearer(client, "rad1")
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "mri"},
        files={"file": ("mr.dcm", path.read_bytes(), "application/dicom")},
    )
    study = wait_status(client, rad, r.json()["id"], {"ai_drafted", "refused"})
    assert study["status"] == "ai_drafted", study["ai_result"]
    assert loop(app, clock).run_once() == {"delivered": 2}
    objects = {ds.SOPClassUID.name: ds for ds in stored(pacs, uid)}
    assert sorted(objects) == [
        "Comprehensive SR Storage",
        "Parametric Map Storage",
        "Secondary Capture Image Storage",
    ]
    pm = hd.pm.ParametricMap.from_dataset(objects["Parametric Map Storage"])
    assert pm.FrameOfReferenceUID == frame and (pm.Rows, pm.Columns) == (72, 64)
    assert pm.SourceImageSequence[0].ReferencedSOPInstanceUID == study["dicom"]["sop_uid"]
    assert "not a diagnosis" in pm.ImageComments and pm.ContentLabel == "GRADCAM"
    undecided = study["ai_result"]["decision"]["state"] == "indeterminate"
    for ds in (pm, objects["Secondary Capture Image Storage"]):  # says so when it was
        assert ("undecided" in ds.SeriesDescription) == undecided
    values = pm.pixel_array
    assert values.dtype == np.float32 and values.min() >= 0.0 and values.max() == 1.0
    with app.state.platform.db.reader() as db:
        from medai.platform.worklist import ai_results

        heat = ai_results.latest_result(db, study["id"]).heatmap_sha256
    expected = saliency_of_overlay(app.state.platform.store.read(heat), 72, 64)
    assert np.array_equal(values, expected)


def test_a_pacs_that_was_down_gets_each_object_once(hosp, pacs, tmp_path):
    app, client, _fhir, clock = hosp
    pacs_down(pacs)
    try:
        sid, uid, _ = dicom_study(client, tmp_path, 2)
        assert loop(app, clock).run_once() == {"retrying": 1, "delivered": 1}
        clock.now += timedelta(seconds=11)
        assert loop(app, clock).run_once() == {"retrying": 1}
    finally:
        pacs_up(pacs)
    clock.now += timedelta(seconds=30)
    assert loop(app, clock).run_once() == {"delivered": 1}
    assert len(stored(pacs, uid)) == 3  # the AI's SR, heatmap and its region

    # killed after the C-STORE, before marking: sent again, still one copy of each
    sign(client, sid)

    class Crash(BaseException):
        pass

    def die(item):
        raise Crash()

    with pytest.raises(Crash):
        loop(app, clock, after_send=die).run_once()
    assert len(stored(pacs, uid)) == 4  # the report SR arrived
    clock.now += timedelta(seconds=61)
    assert loop(app, clock).run_once() == {"delivered": 2}
    assert len(stored(pacs, uid)) == 4

    # the same objects by STOW-RS to the same PACS: no second copy either
    from medai.destinations_config import DicomWebDestination

    web = DicomWebDestination(name="pacs-web", kind="dicomweb", url=pacs["server"].dicomweb_url)
    from medai.platform.delivery import outbox
    from medai.platform.records.tables import OutboxItem, ReportVersion, Study

    p = app.state.platform
    with p.db.session() as db:
        s = db.get(Study, sid)
        from sqlalchemy import select

        ai_id = db.scalar(
            select(OutboxItem.ai_result_id).where(
                OutboxItem.study_id == sid,
                OutboxItem.event == "analysed",
                OutboxItem.destination == "pacs",
            )
        )
        v1 = db.scalar(
            select(ReportVersion).where(ReportVersion.study_id == sid, ReportVersion.version == 1)
        )
        rows = outbox.on_analysed(db, s, ai_id, v1, destinations=[web])
        assert [r.destination for r in rows] == ["pacs-web"]
    assert loop(app, clock, destinations=[web]).run_once() == {"delivered": 1}
    assert len(stored(pacs, uid)) == 4


def test_a_pacs_that_refuses_leaves_a_failed_delivery_for_an_admin(hosp, pacs, tmp_path):
    from medai.destinations_config import DicomDestination

    app, client, _fhir, clock = hosp
    wrong = DicomDestination(
        name="pacs",
        kind="dicom",
        ae_title="NOT_ORTHANC",
        host="127.0.0.1",
        port=pacs["server"].dicom_port,
    )
    _sid, uid, _ = dicom_study(client, tmp_path, 3)
    assert loop(app, clock, destinations=[wrong]).run_once() == {"failed": 1}
    view = client.get(
        "/api/v1/admin/outbox", headers=bearer(client, "admin"), params={"state": "failed"}
    ).json()
    (item,) = view["items"]
    assert (item["destination"], item["code"]) == ("pacs", "destination_rejected")
    assert "association rejected" in item["reason"] and uid not in json.dumps(view)
    assert PATIENT_ID not in json.dumps(view) and stored(pacs, uid) == []
    r = client.post(f"/api/v1/admin/outbox/{item['id']}/retry", headers=bearer(client, "admin"))
    assert r.status_code == 200
    assert loop(app, clock).run_once() == {"delivered": 2}  # the right AE title this time
    assert len(stored(pacs, uid)) == 3
