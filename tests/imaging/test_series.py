"""Series-level reading (issue 58): a study is decided from every slice of its series, in
anatomical order, whatever order the slices arrived in.

The predictor is the real ``ImagingPredictor`` over a network whose output depends only on a
slice's brightness (``helpers.series``), so each test knows what every slice reads as."""

from __future__ import annotations

import json
import shutil
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.series import (
    LABELS,
    brightness_predictor,
    mr_multiframe,
    mr_slice,
    slice_pixels,
)
from medai.imaging import series as S
from medai.imaging import series_rule as R
from medai.imaging import slices as SL
from medai.imaging.io import load_image
from medai.imaging.limits import ImageInputError, ImageTooLarge, NoPixelData

SERIES = "1.2.826.0.1.3680043.8.498.2"


@pytest.fixture(scope="module")
def predictor():
    return brightness_predictor()


def dicom_series(labels: list[str], **options) -> tuple[list, dict[str, bytes]]:
    """The slices' references (header only) in file order and each instance's bytes."""
    blobs = [mr_slice(lab, i, **options) for i, lab in enumerate(labels)]
    refs, by_uid = [], {}
    for blob in blobs:
        for ref in SL.slice_refs(blob):
            refs.append(ref)
            by_uid[ref.sop_uid] = blob
    return refs, by_uid


def loader(by_uid: dict[str, bytes], calls: list | None = None):
    def load(ref):
        if calls is not None:
            calls.append(ref.key)
        return load_image(by_uid[ref.sop_uid], frame=ref.frame)

    return load


def test_the_issue_series_reads_glioma_in_either_order(predictor):
    """Slice 1 normal, slices 2–20 glioma: arriving first-slice-first used to read
    "No tumour" (the first instance decided); now Glioma in both orders, 20 slices read, key
    slices 2–20."""
    labels = ["No_Tumor"] + ["Glioma"] * 19
    refs, by_uid = dicom_series(labels)
    first = by_uid[refs[0].sop_uid]
    assert predictor.predict(first).primary == "No_Tumor"  # what deciding from it gave
    results = []
    for arrival in (refs, refs[::-1]):
        read = S.read_series(predictor, arrival, loader(by_uid))
        result = S.series_result(predictor, read)
        assert result.primary == "Glioma" and result.decision.state == "abnormal"
        assert result.read.instances_in_series == 20 and result.read.instances_read == 20
        assert result.read.read_instances == [f"{SERIES}.{i}" for i in range(1, 21)]
        assert result.read.key_instances == [f"{SERIES}.{i}" for i in range(2, 21)]
        assert f"{SERIES}.1" not in result.read.key_instances
        assert result.read.series_uid == SERIES and result.read.sampled is False
        assert result.read.rule == S.rule_for(predictor).tag
        assert result.model.name == "brightness-mri"
        results.append(result.model_dump(mode="json"))
    assert results[0] == results[1]


def test_twenty_normal_slices_read_no_tumour_with_no_key_slice(predictor):
    refs, by_uid = dicom_series(["No_Tumor"] * 20)
    read = S.read_series(predictor, refs, loader(by_uid))
    result = S.series_result(predictor, read)
    assert result.primary == "No_Tumor" and result.decision.state == "normal"
    assert result.decision.stated == []
    assert result.read.key_instances == [] and result.read.instances_read == 20
    ref, label = read.explain  # the most confidently normal slice, for its heatmap
    assert label == "No_Tumor" and ref.key in result.read.read_instances


def test_a_stray_tumour_slice_does_not_decide_a_normal_series(predictor):
    """The run rule needs k neighbouring slices; the most suspicious slice alone (max) does
    not: the difference the validation table measures."""
    labels = ["No_Tumor"] * 9 + ["Meningioma"] + ["No_Tumor"] * 10
    refs, by_uid = dicom_series(labels)
    run = S.read_series(predictor, refs, loader(by_uid), rule=R.SeriesRule(name="run", k=3))
    most = S.read_series(predictor, refs, loader(by_uid), rule=R.SeriesRule(name="max"))
    assert run.decision.primary == "No_Tumor" and run.key == []
    assert most.decision.primary == "Meningioma"
    assert [r.key for r in most.key_refs] == [f"{SERIES}.10"]


