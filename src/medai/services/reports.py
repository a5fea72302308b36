"""Report drafts for every face: one drafter per process (retriever, LLM backend and imaging
models built once), typed ``DraftResult``s."""

from __future__ import annotations

import threading
from pathlib import Path

from medai.reporting import chat
from medai.reporting.comparison import SIZES_COMPARED, show_date
from medai.reporting.draft import MAX_QUESTION_CHARS, FindingsInputError, imaging_task
from medai.reporting.drafter import Drafter
from medai.reporting.findings import denied_labels as denied
from medai.reporting.findings import stated_labels as stated
from medai.reporting.findings import states_normal as normal
from medai.reporting.llm import LLMConfig, LLMError
from medai.reporting.report_templates import BUILT_IN as BUILT_IN_TEMPLATES
from medai.reporting.report_templates import FOLLOW_UP, SLOT, Template
from medai.reporting.report_templates import NORMAL as TEMPLATE_NORMAL
from medai.reporting.report_templates import check as check_template
from medai.reporting.report_templates import render as render_template
from medai.reporting.report_templates import result_of as template_result
from medai.reporting.results import DraftResult
from medai.reporting.series_words import series_sentences, small_lesion_sentence
from medai.reporting.templates import with_question
from medai.settings import LlmSettings, get_settings

__all__ = [
    "BUILT_IN_TEMPLATES",
    "FOLLOW_UP",
    "MAX_QUESTION_CHARS",
    "SIZES_COMPARED",
    "SLOT",
    "TEMPLATE_NORMAL",
    "DraftResult",
    "Drafter",
    "FindingsInputError",
    "Template",
    "chat_answer",
    "check_template",
    "denied_labels",
    "llm_config",
    "new_drafter",
    "render_template",
    "shared_drafter",
    "show_date",
    "stated_labels",
    "states_normal",
    "template_result",
    "with_question",
]

_DRAFTERS: dict[str | None, Drafter] = {}
_LOCK = threading.Lock()


def llm_config(llm: LlmSettings | None = None) -> LLMConfig:
    """The LLM backend the settings configure (``MEDAI_LLM_*``, ``MEDAI_GEMINI_API_KEY``): the
    ``llm`` group given, else this process's."""
    s = llm or get_settings().llm
    return LLMConfig(
        backend=s.llm_backend,
        url=s.llm_url,
        model=s.llm_model,
        api_key=s.llm_api_key,
        gemini_api_key=s.gemini_api_key,
        gguf_path=s.llm_gguf,
        timeout_s=s.llm_timeout_s,
    )


def new_drafter(kb: str | Path | None = None, **options) -> Drafter:
    """A drafter with what the settings configure: the knowledge base ``kb`` or
    ``MEDAI_KNOWLEDGE_DIR``, the LLM backend (``llm``: another backend's name) and
    ``MEDAI_MODELS_DIR`` (a BLIP-2 captioner's base); ``options`` go to ``Drafter``."""
    settings = get_settings()
    return Drafter(
        kb=Path(kb) if kb is not None else settings.llm.knowledge_dir,
        llm_config=llm_config(settings.llm),
        models_dir=settings.storage.models_dir,
        models=settings.models.models,
        **options,
    )


def shared_drafter(knowledge_dir: str | Path | None = None) -> Drafter:
    """The process-wide drafter for a knowledge base (default: ``MEDAI_KNOWLEDGE_DIR``; built
    on first use)."""
    key = None if knowledge_dir is None else str(knowledge_dir)
    with _LOCK:
        if key not in _DRAFTERS:
            _DRAFTERS[key] = new_drafter(key)
        return _DRAFTERS[key]


def chat_answer(
    question: str,
    findings: list,
    impression: str | None,
    lang: str,
    history: list[tuple[str, str]],
    knowledge_dir: str | Path | None = None,
    *,
    signed: bool = False,
    task: str | None = None,
    decision: dict | None = None,
    signed_labels: bool = False,
):
    """A ``reporting.chat.ChatAnswer`` about a study's image: the configured LLM backend's
    answer grounded in the findings and the passages retrieved for the question, or, without
    one, the findings and those passages themselves, cited (see ``reporting.chat``).
    ``findings``: each label's row with its one ``state`` (``finding_states``); ``decision``:
    the AI decision's summary; ``signed_labels``: the signer's labels rule; no ``task``: the
    registry's default imaging task."""

    drafter = shared_drafter(knowledge_dir)
    facts = chat.StudyFacts(
        findings=list(findings or []),
        impression=impression,
        signed=signed,
        task=imaging_task(task),
        decision=decision,
        signed_labels=signed_labels,
    )
    try:
        retriever = drafter.retriever
    except (OSError, ValueError):  # no readable knowledge base: findings only, said so
        retriever = None
    try:
        backend = drafter.llm()
    except (LLMError, OSError, ValueError, RuntimeError) as exc:  # configured, unusable: say why
        hits = chat.retrieve(retriever, question, facts, lang)
        lead = chat.WORDS[lang if lang in chat.WORDS else "en"]["model_unused"].format(why=exc)
        out = chat.retrieval_answer(hits, facts, lang, lead=lead)
        out.warnings.append(f"LLM backend unavailable: {exc}")
        return out
    return chat.answer(backend, retriever, question, facts, lang, history)


def stated_labels(text: str) -> set[str]:
    """The imaging labels a report text states as present (the findings extractor of the
    draft safety check, English and Turkish): the default labels of a signature."""

    return stated(text)


def denied_labels(text: str) -> set[str]:
    """The imaging labels a report text states as absent ("Pnömotoraks izlenmedi", "No
    effusion"), either language; a hedged or unnamed label is in neither this nor
    ``stated_labels``."""

    return denied(text)


def states_normal(text: str) -> bool:
    """Does a report text say the study is normal (either language)?"""

    return normal(text)


def read_sentences(read: dict | None, task: str, lang: str = "en") -> list[str]:
    """What a series reading found beyond its decision, in the draft's words
    (``reporting.series_words``): a small lesion's slices and why the AI did not decide, and
    every series of the study, read or named with why not."""
    if not isinstance(read, dict):
        return []
    out = []
    if read.get("undecided_slices"):
        out.append(small_lesion_sentence(read["undecided_slices"], task, lang))
    return out + series_sentences(read.get("series") or [], lang)
