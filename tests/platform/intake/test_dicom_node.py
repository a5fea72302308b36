"""The DICOM node, on SQLite and on the real PostgreSQL server, with dcmtk's storescu/echoscu
as the modality: studies arrive by C-STORE, show in the worklist with their accession number,
are routed by their DICOM attributes and analysed by the job pool; refusals are DICOM failure
statuses; associations from unknown AE titles are rejected."""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from helpers.dicom import NAME, PATIENT_ID, echoscu, make_dicom, need_dcmtk, storescu
from helpers.platform import bearer, clinic, wait_status

pytestmark = [pytest.mark.dcmtk]

BACKENDS = ["sqlite", "postgresql"]
MRI_LABELS = ("Glioma", "Meningioma", "Pituitary", "No_Tumor")


@pytest.fixture(scope="module", params=BACKENDS)
def node(request, tmp_path_factory, tfidf_model_dir, tiny_imaging_dir, tiny_mri_dir):
    """A platform app on the backend with its DICOM node on a free port (MODALITY and PACS
    may send) and its job pool."""
    need_dcmtk()
    from medai.settings import get_settings

    home = tmp_path_factory.mktemp(f"dicom-{request.param}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDAI_DICOM_ALLOW", '["MODALITY", "PACS"]')
        with clinic(
            request.param,
            home,
            tfidf_model_dir,
            tiny_imaging_dir,
            models={"mri": str(tiny_mri_dir)},
            dicom_port=0,
        ) as (app, client):
            files = home / "sent"
            files.mkdir()
            yield SimpleNamespace(
                app=app,
                client=client,
                port=app.state.dicom_node.port,
                home=home,
                files=files,
                rad=bearer(client, "rad1"),
            )
    get_settings.cache_clear()


