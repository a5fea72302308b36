"""DICOMweb read conformance (QIDO-RS, WADO-RS; ``api.routes.dicomweb_read``), driven by
``dicomweb-client`` against the platform app under a real uvicorn server: search studies,
series and instances; metadata with BulkDataURIs; frames (one, several, native and RLE, with
406 for an Accept that takes neither); bulk data; rendered. Who may read: the study page's
accounts only (anonymous 401, a patient account 403, an unapproved radiologist 403
``approval_pending``). A study opened is audited once, not per frame. A retracted study is
not served; an instance quarantined as an identity conflict never is."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from helpers.dicom import make_dicom
from helpers.platform import bearer, clinic, free_port

pytestmark = [pytest.mark.server]

HOST = "127.0.0.1"


def _stow(client, headers, *blobs: bytes, want: tuple[int, ...] = (200,)) -> None:
    import uuid

    boundary = uuid.uuid4().hex
    body = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + b + b"\r\n"
        for b in blobs
    ) + (b"--" + boundary.encode() + b"--\r\n")
    ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'
    r = client.post(
        "/api/v1/dicomweb/studies", content=body, headers={**headers, "content-type": ctype}
    )
    assert r.status_code in want, r.text


def _rle(path) -> bytes:
    """The instance at ``path`` re-encoded RLE Lossless (an encapsulated transfer syntax)."""
    import io

    from pydicom import dcmread
    from pydicom.uid import RLELossless

    ds = dcmread(path)
    ds.compress(RLELossless)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def site(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir) -> Iterator[dict]:
    """The app with a chest study (PA in series 1, an RLE lateral in series 2) and a second
    study to retract, served by uvicorn in a thread."""
    import uvicorn
    from pydicom.uid import generate_uid

    home = tmp_path_factory.mktemp("dicomweb_read")
    with clinic("sqlite", home, tfidf_model_dir, tiny_imaging_dir) as (app, client):
        from medai.platform.access import accounts

        with app.state.platform.db.session() as db:  # a radiologist waiting for approval
            accounts.create_user(
                db,
                "newrad",
                "correct-horse-1",
                "radiologist",
                hash_profile=app.state.platform.settings.auth.password_hash,
            )
        rad = bearer(client, "rad1")
        study, s1, s2 = generate_uid(), generate_uid(), generate_uid()
        pa = make_dicom(
            home / "pa.dcm",
            study=study,
            series=s1,
            accession="DW-1",
            description="PA",
            seed=1,
            StudyDescription="CHEST PA",
            SeriesDate="20251120",
            PatientBirthDate="19710312",
        )
        lat = make_dicom(
            home / "lat.dcm",
            study=study,
            series=s2,
            accession="DW-1",
            view="LATERAL",
            seed=2,
            StudyDescription="CHEST PA",
            SeriesDate="20251120",
            SeriesNumber=2,
            PatientBirthDate="19710312",
        )
        rle = _rle(lat)
        _stow(client, rad, pa.read_bytes(), rle)
        # the same study UID naming another patient: quarantined as an identity conflict
        intruder = make_dicom(
            home / "x.dcm", study=study, series=s1, accession="DW-1", patient_id="OTHER-9", seed=3
        )
        _stow(client, rad, intruder.read_bytes(), want=(409,))
        gone = generate_uid()
        _stow(
            client,
            rad,
            make_dicom(home / "g.dcm", study=gone, accession="DW-2", seed=4).read_bytes(),
        )
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
                "series": (s1, s2),
                "gone": gone,
                "rle": rle,
                "intruder": str(__import__("pydicom").dcmread(intruder).SOPInstanceUID),
            }
        finally:
            srv.should_exit = True
            thread.join(10)


def _dw(site, headers=None):
    from dicomweb_client import DICOMwebClient

    return DICOMwebClient(site["url"], headers=site["rad"] if headers is None else headers)


def _value(item: dict, tag: str):
    return (item.get(tag, {}).get("Value") or [None])[0]


def test_search_studies_series_and_instances(site):
    dw = _dw(site)
    (found,) = dw.search_for_studies(search_filters={"StudyInstanceUID": site["study"]})
    assert _value(found, "0020000D") == site["study"]
    assert _value(found, "00201206") == 2 and _value(found, "00201208") == 2
    assert found["00080061"]["Value"] == ["CR"]
    assert _value(found, "00080050") == "DW-1"
    assert _value(found, "00081030") == "CHEST PA"  # from the instance's header
    assert _value(found, "00100010")["Alphabetic"]  # the patient's name, as the viewer shows
    assert _value(found, "00100030") == "19710312"  # the birth date, opened once (sealed at rest)
    by_name = dw.search_for_studies(
        search_filters={"PatientName": _value(found, "00100010")["Alphabetic"][:3] + "*"},
        fields=["StudyDate"],
    )
    assert site["study"] in {_value(s, "0020000D") for s in by_name}
    assert dw.search_for_studies(search_filters={"PatientName": "Nobody*"}) == []
    assert len(dw.search_for_studies(limit=1)) == 1
    # the film's series (once the study is analysed, the AI's objects are listed beside them:
    # test_dicomweb_ai_objects)
    series = [
        s
        for s in dw.search_for_series(site["study"])
        if _value(s, "00080060") != "SR"
        and not (_value(s, "0008103E") or "").startswith("medai AI ")
    ]
    assert sorted(_value(s, "0020000E") for s in series) == sorted(site["series"])
    assert {_value(s, "00201209") for s in series} == {1}
    assert {_value(s, "00080021") for s in series} == {"20251120"}
    instances = dw.search_for_instances(site["study"], site["series"][1])
    assert len(instances) == 1 and _value(instances[0], "00080016")
    filed = [
        i for i in dw.search_for_instances(site["study"]) if _value(i, "0020000E") in site["series"]
    ]
    assert len(filed) == 2


def test_metadata_frames_bulk_and_rendered(site):
    from urllib.parse import urlparse

    import numpy as np

    dw = _dw(site)
    s1, s2 = site["series"]
    (meta,) = dw.retrieve_series_metadata(site["study"], s1)
    sop = _value(meta, "00080018")
    # absolute, from the request's Host (dicomweb-client sends its Host without the port:
    # the path is what the server decides)
    uri = urlparse(meta["7FE00010"]["BulkDataURI"])
    assert uri.scheme == "http" and uri.path.startswith("/api/v1/dicomweb/studies/")
    assert _value(meta, "00020010") == "1.2.840.10008.1.2.1"
    (frame,) = dw.retrieve_instance_frames(site["study"], s1, sop, [1])
    pixels = np.frombuffer(frame, "<u2")
    assert pixels.size == 64 * 64 and pixels.max() > 0
    again = dw.retrieve_instance_frames(site["study"], s1, sop, [1, 1])  # several frames
    assert again == [frame, frame]
    (bulk,) = dw.retrieve_bulkdata(site["url"].removesuffix("/api/v1/dicomweb") + uri.path)
    assert bulk == frame
    png = dw.retrieve_instance_rendered(site["study"], s1, sop, media_types=("image/png",))
    assert png.startswith(b"\x89PNG")
    jpeg = dw.retrieve_instance_rendered(site["study"], s1, sop, media_types=("image/jpeg",))
    assert jpeg.startswith(b"\xff\xd8")
    # the lateral is stored RLE: sent as stored, image/dicom-rle; refused as octet-stream
    (lat,) = dw.retrieve_series_metadata(site["study"], s2)
    lat_sop = _value(lat, "00080018")
    (rle,) = dw.retrieve_instance_frames(
        site["study"], s2, lat_sop, [1], media_types=(("image/dicom-rle", "1.2.840.10008.1.2.5"),)
    )
    import io

    from pydicom import dcmread
    from pydicom.encaps import generate_frames
    from requests import HTTPError

    stored = dcmread(io.BytesIO(site["rle"]))
    assert rle == next(generate_frames(stored.PixelData, number_of_frames=1))

    with pytest.raises(HTTPError) as refused:
        dw.retrieve_instance_frames(
            site["study"],
            s2,
            lat_sop,
            [1],
            media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),),
        )
    assert refused.value.response.status_code == 406
    assert refused.value.response.json()["code"] == "not_acceptable"


def test_etag_and_cache_headers(site):
    import httpx

    s1 = site["series"][0]
    base = f"{site['url']}/studies/{site['study']}/series/{s1}"
    meta = httpx.get(f"{base}/metadata", headers=site["rad"])
    assert meta.status_code == 200 and meta.headers["etag"]
    assert meta.headers["content-type"].startswith("application/dicom+json")
    same = httpx.get(
        f"{base}/metadata", headers={**site["rad"], "If-None-Match": meta.headers["etag"]}
    )
    assert same.status_code == 304 and not same.content
    sop = meta.json()[0]["00080018"]["Value"][0]
    frame = httpx.get(f"{base}/instances/{sop}/frames/1", headers=site["rad"])
    assert "immutable" in frame.headers["cache-control"]
    assert "private" in frame.headers["cache-control"]
    assert (
        httpx.get(
            f"{base}/instances/{sop}/frames/1",
            headers={**site["rad"], "If-None-Match": frame.headers["etag"]},
        ).status_code
        == 304
    )


def test_limits_are_checked_before_work(site):
    import httpx

    s1 = site["series"][0]
    base = f"{site['url']}/studies/{site['study']}/series/{s1}/instances/1.2.3"
    many = ",".join(["1"] * 600)
    for url, params in (
        (f"{base}/frames/{many}", None),
        (f"{site['url']}/studies", {"limit": "100000"}),
        (f"{site['url']}/studies", {"StudyInstanceUID": "../etc"}),
        (f"{site['url']}/studies", {"includefield": "a b"}),
    ):
        r = httpx.get(url, params=params, headers=site["rad"])
        assert r.status_code == 400 and r.json()["code"] == "bad_request", (url, r.text)
    for path in ("studies/not-a-uid/metadata", "studies/1.2/series/1.3/instances/1.4/frames/0"):
        bad = httpx.get(f"{site['url']}/{path}", headers=site["rad"])
        assert bad.status_code == 422 and bad.json()["code"] == "invalid", path


def test_who_may_read(site):
    import httpx

    url = f"{site['url']}/studies/{site['study']}/metadata"
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthenticated"
    client = site["client"]
    patient = httpx.get(url, headers=bearer(client, "pat1"))
    assert patient.status_code == 403 and patient.json()["code"] == "forbidden"
    unapproved = httpx.get(url, headers=bearer(client, "newrad"))
    assert unapproved.status_code == 403 and unapproved.json()["code"] == "approval_pending"
    assert httpx.get(url, headers=bearer(client, "clin")).status_code == 200
    # the session cookie of the study page is enough (the viewer on medai's own origin)
    login = httpx.post(
        site["url"].replace("/dicomweb", "/auth/login"),
        json={"username": "rad2", "password": "correct-horse-1"},
    )
    assert login.status_code == 200 and "medai_session" in login.cookies
    cookies = {"medai_session": login.cookies["medai_session"]}
    assert httpx.get(url, cookies=cookies).status_code == 200


def test_opening_a_study_is_audited_once(site):
    from sqlalchemy import select

    from medai.platform.records.tables import AuditEvent, Study

    client = site["client"]
    headers = bearer(client, "rad2")
    dw = _dw(site, headers)
    s1 = site["series"][0]
    for _ in range(2):
        dw.search_for_series(site["study"])
        (meta,) = dw.retrieve_series_metadata(site["study"], s1)
        dw.retrieve_instance_frames(site["study"], s1, meta["00080018"]["Value"][0], [1])
    with site["app"].state.platform.db.reader() as db:
        study_id = db.scalar(select(Study.id).where(Study.study_uid == site["study"]))
        events = db.scalars(
            select(AuditEvent).where(
                AuditEvent.actor == "rad2",
                AuditEvent.action == "view",
                AuditEvent.target_type == "study",
                AuditEvent.target_id == str(study_id),
            )
        ).all()
    assert [e.detail.get("via") for e in events] == ["dicomweb"]


def test_quarantined_instance_is_never_served(site):
    import httpx

    dw = _dw(site)
    found = dw.search_for_instances(site["study"])
    uids = {_value(i, "00080018") for i in found}
    assert site["intruder"] not in uids
    # the AI's own objects (findings SR, heatmap) join the study once its analysis is done, in
    # series of their own: the images' two series hold the PA and the lateral alone
    images = {_value(i, "00080018") for i in found if _value(i, "0020000E") in site["series"]}
    assert len(images) == 2, found
    s1 = site["series"][0]
    r = httpx.get(
        f"{site['url']}/studies/{site['study']}/series/{s1}/instances/{site['intruder']}/metadata",
        headers=site["rad"],
    )
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_retracted_study_is_not_served(site):
    import httpx

    client, rad = site["client"], site["rad"]
    dw = _dw(site)
    assert dw.search_for_studies(search_filters={"StudyInstanceUID": site["gone"]})
    (found,) = client.get("/api/v1/studies", headers=rad, params={"accession": "DW-2"}).json()[
        "items"
    ]
    r = client.post(
        f"/api/v1/studies/{found['id']}/retract",
        headers=rad,
        json={"reason": "wrong_patient", "note": "wrong patient"},
    )
    assert r.status_code == 200, r.text
    assert dw.search_for_studies(search_filters={"StudyInstanceUID": site["gone"]}) == []
    gone = httpx.get(f"{site['url']}/studies/{site['gone']}/metadata", headers=rad)
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"
