"""A probability as people read it, in one place for every Python output (the PDF, the image
chat, the drafts): one decimal, Turkish "%99,7", English "99.7%", and never 100 % or 0 %.

A model's probability is never a certainty: a value that one decimal would round to 100 % reads
">%99,9" / ">99.9%", one that would round to 0 % reads "<%0,1" / "<0.1%". The web UI's
``medai.pct`` (``static/app.js``) applies the same rule to the same outputs.
"""

from __future__ import annotations

import math
from typing import Any

EMPTY = "—"


def _plain(value: float, lang: str) -> str:
    text = f"{value:.1f}"
    return f"%{text.replace('.', ',')}" if lang == "tr" else f"{text}%"


def probability(p: Any, lang: str) -> str:
    """``p`` (0–1) as a percentage in ``lang`` ("tr" or "en"); "—" for no value."""
    if p is None or isinstance(p, bool):
        return EMPTY
    try:
        value = float(p) * 100
    except (TypeError, ValueError):
        return EMPTY
    if math.isnan(value):
        return EMPTY
    shown = f"{value:.1f}"
    if value >= 100 or shown == "100.0":
        return ">" + _plain(99.9, lang)
    if value <= 0 or shown in ("0.0", "-0.0"):
        return "<" + _plain(0.1, lang)
    return _plain(value, lang)
