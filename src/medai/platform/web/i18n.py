"""One translation catalogue for the web UI (``messages.json``): every key in every language,
checked by a test; Turkish by default, English by switch (a cookie)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("tr", "en")
DEFAULT = "tr"
COOKIE = "medai_lang"


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, str]]:
    return json.loads((Path(__file__).parent / "messages.json").read_text(encoding="utf-8"))


def messages(lang: str) -> dict[str, str]:
    return catalogue()[lang if lang in LANGUAGES else DEFAULT]


def missing_keys() -> dict[str, list[str]]:
    """Keys some language lacks (the test wants none)."""
    cat = catalogue()
    every = set().union(*(set(m) for m in cat.values()))
    return {lang: sorted(every - set(m)) for lang, m in cat.items() if every - set(m)}
