"""A radiologist's viewer measurements (``reading.measurements``): a TID 1500 Imaging
Measurement Report built with highdicom, as OHIF saves one, sent over STOW-RS to the platform
app, is filed as that radiologist's measurements (rows in mm with the image and slice they were
drawn on, the SR in the blob store, served back by the catalog, audited); a clinician's is
refused (403 ``measurement_forbidden``); a newer SR of the same author supersedes the older.
The parser and the millimetre rule (PixelSpacing vs ImagerPixelSpacing) are checked alone."""

from __future__ import annotations

import io

import pytest
from pydicom import Dataset, dcmread

from helpers.dicom import make_dicom
from helpers.measurements import measurement_sr as _sr
from helpers.measurements import stow as _stow
from helpers.platform import bearer, clinic

# --- the parser and the millimetre rule, alone ---------------------------------------------


def test_parser_reads_axes_area_and_the_image(tmp_path):
    from medai.platform.reading import measurements

    image = dcmread(make_dicom(tmp_path / "a.dcm", ImagerPixelSpacing=[0.2, 0.2]))
    got = measurements.parse(_sr(image, 23.0, 1.8, area_mm2=310.0))
    assert got.study_uid == str(image.StudyInstanceUID)
    kinds = {p.kind: p for p in got.items}
    assert set(kinds) == {"long_axis", "short_axis", "area"}
    assert kinds["long_axis"].value == pytest.approx(23.0)
    assert kinds["short_axis"].unit == "mm" and kinds["area"].unit == "mm2"
    assert {p.ref_sop_uid for p in got.items} == {str(image.SOPInstanceUID)}
    with pytest.raises(measurements.NotMeasurement):
        measurements.parse(image_bytes(image))


def image_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_spacing_rule():
    from medai.platform.reading import measurements

    true, film, none = Dataset(), Dataset(), Dataset()
    true.PixelSpacing = [0.5, 0.5]
    true.ImagerPixelSpacing = [0.6, 0.6]
    film.ImagerPixelSpacing = [0.2, 0.2]
    assert measurements.spacing_of(true) == "PixelSpacing"
    assert measurements.spacing_of(film) == "ImagerPixelSpacing"
    assert measurements.spacing_of(none) is None


# --- STOW-RS to the platform app -----------------------------------------------------------


