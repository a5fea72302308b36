"""STOW-RS into medai (``POST /api/v1/dicomweb/studies``): instances stored by a DICOMweb
client are filed like C-STOREs (identified, routed, analysed); the answer is the standard's
Store Instances Response; refused instances are named with their failure reason; a wrong media
type is 415; the caller must be allowed to upload studies."""

from __future__ import annotations

import uuid

import pytest

from helpers.dicom import make_dicom
from helpers.platform import bearer, clinic, wait_status

pytestmark = [pytest.mark.server]

REFERENCED, FAILED, REASON, SOP_UID = "00081199", "00081198", "00081197", "00081155"


@pytest.fixture(scope="module")
def site(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("stow")
    with clinic("sqlite", home, tfidf_model_dir, tiny_imaging_dir) as (app, client):
        yield app, client, bearer(client, "rad1"), home


def _multipart(*parts: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        b"".join(
            b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n"
            for p in parts
        )
        + b"--"
        + boundary.encode()
        + b"--\r\n"
    )
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def _stow(client, headers, *parts: bytes):
    body, ctype = _multipart(*parts)
    return client.post(
        "/api/v1/dicomweb/studies", content=body, headers={**headers, "content-type": ctype}
    )


def test_stored_instances_are_filed_analysed_and_answered(site, tmp_path):
    from pydicom.uid import generate_uid

    _, client, rad, _ = site
    study = generate_uid()
    a = make_dicom(tmp_path / "a.dcm", study=study, accession="STOW-1", seed=1).read_bytes()
    b = make_dicom(tmp_path / "b.dcm", study=study, accession="STOW-1", seed=2).read_bytes()
    r = _stow(client, rad, a, b)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/dicom+json")
    assert len(r.json()[REFERENCED]["Value"]) == 2 and FAILED not in r.json()
    (found,) = client.get("/api/v1/studies", headers=rad, params={"accession": "STOW-1"}).json()[
        "items"
    ]
    assert found["task"] == "cxr"
    assert wait_status(client, rad, found["id"], {"ai_drafted"})["status"] == "ai_drafted"
    again = _stow(client, rad, a)  # the same instance again: stored once, answered as stored
    assert again.status_code == 200
    assert (
        len(
            client.get("/api/v1/studies", headers=rad, params={"accession": "STOW-1"}).json()[
                "items"
            ]
        )
        == 1
    )


def test_refused_instances_are_named_with_their_reason(site, tmp_path):
    _, client, rad, _ = site
    good = make_dicom(tmp_path / "g.dcm", accession="STOW-2", seed=3).read_bytes()
    no_uid = make_dicom(
        tmp_path / "n.dcm", accession="STOW-3", drop=("StudyInstanceUID",)
    ).read_bytes()
    r = _stow(client, rad, good, no_uid, b"not a dicom file at all")
    assert r.status_code == 202, r.text
    failed = r.json()[FAILED]["Value"]
    assert len(failed) == 2 and all(REASON in f for f in failed)
    assert {f[REASON]["Value"][0] for f in failed} <= {0xA900, 0xC000}
    r = _stow(client, rad, b"still not dicom")
    assert r.status_code == 409 and len(r.json()[FAILED]["Value"]) == 1


def test_wrong_media_type_and_callers_are_refused(site, tmp_path):
    _, client, rad, _ = site
    data = make_dicom(tmp_path / "x.dcm", accession="STOW-4").read_bytes()
    r = client.post(
        "/api/v1/dicomweb/studies",
        content=data,
        headers={**rad, "content-type": "application/dicom"},
    )
    assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type"
    body, ctype = _multipart(data)
    client.cookies.clear()
    assert (
        client.post(
            "/api/v1/dicomweb/studies", content=body, headers={"content-type": ctype}
        ).status_code
        == 401
    )
    patient = bearer(client, "pat1")
    assert (
        client.post(
            "/api/v1/dicomweb/studies", content=body, headers={**patient, "content-type": ctype}
        ).status_code
        == 403
    )


def test_a_dicomweb_client_stores_through_it(tmp_path):
    """dicomweb-client's store_instances (what a PACS script would use) against a real
    ``medai serve``."""
    import os

    from dicomweb_client.api import DICOMwebClient
    from pydicom import dcmread

    from helpers.platform import cli_add_user, serving

    env = {**os.environ, "MEDAI_HOME": str(tmp_path / "serve-home")}
    cli_add_user(env, "rad9", "radiologist")
    with serving(env) as base:
        import httpx

        from helpers.platform import PASSWORD

        token = httpx.post(
            f"{base}/api/v1/auth/login", json={"username": "rad9", "password": PASSWORD}
        ).json()["access_token"]
        web = DICOMwebClient(
            f"{base}/api/v1/dicomweb", headers={"Authorization": f"Bearer {token}"}
        )
        ds = dcmread(make_dicom(tmp_path / "c.dcm", accession="STOW-5", seed=5))
        answer = web.store_instances([ds])
        assert answer.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
