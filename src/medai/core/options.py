"""String options (a model family, a backbone, a backend, a precision) are looked up in one table
each: a wrong value fails naming the valid ones, wherever the option is given (CLI, settings,
a model card)."""

from __future__ import annotations

from typing import Any


def lookup(table: dict[str, Any], value: str, what: str) -> Any:
    """One table per string option (model family, backbone, backend): a wrong value fails
    with the list of valid ones."""
    try:
        return table[value]
    except KeyError:
        raise ValueError(
            f"unknown {what} {value!r}; choose one of: {', '.join(sorted(table))}"
        ) from None