@pytest.mark.server
def test_stow_files_measurements(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    from sqlalchemy import select

    from medai.platform.reading import catalog, measurements
    from medai.platform.records.tables import AuditEvent, Measurement, Study

    with clinic("sqlite", tmp_path, tfidf_model_dir, tiny_imaging_dir) as (app, client):
        rad, clin = bearer(client, "rad1"), bearer(client, "clin")
        path = make_dicom(tmp_path / "cr.dcm", accession="M-1", ImagerPixelSpacing=[0.2, 0.2])
        r = _stow(client, rad, path.read_bytes())
        assert r.status_code == 200, r.text
        image = dcmread(path)
        first = _sr(image, 18.0, 15.0)

        refused = _stow(client, clin, first)
        assert refused.status_code == 403
        assert refused.json()["code"] == "measurement_forbidden"

        assert _stow(client, rad, first).status_code == 200
        p = app.state.platform
        with p.db.session() as db:
            study = db.scalar(select(Study).where(Study.study_uid == str(image.StudyInstanceUID)))
            rows = measurements.current(db, study.id)
            assert sorted((m.kind, m.value) for m in rows) == [
                ("long_axis", 18.0),
                ("short_axis", 15.0),
            ]
            assert {m.ref_sop_uid for m in rows} == {str(image.SOPInstanceUID)}
            assert {m.spacing for m in rows} == {"ImagerPixelSpacing"}
            assert {m.instance_number for m in rows} == {int(image.InstanceNumber)}
            assert p.store.read(rows[0].file_sha) == first
            assert measurements.lines(rows, "en") == [
                f"Lesion 18 × 15 mm, slice {int(image.InstanceNumber)} (at the detector plane)."
            ]
            served = [o for o in catalog.objects(db, study) if o.source == "measurements"]
            assert [o.sop_uid for o in served] == [rows[0].sr_sop_uid]
            events = db.scalars(select(AuditEvent).where(AuditEvent.action == "measure")).all()
            assert len(events) == 1 and events[0].study_id == study.id
            assert events[0].detail["count"] == 2
            denied = db.scalars(select(AuditEvent).where(AuditEvent.action == "denied")).all()
            assert any(e.detail.get("needed") == "measure" for e in denied)

        second = _sr(image, 23.0, 18.0)
        assert _stow(client, rad, second).status_code == 200
        with p.db.session() as db:
            rows = measurements.current(db, study.id)
            assert sorted(m.value for m in rows) == [18.0, 23.0]
            assert all(m.file_sha != rows[0].file_sha or True for m in rows)
            old = db.scalars(select(Measurement).where(Measurement.superseded.is_(True))).all()
            assert sorted(m.value for m in old) == [15.0, 18.0]
            served = [o for o in catalog.objects(db, study) if o.source == "measurements"]
            assert len(served) == 1 and served[0].sop_uid == rows[0].sr_sop_uid

        # an SR naming a study medai does not hold is refused, not filed as an instance
        other = dcmread(make_dicom(tmp_path / "o.dcm", accession="M-2"))
        assert _stow(client, rad, _sr(other, 5.0, 4.0)).status_code == 409


# --- the Measurements section against a prior's sizes, alone ------------------------------


def _rows(*groups, detector=False, sr="1.2.3"):
    """Measurement rows (not stored): each group a (long, short) or (length,) in mm."""
    from medai.platform.records.tables import Measurement

    out = []
    for n, axes in enumerate(groups, 1):
        kinds = ("long_axis", "short_axis") if len(axes) == 2 else ("length",)
        for kind, value in zip(kinds, axes, strict=True):
            out.append(
                Measurement(
                    sr_sop_uid=sr,
                    group_no=n,
                    kind=kind,
                    value=value,
                    unit="mm",
                    instance_number=12,
                    spacing="ImagerPixelSpacing" if detector else "PixelSpacing",
                )
            )
    return out


def test_sizes_against_the_prior_say_grew_shrank_or_similar_by_recist():
    from medai.platform.reading import measurements as m

    day = "12.03.2025"
    grew = m.lines(_rows((23.0, 18.0)), "tr", _rows((18.0, 15.0)), day)
    assert grew == [
        "Lezyon 23 × 18 mm, kesit 12; önceki tetkike (12.03.2025) göre büyüdü: "
        "18 × 15 → 23 × 18 mm (uzun eksen +%28)."
    ]
    assert m.compared(_rows((23.0, 18.0)), _rows((18.0, 15.0)))
    assert m.lines(_rows((23.0, 18.0)), "en", _rows((18.0, 15.0)), "2025-03-12") == [
        "Lesion 23 × 18 mm, slice 12; against the prior of 2025-03-12: grew: "
        "18 × 15 → 23 × 18 mm (long axis +28%)."
    ]
    # +20 % but under 5 mm is not growth (RECIST 1.1); -30 % is shrinkage
    assert "benzer boyutta" in m.lines(_rows((12.0,)), "tr", _rows((10.0,)), day)[0]
    assert "küçüldü" in m.lines(_rows((14.0,)), "tr", _rows((20.0,)), day)[0]
    assert "(uzun eksen −%30)" in m.lines(_rows((14.0,)), "tr", _rows((20.0,)), day)[0]
    # two lesions each: paired largest with largest, and said so
    two = m.lines(_rows((9.0,), (31.0,)), "tr", _rows((30.0,), (10.0,)), day)
    assert "10 → 9 mm" in two[0] and "30 → 31 mm" in two[1]
    assert two[-1] == "Lezyonlar büyükten küçüğe eşleştirildi."


def test_sizes_that_cannot_be_compared_are_never_given_a_verdict():
    from medai.platform.reading import measurements as m

    day = "12.03.2025"
    # another number of lesions: listed, not paired
    odd = m.lines(_rows((23.0,), (8.0,)), "tr", _rows((18.0,)), day)
    assert not any(w in " ".join(odd) for w in ("büyüdü", "küçüldü", "benzer"))
    assert odd[-1].startswith("Önceki tetkikte (12.03.2025) 1 ölçüm var (18 mm), bugün 2")
    assert not m.compared(_rows((23.0,), (8.0,)), _rows((18.0,)))
    # a film at the detector plane against a true size: the magnification differs
    mixed = m.lines(_rows((23.0,), detector=True), "en", _rows((18.0,)), "2025-03-12")
    assert mixed == [
        "Lesion 23 mm, slice 12 (at the detector plane); prior of 2025-03-12: 18 mm; one was "
        "measured at the detector plane, so the sizes were not compared."
    ]
    assert not m.compared(_rows((23.0,), detector=True), _rows((18.0,)))
    # no prior measurements: today's sizes alone
    assert m.lines(_rows((23.0, 18.0)), "tr") == ["Lezyon 23 × 18 mm, kesit 12."]
    # a tenth of a millimetre, with Turkish's decimal comma
    assert m.lines(_rows((12.16,)), "tr") == ["Lezyon 12,2 mm, kesit 12."]
    assert m.lines(_rows((12.16,)), "en") == ["Lesion 12.2 mm, slice 12."]
