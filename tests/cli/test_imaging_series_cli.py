"""``medai imaging predict --series``: a folder of one study's DICOM files read as the platform
reads a study from a modality (every series read to one decision, its key slices named by
file), so an ML engineer can check a model on a study before it serves one. Before, a folder
was a batch of separate images (one line each, ``read`` null), whatever its series."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from helpers.builders import answering_model
from helpers.viewer import mr_series
from medai.cli import app

runner = CliRunner()
GLIOMA = {"Glioma": 0.97, "Meningioma": 0.01, "Pituitary": 0.01, "No_Tumor": 0.01}


@pytest.fixture
def model(tmp_path):
    """A brain MRI model that reads every slice as glioma."""
    return answering_model(tmp_path / "mri", "mri", GLIOMA, {"min_confidence": 0.5})


def _predict(source, model, *options: str):
    """``medai imaging predict SOURCE --model MODEL OPTIONS`` (``--series``: a study)."""
    return runner.invoke(app, ["imaging", "predict", str(source), "--model", str(model), *options])


def _json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_folder_of_two_series_is_one_study_read_with_its_key_slices_named(tmp_path, model):
    from pydicom.uid import generate_uid

    study = generate_uid()
    folder = tmp_path / "study"
    axial = mr_series(folder, 6, study=study, description="AX T1 post", size=64)
    mr_series(folder / "t2", 4, study=study, description="AX T2", size=64)
    for path in (folder / "t2").iterdir():  # one folder, as a PACS export or a CD gives it
        path.rename(folder / f"t2-{path.name}")
    (folder / "t2").rmdir()
    (folder / "DICOMDIR.txt").write_text("an index, not an image")
    result = _predict(folder, model, "--series", "--task", "mri", "--json")
    assert result.exit_code == 0, result.output
    out = _json(result)
    assert out["decision"]["primary"] == "Glioma" and out["model"]["name"]
    read = out["read"]
    assert len(read["series"]) == 2 and all(a["read"] for a in read["series"])
    assert read["key_instances"] and len(out["key_files"]) == len(read["key_instances"])
    # the key slices come from the series that decided, named by their files
    axial_files = {path.name for path, _sop, _z in axial}
    decided = next(a for a in read["series"] if a["decides"])
    assert decided["description"] == "AX T1 post" and set(out["key_files"]) <= axial_files
    assert out["skipped"] == [
        {
            "file": "DICOMDIR.txt",
            "reason": "not a DICOM object: a series is read from DICOM instances",
        }
    ]
    human = _predict(folder, model, "--series", "--task", "mri")
    assert human.exit_code == 0 and "key slices" in human.output and "AX T2" in human.output


def test_a_series_read_names_what_is_wrong_with_its_input(tmp_path, model):
    missing = _predict(tmp_path / "nowhere", model, "--series", "--task", "mri")
    assert missing.exit_code == 2 and "no such file or folder" in missing.output
    (tmp_path / "pngs").mkdir()
    (tmp_path / "pngs" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    none = _predict(tmp_path / "pngs", model, "--series", "--task", "mri", "--json")
    assert none.exit_code == 2
    assert _json(none)["code"] == "unusable_image"


def test_a_model_given_without_a_task_is_read_as_its_own_task(tmp_path, model):
    """``predict --model MRI_DIR slice.dcm`` answered "… is a mri model, not cxr" (the
    registry's default task) instead of reading the slice with the model it was given."""
    from pydicom.uid import generate_uid

    (path, _sop, _z), *_ = mr_series(tmp_path / "s", 1, study=generate_uid(), size=64)
    result = _predict(path, model, "--json")
    assert result.exit_code == 0, result.output
    assert _json(result)["task"] == "mri"
    asked = _predict(path, model, "--task", "cxr")
    assert asked.exit_code != 0 and "is a mri model, not cxr" in asked.output


def test_a_folder_over_the_limit_is_refused_by_its_count_before_a_file_is_read(
    tmp_path, monkeypatch, model
):
    from medai.services import study_read

    monkeypatch.setattr(study_read, "MAX_FILES", 3)
    (tmp_path / "many" / "a-subfolder").mkdir(parents=True)  # not a file: not counted
    for i in range(5):
        (tmp_path / "many" / f"{i}.dcm").write_bytes(b"not read")
    result = _predict(tmp_path / "many", model, "--series")
    assert result.exit_code != 0 and "at most 3" in result.output


def test_files_sharing_a_sop_uid_are_refused_unless_they_are_one_file(tmp_path, model):
    """Every slice of an export carried one SOP Instance UID: the reader kept the last file
    for all of them and read "normal" from one slice of a glioma series. Different files under
    one UID are refused by name; the same file twice (a copy, a link) is read once."""
    import pydicom
    from pydicom.uid import generate_uid

    slices = mr_series(tmp_path / "one-uid", 4, study=generate_uid(), size=64)
    for path, _sop, _z in slices:
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
        ds.save_as(path, enforce_file_format=True)
    clash = _predict(tmp_path / "one-uid", model, "--series")
    assert clash.exit_code == 2 and "share a SOP Instance UID" in clash.output
    study = tmp_path / "copied"
    slices = mr_series(study, 3, study=generate_uid(), size=64)
    (study / "again.dcm").write_bytes(slices[0][0].read_bytes())
    out = tmp_path / "result.json"
    copied = _predict(study, model, "--series", "--out", str(out))
    assert copied.exit_code == 0, copied.output
    written = json.loads(out.read_text())
    assert written["read"]["instances_read"] == 3
    assert written["skipped"] == [{"file": "again.dcm", "reason": f"a copy of {slices[0][0].name}"}]


def test_a_chest_study_folder_is_decided_from_its_frontal_film(tmp_path):
    """A chest model's study folder (a lateral and a PA film) was read as a "series" of one
    slice; it is read as the platform reads a chest study: the PA film, by its header."""
    from helpers.builders import make_imaging_model_dir
    from helpers.dicom import make_dicom

    model = make_imaging_model_dir(tmp_path / "cxr")
    (tmp_path / "films").mkdir()
    make_dicom(tmp_path / "films" / "a-lat.dcm", view="LATERAL", study="1.2.3.77", seed=2)
    make_dicom(tmp_path / "films" / "b-pa.dcm", view="PA", study="1.2.3.77", seed=1)
    result = _predict(tmp_path / "films", model, "--series", "--json")
    assert result.exit_code == 0, result.output
    out = _json(result)
    assert out["key_files"] == ["b-pa.dcm"] and out["read"]["rule"] == "single_image"
    assert out["read"]["series_choice"]["why"] == "the PA film"
