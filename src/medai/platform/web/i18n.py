"""One translation catalogue for the web UI (``messages.json``): every key in every language,
checked by a test; Turkish by default, English by switch (a cookie).

Names that belong to a registry travel from it, not from the catalogue: each task's name and
its labels' names (``core.task_registry``) reach the page as one JSON block (``display_names``), like
the catalogue itself. Roles, study statuses, audit actions and outcomes and the reasons an
image gets no findings are catalogue keys (``role_*``, ``status_*``, ``audit_*``,
``outcome_*``, ``reason_*``); ``missing_names`` lists whatever lacks a language."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from medai.core.task_kinds import kind_of
from medai.core.task_registry import all_tasks
from medai.services.imaging import scope_words

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


def display_names(lang: str) -> dict[str, Any]:
    """What the page needs to name registry things in ``lang``: each task's name, its DICOM
    modalities (refusal sentences name them), its urgent labels (the study page says why a
    study is urgent) and its labels' names. Red flags name themselves
    in every result (``name_tr``/``name_en``): the page gets only their tasks' names. An
    imaging task also gets the words of its results' ``scope`` (what a model cannot detect:
    the one words table of ``imaging.scope``, through services)."""

    words = scope_words(lang)
    return {
        t.name: {
            "name": t.display_name(lang),
            "kind": t.kind,
            # a study task (its kind reads images): the upload form and re-analysis offer it
            "reads_images": kind_of(t.kind).reads_images,
            "modalities": "/".join(t.dicom_modalities),
            "urgent": list(t.urgent),  # a present one makes a study urgent: said why
            # the label whose name is a negative ("Tümör yok"): its states are not var/yok
            "normal": getattr(t, "normal", None),
            "labels": {lab: t.label_name(lab, lang) for lab in t.labels}
            if kind_of(t.kind).names_findings
            else {},
            **({"scope_words": words} if kind_of(t.kind).reads_images else {}),
        }
        for t in all_tasks()
    }


def missing_names(groups: dict[str, Iterable[str]]) -> list[str]:
    """Registry names and catalogue keys some language lacks: every registered task and label,
    and ``prefix + value`` for each group (e.g. ``{"role_": ROLES}``). The test wants none."""

    out = [gap for t in all_tasks() for gap in t.missing_names()]
    cat = catalogue()
    for prefix, values in groups.items():
        for value in values:
            out += [
                f"{lang}: {prefix}{value}"
                for lang in LANGUAGES
                if not cat[lang].get(prefix + value)
            ]
    return out
