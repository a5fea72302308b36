"""Identity conflicts (``platform.dicom.identity_conflicts``): instances quarantined because they
name another patient or order than the study they would join, and a person's decision on each.

A radiologist (approved for patient data) sees both identities in full and decides: reassign
the instance to a study of its own, or reject it. An admin sees that conflicts exist and why
(the disagreeing attributes, the source, the calling AE title), every value masked, so
that a hospital's IT can chase the modality or RIS that sent them without reading patient data
(admins read none: ``roles.PERMISSIONS``).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from medai.platform.access import audit, roles
from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.dicom import identity_conflicts as conflicts
from medai.platform.worklist import filing, held_blobs
from medai.server.inputs import RowId
from medai.server.schemas import error_responses

log = logging.getLogger("medai.platform")
router = APIRouter(prefix="/api/v1/conflicts", tags=["identity conflicts"])
State = Literal["open", "reassigned", "rejected"]


class IdentityOut(BaseModel):
    patient_id: str | None
    issuer: str | None
    patient_name: str | None
    birth_date: str | None
    accession: str | None
    patient_ref: str | None


class ConflictOut(BaseModel):
    id: int
    study_id: int
    state: State
    reason: str
    reason_text: str
    fields: list[str]
    source: str
    calling_ae: str | None
    task: str | None
    study_uid: str | None
    sop_uid: str | None
    study: IdentityOut
    incoming: IdentityOut
    masked: bool
    created_at: str
    resolved_at: str | None
    resolved_by: str | None
    resolved_study_id: int | None


class ConflictList(BaseModel):
    items: list[ConflictOut]
    total: int
    open: int


MASK = "•••"


def _masked(out: dict[str, Any]) -> dict[str, Any]:
    """What an admin sees: which attributes are present and which differ, never a character
    of their values (not even the length)."""
    for side in ("study", "incoming"):
        out[side] = {k: (MASK if v else None) for k, v in out[side].items()}
    return {**out, "masked": True, "study_uid": None, "sop_uid": None}


# a radiologist (full identities, approved for patient data) or an admin (masked)
reviewer = require("conflicts_review", "conflicts_view")


def _shown(db, row, who: Principal) -> ConflictOut:
    out = conflicts.as_dict(db, row)
    full = roles.allowed(who.role, "conflicts_review")
    return ConflictOut(**({**out, "masked": False} if full else _masked(out)))


@router.get("", response_model=ConflictList, responses=error_responses(401, 403, 422))
def list_conflicts(
    request: Request,
    who: Principal = Depends(reviewer),
    state: State | None = "open",
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> ConflictList:
    """Quarantined instances, newest first (``state`` open by default)."""
    with platform_of(request).db.session() as db:
        rows, total, open_ = conflicts.page(db, state, limit, offset)
        items = [_shown(db, r, who) for r in rows]
        audit.record(db, who.actor, "view", "identity_conflicts", None, results=len(items))
        return ConflictList(items=items, total=total, open=open_)


@router.get("/{conflict_id}", response_model=ConflictOut, responses=error_responses(401, 403, 404))
def get_conflict(
    conflict_id: RowId, request: Request, who: Principal = Depends(reviewer)
) -> ConflictOut:
    with platform_of(request).db.session() as db:
        out = _shown(db, conflicts.get(db, conflict_id), who)
        audit.record(db, who.actor, "view", "identity_conflict", conflict_id)
        return out


@router.post(
    "/{conflict_id}/reassign",
    response_model=ConflictOut,
    responses=error_responses(401, 403, 404, 409),
)
async def reassign_conflict(
    conflict_id: RowId, request: Request, who: Principal = Depends(require("conflicts_review"))
) -> ConflictOut:
    """The instance is another patient's: it becomes a study of its own (analysed as any new
    study). Its UIDs are the other study's, so DICOM destinations skip the new study."""
    p = platform_of(request)

    def run() -> tuple[ConflictOut, int, int | None, bool]:
        with p.db.session() as db:
            row, study, job = filing.reassign_instance(
                db,
                conflict_id,
                who.actor,
                who.signed_in.username,
                p.clock(),
                stable_s=p.settings.serving.study_stable_s,
            )
            return _shown(db, row, who), study.id, job.id if job else None, study.urgent

    out, study_id, job_id, urgent = await run_in_threadpool(run)
    if job_id is not None:
        request.app.state.dispatch(study_id, job_id, urgent)
    log.info("identity conflict %s reassigned to new study %s", conflict_id, study_id)
    return out


@router.post(
    "/{conflict_id}/reject",
    response_model=ConflictOut,
    responses=error_responses(401, 403, 404, 409),
)
async def reject_conflict(
    conflict_id: RowId, request: Request, who: Principal = Depends(require("conflicts_review"))
) -> ConflictOut:
    """The instance is not filed; its file goes unless something else names it."""
    p = platform_of(request)

    def run() -> tuple[ConflictOut, str]:
        with p.db.session() as db:
            row = filing.reject_instance(
                db, conflict_id, who.actor, who.signed_in.username, p.clock()
            )
            return _shown(db, row, who), row.file_sha256

    out, sha = await run_in_threadpool(run)
    await run_in_threadpool(held_blobs.discard_unnamed, p, sha, "a rejected instance")
    log.info("identity conflict %s rejected", conflict_id)
    return out
