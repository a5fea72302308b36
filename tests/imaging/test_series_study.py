"""A study read whole and honestly (issue 67): a slice counts once however many copies of it
arrive, slices that suggest a tumour but are too few to decide it leave the study undecided
(never "no tumour"), and every series of the study is read or named with why not.

The predictor is the real ``ImagingPredictor`` over the brightness network of
``helpers.series``: each test knows what every slice reads as."""

from __future__ import annotations

import io

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.series import LABELS, brightness_predictor, mr_slice
from medai.imaging import series as S
from medai.imaging import series_rule as R
from medai.imaging import slices as SL
from medai.imaging.io import load_image
from medai.imaging.series import read_study

SERIES = "1.2.826.0.1.3680043.8.498.2"
OTHER = "1.2.826.0.1.3680043.8.498.3"
SUSPECT = R.SuspectRule(min_probability=0.9, min_slices=1)
RULE = R.SeriesRule(name="run", k=3, suspect=SUSPECT)


@pytest.fixture(scope="module")
def predictor():
    return brightness_predictor()


def _edit(blob: bytes, **attrs) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(blob))
    for name, value in attrs.items():
        setattr(ds, name, value)
    if "SOPInstanceUID" in attrs:
        ds.file_meta.MediaStorageSOPInstanceUID = attrs["SOPInstanceUID"]
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def copy_of(blob: bytes, uid: str) -> bytes:
    """The same slice re-sent under a new SOP Instance UID: same position, same pixels."""
    return _edit(blob, SOPInstanceUID=uid)


def study(*blobs: bytes):
    """(slices grouped by series UID, a loader over the instances)."""
    by_uid, groups = {}, {}
    for blob in blobs:
        for ref in SL.slice_refs(blob):
            by_uid[ref.sop_uid] = blob
            groups.setdefault(ref.series_uid, []).append(ref)
    return groups, lambda ref: load_image(by_uid[ref.sop_uid], frame=ref.frame)


def series_blobs(labels, series=SERIES, **options) -> list[bytes]:
    return [mr_slice(lab, i, series, **options) for i, lab in enumerate(labels)]


def read_of(predictor, blobs, rule=RULE):
    groups, load = study(*blobs)
    (refs,) = groups.values()
    return S.read_series(predictor, refs, load, rule=rule)


def without_duplicates(predictor, read) -> dict:
    """The series' result but for ``read.duplicates`` (the one field copies may change)."""
    out = S.series_result(predictor, read).model_dump(mode="json")
    out["read"].pop("duplicates")
    return out


ISSUE = ["No_Tumor"] * 9 + ["Glioma"] * 2 + ["No_Tumor"] * 9


def test_copies_of_two_glioma_slices_do_not_make_a_run(predictor):
    """The issue's series: 9 normal, 2 glioma, 9 normal. Copies of the 2 glioma slices (new
    SOP Instance UID, same position, same pixels) used to make the 3 neighbouring slices the
    rule needs and read Glioma; the copies now count once and the reading is unchanged."""
    blobs = series_blobs(ISSUE)
    copies = [copy_of(blobs[i], f"{SERIES}.{i + 1}.{c}") for i in (9, 10) for c in (1, 2)]
    plain = read_of(predictor, blobs)
    doubled = read_of(predictor, blobs + copies)
    assert doubled.decision == plain.decision and doubled.decision.primary != "Glioma"
    assert without_duplicates(predictor, doubled) == without_duplicates(predictor, plain)
    dups = S.series_result(predictor, doubled).read.duplicates
    assert sorted(d.instance for d in dups) == sorted(
        f"{SERIES}.{i}.{c}" for i in (10, 11) for c in (1, 2)
    )
    assert {d.reason for d in dups} == {"same_position"}
    assert {d.same_as for d in dups} == {f"{SERIES}.10", f"{SERIES}.11"}


