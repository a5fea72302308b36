"""Report drafts for every face: one drafter per process (retriever, LLM backend and imaging
models built once), typed ``DraftResult``s."""

from __future__ import annotations

import threading
from pathlib import Path

from medai.reporting.draft import MAX_QUESTION_CHARS, FindingsInputError
from medai.reporting.results import DraftResult
from medai.reporting.service import Drafter

__all__ = ["MAX_QUESTION_CHARS", "DraftResult", "Drafter", "FindingsInputError",
           "chat_answer", "shared_drafter"]

_DRAFTERS: dict[str | None, Drafter] = {}
_LOCK = threading.Lock()


def shared_drafter(knowledge_dir: str | Path | None = None) -> Drafter:
    """The process-wide drafter for a knowledge base (built on first use)."""
    key = None if knowledge_dir is None else str(knowledge_dir)
    with _LOCK:
        if key not in _DRAFTERS:
            _DRAFTERS[key] = Drafter(kb=None if key is None else Path(key))
        return _DRAFTERS[key]


def chat_answer(question: str, findings: list, impression: str | None, lang: str,
                history: list[tuple[str, str]], knowledge_dir: str | Path | None = None
                ) -> tuple[str, str]:
    """An answer about a study's image from the configured LLM backend (built once per
    process), or the findings with the template explanation when none is configured."""
    from medai.reporting import chat

    drafter = shared_drafter(knowledge_dir)
    try:
        backend = drafter.llm()
    except Exception:  # misconfigured backend: answer from the findings
        backend = None
    return chat.answer(backend, question, findings, impression, lang, history)
