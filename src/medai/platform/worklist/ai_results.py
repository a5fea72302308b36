"""A study's AI results: the latest stored result of a kind, each label's one state, a result saved once
per reading."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medai.platform.records.tables import (
    AIResultRow,
    ReportVersion,
    Study,
)
from medai.services.imaging import decision_of


def latest_result(db: Session, study_id: int, kind: str = "imaging") -> AIResultRow | None:
    return db.scalar(
        select(AIResultRow)
        .where(AIResultRow.study_id == study_id, AIResultRow.kind == kind)
        .order_by(AIResultRow.id.desc())
        .limit(1)
    )


def signed_with(db: Session, study_id: int, version: ReportVersion) -> AIResultRow | None:
    """The imaging result a report version goes out with: for a signed one, the result the
    signer had on the page (``shown_at`` its signature: a series read after it never changes
    what was signed); for an unsigned one, the newest."""
    if version.signed_at is None:
        return latest_result(db, study_id)
    return shown_at(db, study_id, version.signed_at)


def shown_at(db: Session, study_id: int, when: datetime) -> AIResultRow | None:
    """The newest imaging result of the study stored by ``when`` (None: there was none)."""
    return db.scalar(
        select(AIResultRow)
        .where(
            AIResultRow.study_id == study_id,
            AIResultRow.kind == "imaging",
            AIResultRow.created_at <= when,
        )
        .order_by(AIResultRow.id.desc())
        .limit(1)
    )


def ai_label_rows(db: Session, study: Study) -> tuple[list[dict[str, Any]], str | None]:
    """The label rows of the study's latest imaging result's decision (each with its one
    ``state`` and, for an undecided one that follows a sub-finding, ``implied_by``: the stored
    decision's, ``services.imaging.decision_of``, never re-derived) and that result's model
    hash; no rows when it refused the image or there is none."""

    row = latest_result(db, study.id)
    if row is None or (row.payload or {}).get("refused"):
        return [], row.model_hash if row is not None else None
    decision = decision_of({"task": study.task, **(row.payload or {})}) or {}
    return list(decision.get("labels") or []), row.model_hash


def ai_label_states(db: Session, study: Study) -> tuple[dict[str, str], str | None]:
    """The model's state of each label in the study's latest imaging result (present, absent,
    indeterminate; ``ai_label_rows``) and that result's model hash."""

    rows, model_hash = ai_label_rows(db, study)
    return {r["label"]: r["state"] for r in rows}, model_hash


def stored_result(
    p: Any, study_id: int, kind: str, model_hash: str, reading: str = ""
) -> AIResultRow | None:
    with p.db.session() as db:
        return db.scalar(
            select(AIResultRow).where(
                AIResultRow.study_id == study_id,
                AIResultRow.kind == kind,
                AIResultRow.model_hash == model_hash,
                AIResultRow.reading == reading,
            )
        )


def save_result(
    p: Any,
    study_id: int,
    kind: str,
    model,
    payload: dict,
    heatmap: tuple[str, str] | None = None,
    reading: str = "",
    source: str | None = None,
) -> AIResultRow:
    """Store one AI result naming its model and what it read (a twin delivery's stored row
    wins); ``source``: the stored file it was read from."""
    try:
        with p.db.session() as db:
            row = AIResultRow(
                study_id=study_id,
                kind=kind,
                model_name=model.name,
                model_version=model.version,
                model_hash=model.content_hash,
                reading=reading,
                payload=payload,
                heatmap_sha256=heatmap[0] if heatmap else None,
                heatmap_label=heatmap[1] if heatmap else None,
                source_sha256=source,
            )
            db.add(row)
        return row
    except IntegrityError:  # a twin delivery stored it first: it is there
        return cast(AIResultRow, stored_result(p, study_id, kind, model.content_hash, reading))


def with_states(payload: dict[str, Any]) -> dict[str, Any]:
    """A stored imaging result as every view reads it: its decision with each label's one
    ``state`` (results stored before states existed included), and ``findings`` the decision's
    rows, so no view re-derives present, absent or undecided from probabilities."""

    decision = decision_of(payload) if payload.get("task") else None
    if decision is None:
        return dict(payload)
    return {**payload, "decision": decision, "findings": decision["labels"]}
