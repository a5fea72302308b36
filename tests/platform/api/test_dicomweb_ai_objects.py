"""The AI's DICOM objects in medai's DICOMweb (``reading.ai_objects`` through
``reading.catalog``), driven by ``dicomweb-client`` against the platform app under a real
uvicorn server, on the tiny chest and MRI models: after an analysis QIDO lists the AI's
series beside the film's; WADO metadata serves the findings SR, whose TID 4019 algorithm
items (111001 name, 111003 version, 111002 parameters with the content hash) read back as the
stored model's; the heatmap's frame is served; every object is labelled as the AI's; the
objects are the very ones delivery sends a PACS (same UIDs, same bytes). A re-read
(``POST /studies/{id}/reanalyse``) shows nothing while it runs; read as an MRI the film is
refused and serves no AI object; read as a chest film again only that new reading's objects
are listed and the old ones are 404. An MR series gets the Parametric Map (its float frame
served) and, only after sign-off, the KOS of its key slices. A retracted study serves
nothing. SQLite."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from helpers.dicom import make_dicom
from helpers.platform import bearer, clinic, free_port

pytestmark = [pytest.mark.server]

HOST = "127.0.0.1"
SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
SEG = "1.2.840.10008.5.1.4.1.1.66.4"
SC_RGB = "1.2.840.10008.5.1.4.1.1.7"
KOS = "1.2.840.10008.5.1.4.1.1.88.59"


def _stow(client, headers, blob: bytes) -> None:
    import uuid

    boundary = uuid.uuid4().hex
    body = (b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + blob) + (
        b"\r\n--" + boundary.encode() + b"--\r\n"
    )
    ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'
    r = client.post(
        "/api/v1/dicomweb/studies", content=body, headers={**headers, "content-type": ctype}
    )
    assert r.status_code == 200, r.text


@pytest.fixture
def site(tmp_path, tfidf_model_dir, tiny_imaging_dir, tiny_mri_dir, monkeypatch) -> Iterator[dict]:
    """The app (analyses run by the test itself) with a chest film filed through STOW-RS and
    analysed, served by uvicorn in a thread. The DICOMweb's 5 s catalog is not kept
    (``VIEW_TTL_S``): the test asks what a reader gets once it has passed, without waiting."""
    import uvicorn
    from pydicom.uid import generate_uid
    from sqlalchemy import select

    from medai.platform.reading import dicomweb_read

    monkeypatch.setattr(dicomweb_read, "VIEW_TTL_S", 0.0)
    from medai.platform.reading.analysis import analyse_study
    from medai.platform.records.tables import Study

    with clinic(
        "sqlite",
        tmp_path / "home",
        tfidf_model_dir,
        tiny_imaging_dir,
        models={"mri": str(tiny_mri_dir)},
        outbox_threads=0,
        job_threads=0,
    ) as (app, client):
        rad = bearer(client, "rad1")
        study = generate_uid()
        film = make_dicom(
            tmp_path / "pa.dcm", study=study, series=generate_uid(), accession="AI-1", seed=5
        )
        _stow(client, rad, film.read_bytes())
        p = app.state.platform
        with p.db.reader() as db:
            sid = db.scalar(select(Study.id).where(Study.study_uid == study))
        assert analyse_study(p, sid) == "ai_drafted"
        port = free_port()
        srv = uvicorn.Server(
            uvicorn.Config(
                app, host=HOST, port=port, log_level="warning", log_config=None, lifespan="off"
            )
        )
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        end = time.monotonic() + 30
        while not srv.started:
            assert time.monotonic() < end, "uvicorn did not start"
            time.sleep(0.05)
        try:
            yield {
                "app": app,
                "client": client,
                "rad": rad,
                "url": f"http://{HOST}:{port}/api/v1/dicomweb",
                "study": study,
                "sid": sid,
            }
        finally:
            srv.should_exit = True
            thread.join(10)


def _dw(site):
    from dicomweb_client import DICOMwebClient

    return DICOMwebClient(site["url"], headers=site["rad"])


def _value(item: dict, tag: str):
    return (item.get(tag, {}).get("Value") or [None])[0]


def _ai_series(dw, study: str) -> dict[str, dict]:
    return {
        _value(s, "0020000E"): s
        for s in dw.search_for_series(study)
        if "AI" in (_value(s, "0008103E") or "")
    }


def _tid4019(ds) -> dict[str, list[str]]:
    """Every TEXT content item of the SR under codes 111001 (algorithm name), 111003 (its
    version) and 111002 (its parameters), walked through the whole content tree."""
    found: dict[str, list[str]] = {}

    def walk(items) -> None:
        for item in items:
            if item.get("ValueType") == "TEXT" and "ConceptNameCodeSequence" in item:
                code = item.ConceptNameCodeSequence[0].CodeValue
                if code in ("111001", "111002", "111003"):
                    found.setdefault(code, []).append(str(item.TextValue))
            walk(item.get("ContentSequence") or [])

    walk(ds.get("ContentSequence") or [])
    return found


def _model(site) -> dict:
    from medai.platform.worklist import ai_results

    with site["app"].state.platform.db.reader() as db:
        return dict(ai_results.latest_result(db, site["sid"]).payload["model"])


def test_the_ai_objects_are_listed_read_back_and_the_ones_a_pacs_gets(site):
    import numpy as np
    from pydicom import Dataset

    dw = _dw(site)
    ai = _ai_series(dw, site["study"])
    # the findings SR, the heatmap's Secondary Capture and, a film having no geometry for a
    # Parametric Map, the heatmap's region as a binary SEG
    assert len(ai) == 3
    assert len(dw.search_for_series(site["study"])) == 4  # beside the film's own series
    metas = {uid: dw.retrieve_series_metadata(site["study"], uid) for uid in ai}
    by_class = {_value(m[0], "00080016"): m[0] for m in metas.values()}
    sr = next(m for c, m in by_class.items() if c.startswith(SR_PREFIX))
    sc, seg = by_class[SC_RGB], by_class[SEG]
    for meta in (sr, sc, seg):  # labelled as the AI's, by medai
        assert _value(meta, "00080070") == "medai"
        assert _value(meta, "0008103E").startswith("medai AI ")
    assert "not verified" in _value(sr, "0008103E")
    assert _value(sr, "0040A493") == "UNVERIFIED"  # VerificationFlag: a suggestion

    model = _model(site)
    found = _tid4019(Dataset.from_json(sr))
    # one algorithm item per finding group (TID 1501), every one the stored model's
    assert set(found["111001"]) == {model["name"]}
    assert set(found["111003"]) == {model["version"]}
    assert f"content_hash={model['content_hash']}" in found["111002"]

    sop = _value(sc, "00080018")
    (frame,) = dw.retrieve_instance_frames(site["study"], _value(sc, "0020000E"), sop, [1])
    rows, cols = _value(sc, "00280010"), _value(sc, "00280011")
    pixels = np.frombuffer(frame, np.uint8)
    assert pixels.size == rows * cols * 3 and pixels.max() > 0
    # the SEG's one-bit frame, packed from its own first byte, as OHIF asks for it
    (frame,) = dw.retrieve_instance_frames(
        site["study"], _value(seg, "0020000E"), _value(seg, "00080018"), [1]
    )
    rows, cols = _value(seg, "00280010"), _value(seg, "00280011")
    region = np.unpackbits(np.frombuffer(frame, np.uint8), bitorder="little")[: rows * cols]
    assert len(frame) == (rows * cols + 7) // 8 and 0 < region.sum() < rows * cols

    # the same objects, the same bytes, as an ``analysed`` outbox row sends the PACS
    from sqlalchemy import select

    from medai.platform.delivery import payloads
    from medai.platform.records.tables import OutboxItem, ReportVersion, Study
    from medai.platform.worklist import ai_results

    p = site["app"].state.platform
    with p.db.reader() as db:
        ai_id = ai_results.latest_result(db, site["sid"]).id
        version = db.scalar(
            select(ReportVersion.version).where(ReportVersion.study_id == site["sid"])
        )
    row = OutboxItem(
        event="analysed", study_id=site["sid"], report_version=version, ai_result_id=ai_id
    )
    sent = payloads.dicom_objects(p, row, payloads.gather(p, row))
    assert {str(ds.SOPInstanceUID) for ds in sent} == {
        _value(m[0], "00080018") for m in metas.values()
    }
    # built again, byte for byte: the blobs the DICOMweb serves are these very files
    import hashlib

    from medai.platform.documents.dicom_objects import save_bytes
    from medai.platform.reading import catalog

    with p.db.reader() as db:
        served = {
            o.sop_uid: o.file_sha
            for o in catalog.objects(db, db.get(Study, site["sid"]), p)
            if o.source == "ai"
        }
    assert {str(ds.SOPInstanceUID): hashlib.sha256(save_bytes(ds)).hexdigest() for ds in sent} == (
        served
    )


def _sops(dw, study: str, series: dict) -> set[tuple[str, str]]:
    return {
        (uid, _value(i, "00080018")) for uid in series for i in dw.search_for_instances(study, uid)
    }


def _reread(site, task: str) -> str:
    from medai.platform.reading.analysis import analyse_study

    r = site["client"].post(
        f"/api/v1/studies/{site['sid']}/reanalyse", headers=site["rad"], json={"task": task}
    )
    assert r.status_code == 202, r.text
    # while the study is read again, the reading about to be replaced is not shown
    assert _ai_series(_dw(site), site["study"]) == {}
    return analyse_study(site["app"].state.platform, site["sid"])


def test_a_reread_serves_only_the_new_reading(site):
    from pydicom import Dataset
    from requests import HTTPError

    dw = _dw(site)
    first = _sops(dw, site["study"], _ai_series(dw, site["study"]))
    assert first
    # read as an MRI, the film is refused: no AI object at all, the chest reading's gone
    assert _reread(site, "mri") == "refused"
    assert _ai_series(dw, site["study"]) == {}
    assert len(dw.search_for_series(site["study"])) == 1
    # read as a chest film again: a reading of its own, under UIDs of its own
    assert _reread(site, "cxr") == "ai_drafted"
    now_series = _ai_series(dw, site["study"])
    now = _sops(dw, site["study"], now_series)
    assert len(now) == len(first) and not now & first
    assert len(dw.search_for_series(site["study"])) == 1 + len(now_series)
    for series, sop in first:  # the old reading's objects are gone, not merely unlisted
        with pytest.raises(HTTPError) as err:
            dw.retrieve_instance_metadata(site["study"], series, sop)
        assert err.value.response.status_code == 404
    sr = next(
        dw.retrieve_series_metadata(site["study"], uid)[0]
        for uid in now_series
        if _value(dw.search_for_instances(site["study"], uid)[0], "00080016").startswith(SR_PREFIX)
    )
    assert set(_tid4019(Dataset.from_json(sr))["111001"]) == {_model(site)["name"]}


def test_a_retracted_study_serves_nothing(site):
    from requests import HTTPError

    dw = _dw(site)
    ai = _ai_series(dw, site["study"])
    assert ai
    r = site["client"].post(
        f"/api/v1/studies/{site['sid']}/retract",
        headers=site["rad"],
        json={"reason": "wrong_patient"},
    )
    assert r.status_code == 200, r.text
    for uid in ai:
        with pytest.raises(HTTPError) as err:
            dw.retrieve_series_metadata(site["study"], uid)
        assert err.value.response.status_code == 404
    with pytest.raises(HTTPError) as err:
        dw.search_for_series(site["study"])
    assert err.value.response.status_code == 404


@pytest.fixture(scope="module")
def glioma_mri(tmp_path_factory):
    """A tiny MRI model that reads every slice as a glioma."""
    from helpers.builders import answering_model

    return answering_model(
        tmp_path_factory.mktemp("glioma") / "mri",
        "mri",
        {"Glioma": 0.9, "Meningioma": 0.04, "Pituitary": 0.03, "No_Tumor": 0.03},
        {"min_confidence": 0.5},
    )


def test_an_mr_series_gets_its_parametric_map_and_after_sign_off_its_key_images(
    tmp_path, tfidf_model_dir, tiny_imaging_dir, glioma_mri, monkeypatch
):
    """A tomographic series: the heatmap comes as a Parametric Map too (its frame served),
    and the AI's key slices as a KOS, only once the report is signed (as the PACS gets it)."""
    import numpy as np
    from pydicom.uid import generate_uid

    from helpers.platform import decided, wait_status
    from helpers.viewer import mr_series, settled, store_read
    from medai.platform.reading import dicomweb_read

    monkeypatch.setattr(dicomweb_read, "VIEW_TTL_S", 0.0)  # no 5 s catalog: see ``site``
    with clinic(
        "sqlite",
        tmp_path / "home",
        tfidf_model_dir,
        tiny_imaging_dir,
        models={"mri": str(glioma_mri)},
        outbox_threads=0,
    ) as (app, client):
        rad = bearer(client, "rad1")
        uid = generate_uid()
        slices = mr_series(tmp_path, 5, study=uid, accession="ACC-AI-MR")
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
        store_read(  # the result names its key slices, as the series reader does
            app.state.platform,
            sid,
            series_uid=study["dicom"]["series_uid"],
            read=sops,
            key=[sops[2], sops[3]],
        )
        root = f"/api/v1/dicomweb/studies/{uid}"

        def ai_classes() -> dict[str, dict]:
            r = client.get(f"{root}/instances", headers=rad)
            assert r.status_code == 200, r.text
            return {_value(i, "00080016"): i for i in r.json() if _value(i, "00080018") not in sops}

        before = ai_classes()
        pm = before.pop("1.2.840.10008.5.1.4.1.1.30")  # the Parametric Map
        assert SC_RGB in before and any(c.startswith(SR_PREFIX) for c in before)
        assert KOS not in before  # not before sign-off
        # its float saliency (FloatPixelData, 0..1) is served as bulk data
        (pm_meta,) = client.get(
            f"{root}/series/{_value(pm, '0020000E')}/metadata", headers=rad
        ).json()
        assert pm_meta["00189004"]["Value"] == ["RESEARCH"]  # ContentQualification
        assert _value(pm_meta, "00700080") == "GRADCAM"  # ContentLabel
        uri = pm_meta["7FE00008"]["BulkDataURI"]
        r = client.get(uri[uri.index("/api/v1/") :], headers=rad)
        assert r.status_code == 200, r.text
        body = r.content.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]
        values = np.frombuffer(body, "<f4")
        rows, cols = _value(pm_meta, "00280010"), _value(pm_meta, "00280011")
        assert values.size == rows * cols * int(_value(pm_meta, "00280008") or 1)
        # saliency in 0..1 (this answering model's map is flat: no peak to check)
        assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0
        # and frame by frame, as the viewer loads it (float32, native)
        r = client.get(
            f"{root}/series/{_value(pm, '0020000E')}/instances/{_value(pm, '00080018')}/frames/1",
            headers={**rad, "accept": 'multipart/related; type="application/octet-stream"; '
                     "transfer-syntax=*"},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        frame = r.content.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]
        assert frame == body[: rows * cols * 4]

        version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
        r = client.post(
            f"/api/v1/studies/{sid}/report/sign",
            headers=rad,
            json={"version": version, "labels": decided(client, rad, sid)},
        )
        assert r.status_code == 200, r.text
        after = ai_classes()
        assert KOS in after
        (meta,) = client.get(
            f"{root}/series/{_value(after[KOS], '0020000E')}/metadata", headers=rad
        ).json()
        assert _value(meta, "0008103E") == "medai AI key images (AI suggestion, not a diagnosis)"
        refs = {
            _value(i, "00081155")
            for item in meta["0040A375"]["Value"]  # CurrentRequestedProcedureEvidenceSequence
            for s in item["00081115"]["Value"]
            for i in s["00081199"]["Value"]
        }
        assert refs == {sops[2], sops[3]}
