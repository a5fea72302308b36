"""A model beside its simplest baselines, measured in the same run on the same split: the
table every model card and benchmark carries.

A baseline is what a model must beat to earn its place (one fixed caption, TF-IDF + linear SVM,
frozen features + logistic regression); a *ceiling* (an oracle) is shown for scale and never has
to be beaten. A bundled default whose card says it does not beat its baselines is refused by the
test suite: such a model is not shipped as the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CEILING_PREFIX = "ceiling:"


def compare(model: str, systems: Mapping[str, Mapping[str, Any]], metric: str, on: str,
            also: tuple[str, ...] = (), lower_is_better: bool = False) -> dict[str, Any]:
    """The card's ``baselines`` entry. ``systems`` holds the model (under ``model``) and each
    baseline or ceiling by name, each a dict of metrics; ``metric`` decides, ``also`` are shown."""
    if model not in systems:
        raise ValueError(f"{model!r} is not among the compared systems {sorted(systems)}")
    shown = (metric, *also)
    table = {name: {m: _num(row.get(m)) for m in shown} for name, row in systems.items()}
    mine = table[model][metric]
    beats: dict[str, bool] = {}
    for name, row in table.items():
        if name == model or name.startswith(CEILING_PREFIX):
            continue
        other = row[metric]
        if mine is None or other is None:
            beats[name] = False
        else:
            beats[name] = mine < other if lower_is_better else mine > other
    return {"metric": metric, "on": on, "model": model, "table": table, "beats": beats,
            "beats_baselines": bool(beats) and all(beats.values())}


def verdict(entry: Mapping[str, Any]) -> str:
    """One line for a card or a benchmark printout."""
    lost = [name for name, ok in entry.get("beats", {}).items() if not ok]
    metric = entry.get("metric", "?")
    if not entry.get("beats", {}):
        return f"no baseline measured ({metric})"
    if not lost:
        return f"beats every baseline on {metric} ({entry.get('on', '')})"
    return f"does NOT beat {', '.join(lost)} on {metric} ({entry.get('on', '')})"


def _num(value: Any) -> float | None:
    try:
        return None if value is None else round(float(value), 4)
    except (TypeError, ValueError):
        return None


def record_in_card(directory, entry: Mapping[str, Any]) -> None:
    """Write a benchmark's comparison into a model directory's card. The card is not part of
    the directory's content hash, so the model stays sealed; a directory whose files no longer
    match its card is refused rather than re-sealed here."""
    from pathlib import Path

    from medai.core.registry import ModelLoadError, read_card, save_card
    from medai.core.results import directory_hash

    directory = Path(directory)
    card = read_card(directory)
    if card.content_hash and card.content_hash != directory_hash(directory):
        raise ModelLoadError(f"{directory}: files differ from the card's content hash; "
                             "reseal it before recording baselines")
    card.baselines = dict(entry)
    save_card(directory, card)
