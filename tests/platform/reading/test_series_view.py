"""The viewer's series API (``platform.reading.series_view``): a study's series with its slices in
anatomical order whatever order they arrived in (ImagePositionPatient along the slice normal,
else InstanceNumber), the AI's read and key slices and the heatmap's slice marked from the
result's ``read``, the viewer opening on the first key slice; each slice's 8-bit rendition made
once (one frame of a multi-frame instance decoded alone) and stored; the same access as the
study's image (sign-in, role, approval, another study's instance not found, a retracted study
as the study image behaves)."""

from __future__ import annotations

import io
import random

import pytest

from helpers.dicom import make_dicom
from helpers.platform import bearer, clinic, png_bytes, wait_status
from helpers.viewer import mr_series, settled, store_read


@pytest.fixture(scope="module")
def hosp(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir, tiny_mri_dir):
    home = tmp_path_factory.mktemp("series-view")
    with clinic(
        "sqlite", home, tfidf_model_dir, tiny_imaging_dir, models={"mri": str(tiny_mri_dir)}
    ) as (app, client):
        yield app, client, home


def _file(client, rad, files) -> int:
    """Upload DICOM files one by one (each joins the study of its StudyInstanceUID); the
    study's id once its analysis is over."""
    sid = None
    for path in files:
        r = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "mri"},
            files={"file": (path.name, path.read_bytes(), "application/dicom")},
        )
        assert r.status_code in (200, 201), r.text
        sid = r.json()["id"] if sid is None else sid
        assert r.json()["id"] == sid
    wait_status(client, rad, sid, {"ai_drafted", "refused"})
    return sid


def _series(client, rad, sid) -> dict:
    r = client.get(f"/api/v1/studies/{sid}/series", headers=rad)
    assert r.status_code == 200, r.text
    return r.json()


def _refs(body) -> list[str]:
    (series,) = body["series"]
    return [s["ref"] for s in series["slices"]]


def test_slices_are_in_anatomical_order_whatever_order_they_arrived_in(hosp, tmp_path):
    """Reversed InstanceNumbers, shuffled arrival: the slices follow their position along the
    slice normal; the same series sent in another order reads the same; without geometry the
    InstanceNumber orders them."""
    from pydicom.uid import generate_uid

    app, client, _home = hosp
    rad = bearer(client, "rad1")
    orders = []
    for seed in (1, 2):
        slices = mr_series(
            tmp_path / f"s{seed}",
            7,
            study=generate_uid(),
            accession=f"ACC-ORD-{seed}",
            numbers=list(range(7, 0, -1)),  # numbered head to foot, positioned foot to head
        )
        files = [path for path, _sop, _z in slices]
        random.Random(seed).shuffle(files)
        sid = _file(client, rad, files)
        settled(app.state.platform, sid)
        body = _series(client, rad, sid)
        assert _refs(body) == [sop for _path, sop, _z in slices]  # z rising, not by number
        (series,) = body["series"]
        assert series["instances"] == 7 and series["modality"] == "MR"
        assert series["description"] == "T2 aksiyel beyin"  # sealed at rest, read here
        assert [s["number"] for s in series["slices"]] == list(range(7, 0, -1))
        orders.append([s["number"] for s in series["slices"]])
    assert orders[0] == orders[1]

    plain = mr_series(
        tmp_path / "plain",
        5,
        study=generate_uid(),
        accession="ACC-ORD-3",
        geometry=False,
        numbers=[3, 1, 5, 2, 4],
    )
    files = [path for path, _sop, _z in plain]
    sid = _file(client, rad, list(reversed(files)))
    settled(app.state.platform, sid)
    body = _series(client, rad, sid)
    by_number = sorted(plain, key=lambda t: [3, 1, 5, 2, 4][plain.index(t)])
    assert _refs(body) == [sop for _path, sop, _z in by_number]


