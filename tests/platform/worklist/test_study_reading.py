"""The platform reads the whole study (issue 58): an MRI series sent by a modality is read slice
by slice to one decision whatever order its instances arrive in, recorded in the result's
``read`` with its key slices and the heatmap of one of them; a chest study is decided from its
frontal film, never from a lateral that came first. Instances are filed through the node's own
path (``receive.store``); the MRI model is the real ``ImagingPredictor`` over a network whose
output depends on a slice's brightness (``helpers.series``), so every test knows each slice's
reading."""

from __future__ import annotations

import io

import numpy as np
import pytest
from sqlalchemy import select

from helpers.dicom import make_dicom
from helpers.platform import bare_platform
from helpers.series import brightness_predictor, mr_slice
from medai.platform.dicom.arrival import Arrival


@pytest.fixture
def p(tmp_path, monkeypatch, tfidf_model_dir, tiny_imaging_dir):
    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        served = p.models.get
        mri = brightness_predictor()
        monkeypatch.setattr(p.models, "get", lambda task: mri if task == "mri" else served(task))
        yield p


def _identity(blob: bytes, study: str, accession: str) -> bytes:
    """A slice as a scanner sends it: the patient and the order on every instance."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(blob))
    ds.StudyInstanceUID, ds.AccessionNumber = study, accession
    ds.PatientID, ds.PatientName, ds.StudyDate = "TC-11111111110", "DEMIR^ALI", "20261127"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _series(labels: list[str], study: str, accession: str, series: str) -> list[bytes]:
    return [_identity(mr_slice(lab, i, series), study, accession) for i, lab in enumerate(labels)]


def _send(p, blobs: list[bytes]) -> int:
    from medai.platform.intake import receive

    ids = {receive.store(p, blob, "MODALITY").study_id for blob in blobs}
    assert len(ids) == 1
    return ids.pop()


def _analyse(p) -> None:
    from medai.platform.jobs import jobs

    while (job := jobs.claim(p, "w1", 60)) is not None:
        jobs.run_claimed(p, job, "w1", 60)


def _result(p, sid: int) -> tuple[str, dict, str | None]:
    from medai.platform.records.tables import Study
    from medai.platform.worklist.ai_results import latest_result

    with p.db.reader() as db:
        row = latest_result(db, sid)
        return db.get(Study, sid).status, row.payload, row.heatmap_sha256


GLIOMA_AFTER_ONE_NORMAL = ["No_Tumor"] + ["Glioma"] * 19
_UIDS = iter(range(10**6))


def generate_uid() -> str:
    """A short UID: slices are named ``<series>.<n>`` (at most 64 characters in all)."""
    return f"1.2.826.0.1.3680043.8.498.{next(_UIDS)}.{next(_UIDS)}"


@pytest.mark.parametrize("arrival", ["in order", "reversed"])
def test_a_series_reads_the_tumour_whatever_order_its_slices_arrive_in(p, arrival):
    series = generate_uid()
    blobs = _series(GLIOMA_AFTER_ONE_NORMAL, generate_uid(), "MR-1", series)
    normal_sop = f"{series}.1"  # the first slice, the only one without the tumour
    sid = _send(p, blobs if arrival == "in order" else blobs[::-1])
    _analyse(p)
    status, payload, heatmap = _result(p, sid)
    assert status == "ai_drafted"
    assert payload["decision"]["primary"] == "Glioma"
    read = payload["read"]
    assert read["series_uid"] == series
    assert read["instances_in_series"] == read["instances_read"] == 20
    assert read["read_instances"] == [f"{series}.{i}" for i in range(1, 21)]  # anatomical
    assert read["key_instances"] and normal_sop not in read["key_instances"]
    assert payload["heatmap_instance"] in read["key_instances"] and heatmap is not None
    assert read["series_choice"]["chosen"] == series
    from medai.platform.worklist import versions

    with p.db.reader() as db:  # the draft says the series was read, not one slice
        row = versions.current(db, sid)
        technique, note = row.sections["technique"], " ".join(versions.ai_note(db, row))
    assert technique == "Beyin MR serisi."  # the examination; how much the AI read: its note
    assert "20 kesitinden 20 kesitini" in note and "tek kesit" not in technique


def test_twenty_normal_slices_read_no_tumour(p):
    sid = _send(p, _series(["No_Tumor"] * 20, generate_uid(), "MR-2", generate_uid()))
    _analyse(p)
    status, payload, _heatmap = _result(p, sid)
    assert status == "ai_drafted"
    assert payload["decision"]["state"] == "normal"
    assert payload["read"]["instances_read"] == 20 and payload["read"]["key_instances"] == []


def test_the_longer_series_is_read_and_the_choice_is_recorded(p):
    study = generate_uid()
    scout, axial = generate_uid(), generate_uid()
    blobs = _series(["No_Tumor"] * 3, study, "MR-3", scout)
    blobs += _series(["Glioma"] * 12, study, "MR-3", axial)
    sid = _send(p, blobs)
    _analyse(p)
    _status, payload, _heatmap = _result(p, sid)
    choice = payload["read"]["series_choice"]
    assert choice["chosen"] == axial and choice["considered"] == 2 and choice["why"]
    assert payload["decision"]["primary"] == "Glioma"
    # both series were read (neither is a localizer): each is accounted for
    assert {a["series_uid"] for a in payload["read"]["series"] if a["read"]} == {scout, axial}


def test_slices_arriving_after_the_reading_reopen_the_series(p):
    study, series = generate_uid(), generate_uid()
    blobs = _series(["No_Tumor"] * 4 + ["Glioma"] * 8, study, "MR-4", series)
    sid = _send(p, blobs[:4])  # the normal end of the series first ...
    _analyse(p)
    assert _result(p, sid)[1]["decision"]["state"] == "normal"
    _send(p, blobs[4:])  # ... then the rest: the study is read again, whole
    _analyse(p)
    status, payload, _heatmap = _result(p, sid)
    assert status == "ai_drafted"
    assert payload["read"]["instances_read"] == 12
    assert payload["decision"]["primary"] == "Glioma"


def _films(folder, study: str, views: list[str | None]) -> list[bytes]:
    return [
        make_dicom(
            folder / f"f{i}.dcm", "DX", study=study, view=view, accession="CXR-9", seed=i
        ).read_bytes()
        for i, view in enumerate(views)
    ]


@pytest.mark.parametrize("views", [["LL", "PA"], ["PA", "LL"], ["AP", "PA"]])
def test_a_chest_study_is_decided_from_its_frontal_film(p, tmp_path, views):
    import pydicom

    from medai.platform.records.tables import Study

    blobs = _films(tmp_path, generate_uid(), views)
    sid = _send(p, blobs)
    _analyse(p)
    status, payload, _heatmap = _result(p, sid)
    assert status == "ai_drafted"
    pa = pydicom.dcmread(io.BytesIO(blobs[views.index("PA")])).SOPInstanceUID
    read = payload["read"]
    assert read["key_instances"] == [pa] and read["instances_read"] == 1
    assert "PA" in read["series_choice"]["why"]
    with p.db.reader() as db:  # the study's analysed file is the film read
        import hashlib

        assert (
            db.get(Study, sid).file_sha256 == hashlib.sha256(blobs[views.index("PA")]).hexdigest()
        )


def test_an_upload_says_it_read_one_image(p):
    from helpers.platform import png_bytes
    from medai.platform.records.tables import User
    from medai.platform.worklist import filing

    data = png_bytes(3)
    sha = p.store.put_bytes(data)
    with p.db.session() as db:
        rad = db.scalar(select(User).where(User.username == "rad"))
        sid = filing.file_study(
            db,
            Arrival(
                sha=sha, size=len(data), content_type="image/png", task="cxr", uploaded_by=rad.id
            ),
        ).study.id
    _analyse(p)
    _status, payload, _heatmap = _result(p, sid)
    if not payload.get("refused"):
        assert payload["read"]["instances_read"] == 1
        assert payload["read"]["rule"] == "single_image"


def _copy(blob: bytes, uid: str) -> bytes:
    """The same slice re-sent under a new SOP Instance UID (same position, same pixels)."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(blob))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _draft(p, sid: int) -> dict:
    from medai.platform.worklist import versions

    with p.db.reader() as db:
        return versions.current(db, sid).sections


