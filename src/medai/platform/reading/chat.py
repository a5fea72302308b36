"""Image chat: a clinician's conversations about one study, each visible to its owner only;
message text encrypted at rest (``crypto``)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from medai.core.errors import MedaiError
from medai.platform.access import audit
from medai.platform.context import Platform
from medai.platform.documents.words import finding_states
from medai.platform.records.crypto import cipher
from medai.platform.records.tables import Conversation, Message, ReportVersion, Study, User
from medai.platform.worklist import ai_results, study_state, versions
from medai.services.reports import chat_answer


class NotYours(MedaiError, LookupError):
    """No such conversation for this user (others' conversations are not revealed)."""

    status, code = 404, "not_found"


def refuse_retracted(study: Study) -> None:
    """A retracted study (entered in error: another patient's, or withdrawn) is not talked
    about: an answer would quote its void report as if it stood (409 ``retracted``)."""
    study_state.check_not_retracted(study, "discussed in image chat (its report is void)")


def start(db: Session, study: Study, user: User) -> Conversation:
    refuse_retracted(study)
    conv = Conversation(study_id=study.id, owner_id=user.id)
    db.add(conv)
    db.flush()
    return conv


def own(db: Session, conv_id: int, user: User) -> Conversation:
    """The user's conversation; one started before the account's last reset or role change
    is not theirs any more (``accounts.own_since``: whoever enrolled after a reset)."""
    conv = db.get(Conversation, conv_id)
    if (
        conv is None
        or conv.owner_id != user.id
        or (user.history_since is not None and conv.created_at < user.history_since)
    ):
        raise NotYours(f"no conversation {conv_id}")
    return conv


def messages(db: Session, conv: Conversation) -> list[dict[str, Any]]:
    c = cipher()
    return [
        {
            "id": m.id,
            "role": m.role,
            "text": c.decrypt(m.body),
            "backend": m.backend,
            "created_at": m.created_at.isoformat() + "Z",
        }
        for m in db.scalars(
            select(Message).where(Message.conversation_id == conv.id).order_by(Message.id)
        )
    ]


def add(
    db: Session, conv: Conversation, role: str, text: str, backend: str | None = None
) -> Message:
    msg = Message(conversation_id=conv.id, role=role, body=cipher().encrypt(text), backend=backend)
    db.add(msg)
    db.flush()
    return msg


def context(db: Session, conv: Conversation) -> dict[str, Any]:
    """What an answer rests on: each label's one state (``finding_states``: the AI's decision,
    and what the latest signature said of each label, which rules once it stored labels), the
    AI decision's summary (undecided candidates, a conflict), the current report's conclusion
    (and whether that version is signed), the task and the study's language."""
    study = cast(Study, db.get(Study, conv.study_id))  # the conversation's study (foreign key)
    row = ai_results.latest_result(db, study.id)
    report = versions.current(db, study.id)
    signed = db.scalar(
        select(ReportVersion)
        .where(ReportVersion.study_id == study.id, ReportVersion.signed_by.is_not(None))
        .order_by(ReportVersion.version.desc())
        .limit(1)
    )
    basis = {
        "task": study.task,
        "signed_by": signed.signed_by if signed else None,
        "findings": cast(ReportVersion, signed or report).findings if (signed or report) else None,
    }
    states = finding_states.with_states(
        basis,
        row.payload if row else None,
        finding_states.version_labels(db, study.id, signed.version) if signed else None,
    )
    return {
        "findings": states["findings"],
        "decision": states["decision"],
        "signed_labels": states["signed_labels"],
        "impression": (report.sections or {}).get("impression") if report else None,
        "signed": bool(report and report.signed_by is not None),
        "task": study.task,
        "lang": study.language,
    }


async def ask(
    p: Platform,
    conv_id: int,
    user: User,
    actor: audit.Actor,
    text: str,
    lang: str | None,
    slot: Callable[[], AbstractAsyncContextManager[Any]],
) -> dict[str, Any]:
    """The user's question in their conversation, answered (``services.reports.chat_answer``,
    run inside ``slot``: the imaging lane, so a chat waits its turn like an analysis) and
    both kept: the question before the answer is sought, the answer after, audited with the
    backend that gave it. ``lang`` None: the study's language. The answer as ``messages``
    lists it."""
    facts, history = await run_in_threadpool(_asked, p, conv_id, user, text)
    async with slot():
        reply = await run_in_threadpool(
            lambda: chat_answer(
                text,
                facts["findings"],
                facts["impression"],
                lang or facts["lang"],
                history,
                p.knowledge_dir,
                signed=facts["signed"],
                task=facts["task"],
                decision=facts["decision"],
                signed_labels=facts["signed_labels"],
            )
        )
    return await run_in_threadpool(_answered, p, conv_id, user, actor, reply.text, reply.backend)


def _asked(
    p: Platform, conv_id: int, user: User, text: str
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The question kept; what the answer rests on (``context``) and the conversation so
    far. A study retracted since the conversation began is not talked about."""
    with p.db.session() as db:
        conv = own(db, conv_id, user)
        refuse_retracted(cast(Study, db.get(Study, conv.study_id)))  # its study (foreign key)
        history = [(m["role"], m["text"]) for m in messages(db, conv)]
        add(db, conv, "user", text)
        return context(db, conv), history


def _answered(
    p: Platform, conv_id: int, user: User, actor: audit.Actor, text: str, backend: str
) -> dict[str, Any]:
    with p.db.session() as db:
        msg = add(db, own(db, conv_id, user), "assistant", text, backend)
        audit.record(db, actor, "chat", "conversation", conv_id, backend=backend)
        return {
            "id": msg.id,
            "role": "assistant",
            "text": text,
            "backend": backend,
            "created_at": msg.created_at.isoformat() + "Z",
        }
