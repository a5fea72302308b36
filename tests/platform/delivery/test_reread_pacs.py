"""A re-read replaces the old AI result in the PACS (issue 67), end to end: a modality sends an
MR series to medai's DICOM node (dcmtk's storescu), the AI's draft and its objects reach a
real PACS (Orthanc, ``helpers.orthanc``), a FHIR server and an HL7 receiver; then more slices
of the same series arrive, medai reads the study again (draft v2) and the outbox delivers the
new reading: the PACS holds the new findings SR (the second reading's probabilities, under
UIDs of its own) and an IOCM rejection note titled "Rejected for Quality Reasons" (DCM
113001) listing exactly the first reading's objects; the FHIR DiagnosticReport is version 2's
and the HL7 receiver got version 2's ORU for the same order. Orthanc implements no IOCM: it
stores the note as one more instance and still answers the rejected objects (a PACS that
implements IOCM hides them). Delivering again sends nothing. SQLite and PostgreSQL.

Before issue 67 the second reading's SR had the first's UID, so Orthanc kept the first SR."""

from __future__ import annotations

import io
import json
import random
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from helpers.dicom import make_dicom, need_dcmtk, storescu
from helpers.orthanc import OrthancUnavailable, _stop, start_orthanc
from helpers.outbox_peers import FhirServer, MllpServer
from helpers.platform import bearer, clinic, wait_status
from helpers.viewer import ORIENTATION, settled

pytestmark = [pytest.mark.server, pytest.mark.dcmtk]
KOS = "1.2.840.10008.5.1.4.1.1.88.59"
SR = "1.2.840.10008.5.1.4.1.1.88.33"


@pytest.fixture(scope="module")
def pacs():
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
def hosp(request, pacs, tmp_path, tfidf_model_dir, tiny_imaging_dir, tiny_mri_dir, monkeypatch):
    """medai with its DICOM node (MODALITY may send; a series settles for 1 s), the PACS,
    a FHIR server and an HL7 receiver that takes the AI's drafts too."""
    need_dcmtk()
    from medai.settings import get_settings

    fhir, hl7 = FhirServer().start(), MllpServer().start()
    (tmp_path / "destinations.yaml").write_text(
        "destinations:\n"
        f"  - {{name: pacs, kind: dicom, ae_title: {pacs.aet}, host: 127.0.0.1, "
        f"port: {pacs.dicom_port}}}\n"
        f"  - {{name: his, kind: fhir, url: '{fhir.url}'}}\n"
        f"  - {{name: ris, kind: hl7, host: 127.0.0.1, port: {hl7.port}, "
        "events: [analysed, signed]}\n"
    )
    monkeypatch.setenv("MEDAI_DESTINATIONS_FILE", str(tmp_path / "destinations.yaml"))
    monkeypatch.setenv("MEDAI_DICOM_ALLOW", '["MODALITY"]')
    monkeypatch.setenv("MEDAI_STUDY_STABLE_S", "1")
    get_settings.cache_clear()
    try:
        with clinic(
            request.param,
            tmp_path / "home",
            tfidf_model_dir,
            tiny_imaging_dir,
            models={"mri": str(tiny_mri_dir)},
            dicom_port=0,
            outbox_threads=0,
        ) as (app, client):
            yield app, client, fhir, hl7
    finally:
        fhir.stop()
        hl7.stop()
        get_settings.cache_clear()


def slices(folder: Path, first: int, n: int, *, study: str, series: str, frame: str) -> list:
    """Axial MR slices ``first`` .. ``first + n - 1`` of one series (z rising 5 mm a slice,
    pixels of their own): their files."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(first, first + n):
        sop = generate_uid()
        out.append(
            make_dicom(
                folder / f"{k:03d}.dcm",
                "MR",
                body_part="BRAIN",
                view=None,
                study=study,
                series=series,
                sop=sop,
                accession="ACC-REREAD",
                description="T2 aksiyel beyin",
                rows=64,
                cols=64,
                seed=300 + k,
                InstanceNumber=k + 1,
                FrameOfReferenceUID=frame,
                ImagePositionPatient=[-90.0, -100.0, -40.0 + 5.0 * k],
                ImageOrientationPatient=ORIENTATION,
                PixelSpacing=[0.9, 0.9],
                SliceThickness=5.0,
            )
        )
    return out


def deliver(app) -> dict[str, int]:
    from medai.platform.delivery.delivery import DeliveryLoop

    return DeliveryLoop(app.state.platform, rng=random.Random(5), lease_s=60).run_once()


def stored(server, study_uid: str) -> dict[str, pydicom.Dataset]:
    """Every instance Orthanc holds in the study, read back as DICOM, by SOP Instance UID."""
    ids = server.rest(
        "/tools/find",
        "POST",
        json.dumps({"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}}).encode(),
    )
    out = {}
    for i in ids:
        with urllib.request.urlopen(f"{server.url}/instances/{i}/file", timeout=10) as resp:
            ds = pydicom.dcmread(io.BytesIO(resp.read()))
        out[str(ds.SOPInstanceUID)] = ds
    return out


def ai_objects(held: dict[str, pydicom.Dataset]) -> dict[str, pydicom.Dataset]:
    """The AI's objects among them (the modality's slices left out)."""
    return {k: ds for k, ds in held.items() if ds.get("Manufacturer") == "medai"}


def reread(client, headers, sid: int, timeout: float = 240.0) -> dict:
    """Wait until the study's report is the second reading's draft (version 2)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        report = client.get(f"/api/v1/studies/{sid}/report", headers=headers).json()
        if report.get("version") == 2:
            return report
        time.sleep(0.2)
    raise AssertionError(f"study {sid} was not read again: report {report.get('version')}")


