"""A study's clinical question, whichever way it came in: its red flags, which rank the study
(``reading_order``), read by triage's sealed red-flag engine.

The upload form's question is read once per upload. A modality's question (copied from the
order into every instance's header: ``dicom.identity.QUESTION``) comes with each of a series'
instances, so its reading is kept per process for the same text and the same engine
(``flags_of``): a 200-slice series asks the engine once.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any

from medai.platform.context import Platform
from medai.platform.worklist import reading_order
from medai.services import triage as triage_service
from medai.services.model_handles import ModelUnavailable

CACHED = 256  # questions whose reading is kept (a few hundred bytes each)
# question -> (the engine that read it, weakly: a promoted engine is not kept alive; its flags)
_SEEN: OrderedDict[str, tuple[weakref.ref, tuple[dict[str, Any], ...]]] = OrderedDict()
_LOCK = threading.Lock()


def question_flags(p: Platform, question: str | None) -> list[dict[str, Any]]:
    """The urgency reasons of the clinical question's red flags (triage's rules, each named:
    ``reading_order.question_flags``); none when it raises none or triage is not served."""
    if not question:
        return []
    try:
        flags = triage_service.red_flags(p.models.red_flag_reader(), question)
    except ModelUnavailable:
        return []
    return reading_order.question_flags(flags) if flags else []


def flags_of(p: Platform, question: str | None) -> tuple[dict[str, Any], ...]:
    """``question_flags``, kept for the same question and the same red-flag engine object (a
    new engine, after a promotion, reads the question again)."""
    if not question:
        return ()
    try:
        engine = p.models.red_flag_reader()
    except ModelUnavailable:
        return ()
    with _LOCK:
        hit = _SEEN.get(question)
        if hit is not None and hit[0]() is engine:
            _SEEN.move_to_end(question)
            return hit[1]
    got = tuple(question_flags(p, question))
    with _LOCK:
        _SEEN[question] = (weakref.ref(engine), got)
        _SEEN.move_to_end(question)
        while len(_SEEN) > CACHED:
            _SEEN.popitem(last=False)
    return got
