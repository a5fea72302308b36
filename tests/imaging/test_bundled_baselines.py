"""Every bundled default earns its place: its card carries the comparison with its simplest
baselines, measured by a benchmark in one run on one split, and it beats them. A default that
does not is not shipped as the default (this test fails). Every other bundled model carries the
comparison too, and one that does not beat its baselines is not named a default."""

import pytest

from medai.core.baselines import verdict
from medai.core.model_dir import bundled_models_dir, read_card

DEFAULTS = {
    "cxr-default": "macro_auroc",
    "mri-default": "macro_auroc",
    "triage-default": "macro_f1",
}
# bundled, not defaults: a hospital names them (--model, MEDAI_<TASK>_MODEL)
OTHERS = {"caption-retrieval": "rouge_l", "triage-extended": "macro_f1"}


@pytest.mark.parametrize("name", sorted(OTHERS))
def test_every_other_bundled_model_says_how_it_compares_and_is_no_default(name):
    from medai.core import model_dir

    card = read_card(bundled_models_dir() / name)
    entry = card.baselines
    assert entry and entry["metric"] == OTHERS[name] and entry["beats"], name
    assert verdict(entry)
    assert not name.endswith("-default")
    if card.task == "caption":  # the captioner ties one fixed sentence: no caption default
        with pytest.raises(
            model_dir.ModelLoadError, match="bundled, not a default: caption-retrieval"
        ):
            model_dir.resolve_model(None, "caption")


def test_every_bundled_model_directory_is_listed_here():
    names = {d.name for d in bundled_models_dir().iterdir() if (d / "model_card.json").is_file()}
    assert names == set(DEFAULTS) | set(OTHERS)


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_bundled_default_beats_its_baselines_on_its_card(name):
    card = read_card(bundled_models_dir() / name)
    entry = card.baselines
    assert entry, f"{name}: no baselines in its card (run its benchmark with the card update)"
    assert entry["metric"] == DEFAULTS[name]
    assert entry["beats"], f"{name}: no baseline was measured"
    assert all(key.startswith("baseline:") for key in entry["beats"])
    outcomes = entry.get("outcomes") or {
        n: "beats" if ok else "loses" for n, ok in entry["beats"].items()
    }
    # never shipped as the default while worse than a baseline
    assert "loses" not in outcomes.values() and "unmeasured" not in outcomes.values(), (
        f"{name}: {verdict(entry)}"
    )
    if not entry["beats_baselines"]:
        # a tie (the paired CI spans 0) is said on the card, with why it is still the default
        assert set(outcomes.values()) <= {"beats", "ties"}
        assert entry.get("kept_because"), f"{name}: ties a baseline without saying why it stays"
        assert verdict(entry).startswith("ties")