def test_copies_without_geometry_count_once_by_their_pixels(predictor):
    blobs = series_blobs(ISSUE, geometry=False)
    copies = [copy_of(blobs[i], f"{SERIES}.{i + 1}.7") for i in (9, 10)]
    plain, doubled = read_of(predictor, blobs), read_of(predictor, blobs + copies)
    assert without_duplicates(predictor, doubled) == without_duplicates(predictor, plain)
    dups = S.series_result(predictor, doubled).read.duplicates
    assert {(d.instance, d.reason) for d in dups} == {
        (f"{SERIES}.10.7", "same_pixels"),
        (f"{SERIES}.11.7", "same_pixels"),
    }


def test_identical_pixels_at_two_places_both_count(predictor):
    """Two blank end slices of a volume are two places of the patient: both count."""
    blobs = series_blobs(["No_Tumor"] * 6)  # slices 1 and 4 have identical pixels
    read = read_of(predictor, blobs)
    assert read.read.instances_read == 6 and read.read.duplicates == []


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.sampled_from(LABELS), min_size=1, max_size=16),
    st.lists(st.tuples(st.integers(0, 15), st.integers(1, 4)), max_size=6),
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_no_number_of_duplicates_changes_the_reading(predictor, labels, copies, geometry, rnd):
    """Any slices copied any number of times, arriving in any order: the decision, the
    study's probabilities, the key slices and ``read`` are those of the series without the
    copies; ``read.duplicates`` names every copy."""
    blobs = series_blobs(labels, geometry=geometry)
    extra = [
        copy_of(blobs[i % len(blobs)], f"{SERIES}.{i % len(blobs) + 1}.{c}.{n}")
        for n, (i, count) in enumerate(copies)
        for c in range(1, count + 1)
    ]
    everything = blobs + extra
    rnd.shuffle(everything)
    plain, doubled = read_of(predictor, blobs), read_of(predictor, everything)
    assert doubled.decision == plain.decision
    assert without_duplicates(predictor, doubled) == without_duplicates(predictor, plain)
    named = {d.instance for d in S.series_result(predictor, doubled).read.duplicates}
    assert named == {pydicom.dcmread(io.BytesIO(b)).SOPInstanceUID for b in extra}


def test_two_glioma_slices_leave_the_series_undecided_with_them_as_key(predictor):
    """The issue's series read "No tumour 0.963" with no key slice. Now: undecided between
    glioma and no tumour, keyed on slices 10–11, which ``read`` names as the viewer numbers
    them, with what the rule needed."""
    read = read_of(predictor, series_blobs(ISSUE))
    result = S.series_result(predictor, read)
    d = result.decision
    assert d.state == "indeterminate" and d.indeterminate_reason == "small_lesion"
    assert d.candidates == ["Glioma", "No_Tumor"] and d.primary is None and d.positives == []
    assert result.read.key_instances == [f"{SERIES}.10", f"{SERIES}.11"]
    u = result.read.undecided_slices
    assert u.label == "Glioma" and u.numbers == [10, 11] and u.needed == 3
    assert {f.label: f.state for f in result.findings}["No_Tumor"] == "indeterminate"
    ref, label = read.explain
    assert label == "Glioma" and ref.key in u.instances


def test_without_the_suspect_rule_the_same_series_reads_no_tumour(predictor):
    """What the code did before: the failure the rule fixes (the rule is what changed)."""
    read = read_of(predictor, series_blobs(ISSUE), rule=R.SeriesRule(name="run", k=3))
    assert read.decision.state == "normal" and read.key == []


def test_a_normal_series_stays_normal_and_a_decided_run_stays_decided(predictor):
    assert read_of(predictor, series_blobs(["No_Tumor"] * 20)).decision.state == "normal"
    labels = ["No_Tumor"] * 8 + ["Meningioma"] * 4 + ["No_Tumor"] * 8
    read = read_of(predictor, series_blobs(labels))
    assert read.decision.primary == "Meningioma" and read.read.undecided_slices is None


def test_a_slice_below_the_suspect_probability_does_not_count(predictor):
    strict = R.SeriesRule(name="run", k=3, suspect=R.SuspectRule(min_probability=0.9999999))
    assert read_of(predictor, series_blobs(ISSUE), rule=strict).decision.state == "normal"
    two = R.SeriesRule(name="run", k=3, suspect=R.SuspectRule(min_probability=0.9, min_slices=2))
    one = ["No_Tumor"] * 9 + ["Glioma"] + ["No_Tumor"] * 10
    assert read_of(predictor, series_blobs(one), rule=two).decision.state == "normal"
    assert read_of(predictor, series_blobs(ISSUE), rule=two).decision.state == "indeterminate"


