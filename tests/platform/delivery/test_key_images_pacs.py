"""The AI's key slices and the signer's viewer measurements reach a real PACS (Orthanc, ``helpers.orthanc``) as an IHE Key Image Note
through the outbox: nothing before sign-off (the analysis sends its findings SR and heatmap
only), then with the signed report's SR one note under the study's StudyInstanceUID and patient,
referencing the key slices' SOP class and instance UIDs; an amendment's signature sends the same
note again and the PACS still holds one; a retraction's rejection note lists it with the rest.
The signer's measurement report (TID 1500 SR, as the viewer saved it) goes with the signed
report, whose Measurements section compares the sizes with the prior's, and a retraction
rejects it too. Skipped, saying why, where Orthanc is not installed."""

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
from helpers.dicom import PATIENT_ID, make_dicom
from helpers.measurements import measurement_sr, stow
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


def titled(objects: list[pydicom.Dataset], code: str) -> list[pydicom.Dataset]:
    """The Key Object Selection documents among ``objects`` titled DCM ``code``."""
    return [
        ds
        for ds in objects
        if ds.SOPClassUID == KOS and ds.ConceptNameCodeSequence[0].CodeValue == code
    ]


def sign(client, sid: int, text: str | None = None) -> None:
    rad = bearer(client, "rad1")
    version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    body = {"version": version, **({"sections": {"findings": text}} if text else {})}
    body["labels"] = decided(client, rad, sid)
    r = client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad, json=body)
    assert r.status_code == 200, r.text


def test_the_key_images_go_to_the_pacs_with_the_signed_report_once(hosp, pacs, tmp_path):
    from pydicom.uid import generate_uid

    from medai.platform.documents.ko.dicom_key_images import read_key_image_note
    from medai.platform.documents.ko.dicom_rejection import read_rejection_note

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
    # no key image note before sign-off (the uploads' re-reads may have sent rejection notes,
    # 113001, over the earlier readings' objects: issue 67)
    assert titled(stored(pacs, uid), "113000") == []

    sign(client, sid)
    assert deliver(app) == {"delivered": 1}
    objects = stored(pacs, uid)
    (note,) = titled(objects, "113000")
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
    assert len(titled(objects, "113000")) == 1
    assert len([ds for ds in objects if ds.get("VerificationFlag") == "VERIFIED"]) == 2

    # retracted: the rejection note lists the key image note with everything else sent
    r = client.post(f"/api/v1/studies/{sid}/retract", headers=rad, json={"reason": "wrong_study"})
    assert r.status_code == 200, r.text
    assert deliver(app) == {"delivered": 1}
    after = stored(pacs, uid)
    (rejection,) = titled(after, "113038")
    assert (KOS, str(note.SOPInstanceUID)) in read_rejection_note(rejection)["rejected"]


def test_the_signers_measurements_reach_the_pacs_compared_with_the_priors(hosp, pacs, tmp_path):
    """A prior film measured 18 × 15 mm and signed, today's 23 × 18 mm: the Measurements
    section says it grew (+28 % on the long axis), the findings' sentence says the sizes were
    compared, and after sign-off the PACS holds the signer's measurement SR beside the report
    SR whose Measurements section states them; a retraction rejects the measurement SR too."""
    from medai.platform.documents.ko.dicom_rejection import read_rejection_note
    from medai.services.reports import SIZES_COMPARED

    app, client = hosp
    rad = bearer(client, "rad1")

    def film(name: str, day: str) -> tuple[int, pydicom.Dataset]:
        path = make_dicom(
            tmp_path / f"{name}.dcm", accession=name, StudyDate=day, ImagerPixelSpacing=[0.2, 0.2]
        )
        r = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "cxr"},
            files={"file": (path.name, path.read_bytes(), "application/dicom")},
        )
        assert r.status_code in (200, 201), r.text
        wait_status(client, rad, r.json()["id"], {"ai_drafted"})
        return r.json()["id"], pydicom.dcmread(path)

    prior_id, prior_image = film("MS-PRIOR", "20240105")
    assert stow(client, rad, measurement_sr(prior_image, 18.0, 15.0)).status_code == 200
    sign(client, prior_id)
    today_id, image = film("MS-TODAY", "20251120")
    saved = measurement_sr(image, 23.0, 18.0)
    assert stow(client, rad, saved).status_code == 200

    got = client.get(f"/api/v1/studies/{today_id}/measurements", headers=rad)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["lines"] == [  # one film: no slice to name
        "Lezyon 23 × 18 mm (dedektör düzleminde); önceki tetkike "
        "(05.01.2024) göre büyüdü: 18 × 15 → 23 × 18 mm (uzun eksen +%28)."
    ]
    assert body["prior"] == {"study_id": prior_id, "date": "05.01.2024"}
    assert body["compared"] and body["phrase"] == list(SIZES_COMPARED["tr"])
    assert [(i["kind"], i["value"], i["mine"]) for i in body["items"]] == [
        ("long_axis", 23.0, True),
        ("short_axis", 18.0, True),
    ]
    # a clinician reads them too, and has none of their own to write
    clin = client.get(f"/api/v1/studies/{today_id}/measurements", headers=bearer(client, "clin"))
    assert clin.status_code == 200 and clin.json()["lines"] == []
    assert len(clin.json()["items"]) == 2

    deliver(app)  # the two readings' objects
    report = client.get(f"/api/v1/studies/{today_id}/report", headers=rad).json()
    sections = {**report["sections"], "measurements": "\n".join(body["lines"])}
    r = client.post(
        f"/api/v1/studies/{today_id}/report/sign",
        headers=rad,
        json={
            "version": report["version"],
            "sections": sections,
            "labels": decided(client, rad, today_id),
        },
    )
    assert r.status_code == 200, r.text
    assert deliver(app) == {"delivered": 1}
    objects = stored(pacs, str(image.StudyInstanceUID))
    sr_uid = str(pydicom.dcmread(io.BytesIO(saved)).SOPInstanceUID)
    (measured,) = [ds for ds in objects if str(ds.SOPInstanceUID) == sr_uid]
    assert measured.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    (signed,) = [ds for ds in objects if ds.get("VerificationFlag") == "VERIFIED"]
    texts = [
        item.TextValue
        for heading in signed.ContentSequence
        if heading.get("ConceptNameCodeSequence")
        and heading.ConceptNameCodeSequence[0].CodeValue == "126010"  # Imaging Measurements
        for item in heading.ContentSequence
    ]
    assert texts == ["\n".join(body["lines"])]

    r = client.post(
        f"/api/v1/studies/{today_id}/retract", headers=rad, json={"reason": "wrong_study"}
    )
    assert r.status_code == 200, r.text
    assert deliver(app) == {"delivered": 1}
    (rejection,) = titled(stored(pacs, str(image.StudyInstanceUID)), "113038")
    rejected = {uid for _cls, uid in read_rejection_note(rejection)["rejected"]}
    assert sr_uid in rejected