def test_the_ai_s_read_and_key_slices_are_marked_and_the_viewer_opens_on_the_first_key(
    hosp, tmp_path
):
    from pydicom.uid import generate_uid

    app, client, _home = hosp
    rad = bearer(client, "rad1")
    slices = mr_series(tmp_path, 6, study=generate_uid(), accession="ACC-KEY")
    sid = _file(client, rad, [path for path, _sop, _z in reversed(slices)])
    settled(app.state.platform, sid)
    sops = [sop for _path, sop, _z in slices]
    study = client.get(f"/api/v1/studies/{sid}", headers=rad).json()
    series_uid = study["dicom"]["series_uid"]

    # what the lead's analysis stores: every slice read, two of them carrying the decision,
    # the heatmap of the first of those
    store_read(
        app.state.platform,
        sid,
        series_uid=series_uid,
        read=sops,
        key=[sops[4], sops[3]],
        heatmap_instance=sops[3],
    )
    body = _series(client, rad, sid)
    (series,) = body["series"]
    assert series["read_by_ai"] is True
    marks = {s["ref"]: s for s in series["slices"]}
    assert [marks[s]["read"] for s in sops] == [True] * 6
    assert [s for s in sops if marks[s]["key"]] == [sops[3], sops[4]]
    assert [s for s in sops if marks[s]["heatmap"]] == [sops[3]]
    assert body["start"] == {"series_uid": series_uid, "ref": sops[3]}  # first key, in order
    # the study's own result says the same (what the page reads beside the series)
    result = client.get(f"/api/v1/studies/{sid}", headers=rad).json()["ai_result"]
    assert result["read"]["key_instances"] == [sops[4], sops[3]]
    assert result["heatmap_instance"] == sops[3]

    # a heatmap asked for another label than the stored one's is of the same slice (slice 4)
    from medai.services import imaging as imaging_service

    stored_label = result["heatmap_label"]
    label = next(x for x in ("Glioma", "Meningioma") if x != stored_label)
    predictor = app.state.platform.models.get("mri")
    r = client.get(f"/api/v1/studies/{sid}/heatmap", headers=rad, params={"label": label})
    assert r.status_code == 200, r.text
    of = {
        k: imaging_service.heatmap(predictor, slices[k][0].read_bytes(), label)[1] for k in (0, 3)
    }
    assert r.content == of[3] and of[3] != of[0]

    # a sampled read: the slices not read are not marked read
    store_read(
        app.state.platform, sid, series_uid=series_uid, read=sops[::2], key=[sops[2]], in_series=6
    )
    marks = {s["ref"]: s for s in _series(client, rad, sid)["series"][0]["slices"]}
    assert [marks[s]["read"] for s in sops] == [True, False, True, False, True, False]
    assert _series(client, rad, sid)["start"]["ref"] == sops[2]


def test_a_result_stored_before_series_were_read_marks_the_image_it_read(hosp, tmp_path):
    """No ``read`` (an older result): the slice the analysis read — the study's file — is the
    one marked read, with the heatmap, and the viewer opens on it."""
    from pydicom.uid import generate_uid

    app, client, _home = hosp
    rad = bearer(client, "rad1")
    slices = mr_series(tmp_path, 4, study=generate_uid(), accession="ACC-OLD")
    sid = _file(client, rad, [path for path, _sop, _z in slices])
    settled(app.state.platform, sid)
    from types import SimpleNamespace

    from medai.platform.worklist import ai_results

    p = app.state.platform
    with p.db.reader() as db:  # the result as an analysis before series reading stored it
        row = ai_results.latest_result(db, sid)
        payload = {k: v for k, v in row.payload.items() if k not in ("read", "heatmap_instance")}
        model = SimpleNamespace(
            name=row.model_name, version=row.model_version, content_hash=row.model_hash + "+old"
        )
        heat = (row.heatmap_sha256, row.heatmap_label) if row.heatmap_sha256 else None
    ai_results.save_result(p, sid, "imaging", model, payload, heat)
    body = _series(client, rad, sid)
    read = [s["ref"] for s in body["series"][0]["slices"] if s["read"]]
    study = client.get(f"/api/v1/studies/{sid}", headers=rad).json()
    assert read == [study["dicom"]["sop_uid"]]  # the instance whose file the study analysed
    assert body["start"]["ref"] == study["dicom"]["sop_uid"]
    assert not any(s["key"] for s in body["series"][0]["slices"])
    heat = [s["ref"] for s in body["series"][0]["slices"] if s["heatmap"]]
    assert heat == ([study["dicom"]["sop_uid"]] if study["ai_result"]["has_heatmap"] else [])


def test_an_uploaded_image_has_no_series(hosp):
    _app, client, _home = hosp
    rad = bearer(client, "rad1")
    sid = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr"},
        files={"file": ("x.png", png_bytes(11), "image/png")},
    ).json()["id"]
    wait_status(client, rad, sid, {"ai_drafted"})
    assert _series(client, rad, sid) == {"study_id": sid, "series": [], "start": None}


def _png(r):
    from PIL import Image

    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"] == "no-store"  # patient data: never cached
    return Image.open(io.BytesIO(r.content))