def _localizer(blob: bytes) -> bytes:
    return _edit(blob, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])


def test_every_series_is_read_and_the_most_severe_decided_finding_wins(predictor):
    """The issue's study: a 10-slice glioma series and a 12-slice normal series used to be
    read from the longer one ("No tumour", 12 of 12 slices) without a word of the other."""
    glioma = series_blobs(["Glioma"] * 10, SERIES)
    normal = [_edit(b, SeriesNumber=4) for b in series_blobs(["No_Tumor"] * 12, OTHER)]
    groups, load = study(*glioma, *normal)
    read = read_study(predictor, groups, load, rule=RULE)
    result = S.series_result(predictor, read)
    assert result.primary == "Glioma" and result.read.series_uid == SERIES
    assert all(k.startswith(SERIES + ".") for k in result.read.key_instances)
    accounts = {a.series_uid: a for a in result.read.series}
    assert accounts[SERIES].read and accounts[SERIES].decides
    assert accounts[SERIES].primary == "Glioma" and accounts[SERIES].slices == 10
    assert accounts[OTHER].read and not accounts[OTHER].decides
    assert accounts[OTHER].state == "normal" and accounts[OTHER].slices == 12
    assert result.read.series_choice.considered == 2
    assert "Glioma" in result.read.series_choice.why


def test_a_decided_finding_outranks_an_undecided_series_and_severity_orders_findings(predictor):
    men = series_blobs(["Meningioma"] * 6, SERIES)
    gli = [_edit(b, SeriesNumber=5) for b in series_blobs(["Glioma"] * 5, OTHER)]
    groups, load = study(*men, *gli)
    assert read_study(predictor, groups, load, rule=RULE).decision.primary == "Glioma"
    small = [_edit(b, SeriesNumber=5) for b in series_blobs(ISSUE, OTHER)]
    groups, load = study(*men, *small)
    read = read_study(predictor, groups, load, rule=RULE)
    assert read.decision.primary == "Meningioma"
    other = next(a for a in read.read.series if a.series_uid == OTHER)
    assert other.state == "indeterminate" and other.candidates == ["Glioma", "No_Tumor"]


def test_a_series_no_task_can_read_is_named_with_why(predictor):
    """A localizer is not read; a series of another modality is refused by the model; both
    are named in ``read.series`` beside the series that was read."""
    third = "1.2.826.0.1.3680043.8.498.4"
    normal = series_blobs(["No_Tumor"] * 8, SERIES)
    scout = [_localizer(_edit(b, SeriesNumber=1)) for b in series_blobs(["No_Tumor"] * 3, OTHER)]
    ct = [_edit(b, SeriesNumber=9) for b in series_blobs(["No_Tumor"] * 4, third, modality="CT")]
    groups, load = study(*normal, *scout, *ct)
    read = read_study(predictor, groups, load, rule=RULE)
    result = S.series_result(predictor, read)
    assert result.decision.state == "normal" and result.read.series_uid == SERIES
    accounts = {a.series_uid: a for a in result.read.series}
    assert [a.series_uid for a in result.read.series] == [OTHER, SERIES, third]
    assert not accounts[OTHER].read and accounts[OTHER].reason == "localizer"
    assert not accounts[third].read and accounts[third].reason and accounts[third].message
    assert accounts[SERIES].read and accounts[SERIES].decides


def test_beyond_the_series_limit_the_smallest_are_named(predictor):
    blobs = []
    for n in range(4):
        uid = f"1.2.826.0.1.3680043.8.498.{10 + n}"
        blobs += [_edit(b, SeriesNumber=n + 1) for b in series_blobs(["No_Tumor"] * (3 + n), uid)]
    groups, load = study(*blobs)
    read = read_study(predictor, groups, load, rule=RULE, max_series=2)
    skipped = [a for a in read.read.series if not a.read]
    assert [a.series_number for a in skipped] == [1, 2]
    assert {a.reason for a in skipped} == {"too_many_series"}
