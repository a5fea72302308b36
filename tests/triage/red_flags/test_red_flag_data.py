"""The red-flag sets live in data/red_flags/{development,blind}/ with a datasheet each
(issue 27): every set has one, it agrees with its folder and its files (a hash), and training
refuses a blind set — by folder and by datasheet. Uses small files of its own for the refusals;
reads the bundled datasheets (not the texts) for the consistency check."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from helpers.paths import ROOT

DATA = ROOT / "data" / "red_flags"


def test_every_bundled_set_has_a_datasheet_that_agrees_with_its_folder_and_files():
    seen = 0
    for role in ("development", "blind"):
        folder = DATA / role
        sets = sorted(p.name[: -len("_urgent.jsonl")] for p in folder.glob("*_urgent.jsonl"))
        assert sets, role
        for name in sets:
            sheet = json.loads((folder / f"{name}.datasheet.json").read_text(encoding="utf-8"))
            assert sheet["set"] == name and sheet["role"] == role
            assert sheet["trained_on"] is (role == "development")
            assert sheet["history"][-1]["role"] == role  # its last move put it here
            assert {"written_by", "saw", "language", "ids", "rows"} <= sheet.keys()
            urgent = (folder / f"{name}_urgent.jsonl").read_bytes()
            ordinary = (folder / f"{name}_ordinary.jsonl").read_bytes()
            assert (
                sheet["content_sha256"] == hashlib.sha256(urgent + b"\0" + ordinary).hexdigest()
            ), f"{name}: edited without its datasheet"
            assert sheet["rows"] == {
                "urgent": urgent.count(b"\n"),
                "ordinary": ordinary.count(b"\n"),
            }
            seen += 1
    assert seen >= 20


def _set(folder: Path, name: str, role: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}_urgent.jsonl").write_text(
        json.dumps(
            {
                "text": "göğsüm sıkışıyor terliyorum",
                "urgent": True,
                "presentation": "acute_coronary",
            },
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    (folder / f"{name}_ordinary.jsonl").write_text(
        json.dumps({"text": "dizim ağrıyor", "urgent": False}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    if role:
        (folder / f"{name}.datasheet.json").write_text(json.dumps({"set": name, "role": role}))
    return folder


def test_training_refuses_a_blind_set_by_folder_and_by_datasheet(tmp_path):
    from medai.triage.red_flags import learn

    blind = _set(tmp_path / "blind", "t1")
    with pytest.raises(learn.TrainingDataError, match="blind"):
        learn.read_sets(blind)
    assert set(learn.read_sets(blind, scoring=True)) == {"t1"}  # a benchmark scores it
    mixed = _set(tmp_path / "mine", "a1", "development")
    _set(mixed, "b1", "blind")
    with pytest.raises(learn.TrainingDataError, match="'b1' is blind"):
        learn.read_sets(mixed)
    assert set(learn.read_sets(mixed, prefix="a")) == {"a1"}
    (mixed / "a1.datasheet.json").write_text(json.dumps({"set": "other", "role": "x"}))
    with pytest.raises(learn.TrainingDataError, match="must name its set"):
        learn.read_sets(mixed, prefix="a")


def test_the_cli_refuses_to_train_on_the_bundled_blind_sets(tmp_path):
    from typer.testing import CliRunner

    from medai.cli import app

    r = CliRunner().invoke(
        app,
        [
            "triage",
            "train-red-flags",
            "--data",
            str(DATA / "blind"),
            "--out",
            str(tmp_path / "clf"),
            "--json",
        ],
    )
    assert r.exit_code != 0
    assert "blind" in r.stdout
    assert not (tmp_path / "clf").exists()