def test_a_lesion_on_neighbouring_slices_is_found_and_keyed(predictor):
    labels = ["No_Tumor"] * 8 + ["Pituitary"] * 4 + ["No_Tumor"] * 8
    refs, by_uid = dicom_series(labels)
    read = S.read_series(predictor, refs, loader(by_uid), rule=R.SeriesRule(name="run", k=3))
    assert read.decision.primary == "Pituitary"
    assert [r.instance_number for r in read.key_refs] == [9, 10, 11, 12]
    ref, label = read.explain
    assert label == "Pituitary" and ref.instance_number in (9, 10, 11, 12)
    probs = read.slice_probabilities
    assert ref.instance_number - 1 == max(
        range(8, 12), key=lambda i: (probs[i][LABELS.index("Pituitary")], -i)
    )
    # what the heatmap code is given: that slice decoded again, and the label
    from medai.imaging.explain import gradcam

    shown, image, label = S.explain_slice(read, loader(by_uid))
    assert shown == ref and label == "Pituitary"
    heat = gradcam(predictor.model, image.pixels, LABELS.index(label), predictor.cfg.image_size)
    assert heat.shape == image.pixels.shape


def test_a_series_shorter_than_k_is_read_by_all_its_slices(predictor):
    refs, by_uid = dicom_series(["Glioma", "Glioma"])
    read = S.read_series(predictor, refs, loader(by_uid), rule=R.SeriesRule(name="run", k=5))
    assert read.decision.primary == "Glioma" and len(read.key) == 2


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(LABELS), min_size=1, max_size=24),
    st.randoms(use_true_random=False),
    st.booleans(),
    st.sampled_from(["run:3", "run:1", "mean", "max", "top_k:3"]),
)
def test_any_arrival_order_gives_the_same_decision_probabilities_and_key(
    predictor, labels, rnd, geometry, rule
):
    """A property over random series and random permutations of their arrival: the decision,
    the study and per-slice probabilities and the key slices are identical."""
    refs = [
        SL.SliceRef(
            sop_uid=f"{SERIES}.{i + 1}",
            instance_number=i + 1,
            position=float(i) * 3.0 if geometry else None,
            series_uid=SERIES,
        )
        for i in range(len(labels))
    ]
    pairs = [
        (ref, slice_pixels(lab, i)) for i, (ref, lab) in enumerate(zip(refs, labels, strict=True))
    ]
    shuffled = list(pairs)
    rnd.shuffle(shuffled)
    rule = R.SeriesRule.parse(rule)
    a = S.read_decoded(predictor, pairs, rule=rule, batch_size=5)
    b = S.read_decoded(predictor, shuffled, rule=rule, batch_size=5)
    assert a.decision == b.decision
    assert np.array_equal(a.probabilities, b.probabilities)
    assert np.array_equal(a.slice_probabilities, b.slice_probabilities)
    assert a.read == b.read and a.explain == b.explain


def test_order_is_anatomical_and_falls_back_to_instance_numbers():
    by_position = [
        SL.SliceRef("1.9", instance_number=1, position=30.0),
        SL.SliceRef("1.8", instance_number=2, position=-10.0),
        SL.SliceRef("1.7", instance_number=3, position=10.0),
    ]
    assert [r.sop_uid for r in SL.order(by_position)] == ["1.8", "1.7", "1.9"]
    # one slice without geometry: the instance numbers order all of them, never a mix
    mixed = [*by_position[:2], SL.SliceRef("1.7", instance_number=3)]
    assert [r.sop_uid for r in SL.order(mixed)] == ["1.9", "1.8", "1.7"]
    # neither: the UIDs; a slice given twice (re-sent) is kept once
    bare = [SL.SliceRef("1.3"), SL.SliceRef("1.1"), SL.SliceRef("1.2"), SL.SliceRef("1.1")]
    assert [r.sop_uid for r in SL.order(bare)] == ["1.1", "1.2", "1.3"]