def _studies(node, **params) -> dict:
    r = node.client.get("/api/v1/studies", headers=node.rad, params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return r.json()


def _by_accession(node, accession: str) -> dict:
    found = _studies(node, accession=accession)
    assert found["total"] == 1, found
    return found["items"][0]


def _jobs(node, study_id: int) -> int:
    from medai.platform.records.tables import Job

    with node.app.state.platform.db.session() as db:
        return db.scalar(select(func.count()).select_from(Job).where(Job.study_id == study_id))


def _blobs(node) -> int:
    return sum(1 for p in (node.home / "blobs").rglob("*") if p.is_file())


def test_echo_answers_and_a_chest_radiograph_is_filed_analysed_and_identified(node, caplog):
    assert echoscu(node.port).returncode == 0
    caplog.set_level(logging.DEBUG)
    path = make_dicom(node.files / "cr.dcm", "CR", accession="CR-0001", view="PA")
    sent = storescu(node.port, path)
    assert sent.returncode == 0, sent.stderr
    assert "Received Store Response (Success)" in sent.stderr
    row = _by_accession(node, "CR-0001")  # in the worklist, found by its accession
    assert row["task"] == "cxr" and row["dicom"]["source"] == "dicom"
    assert row["dicom"]["patient_name"] == NAME and row["dicom"]["patient_id"] == PATIENT_ID
    assert row["dicom"]["series"] is None  # a worklist row leaves the series out
    assert _by_accession(node, "CR-00")["id"] == row["id"]  # a prefix finds it too
    done = wait_status(node.client, node.rad, row["id"], {"ai_drafted"})
    assert done["ai_result"]["model"]["name"] == "tiny-efficientnet-lite0"
    d = done["dicom"]
    assert (d["modality"], d["view_position"], d["body_part"], d["study_date"]) == (
        "CR",
        "PA",
        "CHEST",
        "20251120",
    )
    assert d["instances"] == 1 and len(d["series"]) == 1
    medai_lines = [r.getMessage() for r in caplog.records if r.name.startswith("medai")]
    assert any("C-STORE from MODALITY" in line for line in medai_lines)
    for secret in (NAME, "YILMAZ", PATIENT_ID, "CR-0001", d["study_uid"], d["sop_uid"]):
        assert not any(secret in line for line in medai_lines), secret


def test_a_brain_mri_goes_to_the_mri_model(node):
    path = make_dicom(
        node.files / "mr.dcm",
        "MR",
        body_part=None,
        view=None,
        accession="MR-0001",
        description="T1 AX BRAIN",
    )
    assert storescu(node.port, path).returncode == 0
    row = _by_accession(node, "MR-0001")
    assert row["task"] == "mri"
    done = wait_status(node.client, node.rad, row["id"], {"ai_drafted", "refused"})
    assert done["status"] == "ai_drafted", done
    assert {f["label"] for f in done["ai_result"]["findings"]} == set(MRI_LABELS)


def test_a_study_no_model_reads_is_kept_marked_and_reported_by_hand(node):
    path = make_dicom(
        node.files / "us.dcm", "US", body_part="ABDOMEN", view=None, accession="US-0001"
    )
    assert storescu(node.port, path).returncode == 0
    row = _by_accession(node, "US-0001")
    assert row["status"] == "no_model" and row["task"] == ""
    assert row["reason"].startswith("no AI model for this study")
    assert _jobs(node, row["id"]) == 0  # never forced through a model
    assert row["id"] in {s["id"] for s in _studies(node, status="no_model")["items"]}
    study = node.client.get(f"/api/v1/studies/{row['id']}", headers=node.rad).json()
    assert study["ai_result"] is None and study["dicom"]["modality"] == "US"
    image = node.client.get(f"/api/v1/studies/{row['id']}/image", headers=node.rad)
    assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
    url = f"/api/v1/studies/{row['id']}/report"
    assert node.client.get(url, headers=node.rad).status_code == 404
    sections = {
        "technique": "Abdomen US.",
        "findings": "Karaciğer normal.",
        "impression": "Normal.",
        "recommendation": "",
    }
    signed = node.client.post(
        f"{url}/sign", headers=node.rad, json={"version": 0, "sections": sections}
    )
    assert signed.status_code == 200, signed.text
    assert signed.json()["status"] == "final" and signed.json()["ai_assisted"] is False


def test_a_second_series_joins_its_study_and_a_repeated_instance_is_stored_once(node):
    from pydicom.uid import generate_uid

    study = generate_uid()
    pa = make_dicom(node.files / "pa.dcm", "DX", study=study, accession="JOIN-1", view="PA")
    lateral = make_dicom(
        node.files / "ll.dcm",
        "DX",
        study=study,
        accession="JOIN-1",
        view="LL",
        seed=3,
        SeriesNumber=2,
    )
    assert storescu(node.port, pa).returncode == 0
    sid = _by_accession(node, "JOIN-1")["id"]
    assert storescu(node.port, lateral, pa).returncode == 0  # a new series, and pa again
    assert _studies(node, accession="JOIN-1")["total"] == 1
    d = node.client.get(f"/api/v1/studies/{sid}", headers=node.rad).json()["dicom"]
    assert d["instances"] == 2 and [s["view_position"] for s in d["series"]] == ["PA", "LL"]
    assert d["view_position"] == "PA"  # the series the AI reads
    assert _jobs(node, sid) == 1
    admin = bearer(node.client, "admin")
    events = node.client.get(
        "/api/v1/audit", headers=admin, params={"action": "upload", "target_id": str(sid)}
    ).json()["items"]
    assert sorted(e["detail"]["filed"] for e in events) == ["duplicate", "joined", "new"]
    assert {e["actor"] for e in events} == {"dicom:MODALITY"}
    wait_status(node.client, node.rad, sid, {"ai_drafted"})


def test_a_study_sent_lateral_first_gets_its_model_with_the_frontal_series(node):
    from pydicom.uid import generate_uid

    study = generate_uid()
    lateral = make_dicom(
        node.files / "late-ll.dcm", "CR", study=study, accession="LATE-1", view="LL"
    )
    frontal = make_dicom(
        node.files / "late-pa.dcm", "CR", study=study, accession="LATE-1", view="PA", seed=5
    )
    assert storescu(node.port, lateral).returncode == 0
    row = _by_accession(node, "LATE-1")
    assert row["status"] == "no_model" and _jobs(node, row["id"]) == 0
    assert storescu(node.port, frontal).returncode == 0
    done = wait_status(node.client, node.rad, row["id"], {"ai_drafted"})
    assert done["task"] == "cxr" and done["reason"] is None
    assert done["dicom"]["view_position"] == "PA" and _jobs(node, row["id"]) == 1


def test_refused_instances_get_a_dicom_failure_status_and_leave_nothing(node, monkeypatch):
    from medai.platform.intake import dicom_node

    before, blobs = _studies(node)["total"], _blobs(node)
    no_uid = make_dicom(node.files / "no-uid.dcm", accession="BAD-1", drop=("StudyInstanceUID",))
    r = storescu(node.port, no_uid)
    assert r.returncode == 0xA9 and "DataSetDoesNotMatchSOPClass" in r.stderr
    bomb = make_dicom(node.files / "bomb.dcm", accession="BAD-2")
    import pydicom

    ds = pydicom.dcmread(bomb)
    ds.Rows = ds.Columns = 60000  # declares 3.6 gigapixels in 8 KB
    ds.save_as(bomb)
    r = storescu(node.port, bomb)
    assert r.returncode == 0xA7 and "OutOfResources" in r.stderr
    monkeypatch.setattr(dicom_node, "MESSAGE_LIMIT", 64 * 1024)
    big = make_dicom(node.files / "big.dcm", accession="BAD-3", rows=256, cols=256)
    r = storescu(node.port, big)  # 128 KiB of pixels: the connection is closed mid-way
    assert r.returncode != 0 and "Success" not in r.stderr
    monkeypatch.undo()
    assert _studies(node)["total"] == before and _blobs(node) == blobs
    assert echoscu(node.port).returncode == 0  # the node is still answering
    admin = bearer(node.client, "admin")
    refused = [
        e["detail"]
        for e in node.client.get(
            "/api/v1/audit",
            headers=admin,
            params={"action": "upload", "actor": "dicom:MODALITY", "limit": 500},
        ).json()["items"]
        if e["outcome"] == "refused"
    ]
    assert {(d["status"], d["reason"]) for d in refused} >= {
        ("0xA900", "Unacceptable"),
        ("0xA700", "TooLarge"),
    }


def test_associations_from_unknown_or_misaddressed_ae_titles_are_rejected(node):
    path = make_dicom(node.files / "stranger.dcm", accession="STRANGE-1")
    r = storescu(node.port, path, aet="STRANGER")
    assert r.returncode != 0 and "Calling AE Title Not Recognized" in r.stderr
    r = storescu(node.port, path, aet="PACS", aec="NOTMEDAI")
    assert r.returncode != 0 and "Called AE Title Not Recognized" in r.stderr
    assert echoscu(node.port, aet="STRANGER").returncode != 0
    assert _studies(node, accession="STRANGE-1")["total"] == 0
    assert storescu(node.port, path, aet="PACS").returncode == 0  # an allowed one may
    admin = bearer(node.client, "admin")
    denied = node.client.get(
        "/api/v1/audit", headers=admin, params={"action": "denied", "actor": "dicom:STRANGER"}
    ).json()["items"]
    assert denied and denied[0]["target_type"] == "dicom_association"


def test_compressed_studies_are_stored_as_sent_and_decoded_or_refused_clearly(node):
    import shutil
    import subprocess

    import pydicom

    if not (shutil.which("dcmcjpeg") and shutil.which("dcmcrle")):
        pytest.skip("dcmtk's dcmcjpeg/dcmcrle are not installed")
    made = {}
    proposed = {"jpeg": "-xy", "rle": "-xr", "lossless": "-xs"}  # storescu offers the syntax
    for name, tool, options in (
        ("jpeg", "dcmcjpeg", ["+eb"]),
        ("rle", "dcmcrle", []),
        ("lossless", "dcmcjpeg", ["+e1"]),
    ):
        plain = make_dicom(node.files / f"{name}-plain.dcm", accession=f"CMP-{name.upper()}")
        if name == "jpeg":  # baseline JPEG is 8-bit
            ds = pydicom.dcmread(plain)
            pixels = ds.pixel_array
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
            ds.PixelData = (pixels >> 4).astype("uint8").tobytes()
            ds.save_as(plain)
        made[name] = node.files / f"{name}.dcm"
        subprocess.run([tool, *options, str(plain), str(made[name])], check=True)
    for name, path in made.items():
        sent = storescu(node.port, path, options=(proposed[name],))
        assert sent.returncode == 0, sent.stderr
        assert "-> Little Endian" not in sent.stderr  # it went compressed
    for name, path in made.items():
        row = _by_accession(node, f"CMP-{name.upper()}")
        done = wait_status(node.client, node.rad, row["id"], {"ai_drafted", "refused"})
        sha = done["file"]["sha256"]
        stored = pydicom.dcmread(
            io.BytesIO(node.app.state.platform.store.read(sha)), stop_before_pixels=True
        )
        sent = pydicom.dcmread(path, stop_before_pixels=True)
        assert stored.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
        if name in ("jpeg", "rle"):  # Pillow and pydicom decode these themselves
            assert done["status"] == "ai_drafted", done
        elif done["status"] == "refused":  # JPEG lossless needs pylibjpeg or gdcm
            assert done["ai_result"]["reason_code"] == "unreadable"
            assert "install a decoder" in done["ai_result"]["reason"]


def test_instances_of_one_new_study_sent_at_once_make_one_study(node):
    from concurrent.futures import ThreadPoolExecutor

    from pydicom.uid import generate_uid

    study, series = generate_uid(), generate_uid()
    paths = [
        make_dicom(
            node.files / f"race-{i}.dcm",
            study=study,
            series=series,
            accession="RACE-1",
            seed=i,
            InstanceNumber=i + 1,
        )
        for i in range(6)
    ]
    with ThreadPoolExecutor(6) as pool:  # six modalities' associations at the same moment
        results = list(pool.map(lambda p: storescu(node.port, p), paths))
    assert [r.returncode for r in results] == [0] * 6, [r.stderr[-300:] for r in results]
    row = _by_accession(node, "RACE-1")
    d = node.client.get(f"/api/v1/studies/{row['id']}", headers=node.rad).json()["dicom"]
    assert d["instances"] == 6 and len(d["series"]) == 1
    assert [i["number"] for i in d["series"][0]["instances"]] == [1, 2, 3, 4, 5, 6]
    assert _jobs(node, row["id"]) == 1
    wait_status(node.client, node.rad, row["id"], {"ai_drafted"})