def test_each_slice_is_rendered_once_and_stored(hosp, tmp_path, monkeypatch):
    from pydicom.uid import generate_uid
    from sqlalchemy import func, select

    from medai.imaging import reading
    from medai.platform.records.tables import InstanceRendition
    from medai.platform.worklist import listing

    app, client, _home = hosp
    rad = bearer(client, "rad1")
    slices = mr_series(tmp_path, 3, study=generate_uid(), accession="ACC-REND", size=96)
    sid = _file(client, rad, [path for path, _sop, _z in slices])
    settled(app.state.platform, sid)
    decodes: list[int | None] = []
    real = reading.load_image

    def counting(data, frame=None, **kw):
        decodes.append(frame)
        return real(data, frame=frame, **kw)

    monkeypatch.setattr(reading, "load_image", counting)  # every decode goes through it
    pictures = []
    for _path, sop, _z in slices:
        first = _png(client.get(f"/api/v1/studies/{sid}/instances/{sop}/image", headers=rad))
        assert first.mode == "L" and first.size == (96, 96)  # 8-bit gray, the slice's size
        again = client.get(f"/api/v1/studies/{sid}/instances/{sop}/image", headers=rad)
        assert again.content == _raw(client, rad, sid, sop)
        pictures.append(again.content)
    assert len(set(pictures)) == 3  # each slice its own picture
    p = app.state.platform
    with p.db.reader() as db:
        ids = [i.id for i in listing.instances(db, [sid])[sid]]
        stored = db.scalar(
            select(func.count())
            .select_from(InstanceRendition)
            .where(InstanceRendition.instance_id.in_(ids))
        )
    assert stored == 3
    assert len([d for d in decodes if d is None]) <= 3  # each slice decoded once at most


def _raw(client, rad, sid, sop, frame=None):
    q = f"?frame={frame}" if frame else ""
    return client.get(f"/api/v1/studies/{sid}/instances/{sop}/image{q}", headers=rad).content


def _multiframe(path, study: str, frames: int = 3):
    """An MR instance of ``frames`` frames, each with a bright band in its own place (frame k
    in the k-th third), its per-frame positions 5 mm apart."""
    import numpy as np
    from pydicom.dataset import Dataset

    make_dicom(path, "MR", body_part="BRAIN", view=None, study=study, accession="ACC-MF")
    import pydicom

    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = frames

    def picture(k: int):  # frame k: a bright band in its own third of the image
        img = np.full((64, 64), 200, np.uint16)
        img[:, 21 * k : 21 * (k + 1)] = 3000
        return img.astype("<u2").tobytes()

    ds.PixelData = b"".join(picture(k) for k in range(frames))
    groups = []
    for k in range(frames):
        position, item = Dataset(), Dataset()
        position.ImagePositionPatient = [0.0, 0.0, 5.0 * (frames - k)]  # the last frame lowest
        item.PlanePositionSequence = [position]
        groups.append(item)
    ds.PerFrameFunctionalGroupsSequence = groups
    orientation, shared = Dataset(), Dataset()
    orientation.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    shared.PlaneOrientationSequence = [orientation]
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.save_as(path, enforce_file_format=True)
    return str(ds.SOPInstanceUID)