def test_the_cap_samples_evenly_with_both_ends():
    picked = SL.sample_indices(200, 64)
    assert len(picked) == 64 and picked[0] == 0 and picked[-1] == 199
    assert set(np.diff(picked).tolist()) <= {3, 4}
    assert SL.sample_indices(20, 64) == list(range(20))
    assert SL.sample_indices(5, 1) == [2]
    assert SL.sample_indices(10, 4) == [0, 3, 6, 9]
    with pytest.raises(ValueError):
        SL.sample_indices(10, 0)


def test_a_capped_series_decodes_only_its_sampled_slices_a_batch_at_a_time(predictor):
    """Memory stays bounded: only the sampled slices are decoded, and never more than one
    batch of decoded slices is alive at once."""
    labels = ["No_Tumor"] * 40 + ["Glioma"] * 30 + ["No_Tumor"] * 30
    refs, by_uid = dicom_series(labels)
    calls: list[str] = []
    alive, peak = [0], [0]

    def counted(ref):
        image = loader(by_uid, calls)(ref)
        alive[0] += 1
        peak[0] = max(peak[0], alive[0])
        weakref.finalize(image, lambda: alive.__setitem__(0, alive[0] - 1))
        return image

    read = S.read_series(predictor, refs[::-1], counted, cap=25, batch_size=4)
    info = read.read
    expected = [f"{SERIES}.{i + 1}" for i in SL.sample_indices(100, 25)]
    assert sorted(calls) == sorted(expected) and len(calls) == 25
    assert info.read_instances == expected
    assert info.instances_in_series == 100 and info.instances_read == 25
    assert info.sampled is True and info.cap == 25
    assert read.decision.primary == "Glioma"
    assert peak[0] <= 4


def test_a_multiframe_instance_is_read_as_its_frames(predictor):
    """An enhanced MR object stored top-down: its frames become slices ordered by their
    per-frame positions, named <sop>#<frame>; only the asked frame is decoded."""
    labels = ["No_Tumor"] * 4 + ["Glioma"] * 5 + ["No_Tumor"] * 3
    positions = [float(60 - 5 * i) for i in range(len(labels))]  # file order = descending
    sop = "1.2.826.0.1.3680043.8.498.77"
    blob = mr_multiframe(labels, positions, sop)
    refs = SL.slice_refs(blob)
    assert [r.frame for r in refs] == list(range(1, 13))
    assert [r.position for r in refs] == positions
    frame5 = load_image(blob, frame=5).pixels
    assert abs(float(frame5.mean()) - 0.4) < 0.05  # a glioma frame, not the middle one
    with pytest.raises(ImageInputError):
        load_image(blob, frame=13)
    read = S.read_series(predictor, refs, lambda ref: load_image(blob, frame=ref.frame))
    info = read.read
    assert info.read_instances == [f"{sop}#{f}" for f in range(12, 0, -1)]
    assert info.instances_in_series == 12 and info.instances_read == 12
    assert read.decision.primary == "Glioma"
    assert info.key_instances == [f"{sop}#{f}" for f in (9, 8, 7, 6, 5)]