def _note(p, sid: int) -> str:
    """The AI note beside the report (issue 69: what the AI read, why it did not decide)."""
    from medai.platform.worklist import versions

    with p.db.reader() as db:
        return " ".join(versions.ai_note(db, versions.current(db, sid)))


SMALL = ["No_Tumor"] * 9 + ["Glioma"] * 2 + ["No_Tumor"] * 9


def test_copies_of_two_tumour_slices_do_not_decide_and_the_small_lesion_is_said(p):
    """Issue 67 end to end, filed through the node: the 2-slice glioma series read "No tumour
    0.963" with no key slice; with copies of its 2 glioma slices it read Glioma. Now both read
    undecided (small lesion) on slices 10–11, the copies named, and the draft says where."""
    study, series = generate_uid(), generate_uid()
    blobs = _series(SMALL, study, "MR-7", series)
    copies = [_copy(blobs[i], f"{series}.{i + 1}.9") for i in (9, 10)]
    sid = _send(p, blobs + copies)
    _analyse(p)
    status, payload, _heatmap = _result(p, sid)
    assert status == "ai_drafted"
    d, read = payload["decision"], payload["read"]
    assert d["state"] == "indeterminate" and d["indeterminate_reason"] == "small_lesion"
    assert read["key_instances"] == [f"{series}.10", f"{series}.11"]
    assert read["undecided_slices"]["numbers"] == [10, 11]
    assert read["instances_in_series"] == 20 and read["instances_read"] == 20
    assert {x["instance"] for x in read["duplicates"]} == {f"{series}.10.9", f"{series}.11.9"}
    findings = _draft(p, sid)["findings"]
    assert "2 komşu kesitte (10–11) gliom lehine görünüm (YZ önerisi)" in findings
    assert "izlenmedi" not in findings and "saptanmadı" not in findings
    assert "2 komşu kesitte (10–11) gliom lehine bulgu; YZ'nin karar kuralı" in _note(p, sid)