def probabilities(sr: pydicom.Dataset) -> dict[str, float]:
    from medai.platform.documents.sr.findings_sr import read_findings_sr

    return {f["label"]: round(f["probability"], 6) for f in read_findings_sr(sr)["findings"]}


def test_a_reread_replaces_the_ai_result_at_the_pacs_fhir_and_hl7(hosp, pacs, tmp_path):
    from medai.platform.documents.ko.dicom_rejection import read_rejection_note

    app, client, fhir, hl7 = hosp
    rad = bearer(client, "rad1")
    port = app.state.dicom_node.port
    study, series, frame = generate_uid(), generate_uid(), generate_uid()

    first = slices(tmp_path / "a", 0, 10, study=study, series=series, frame=frame)
    assert storescu(port, *first).returncode == 0
    rows = client.get("/api/v1/studies", headers=rad, params={"accession": "ACC-REREAD"}).json()
    sid = rows["items"][0]["id"]
    one = wait_status(client, rad, sid, {"ai_drafted"})
    settled(app.state.platform, sid)
    assert deliver(app) == {"delivered": 3}  # the SR, heatmap (and map); FHIR; the HL7 ORU
    before = ai_objects(stored(pacs, study))
    (sr1,) = [ds for ds in before.values() if ds.SOPClassUID == SR]
    assert probabilities(sr1) == {
        r["label"]: round(r["probability"], 6) for r in one["ai_result"]["decision"]["labels"]
    }

    more = slices(tmp_path / "b", 10, 10, study=study, series=series, frame=frame)
    assert storescu(port, *more).returncode == 0
    reread(client, rad, sid)
    settled(app.state.platform, sid)
    two = client.get(f"/api/v1/studies/{sid}", headers=rad).json()
    assert two["ai_result"]["read"]["instances_in_series"] == 20  # the whole series read
    new = {r["label"]: round(r["probability"], 6) for r in two["ai_result"]["decision"]["labels"]}

    assert deliver(app) == {"delivered": 3}
    after = ai_objects(stored(pacs, study))
    added = {k: ds for k, ds in after.items() if k not in before}
    notes = [ds for ds in added.values() if ds.SOPClassUID == KOS]
    (sr2,) = [ds for ds in added.values() if ds.SOPClassUID == SR]
    # the new SR is there: the second reading's findings and time, in a series of its own
    # (the tiny model's answers barely depend on the pixels: the time tells the readings apart)
    assert probabilities(sr2) == new
    assert (sr2.ContentDate, sr2.ContentTime) > (sr1.ContentDate, sr1.ContentTime)
    assert sr2.SeriesInstanceUID != sr1.SeriesInstanceUID
    assert {ds.SOPClassUID for ds in added.values()} - {KOS} == {
        ds.SOPClassUID for ds in before.values()
    }  # every kind of AI object again: SR, heatmap SC (and Parametric Map)
    # and the old reading is rejected: one IOCM note, 113001, over exactly its objects
    (note,) = notes
    said = read_rejection_note(note)
    assert said["code"] == ("DCM", "113001", "Rejected for Quality Reasons")
    assert said["rejected"] == sorted((str(ds.SOPClassUID), k) for k, ds in before.items())
    assert note.StudyInstanceUID == study and note.PatientID == sr1.PatientID
    # Orthanc implements no IOCM: the rejected SR is still there, beside the note
    assert str(sr1.SOPInstanceUID) in after

    # FHIR: the same DiagnosticReport, now version 2's; HL7: version 2's ORU, same order
    dr = fhir.reports()[f"medai-report-{sid}"]
    assert dr["status"] == "preliminary"
    assert {"system": "urn:medai:report", "value": f"{sid}/2"} in dr["identifier"]
    assert len(hl7.distinct) == 2
    oru = [m.ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION.OBR for m in hl7.messages]
    assert {str(o.obr_3.value) for o in oru} == {str(oru[0].obr_3.value)}
    assert [str(o.obr_25.value) for o in oru] == ["P", "P"]

    assert deliver(app) == {}  # nothing more

    # the first reading's PACS row, had it failed and been retried by hand now, is not sent:
    # it would put the replaced result back (its objects are the same UIDs, rejected)
    from sqlalchemy import select

    from medai.platform.delivery import outbox
    from medai.platform.records.tables import OutboxItem

    with app.state.platform.db.session() as db:
        old = db.scalars(
            select(OutboxItem)
            .where(OutboxItem.study_id == sid, OutboxItem.destination == "pacs")
            .order_by(OutboxItem.id)
        ).first()
        old.state, old_id = "failed", old.id
        outbox.retry(db, old_id, old.updated_at)
    assert deliver(app) == {"skipped": 1}
    with app.state.platform.db.reader() as db:
        assert db.get(OutboxItem, old_id).code == "superseded"
    assert set(stored(pacs, study)) == set(after)