def test_slice_refs_read_headers_within_the_limits():
    from pydicom.dataset import Dataset  # noqa: F401 (pydicom present)

    from helpers.series import _save, mr_dataset

    assert SL.slice_refs(mr_slice("Glioma", 0, geometry=False))[0].position is None
    no_pixels = mr_dataset("1.2.3.4", "1.2.3")
    no_pixels.Rows = no_pixels.Columns = 64
    with pytest.raises(NoPixelData):
        SL.slice_refs(_save(no_pixels))
    huge = mr_dataset("1.2.3.5", "1.2.3", frames=200_000)
    huge.Rows = huge.Columns = 64
    huge.PixelData = b"\0\0" * 64 * 64  # the header, not the data, is what is checked
    with pytest.raises(ImageTooLarge):
        SL.slice_refs(_save(huge))
    with pytest.raises(ImageInputError):
        SL.slice_refs(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    with pytest.raises(ImageTooLarge):
        SL.slice_refs(mr_slice("Glioma", 0), max_bytes=100)


def test_an_unreadable_slice_is_left_out_and_said(predictor):
    refs, by_uid = dicom_series(["Glioma"] * 6)
    broken = refs[2].sop_uid
    by_uid[broken] = by_uid[broken][:-300]  # truncated in transit
    read = S.read_series(predictor, refs, loader(by_uid))
    info = read.read
    assert read.decision.primary == "Glioma"
    assert info.instances_read == 5 and broken not in info.read_instances
    assert [(e.instance, e.reason) for e in info.excluded] == [(broken, "unreadable")]


def test_a_series_of_another_modality_is_refused_with_what_was_read(predictor):
    refs, by_uid = dicom_series(["Glioma"] * 4, modality="CT")
    read = S.read_series(predictor, refs, loader(by_uid))
    result = S.series_result(predictor, read)
    assert result.refused and result.reason_code == "wrong_modality"
    assert result.findings == [] and result.read.instances_read == 4


def test_the_result_keeps_findings_from_the_aggregated_probabilities(predictor):
    refs, by_uid = dicom_series(["No_Tumor"] * 3 + ["Meningioma"] * 6)
    read = S.read_series(predictor, refs, loader(by_uid))
    result = S.series_result(predictor, read)
    assert result.decision == predictor.decide(read.probabilities)
    assert {f.label: f.probability for f in result.findings} == pytest.approx(
        dict(zip(LABELS, read.probabilities.tolist(), strict=True))
    )
    assert result.image is not None and result.image.format == "dicom"
    again = type(result).model_validate_json(result.model_dump_json())
    assert again.read == result.read


def test_results_stored_before_series_reading_still_load():
    from medai.imaging.results import ImagingResult

    old = {
        "status": "ai_suggestion",
        "task": "mri",
        "refused": False,
        "model": {
            "name": "m",
            "version": "1",
            "content_hash": "sha256:0",
            "task": "mri",
            "model_type": "x",
        },
    }
    assert ImagingResult.model_validate(old).read is None
    single = S.single_image_read()
    assert single.model_dump() | {"cap": 0} == {
        "series_uid": None,
        "instances_in_series": 1,
        "instances_read": 1,
        "key_instances": [],
        "read_instances": [],
        "sampled": False,
        "cap": 0,
        "rule": "single_image",
        "series_choice": None,
        "excluded": [],
        "duplicates": [],
        "undecided_slices": None,
        "series": [],
    }


def test_the_recorded_rule_is_the_models_and_survives_new_operating_points(tiny_mri_dir, tmp_path):
    from medai.core import model_dir
    from medai.imaging.operating import load_series_rule, write_policy, write_series_rule

    assert S.rule_for(model_dir.load(tiny_mri_dir)) == R.DEFAULT_RULE
    d = tmp_path / "m"
    shutil.copytree(tiny_mri_dir, d)
    write_series_rule(d, {"name": "top_k", "k": 5, "tag": "top_k:5"})
    with pytest.raises(model_dir.ModelLoadError):  # the file is hashed: reseal or refuse
        model_dir.load(d)
    model_dir.reseal(d)
    # a rule recorded before the small-lesion rule existed reads the default one beside it
    assert S.rule_for(model_dir.load(d)) == R.SeriesRule(
        name="top_k", k=5, suspect=R.DEFAULT_SUSPECT
    )
    write_policy(d, {"schema": 1, "thresholds": {}})
    assert load_series_rule(d)["k"] == 5
    assert json.loads((d / "operating_points.json").read_text())["schema"] == 1