def test_every_series_is_read_and_a_glioma_series_is_not_hidden_by_a_longer_normal_one(p):
    """Issue 67: a 10-slice glioma series and a 12-slice normal series were read from the
    longer one ("No tumour", "12 of the series' 12 slices"), the other never mentioned."""
    study, glioma, normal = generate_uid(), generate_uid(), generate_uid()
    blobs = _series(["Glioma"] * 10, study, "MR-8", glioma)
    blobs += _series(["No_Tumor"] * 12, study, "MR-8", normal)
    sid = _send(p, blobs)
    _analyse(p)
    _status, payload, _heatmap = _result(p, sid)
    assert payload["decision"]["primary"] == "Glioma"
    assert payload["read"]["series_uid"] == glioma
    assert all(k.startswith(glioma) for k in payload["read"]["key_instances"])
    accounts = {a["series_uid"]: a for a in payload["read"]["series"]}
    assert accounts[glioma]["decides"] and accounts[normal]["read"]
    assert accounts[normal]["state"] == "normal"
    note = _note(p, sid)
    assert "2 serisinden 2 seriyi" in note, note


def _described(blob: bytes, description: str) -> bytes:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(blob))
    ds.SeriesDescription = description
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _references(ds) -> set[str]:
    """Every SOP instance a DICOM object refers to, at any depth."""
    return {str(e.value) for e in ds.iterall() if e.keyword == "ReferencedSOPInstanceUID"}


