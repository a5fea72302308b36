"""The HL7 order applied to a study (``intake.orders``), as the study's page and API show it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.platform.records.tables import ImagingOrder


def of_study(db: Session, study_id: int) -> dict[str, Any] | None:
    """Its priority (HL7 table 0027), ordering physician, sender and when it came; None when
    no order was applied (the question is the study's own, whatever brought it)."""
    row = db.scalar(
        select(ImagingOrder)
        .where(ImagingOrder.study_id == study_id, ImagingOrder.state == "matched")
        .limit(1)
    )
    if row is None:
        return None
    return {
        "accession": row.accession,
        "priority": row.priority,
        "ordering_physician": row.ordering_physician,
        "sender": row.sender,
        "message_type": row.message_type,
        "received_at": row.received_at.isoformat() + "Z",
    }
