"""The scope of an imaging model (``imaging.scope``) and the view of a chest film
(``imaging.views``): every result says what the model detects and cannot, a film unlike the
training films is flagged with its score, and a lateral film — by its header, or by the image
check when a PNG has none — is never read as a frontal."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from helpers.builders import gray_png
from helpers.scope import frontal_film, lateral_film, png, scoped_model


@pytest.fixture(scope="module")
def scoped(tmp_path_factory, tiny_imaging_dir):
    return scoped_model(tiny_imaging_dir, tmp_path_factory.mktemp("scope") / "cxr")


@pytest.fixture(scope="module")
def flagging(tmp_path_factory, tiny_imaging_dir):
    return scoped_model(tiny_imaging_dir, tmp_path_factory.mktemp("flag") / "cxr", flag_all=True)


def _load(directory):
    from medai.core import model_dir

    return model_dir.load(directory)


def test_every_result_carries_the_models_scope(tiny_imaging_dir, tiny_mri_dir, tmp_path):
    """Findings and refusals alike: what the model looks for (its labels, the normal one left
    out), what it cannot detect (keys of the words table) and the out-of-scope verdict."""
    from medai.imaging.scope import CANNOT_DETECT_WORDS

    cxr = _load(tiny_imaging_dir)
    result = cxr.predict(gray_png(tmp_path / "a.png", 3)).model_dump(mode="json")
    scope = result["scope"]
    assert scope["detects"] == ["Pneumonia", "COVID-19"]  # "No Finding" is not a finding
    assert {"tuberculosis", "nodule_mass", "pneumothorax", "lateral_views"} <= set(
        scope["cannot_detect"]
    )
    assert set(scope["cannot_detect"]) <= set(CANNOT_DETECT_WORDS)
    # a model with no detector fitted says nothing is flagged, and names no detector
    assert scope["out_of_scope"]["flagged"] is False and scope["out_of_scope"]["detector"] is None
    mri = _load(tiny_mri_dir).predict(gray_png(tmp_path / "b.png", 4)).model_dump(mode="json")
    assert mri["scope"]["detects"] == ["Glioma", "Meningioma", "Pituitary"]
    assert {"other_tumours", "haemorrhage", "stroke"} <= set(mri["scope"]["cannot_detect"])
    assert mri["scope"]["view"] is None  # a brain MRI slice has no chest view
    # a refusal carries its scope too, out of scope for its own reason
    from helpers.platform import colour_png

    refused = cxr.predict(colour_png())
    assert refused.refused and refused.scope is not None
    assert (
        refused.scope.out_of_scope.flagged and refused.scope.out_of_scope.reason == "colour_photo"
    )


def test_what_a_model_cannot_detect_follows_its_labels():
    from medai.imaging.scope import limits

    bundled = ["Pneumonia", "COVID-19", "Viral_Pneumonia", "Bacterial_Pneumonia", "No Finding"]
    detects, cannot = limits("cxr", bundled)
    assert detects == bundled[:-1]
    assert cannot[:4] == ["tuberculosis", "nodule_mass", "pneumothorax", "pleural_effusion"]
    # a hospital model taught pneumothorax and nodules (not masses) reads pneumothorax only
    _, cannot = limits("cxr", [*bundled, "Pneumothorax", "Nodule", "Tuberculosis"])
    assert "pneumothorax" not in cannot and "tuberculosis" not in cannot
    assert "nodule_mass" in cannot  # a nodule label alone does not cover masses
    _, cannot = limits("cxr", [*bundled, "Lung Lesion"])
    assert "nodule_mass" not in cannot
    # a task the catalogue does not know: what is outside its labels, other body parts
    assert limits("no-such-task", ["A", "B"]) == (
        ["A", "B"],
        ["other_findings", "other_body_parts"],
    )


def test_one_words_table_names_every_key_in_both_languages():
    from medai.core.task_registry import all_tasks
    from medai.imaging.scope import CANNOT_DETECT_WORDS, GENERIC, describe, scope_for

    stated = [(*(t.cannot_detect or ()), *t.look_alikes) for t in all_tasks("imaging")]
    keys = {k for entries in (*stated, GENERIC) for k, _ in entries}
    assert {"tuberculosis", "ards", "other_tumours"} <= keys  # the bundled tasks' own
    assert keys <= set(CANNOT_DETECT_WORDS)
    for key, (en, tr) in CANNOT_DETECT_WORDS.items():
        assert en.strip() and tr.strip(), key
    scope = scope_for("cxr", ["Pneumonia", "COVID-19", "No Finding"])
    tr, en = describe(scope, "cxr", "tr"), describe(scope, "cxr", "en")
    assert tr["detects"] == "YZ modelinin aradığı bulgular: pnömoni ve COVID-19."
    assert tr["cannot_detect"].startswith("Tüberküloz, akciğer nodülü veya kitlesi, pnömotoraks")
    assert tr["cannot_detect"].endswith("YZ modelinin değerlendirme kapsamında değildir.")
    assert en["cannot_detect"].startswith("The AI model does not assess tuberculosis, lung nodules")
    assert tr["out_of_scope"] == en["out_of_scope"] == ""  # in scope: nothing to flag


def test_a_film_unlike_the_training_films_is_flagged_with_its_score(flagging, scoped):
    """Flagged, still read (not refused): the findings come with the flag beside them."""
    result = _load(flagging).predict(png(frontal_film(200)))
    assert result.status == "ai_suggestion" and result.findings
    oos = result.scope.out_of_scope
    assert oos.flagged and oos.reason == "unlike_training"
    assert oos.detector == "feature_distance" and oos.score > oos.threshold == 0.0
    calm = _load(scoped).predict(png(frontal_film(200))).scope.out_of_scope
    assert not calm.flagged and calm.reason is None and calm.score == oos.score


def test_a_png_lateral_film_is_not_read_as_a_frontal(scoped, tiny_imaging_dir):
    """No header: the model's view check (fitted here on drawn films) calls it lateral, and the
    film is refused with the reason named; a frontal drawing is read. The model without a view
    check read the lateral (as every model did before)."""
    predictor = _load(scoped)
    for seed in range(300, 306):
        lateral = predictor.predict(png(lateral_film(seed)))
        assert lateral.status == "refused" and lateral.reason_code == "lateral_view", seed
        assert not lateral.findings and "lateral" in lateral.reason
        assert lateral.scope.out_of_scope.reason == "lateral_view"
        assert lateral.scope.view["view"] == "lateral" and lateral.scope.view["source"] == "image"
        frontal = predictor.predict(png(frontal_film(seed)))
        assert frontal.status == "ai_suggestion", seed
        assert frontal.scope.view["view"] == "frontal"
    before = _load(tiny_imaging_dir).predict(png(lateral_film(300)))
    assert before.status == "ai_suggestion"


def _dicom(pixels: np.ndarray, **header) -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality, ds.BodyPartExamined = "DX", "CHEST"
    arr = (np.clip(pixels, 0, 1) * 4095).astype(np.uint16)
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = arr.tobytes()
    for key, value in header.items():
        if key == "ViewCode":
            from pydicom.dataset import Dataset

            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value
            ds.ViewCodeSequence = [item]
        else:
            setattr(ds, key, value)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.mark.parametrize(
    "header, view",
    [
        ({"ViewPosition": "PA"}, "frontal"),
        ({"ViewPosition": "AP"}, "frontal"),
        ({"ViewPosition": "LL"}, "lateral"),
        ({"ViewPosition": "RL"}, "lateral"),
        ({"ViewCode": ("399173006", "SCT", "left lateral")}, "lateral"),
        ({"ViewCode": ("272479007", "SCT", "postero-anterior")}, "frontal"),
        ({"ViewCode": ("R-10214", "SRT", "postero-anterior")}, "frontal"),
        ({"PatientOrientation": ["A", "F"]}, "lateral"),
        ({"PatientOrientation": ["L", "F"]}, "frontal"),
        ({"ViewPosition": "RLO"}, None),  # an oblique decides nothing from the header
        ({}, None),
    ],
)
def test_the_header_states_the_view(header, view):
    from medai.imaging.io import load_image
    from medai.imaging.views import view_of

    check = view_of(load_image(_dicom(frontal_film(1, 64), **header)))
    if view is None:
        assert check.view == "unknown"
    else:
        assert (check.view, check.source) == (view, "header")


def test_the_header_wins_over_the_image_check(scoped):
    """A film whose header says LL is refused whatever it looks like; one whose header says PA
    is read even if it looks like a lateral (the header is the modality's word)."""
    predictor = _load(scoped)
    said_lateral = predictor.predict(_dicom(frontal_film(5, 96), ViewPosition="LL"))
    assert said_lateral.reason_code == "lateral_view"
    assert said_lateral.scope.out_of_scope.detector == "header"
    said_pa = predictor.predict(_dicom(lateral_film(5, 96), ViewPosition="PA"))
    assert said_pa.status == "ai_suggestion" and said_pa.scope.view["source"] == "header"


def test_choosing_the_frontal_film_of_a_study():
    from medai.imaging.views import ViewCheck, preference

    checks = [
        ViewCheck("lateral", "header"),
        ViewCheck("unknown", "image"),
        ViewCheck("frontal", "image", 0.1, 0.5),
        ViewCheck("frontal", "header"),
    ]
    assert [c.view + "/" + c.source for c in sorted(checks, key=preference)] == [
        "frontal/header",
        "frontal/image",
        "unknown/image",
        "lateral/header",
    ]


def test_fit_scope_writes_the_view_check_and_threshold_and_seals_the_card(
    tiny_imaging_dir, tmp_path
):
    """`medai imaging fit-scope` on a manifest with a view column: the out-of-scope threshold
    on the validation split (laterals left out), the view check on every film of a known view
    (cross-validated by patient), both recorded in the card, which still verifies."""
    import shutil

    from PIL import Image

    from medai.core.model_dir import read_card, verify
    from medai.imaging.gate import FeatureGate
    from medai.imaging.scope import OUT_OF_SCOPE_FILE
    from medai.imaging.scope_fit import fit_scope
    from medai.imaging.views import VIEW_CHECK_FILE

    model = tmp_path / "model"
    shutil.copytree(tiny_imaging_dir, model)
    rows = []
    for i in range(120):
        kind = "L" if i % 6 == 0 else "PA"
        pixels = lateral_film(i) if kind == "L" else frontal_film(i)
        Image.fromarray((pixels * 255).astype(np.uint8)).save(tmp_path / f"f{i}.png")
        label = ("No Finding", "COVID-19", "Pneumonia")[i % 3]
        rows.append(f"f{i}.png,{label},{kind},p{i // 2}\n")
    (tmp_path / "manifest.csv").write_text("file,label,view,patient\n" + "".join(rows))
    predictor = _load(model)
    feats = predictor.proba_and_features([frontal_film(900 + i) for i in range(20)])[1]
    FeatureGate.fit(feats[:10], feats[10:], margin=50.0).save(model)
    from medai.core.model_dir import reseal

    reseal(model)
    out = fit_scope(model, tmp_path / "manifest.csv")
    assert (model / OUT_OF_SCOPE_FILE).is_file() and (model / VIEW_CHECK_FILE).is_file()
    assert (model / VIEW_CHECK_FILE).stat().st_size < 25_000_000
    card = read_card(model)
    verify(model, card)  # resealed
    scope = card.params["scope"]
    assert scope["out_of_scope"]["split"] == "validation"
    assert scope["view_check"]["lateral_films"] == 20
    cv = scope["view_check"]["cross_validated"]
    assert cv["laterals"] == 20 and cv["laterals_caught"] >= 18 and cv["frontals_flagged"] <= 2
    assert "fit-scope" in scope["command"] and out["detects"] == ["Pneumonia", "COVID-19"]
    reloaded = _load(model)
    assert reloaded.view_check is not None and reloaded.out_of_scope is not None
    assert reloaded.predict(png(lateral_film(777))).reason_code == "lateral_view"
    json.dumps(out)  # the CLI prints it


def test_the_bundled_chest_model_reads_frontal_films_only():
    """The bundled cxr-default carries its fitted scope (skipped where it is absent)."""
    from medai.core.model_dir import bundled_models_dir, read_card

    directory = bundled_models_dir() / "cxr-default"
    if not (directory / "view_check.npz").is_file():
        pytest.skip("the bundled cxr-default has no view check in this checkout")
    card = read_card(directory)
    cv = card.params["scope"]["view_check"]["cross_validated"]
    assert cv["laterals"] >= 8 and cv["laterals_caught"] == cv["laterals"]
    predictor = _load(directory)
    assert predictor.view_check is not None and predictor.out_of_scope is not None
    assert "tuberculosis" in predictor.scope().cannot_detect


def test_a_series_is_out_of_scope_when_most_of_its_slices_are(flagging, scoped):
    """A series' scope (``series_scope``): its slices' median gate distance against the
    threshold; a refused series is out of scope for its reason."""
    from medai.imaging.io import Refusal
    from medai.imaging.scope import series_scope

    flag, calm = _load(flagging), _load(scoped)
    assert series_scope(flag, [0.4, 0.5, 0.6]).out_of_scope.flagged
    judged = series_scope(calm, [0.4, 0.5, 9.0]).out_of_scope
    assert not judged.flagged and judged.score == 0.5
    refused = series_scope(calm, [], Refusal("wrong_modality", "CT"))
    assert refused.out_of_scope.reason == "wrong_modality" and refused.detects
