"""Every bundled default earns its place: its card carries the comparison with its simplest
baselines, measured by a benchmark in one run on one split, and it beats them. A default that
does not is not shipped as the default (this test fails)."""

import pytest

from medai.core.baselines import verdict
from medai.core.registry import bundled_models_dir, read_card

DEFAULTS = {"caption-default": "rouge_l", "cxr-default": "macro_auroc",
            "mri-default": "macro_auroc", "triage-default": "macro_f1"}


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_bundled_default_beats_its_baselines_on_its_card(name):
    card = read_card(bundled_models_dir() / name)
    entry = card.baselines
    assert entry, f"{name}: no baselines in its card (run its benchmark with the card update)"
    assert entry["metric"] == DEFAULTS[name]
    assert entry["beats"], f"{name}: no baseline was measured"
    assert all(key.startswith("baseline:") for key in entry["beats"])
    outcomes = entry.get("outcomes") or {n: "beats" if ok else "loses"
                                         for n, ok in entry["beats"].items()}
    # never shipped as the default while worse than a baseline
    assert "loses" not in outcomes.values() and "unmeasured" not in outcomes.values(), \
        f"{name}: {verdict(entry)}"
    if not entry["beats_baselines"]:
        # a tie (the paired CI spans 0) is said on the card, with why it is still the default
        assert set(outcomes.values()) <= {"beats", "ties"}
        assert entry.get("kept_because"), f"{name}: ties a baseline without saying why it stays"
        assert verdict(entry).startswith("ties")