def test_the_study_names_shows_and_sends_the_slice_it_was_read_from_not_the_first_filed(p):
    """A normal "AX T2" series filed before a glioma "AX T1 post" series: the result, its key
    slice and heatmap came from the T1 post series, but the report's image row and the page's
    series description named the first-filed T2 slice, and the AI's objects for a PACS (the
    heatmap's Parametric Map placed by its source's geometry) referred to that T2 slice. The
    key slice's instance is now the study's image, as a chest study's frontal film is."""
    import numpy as np
    from PIL import Image

    from medai.platform.delivery import payloads
    from medai.platform.documents.words.report_words import dicom_rows
    from medai.platform.records.tables import DicomInstance, OutboxItem, Study
    from medai.platform.worklist import ai_results, listing

    study, t2, t1 = generate_uid(), generate_uid(), generate_uid()
    blobs = [_described(b, "AX T2") for b in _series(["No_Tumor"] * 6, study, "MR-9", t2)]
    blobs += [_described(b, "AX T1 post") for b in _series(["Glioma"] * 5, study, "MR-9", t1)]
    sid = _send(p, blobs)
    _analyse(p)
    status, payload, _heatmap = _result(p, sid)
    assert status == "ai_drafted" and payload["decision"]["primary"] == "Glioma"
    key = payload["heatmap_instance"].partition("#")[0]
    assert key in payload["read"]["key_instances"] and key.startswith(t1)
    with p.db.reader() as db:
        row = db.get(Study, sid)
        shown = listing.as_dict(db, row)["dicom"]
        key_sha = db.scalar(select(DicomInstance.file_sha256).where(DicomInstance.sop_uid == key))
        file_sha, display_sha = row.file_sha256, row.display_sha256
        ai_id = ai_results.latest_result(db, sid).id
    assert file_sha == key_sha
    assert shown["sop_uid"] == key and shown["series_description"] == "AX T1 post"
    assert {s["series_description"] for s in shown["series"]} == {"AX T2", "AX T1 post"}
    assert dict(dicom_rows({"dicom": shown}, "tr"))["Görüntü"] == "MR · BRAIN · AX T1 post"
    # the picture shown is the key slice (a glioma slice is bright over ~40 % of its rows)
    film = np.asarray(Image.open(io.BytesIO(p.store.read(display_sha))).convert("L")) / 255.0
    assert 0.3 < film.mean() < 0.5
    item = OutboxItem(event="analysed", study_id=sid, report_version=1, ai_result_id=ai_id)
    sent = payloads.dicom_objects(p, item, payloads.gather(p, item))
    assert len(sent) >= 2  # the findings SR, the heatmap and its map
    for ds in sent:
        refs = _references(ds)
        assert key in refs and not any(r.startswith(t2) for r in refs), ds.SOPClassUID


def test_a_re_read_whose_key_slice_is_in_another_series_shows_that_slice_under_its_heatmap(p):
    """A meningioma series read first, then a glioma series arriving: the re-read's result and
    heatmap are of a glioma slice. The study's picture was the first reading's slice (the
    first display stored was kept), so the new heatmap lay over a slice it was not made of."""
    import numpy as np
    from PIL import Image

    from medai.platform.records.tables import DicomInstance, Study

    study, first, late = generate_uid(), generate_uid(), generate_uid()
    sid = _send(p, _series(["Meningioma"] * 4, study, "MR-10", first))
    _analyse(p)
    assert _result(p, sid)[1]["heatmap_instance"].startswith(first)
    _send(p, _series(["Glioma"] * 4, study, "MR-10", late))
    _analyse(p)
    _status, payload, _heatmap = _result(p, sid)
    assert payload["decision"]["primary"] == "Glioma"
    key = payload["heatmap_instance"].partition("#")[0]
    assert key.startswith(late)
    with p.db.reader() as db:
        row = db.get(Study, sid)
        key_sha = db.scalar(select(DicomInstance.file_sha256).where(DicomInstance.sop_uid == key))
        file_sha, display_sha = row.file_sha256, row.display_sha256
    assert file_sha == key_sha
    film = np.asarray(Image.open(io.BytesIO(p.store.read(display_sha))).convert("L")) / 255.0
    assert 0.3 < film.mean() < 0.5  # a glioma slice (a meningioma one is bright over ~65 %)


