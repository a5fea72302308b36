"""The AI's key slices reach a real PACS (Orthanc, ``helpers.orthanc``) as an IHE Key Image Note
through the outbox: nothing before sign-off (the analysis sends its findings SR and heatmap
only), then with the signed report's SR one note under the study's StudyInstanceUID and patient,
referencing the key slices' SOP class and instance UIDs; an amendment's signature sends the same
note again and the PACS still holds one; a retraction's rejection note lists it with the rest.
Skipped, saying why, where Orthanc is not installed."""

from __future__ import annotations

import io
import json
import random
import shutil
import tempfile
from pathlib import Path

import pydicom
import pytest

from helpers.builders import answering_model
from helpers.dicom import PATIENT_ID
from helpers.orthanc import OrthancUnavailable, _stop, start_orthanc
from helpers.platform import bearer, clinic, decided, wait_status
from helpers.viewer import mr_series, settled, store_read

pytestmark = [pytest.mark.server]
KOS = "1.2.840.10008.5.1.4.1.1.88.59"
MR = "1.2.840.10008.5.1.4.1.1.4"


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


@pytest.fixture(scope="module")
def glioma_mri(tmp_path_factory) -> Path:
    """A tiny MRI model that reads every slice as a glioma."""
    return answering_model(
        tmp_path_factory.mktemp("glioma") / "mri",
        "mri",
        {"Glioma": 0.9, "Meningioma": 0.04, "Pituitary": 0.03, "No_Tumor": 0.03},
        {"min_confidence": 0.5},
    )


@pytest.fixture
def hosp(pacs, tmp_path, tfidf_model_dir, tiny_imaging_dir, glioma_mri, monkeypatch):
    (tmp_path / "destinations.yaml").write_text(
        "destinations:\n"
        f"  - {{name: pacs, kind: dicom, ae_title: {pacs.aet}, host: 127.0.0.1, "
        f"port: {pacs.dicom_port}}}\n"
    )
    monkeypatch.setenv("MEDAI_DESTINATIONS_FILE", str(tmp_path / "destinations.yaml"))
    with clinic(
        "sqlite",
        tmp_path / "home",
        tfidf_model_dir,
        tiny_imaging_dir,
        models={"mri": str(glioma_mri)},
        outbox_threads=0,
    ) as (app, client):
        yield app, client


def deliver(app) -> dict[str, int]:
    from medai.platform.delivery.delivery import DeliveryLoop

    return DeliveryLoop(app.state.platform, rng=random.Random(5), lease_s=60).run_once()


def stored(server, study_uid: str) -> list[pydicom.Dataset]:
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


def sign(client, sid: int, text: str | None = None) -> None:
    rad = bearer(client, "rad1")
    version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    body = {"version": version, **({"sections": {"findings": text}} if text else {})}
    body["labels"] = decided(client, rad, sid)
    r = client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad, json=body)
    assert r.status_code == 200, r.text


def test_the_key_images_go_to_the_pacs_with_the_signed_report_once(hosp, pacs, tmp_path):
    from pydicom.uid import generate_uid

    from medai.platform.documents.dicom_key_images import read_key_image_note
    from medai.platform.documents.dicom_rejection import read_rejection_note

    app, client = hosp
    rad = bearer(client, "rad1")
    uid = generate_uid()
    slices = mr_series(tmp_path, 5, study=uid, accession="ACC-KIN")
    sid = None
    for path, _sop, _z in reversed(slices):
        r = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "mri"},
            files={"file": (path.name, path.read_bytes(), "application/dicom")},
        )
        assert r.status_code in (200, 201), r.text
        sid = sid or r.json()["id"]
    study = wait_status(client, rad, sid, {"ai_drafted"})
    settled(app.state.platform, sid)
    sops = [sop for _path, sop, _z in slices]
    # the result names its key slices (as the series reader does): a tumour on slices 3 and 4
    payload = store_read(
        app.state.platform,
        sid,
        series_uid=study["dicom"]["series_uid"],
        read=sops,
        key=[sops[2], sops[3]],
    )
    assert payload["decision"]["primary"] == "Glioma"

    deliver(app)  # the analysis's objects: findings SR, heatmap
    assert [ds for ds in stored(pacs, uid) if ds.SOPClassUID == KOS] == []  # not before sign-off

    sign(client, sid)
    assert deliver(app) == {"delivered": 1}
    objects = stored(pacs, uid)
    (note,) = [ds for ds in objects if ds.SOPClassUID == KOS]
    (report,) = [ds for ds in objects if ds.get("VerificationFlag") == "VERIFIED"]
    said = read_key_image_note(note)
    assert said["code"] == ("DCM", "113000", "Of Interest")
    assert said["images"] == [(MR, sops[2], []), (MR, sops[3], [])]
    assert said["evidence"] == sorted([(MR, sops[2]), (MR, sops[3])])
    assert said["observers"] == [payload["model"]["name"][:64]]
    assert "tanı değildir" in said["description"]  # the report's language (Turkish)
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "AccessionNumber"):
        assert note.get(keyword) == report.get(keyword), keyword
    assert note.StudyInstanceUID == uid and note.PatientID == PATIENT_ID

    # an amendment: its own report SR, and the same note again (the PACS keeps one)
    sign(client, sid, "Sol temporal lobda kitle (düzeltildi).")
    assert deliver(app) == {"delivered": 1}
    objects = stored(pacs, uid)
    assert len([ds for ds in objects if ds.SOPClassUID == KOS]) == 1
    assert len([ds for ds in objects if ds.get("VerificationFlag") == "VERIFIED"]) == 2

    # retracted: the rejection note lists the key image note with everything else sent
    r = client.post(f"/api/v1/studies/{sid}/retract", headers=rad, json={"reason": "wrong_study"})
    assert r.status_code == 200, r.text
    assert deliver(app) == {"delivered": 1}
    after = stored(pacs, uid)
    (rejection,) = [
        ds for ds in after if ds.SOPClassUID == KOS and ds.SOPInstanceUID != note.SOPInstanceUID
    ]
    assert (KOS, str(note.SOPInstanceUID)) in read_rejection_note(rejection)["rejected"]
