"""JSON from users with limits: size, nesting depth, and no NaN/Infinity.

Python's ``json`` accepts ``NaN`` and recurses once per nesting level, so a 5,000-deep
``findings`` array raised RecursionError (a 500) and ``"min_confidence": NaN`` slipped through
range checks. The depth is measured by a scan before parsing.
"""

from __future__ import annotations

import json
from typing import Any

from medai.core.errors import MedaiError

MAX_JSON_CHARS = 256 * 1024
MAX_JSON_DEPTH = 32


class JsonInputError(MedaiError, ValueError):
    """JSON that is malformed, too large, too deep or contains NaN/Infinity."""

    status, code = 422, "invalid"


def nesting_depth(text: str) -> int:
    """Deepest ``[``/``{`` nesting outside strings (no recursion, one pass)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_constants(name: str) -> Any:
    raise JsonInputError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise JsonInputError(f"number {text[:20]} is out of range")
    return value


def loads_limited(
    text: str, what: str = "JSON", max_chars: int = MAX_JSON_CHARS, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    if len(text) > max_chars:
        raise JsonInputError(f"{what} is too large ({len(text):,} characters; limit {max_chars:,})")
    depth = nesting_depth(text)
    if depth > max_depth:
        raise JsonInputError(f"{what} is nested too deeply ({depth} levels; limit {max_depth})")
    try:
        return json.loads(text, parse_constant=_no_constants, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise JsonInputError(
            f"{what} is not valid JSON ({exc.msg} at position {exc.pos})"
        ) from None