def test_an_earlier_readings_objects_keep_their_uids_and_source_after_a_re_read(p):
    """The PACS holds the first reading's objects under UIDs made from their source image; a
    re-read moved the study's file to another series' slice, and rebuilding the first
    reading's objects (to reject them as superseded, or for a retraction) made new UIDs from
    the new file: the rejection note named objects the PACS never got. Each result now keeps
    the file it was read from."""
    from medai.platform.delivery import payloads
    from medai.platform.records.tables import AIResultRow, DicomInstance, OutboxItem

    study, first, late = generate_uid(), generate_uid(), generate_uid()
    sid = _send(p, _series(["Meningioma"] * 4, study, "MR-11", first))
    _analyse(p)

    def built(ai_id: int) -> list:
        item = OutboxItem(event="analysed", study_id=sid, report_version=1, ai_result_id=ai_id)
        return payloads.dicom_objects(p, item, payloads.gather(p, item))

    with p.db.reader() as db:
        first_id = db.scalar(select(AIResultRow.id).where(AIResultRow.kind == "imaging"))
    sent = {str(ds.SOPInstanceUID): _references(ds) for ds in built(first_id)}
    assert len(sent) >= 2 and all(any(r.startswith(first) for r in refs) for refs in sent.values())
    _send(p, _series(["Glioma"] * 4, study, "MR-11", late))
    _analyse(p)
    _status, payload, _heatmap = _result(p, sid)
    assert payload["heatmap_instance"].startswith(late)  # the study's image moved
    assert {str(ds.SOPInstanceUID): _references(ds) for ds in built(first_id)} == sent
    with p.db.reader() as db:
        newest = db.scalar(
            select(AIResultRow).where(AIResultRow.kind == "imaging").order_by(AIResultRow.id.desc())
        )
        key_sha = db.scalar(
            select(DicomInstance.file_sha256).where(
                DicomInstance.sop_uid == payload["heatmap_instance"]
            )
        )
        assert newest.id != first_id and newest.source_sha256 == key_sha
    # the new reading's objects are its own, on its own slice
    again = built(newest.id)
    assert not {str(ds.SOPInstanceUID) for ds in again} & set(sent)
    assert all(payload["heatmap_instance"] in _references(ds) for ds in again)


def test_a_signed_rows_objects_are_the_signed_reading_s_after_a_late_series(p):
    """A signed study re-read after a late series: its ``signed`` row took the latest AI
    result when it was built, so a retry (or a retraction's rebuild of what was sent) made a
    report SR of the same UID referring to the new reading's slice, and a key image note the
    PACS never got. The row keeps the reading the signer had on the page."""
    from medai.destinations_config import DicomDestination
    from medai.platform.delivery import payloads
    from medai.platform.reading import review
    from medai.platform.records.tables import AIResultRow, OutboxItem, Study, User
    from medai.platform.worklist import versions

    pacs = DicomDestination(name="pacs", kind="dicom", ae_title="PACS", host="127.0.0.1", port=1)
    study, first, late = generate_uid(), generate_uid(), generate_uid()
    sid = _send(p, _series(["Meningioma"] * 4, study, "MR-12", first))
    _analyse(p)
    with p.db.session() as db:
        rad = db.scalar(select(User).where(User.username == "rad"))
        signed = review.sign(
            db, db.get(Study, sid), versions.current(db, sid).version, rad, destinations=[pacs]
        )
        first_id = db.scalar(select(AIResultRow.id).where(AIResultRow.kind == "imaging"))
        item = db.scalar(select(OutboxItem).where(OutboxItem.event == "signed"))
        assert item.ai_result_id == first_id and item.report_version == signed.version
        db.expunge(item)

    def built() -> dict[str, set[str]]:
        objects = payloads.dicom_objects(p, item, payloads.gather(p, item))
        return {str(ds.SOPInstanceUID): _references(ds) for ds in objects}

    sent = built()
    assert any(r.startswith(first) for refs in sent.values() for r in refs)
    _send(p, _series(["Glioma"] * 4, study, "MR-12", late))
    _analyse(p)
    assert _result(p, sid)[1]["heatmap_instance"].startswith(late)  # the newest reading
    assert built() == sent
    # the signed report's exports keep its reading: its result, its slice and that slice's
    # series in the image row, though the study's own image is now the glioma slice
    from PIL import Image

    from medai.platform.reading import series_view
    from medai.platform.worklist import ai_results, listing
    from medai.services.imaging import preview_png

    with p.db.reader() as db:
        row = db.get(Study, sid)
        version = versions.current(db, sid)
        kept = ai_results.signed_with(db, sid, version)
        assert kept.id == first_id and version.signed_at is not None
        picture = series_view.picture_of(db, row, kept)
        assert picture is not None and picture[0] != row.file_sha256
        shown = listing.as_dict(db, row, shown_sha=picture[0])["dicom"]
        assert shown["series_uid"] == first
        assert listing.as_dict(db, row)["dicom"]["series_uid"] == late  # the page's newest
    film = Image.open(io.BytesIO(preview_png(p.store.read(picture[0]), 64, picture[1])))
    assert np.asarray(film.convert("L")).mean() / 255 > 0.55  # a meningioma slice


