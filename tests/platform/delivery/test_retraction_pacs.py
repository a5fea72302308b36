"""A retraction driven end to end (``platform.reading.retraction``, IHE IOCM) against a real PACS
(Orthanc, ``helpers.orthanc``) and the real FHIR and HL7 receivers (``helpers.outbox_peers``):
a DICOM study is analysed and signed and reaches all three; the radiologist retracts it; then
Orthanc holds a Key Object Selection rejection note whose title is the reason's CID 7011 code
and whose evidence lists exactly the SR and SC objects medai had stored there, the FHIR server's
DiagnosticReport (and its Observations and ImagingStudy) read entered-in-error, and the HL7
receiver got an ORU whose OBR-25 and every OBX-11 are W. A retraction for patient safety is
titled 113037. SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import random
import shutil
import tempfile
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from helpers.dicom import make_dicom
from helpers.orthanc import OrthancUnavailable, _stop, start_orthanc
from helpers.outbox_peers import FhirServer, MllpServer
from helpers.platform import bearer, clinic, decided, wait_status

pytestmark = [pytest.mark.server]
KOS = "1.2.840.10008.5.1.4.1.1.88.59"


@pytest.fixture(scope="module")
def orthanc():
    home = Path(tempfile.mkdtemp(prefix="medai-pacs-"))
    try:
        server = start_orthanc(home)
    except OrthancUnavailable as exc:
        shutil.rmtree(home, ignore_errors=True)
        pytest.skip(str(exc))
    yield server
    _stop(server.process)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def hosp(request, orthanc, tmp_path, tfidf_model_dir, tiny_imaging_dir, monkeypatch):
    fhir, hl7 = FhirServer().start(), MllpServer().start()
    (tmp_path / "destinations.yaml").write_text(
        "destinations:\n"
        f"  - {{name: pacs, kind: dicom, ae_title: {orthanc.aet}, host: 127.0.0.1, "
        f"port: {orthanc.dicom_port}}}\n"
        f"  - {{name: his, kind: fhir, url: '{fhir.url}'}}\n"
        f"  - {{name: ris, kind: hl7, host: 127.0.0.1, port: {hl7.port}}}\n"
    )
    monkeypatch.setenv("MEDAI_DESTINATIONS_FILE", str(tmp_path / "destinations.yaml"))
    try:
        with clinic(
            request.param, tmp_path / "home", tfidf_model_dir, tiny_imaging_dir, outbox_threads=0
        ) as (app, client):
            yield app, client, fhir, hl7
    finally:
        fhir.stop()
        hl7.stop()


def deliver(app) -> dict[str, int]:
    from medai.platform.delivery.delivery import DeliveryLoop

    return DeliveryLoop(app.state.platform, rng=random.Random(5), lease_s=60).run_once()


def stored(server, study_uid: str) -> list[pydicom.Dataset]:
    """Every instance Orthanc holds in the study, read back as DICOM."""
    import urllib.request

    ids = server.rest(
        "/tools/find",
        "POST",
        json.dumps({"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}}).encode(),
    )
    out = []
    for i in ids:
        with urllib.request.urlopen(f"{server.url}/instances/{i}/file", timeout=10) as resp:
            out.append(pydicom.dcmread(io.BytesIO(resp.read())))
    return out


def sent_study(app, client, tmp_path: Path, seed: int) -> tuple[int, str]:
    """A DICOM study analysed and signed, delivered to the PACS, FHIR and HL7."""
    rad = bearer(client, "rad1")
    uid = generate_uid()
    path = make_dicom(tmp_path / f"cr{seed}.dcm", study=uid, seed=seed, rows=96, cols=80)
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr"},
        files={"file": ("cr.dcm", path.read_bytes(), "application/dicom")},
    )
    assert r.status_code == 201, r.text
    sid = wait_status(client, rad, r.json()["id"], {"ai_drafted"})["id"]
    assert deliver(app) == {"delivered": 2}  # the findings SR + heatmap to the PACS; FHIR
    version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    body = {"version": version, "labels": decided(client, rad, sid)}
    r = client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad, json=body)
    assert r.status_code == 200, r.text
    assert deliver(app) == {"delivered": 3}  # the report SR; FHIR final; the HL7 ORU
    return sid, uid


def test_a_retracted_study_is_corrected_at_the_pacs_the_fhir_server_and_the_his(
    hosp, orthanc, tmp_path
):
    from medai.platform.documents.ko.dicom_rejection import read_rejection_note

    app, client, fhir, hl7 = hosp
    rad = bearer(client, "rad1")
    sid, uid = sent_study(app, client, tmp_path, 21)
    before = stored(orthanc, uid)
    assert sorted(ds.Modality for ds in before) == ["OT", "SEG", "SR", "SR"]
    assert fhir.reports()[f"medai-report-{sid}"]["status"] == "final"
    assert len(hl7.messages) == 1

    r = client.post(
        f"/api/v1/studies/{sid}/retract",
        headers=rad,
        json={"reason": "wrong_patient", "note": "başka hastanın çekimi"},
    )
    assert r.status_code == 200, r.text
    assert deliver(app) == {"delivered": 3}  # one correction per destination
    assert deliver(app) == {}  # and nothing more

    # the PACS: the rejection note, read back from Orthanc
    after = stored(orthanc, uid)
    notes = [ds for ds in after if ds.SOPClassUID == KOS]
    assert len(notes) == 1 and len(after) == len(before) + 1
    note = read_rejection_note(notes[0])
    assert note["code"] == ("DCM", "113038", "Incorrect Modality Worklist Entry")
    assert note["rejected"] == sorted(
        (str(ds.SOPClassUID), str(ds.SOPInstanceUID)) for ds in before
    )
    kos = notes[0]
    assert kos.Modality == "KO" and kos.PatientID == before[0].PatientID
    evidence = kos.CurrentRequestedProcedureEvidenceSequence
    assert [e.StudyInstanceUID for e in evidence] == [uid]
    assert {s.SeriesInstanceUID for s in evidence[0].ReferencedSeriesSequence} == {
        ds.SeriesInstanceUID for ds in before
    }

    # FHIR: the same DiagnosticReport, now entered-in-error, as the export says
    dr = fhir.reports()[f"medai-report-{sid}"]
    assert dr["status"] == "entered-in-error"
    assert [s for t, _, s in fhir.history if t == "DiagnosticReport"][-1] == "entered-in-error"
    assert {
        r["status"] for (t, _), r in fhir.resources.items() if t in ("Observation", "ImagingStudy")
    } == {"entered-in-error"}
    export = client.get(f"/api/v1/studies/{sid}/report/fhir", headers=rad).json()
    assert export["entry"][0]["resource"]["status"] == "entered-in-error"

    # HL7: the ORU again, withdrawn (W), under a control id of its own
    assert len(hl7.messages) == 2 and len(hl7.distinct) == 2 and not hl7.unparsed
    last = hl7.messages[-1].ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION
    assert str(last.OBR.obr_25.value) == "W"
    assert {str(o.OBX.obx_11.value) for o in last.ORU_R01_OBSERVATION} == {"W"}

    # the audit trail names each correction's destination
    events = client.get(
        "/api/v1/audit",
        headers=bearer(client, "admin"),
        params={"action": "export", "target_id": str(sid)},
    ).json()["items"]
    assert {
        e["detail"]["destination"] for e in events if e["detail"].get("event") == "retracted"
    } == {
        "pacs",
        "his",
        "ris",
    }


def test_a_retraction_for_patient_safety_is_titled_113037(hosp, orthanc, tmp_path):
    from medai.platform.documents.ko.dicom_rejection import read_rejection_note

    app, client, _fhir, _hl7 = hosp
    sid, uid = sent_study(app, client, tmp_path, 22)
    r = client.post(
        f"/api/v1/studies/{sid}/retract",
        headers=bearer(client, "rad1"),
        json={"reason": "safety"},
    )
    assert r.status_code == 200, r.text
    assert deliver(app) == {"delivered": 3}
    (kos,) = [ds for ds in stored(orthanc, uid) if ds.SOPClassUID == KOS]
    assert read_rejection_note(kos)["code"] == (
        "DCM",
        "113037",
        "Rejected for Patient Safety Reasons",
    )
