"""Claiming a row with a lease: the one pattern behind background jobs (``jobs``) and
deliveries (``delivery.outbox``).

A claimer picks a few candidate rows, then takes one with a conditional UPDATE that repeats
the "is it claimable?" condition: on PostgreSQL the condition is re-checked on the locked row,
on SQLite the writer holds the database's lock, so exactly one claimer's UPDATE matches a row
and the others move on to the next candidate. The lease itself (``lease_until``) is a column
the caller sets in ``values``: a row whose lease ran out is claimable again, so a claimer that
died is taken over without anyone deciding it died.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement


def claim_first(
    db: Session,
    table: Any,
    candidates: Iterable[int],
    claimable: ColumnElement[bool],
    values: dict[str, Any],
) -> int | None:
    """Set ``values`` on the first of ``candidates`` (ids of ``table``) that is still
    ``claimable``; its id, or None when every candidate was taken meanwhile."""
    for row_id in candidates:
        done = db.execute(
            update(table)
            .where(table.id == row_id, claimable)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult, done).rowcount == 1:  # an UPDATE/DELETE's result is a CursorResult
            return row_id
    return None


def worker_name(prefix: str = "pool") -> str:
    """The holder of the leases this thread takes: host, process and a random tail."""
    return f"{prefix}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
