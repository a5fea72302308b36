"""Memory stays bounded when studies are viewed (issue 24): a bomb upload is refused with a
named 413 from its header; viewing a study serves its stored display rendition (made once by
the analysis, or once by the first view of an older study) and never decodes the original per
request."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image

from helpers.imaging import bomb_png
from helpers.platform import bearer, clinic, png_bytes, wait_status


@pytest.fixture(scope="module")
def env(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("image-memory")
    with clinic("sqlite", home, tfidf_model_dir, tiny_imaging_dir) as (app, client):
        yield app, client


@pytest.fixture
def decodes(monkeypatch):
    """Counts decodes of a stored image (every one goes through ``imaging.reading.decoded``)."""
    from medai.imaging import reading

    seen: list[int] = []
    real = reading.load_image

    def counting(data, **kw):
        seen.append(len(data))
        return real(data, **kw)

    monkeypatch.setattr(reading, "load_image", counting)
    return seen


def _upload(client, headers, data: bytes):
    return client.post(
        "/api/v1/studies",
        headers=headers,
        files={"file": ("x.png", data, "image/png")},
        data={"task": "cxr"},
    )


def test_uploading_the_bomb_is_refused_with_a_named_413(env):
    _app, client = env
    rad = bearer(client, "rad1")
    before = client.get("/api/v1/studies", headers=rad).json()["total"]
    r = _upload(client, rad, bomb_png())
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "image_too_large" and "6000×6600" in r.json()["detail"]
    assert client.get("/api/v1/studies", headers=rad).json()["total"] == before


def _display_sha(app, study_id: int) -> str | None:
    from medai.platform.records.tables import Study

    with app.state.platform.db.session() as db:
        return db.get(Study, study_id).display_sha256


def test_the_image_is_the_stored_rendition_never_a_decode(env, decodes):
    app, client = env
    rad = bearer(client, "rad1")
    original = png_bytes(3, size=(2600, 2200))
    sid = _upload(client, rad, original).json()["id"]
    wait_status(client, rad, sid, {"ai_drafted", "refused"})
    display = _display_sha(app, sid)
    assert display is not None  # made by the analysis
    decodes.clear()
    for _ in range(3):
        r = client.get(f"/api/v1/studies/{sid}/image", headers=rad)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.content == app.state.platform.store.read(display)
    assert decodes == []
    shown = Image.open(io.BytesIO(r.content))
    assert shown.mode == "L" and shown.size == (1300, 1100)  # box-reduced by 2: ≤ 2048 a side


def test_a_study_without_a_rendition_gets_one_made_once_for_concurrent_views(env, decodes):
    app, client = env
    rad = bearer(client, "rad1")
    sid = _upload(client, rad, png_bytes(4, size=(300, 260))).json()["id"]
    wait_status(client, rad, sid, {"ai_drafted", "refused"})
    from medai.platform.records.tables import Study

    with app.state.platform.db.session() as db:  # as a study analysed before renditions
        db.get(Study, sid).display_sha256 = None
    decodes.clear()
    codes: list[int] = []

    def view():
        codes.append(client.get(f"/api/v1/studies/{sid}/image", headers=rad).status_code)

    threads = [threading.Thread(target=view) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 8
    assert len(decodes) == 1  # one decode, then the stored rendition for everyone
    assert _display_sha(app, sid) is not None
    assert client.get(f"/api/v1/studies/{sid}/image", headers=rad).status_code == 200
    assert len(decodes) == 1


def test_an_unreadable_study_answers_422_without_decoding_again(env, decodes):
    _app, client = env
    rad = bearer(client, "rad1")
    sid = _upload(client, rad, b"not an image at all").json()["id"]
    wait_status(client, rad, sid, {"refused"})
    decodes.clear()
    r = client.get(f"/api/v1/studies/{sid}/image", headers=rad)
    assert r.status_code == 422 and r.json()["code"] == "unusable_image"
    assert decodes == []


def test_the_bomb_sent_to_a_stateless_route_is_a_named_422(env):
    _app, client = env
    rad = bearer(client, "rad1")
    r = client.post(
        "/api/v1/imaging/cxr/predict",
        headers=rad,
        files={"file": ("x.png", bomb_png(), "image/png")},
    )
    assert r.status_code == 422 and r.json()["code"] == "image_too_large", r.text