def test_a_multi_frame_instance_is_a_slice_per_frame_and_one_frame_is_decoded(
    hosp, tmp_path, monkeypatch
):
    import numpy as np
    import pydicom.pixels
    from pydicom.uid import generate_uid

    app, client, _home = hosp
    rad = bearer(client, "rad1")
    path = tmp_path / "mf.dcm"
    sop = _multiframe(path, generate_uid())
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "mri"},
        files={"file": ("mf.dcm", path.read_bytes(), "application/dicom")},
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    wait_status(client, rad, sid, {"ai_drafted", "refused"})
    settled(app.state.platform, sid)
    # the frames are ordered by their own positions: frame 3 lies lowest
    assert _refs(_series(client, rad, sid)) == [f"{sop}#3", f"{sop}#2", f"{sop}#1"]

    asked = []
    real = pydicom.pixels.pixel_array

    def spy(src, *args, **kwargs):
        asked.append(kwargs.get("index"))
        return real(src, *args, **kwargs)

    monkeypatch.setattr(pydicom.pixels, "pixel_array", spy)
    bands = []
    for frame in (1, 2, 3):
        image = _png(
            client.get(f"/api/v1/studies/{sid}/instances/{sop}/image?frame={frame}", headers=rad)
        )
        bands.append(int(np.asarray(image).mean(axis=0).argmax()) // 21)
    assert asked == [0, 1, 2]  # one frame decoded per slice, never the whole array
    assert bands == [0, 1, 2]  # each frame's own picture
    for bad in (0, -1, 10**9):
        r = client.get(f"/api/v1/studies/{sid}/instances/{sop}/image?frame={bad}", headers=rad)
        assert r.status_code == 422 and r.json()["code"] == "invalid"
    r = client.get(f"/api/v1/studies/{sid}/instances/{sop}/image?frame=4", headers=rad)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert "3 frames" in r.json()["detail"]

    # a heatmap of frame 2: the slice marked, and one for another label made of that frame
    from medai.services import imaging as imaging_service

    study = client.get(f"/api/v1/studies/{sid}", headers=rad).json()
    assert study["ai_result"]["has_heatmap"], study["status"]
    refs = [f"{sop}#3", f"{sop}#2", f"{sop}#1"]
    store_read(
        app.state.platform,
        sid,
        series_uid=study["dicom"]["series_uid"],
        read=refs,
        key=[f"{sop}#2"],
        heatmap_instance=f"{sop}#2",
    )
    body = _series(client, rad, sid)
    assert [s["ref"] for s in body["series"][0]["slices"] if s["heatmap"]] == [f"{sop}#2"]
    assert body["start"]["ref"] == f"{sop}#2"
    label = next(x for x in ("Glioma", "Meningioma") if x != study["ai_result"]["heatmap_label"])
    r = client.get(f"/api/v1/studies/{sid}/heatmap", headers=rad, params={"label": label})
    predictor = app.state.platform.models.get("mri")
    with imaging_service.decoded(path.read_bytes(), 2) as frame_two:
        assert r.content == imaging_service.heatmap(predictor, frame_two, label)[1]


def test_slices_are_seen_only_by_those_who_may_see_the_study(hosp, tmp_path):
    from pydicom.uid import generate_uid

    _app, client, _home = hosp
    rad = bearer(client, "rad1")
    a = mr_series(tmp_path / "a", 2, study=generate_uid(), accession="ACC-ACL-A")
    b = mr_series(tmp_path / "b", 2, study=generate_uid(), accession="ACC-ACL-B")
    sid_a = _file(client, rad, [p for p, _s, _z in a])
    sid_b = _file(client, rad, [p for p, _s, _z in b])
    sop_a, sop_b = a[0][1], b[0][1]
    image = f"/api/v1/studies/{sid_a}/instances/{sop_a}/image"
    tokens = {who: bearer(client, who) for who in ("pat1", "admin", "clin")}
    for path in (f"/api/v1/studies/{sid_a}/series", image):
        client.cookies.clear()  # the sign-ins' session cookies: only the bearer token counts
        assert client.get(path).status_code == 401
        r = client.get(path, headers=tokens["pat1"])
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
        assert client.get(path, headers=tokens["admin"]).status_code == 403
        assert client.get(path, headers=tokens["clin"]).status_code == 200
    # another study's instance, a study that is not there, a UID that is none: not found
    r = client.get(f"/api/v1/studies/{sid_a}/instances/{sop_b}/image", headers=rad)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert (
        client.get(f"/api/v1/studies/{sid_b}/instances/{sop_b}/image", headers=rad).status_code
        == 200
    )
    for path in (
        "/api/v1/studies/999999/series",
        f"/api/v1/studies/999999/instances/{sop_a}/image",
    ):
        r = client.get(path, headers=rad)
        assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = client.get(f"/api/v1/studies/{sid_a}/instances/1.2.x/image", headers=rad)
    assert r.status_code == 422
    # audited: who looked at which slice
    events = client.get(
        "/api/v1/audit",
        headers=bearer(client, "admin"),
        params={"actor": "clin", "action": "view"},
    ).json()["items"]
    assert any(
        e["target_type"] == "study_image"
        and e["target_id"] == str(sid_a)
        and "instance" in e["detail"]
        for e in events
    )
    assert any(e["target_type"] == "series" and e["target_id"] == str(sid_a) for e in events)


def test_a_retracted_study_s_slices_behave_as_its_image_does(hosp, tmp_path):
    from pydicom.uid import generate_uid

    app, client, _home = hosp
    rad = bearer(client, "rad1")
    slices = mr_series(tmp_path, 2, study=generate_uid(), accession="ACC-RETR")
    sid = _file(client, rad, [p for p, _s, _z in slices])
    settled(app.state.platform, sid)
    r = client.post(f"/api/v1/studies/{sid}/retract", headers=rad, json={"reason": "wrong_patient"})
    assert r.status_code == 200, r.text
    study_image = client.get(f"/api/v1/studies/{sid}/image", headers=rad).status_code
    slice_image = client.get(
        f"/api/v1/studies/{sid}/instances/{slices[0][1]}/image", headers=rad
    ).status_code
    assert slice_image == study_image
    assert client.get(f"/api/v1/studies/{sid}/series", headers=rad).status_code == study_image
