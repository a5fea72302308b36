"""A model beside its simplest baselines, measured in the same run on the same split: the
table every model card and benchmark carries.

A baseline is what a model must beat to earn its place (one fixed caption, TF-IDF + linear SVM,
frozen features + logistic regression); a *ceiling* (an oracle) is shown for scale and never has
to be beaten. A bundled default whose card says it does not beat its baselines is refused by the
test suite: such a model is not shipped as the default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

CEILING_PREFIX = "ceiling:"


def compare(
    model: str,
    systems: Mapping[str, Mapping[str, Any]],
    metric: str,
    on: str,
    also: tuple[str, ...] = (),
    lower_is_better: bool = False,
    paired: Mapping[str, Any] | None = None,
    kept_because: str | None = None,
) -> dict[str, Any]:
    """The card's ``baselines`` entry. ``systems`` holds the model (under ``model``) and each
    baseline or ceiling by name, each a dict of metrics; ``metric`` decides, ``also`` are shown.

    ``paired`` (baseline name → 95 % CI ``[lo, hi]`` of the model-minus-baseline difference,
    oriented so that positive favours the model) turns each comparison into *beats* (the CI
    above 0), *ties* (the CI spans 0) or *loses* (below 0); without it the point estimates
    decide. A model that only ties a baseline says so, and ``kept_because`` says why it is
    still the default (the test suite requires the reason)."""
    if model not in systems:
        raise ValueError(f"{model!r} is not among the compared systems {sorted(systems)}")
    shown = (metric, *also)
    table = {name: {m: _num(row.get(m)) for m in shown} for name, row in systems.items()}
    mine = table[model][metric]
    beats: dict[str, bool] = {}
    outcomes: dict[str, str] = {}
    for name, row in table.items():
        if name == model or name.startswith(CEILING_PREFIX):
            continue
        other = row[metric]
        ci = (paired or {}).get(name)
        if mine is None or other is None:
            outcomes[name] = "unmeasured"
        elif ci is not None and None not in (_num(ci[0]), _num(ci[1])):
            lo, hi = float(ci[0]), float(ci[1])
            outcomes[name] = "beats" if lo > 0 else "loses" if hi < 0 else "ties"
        else:
            better = mine < other if lower_is_better else mine > other
            outcomes[name] = "beats" if better else "loses"
        beats[name] = outcomes[name] == "beats"
    entry = {
        "metric": metric,
        "on": on,
        "model": model,
        "table": table,
        "beats": beats,
        "outcomes": outcomes,
        "beats_baselines": bool(beats) and all(beats.values()),
    }
    if paired:
        entry["paired_ci95"] = {k: [_num(v[0]), _num(v[1])] for k, v in paired.items()}
    if kept_because:
        entry["kept_because"] = kept_because
    return entry


def verdict(entry: Mapping[str, Any]) -> str:
    """One line for a card or a benchmark printout."""
    metric, on = entry.get("metric", "?"), entry.get("on", "")
    if not entry.get("beats", {}):
        return f"no baseline measured ({metric})"
    outcomes = entry.get("outcomes") or {
        n: "beats" if ok else "loses" for n, ok in entry["beats"].items()
    }
    lost = [n for n, o in outcomes.items() if o in ("loses", "unmeasured")]
    tied = [n for n, o in outcomes.items() if o == "ties"]
    if lost:
        return f"does NOT beat {', '.join(lost)} on {metric} ({on})"
    if tied:
        return (
            f"ties {', '.join(tied)} on {metric}: the 95 % CI of the difference includes 0 ({on})"
        )
    return f"beats every baseline on {metric} ({on})"


def _num(value: Any) -> float | None:
    """A rounded finite number, else None (NaN would make the card invalid JSON)."""
    try:
        number = None if value is None else float(value)
    except (TypeError, ValueError):
        return None
    return round(number, 4) if number is not None and math.isfinite(number) else None
