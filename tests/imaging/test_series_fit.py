"""Choosing a series rule on validation series built from single slices
(``imaging.series_fit``), on slice probabilities made here (no shared data)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from medai.core.task_registry import get as get_task
from medai.imaging import series_fit as F
from medai.imaging.decision import OperatingPolicy
from medai.imaging.series_rule import SeriesRule

LABELS = ["Glioma", "Meningioma", "Pituitary", "No_Tumor"]


def slice_probabilities(per_class: int = 20, stray: float = 0.25, seed: int = 0):
    """Slices read right with 0.9, except a share of normal slices that the 'model' reads as
    a random tumour class: what makes one suspicious slice a poor judge of a series."""
    rng = np.random.default_rng(seed)
    probs, y = [], []
    for c in range(4):
        for _ in range(per_class):
            row = np.full(4, 0.1 / 3)
            wrong = c == 3 and rng.random() < stray
            row[int(rng.integers(0, 3)) if wrong else c] = 0.9
            probs.append(row)
            y.append(c)
    return np.array(probs), np.array(y)


def test_validation_series_are_built_as_documented():
    _, y = slice_probabilities()
    series = F.build_series(y, LABELS, "No_Tumor", lengths=(20, 40), per_cell=3, seed=1)
    kinds = [s["kind"] for s in series]
    assert kinds.count("one_class") == 2 * (3 * 3 + 3 * 3)  # normal 3×, each tumour 1×
    assert kinds.count("lesion_in_normal") == kinds.count("tumour_with_normal") == 2 * 3 * 3
    for s in series:
        assert len(s["slices"]) == s["length"]
        classes = y[s["slices"]]
        if s["kind"] == "lesion_in_normal":
            tumour = np.flatnonzero(classes == s["truth"])
            assert 2 <= len(tumour) <= max(3, s["length"] // 4)
            assert np.all(np.diff(tumour) == 1)  # one contiguous block
        if s["kind"] == "tumour_with_normal":
            normal = np.flatnonzero(classes == 3)
            assert 1 <= len(normal) <= 3
            assert set(normal) <= set(range(3)) | set(range(s["length"] - 3, s["length"]))
        if s["kind"] == "stray_in_normal":
            assert s["truth"] == 3 and 1 <= int((classes != 3).sum()) <= 2
    again = F.build_series(y, LABELS, "No_Tumor", lengths=(20, 40), per_cell=3, seed=1)
    assert again == series  # a fixed construction per seed


def test_a_stray_prone_model_gets_a_neighbouring_slices_rule():
    probs, y = slice_probabilities()
    task = get_task("mri")
    policy = OperatingPolicy(thresholds={lab: 0.5 for lab in LABELS}, min_confidence=0.5)
    series = F.build_series(y, LABELS, "No_Tumor", per_cell=6, seed=0)
    table = F.evaluate_rules(probs, series, task, LABELS, policy, n_boot=20)
    assert table["max"]["specificity"] < 0.2  # one stray slice in 20 calls a tumour
    assert table["mean"]["by_kind"]["lesion_in_normal"] < 0.2  # a small lesion is averaged away
    chosen = F.choose(table)
    assert chosen.name == "run" and chosen.k >= 2
    assert table[chosen.tag]["macro_f1"] == max(row["macro_f1"] for row in table.values())


def test_ties_go_to_the_simplest_rule():
    same = {"accuracy": 0.9, "macro_f1": 0.9}
    table = {"max": same, "top_k:2": same, "mean": same, "run:4": same, "run:2": same}
    assert F.choose(table) == SeriesRule(name="run", k=2)
    assert F.choose({"max": same, "mean": {**same, "macro_f1": 0.8999}}) == SeriesRule(name="mean")


def test_fitting_records_the_rule_and_reseals(tiny_mri_dir, tmp_path, monkeypatch):
    from medai.core import model_dir
    from medai.imaging import series

    d = tmp_path / "mri"
    shutil.copytree(tiny_mri_dir, d)
    monkeypatch.setattr(F, "split_probabilities", lambda *a, **k: slice_probabilities())
    report = F.fit_series_rule(d, tmp_path / "manifest.csv", per_cell=4)
    recorded = json.loads((d / "operating_points.json").read_text())["series_rule"]
    assert recorded["tag"] == report["tag"] and recorded["limit"] == F.LIMIT
    predictor = model_dir.load(d)  # resealed: the hashed file changed with the card
    assert series.rule_for(predictor).tag == report["tag"]
    assert model_dir.read_card(d).params["series_rule"]["tag"] == report["tag"]


def test_the_command_records_the_rule_or_only_prints_it(tiny_mri_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from medai.cli import app
    from medai.imaging.operating import load_series_rule

    d = tmp_path / "mri"
    shutil.copytree(tiny_mri_dir, d)
    monkeypatch.setattr(F, "split_probabilities", lambda *a, **k: slice_probabilities())
    args = ["imaging", "fit-series-rule", "--task", "mri", "--data", str(tmp_path / "m.csv")]
    args += ["--model", str(d), "--per-cell", "4", "--json"]
    dry = CliRunner().invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert load_series_rule(d) is None
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert (
        load_series_rule(d)["tag"] == out["tag"] == json.loads(dry.stdout.splitlines()[-1])["tag"]
    )


def test_a_multilabel_task_is_not_fitted(tiny_imaging_dir, tmp_path):
    with pytest.raises(ValueError, match="one-class"):
        F.fit_series_rule(tiny_imaging_dir, tmp_path / "manifest.csv", write=False)