def test_a_study_retracted_during_its_read_keeps_its_image(p, monkeypatch):
    """A retraction committed while the model read the series: the read moved the retracted
    study's file and picture to its key slice (before the analysis saw the retraction)."""
    from medai.platform.reading import retraction
    from medai.platform.records.tables import Study, User
    from medai.services import study_read

    study, series = generate_uid(), generate_uid()
    sid = _send(p, _series(["No_Tumor"] * 2 + ["Glioma"] * 4, study, "MR-13", series))
    with p.db.reader() as db:
        before = (db.get(Study, sid).file_sha256, db.get(Study, sid).display_sha256)
    real = study_read.read_study

    def read_then_retract(*args, **kwargs):
        got = real(*args, **kwargs)
        with p.db.session() as db:
            rad = db.scalar(select(User).where(User.username == "rad"))
            retraction.retract(
                db, db.get(Study, sid), rad, "wrong_patient", None, p.clock(), destinations=[]
            )
        return got

    monkeypatch.setattr(study_read, "read_study", read_then_retract)
    _analyse(p)
    with p.db.reader() as db:
        row = db.get(Study, sid)
        assert row.status == "entered_in_error"
        assert (row.file_sha256, row.display_sha256) == before


def test_a_training_export_pairs_the_signers_labels_with_the_slice_they_were_about(p):
    """A signed meningioma study re-read after a late glioma series: the export wrote the
    study's file of the moment (the glioma key slice) under the signer's "Meningioma"."""
    import csv

    from PIL import Image

    from medai.platform.access.audit import Actor
    from medai.platform.lifecycle import dataset
    from medai.platform.reading.sign_off import sign_off
    from medai.platform.records.tables import User
    from medai.platform.worklist import versions
    from medai.services.imaging import preview_png

    study, first, late = generate_uid(), generate_uid(), generate_uid()
    sid = _send(p, _series(["Meningioma"] * 4, study, "MR-14", first))
    _analyse(p)
    with p.db.reader() as db:
        rad = db.scalar(select(User).where(User.username == "rad"))
        version = versions.current(db, sid).version
        db.expunge(rad)
    sign_off(p, sid, rad, Actor(name="rad"), version, None, None)
    _send(p, _series(["Glioma"] * 4, study, "MR-14", late))
    _analyse(p)
    assert _result(p, sid)[1]["heatmap_instance"].startswith(late)
    out = p.home / "export"
    dataset.export(p, "mri", out)
    (row,) = csv.DictReader((out / dataset.MANIFEST).open(encoding="utf-8"))
    assert row["label"] == "Meningioma"
    exported = preview_png((out / row["file"]).read_bytes(), 64)
    brightness = np.asarray(Image.open(io.BytesIO(exported)).convert("L")).mean() / 255
    assert brightness > 0.55  # a meningioma slice (a glioma one is bright over ~40 %)
    # and a site set freezes that image with the labels a candidate is judged on
    from medai.platform.lifecycle import site_sets

    with p.db.session() as db:
        (item,) = site_sets.build(db, "mri", "test", 1.0).studies
    assert p.store.read(item["image"]) == (out / row["file"]).read_bytes()
