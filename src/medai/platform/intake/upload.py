"""A browser upload (``POST /api/v1/studies``), from the form to its study: the one service the
route calls, so that the route keeps only what is HTTP (parsing the form, the answer's status
and headers) and the rest is here, where it can be tested without a server.

In order: the form's checks that need no file (the ``Idempotency-Key``, the birth date), the
file stored (content-addressed, bounded), its header read and checked (a decompression bomb is
a 413 from its header, never a worker decoding it; an attribute that breaks its VR a 422
naming it), a keyed retry answered from the study its first request filed
(``idempotency``), the clinical question's red flags, and the ``Arrival`` filed the same way
as a DICOM node's instance (``filing.receive``), its key claimed in the same transaction. The
analysis is only queued (``dispatch``). Whatever is refused leaves no file behind that no row
names (``held_blobs.discard_unnamed``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from medai.core.errors import MedaiError
from medai.core.faults import StorageFault
from medai.platform.access import audit
from medai.platform.context import Platform
from medai.platform.dicom import identity as dicom
from medai.platform.dicom.arrival import Arrival
from medai.platform.dicom.dicom_values import InvalidAttribute
from medai.platform.intake import idempotency
from medai.platform.intake.question import question_flags
from medai.platform.worklist import filing, held_blobs, listing, study_state
from medai.platform.worklist.patient_context import OLDEST
from medai.services import imaging as imaging_service

log = logging.getLogger("medai.platform")
UNKNOWN_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class UploadForm:
    """What the request asked, as the route parsed it (each field already within its form
    limits): the imaging ``task``, the file's declared ``content_type``, the pseudonymous
    ``patient_ref``, the clinical ``question``, the draft's ``language``, the patient's sex
    (M, F, O; None: not known) and ``birth_date`` (YYYY-MM-DD) for an image without a DICOM
    header, and the ``Idempotency-Key`` header's value."""

    task: str
    content_type: str = UNKNOWN_TYPE
    patient_ref: str | None = None
    question: str | None = None
    language: str = "tr"
    patient_sex: str | None = None
    birth_date: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Uploaded:
    """The answer: the study as ``listing.as_dict`` gives it, the status (201: a new study;
    200: it joined one, or was stored before) and whether it answers an earlier request with
    the same key (``Idempotent-Replayed``)."""

    study: dict[str, Any]
    status: int
    replayed: bool = False


class InvalidDicomAttribute(MedaiError, ValueError):
    """A UID, name or ID of the file that breaks its VR: never filed (``dicom_values``)."""

    status, code = 422, "invalid_dicom_attribute"

    def __init__(self, exc: InvalidAttribute) -> None:
        super().__init__(f"the DICOM file's {exc}")
        self.errors = [
            {"loc": ["file", exc.keyword], "msg": exc.why, "type": "invalid_dicom_attribute"}
        ]


class FiledElsewhere(MedaiError, Exception):
    """Another request is filing the same study or key at this very moment: retry."""

    status, code = 409, "conflict"


class ConflictHeld(MedaiError, Exception):
    """The file names another patient or order than the study it would join (or belongs to
    a retracted study): kept aside as identity conflict ``conflict_id`` (its file too) for a
    radiologist to decide, never filed or analysed."""

    status, code = 409, "identity_conflict"

    def __init__(self, held: dict[str, Any]) -> None:
        super().__init__(_held_text(held))
        self.conflict_id, self.study_id = held["conflict_id"], held["study_id"]
        self.reason, self.fields = held["reason"], held["fields"]
        self.errors = [
            {
                "loc": ["file", field],
                "msg": "differs from the study it would join",
                "type": "identity_conflict",
            }
            for field in held["fields"]
        ]


def _held_text(held: dict[str, Any]) -> str:
    study, fields = held["study_id"], ", ".join(held["fields"])
    if held["reason"] == "retracted_study":
        why = (
            f"this DICOM file belongs to study {study}, which was retracted (entered in error); "
            "it was not filed or analysed"
        )
    elif held["reason"] == "series_elsewhere":
        why = (
            f"this DICOM file's series (SeriesInstanceUID) belongs to study {study}, of another "
            f"study or patient ({fields}); it was not filed or analysed"
        )
    else:
        why = (
            f"this DICOM file names another patient or order than study {study} it would join "
            f"({fields}); it was not filed or analysed"
        )
    if held["rejected"]:
        return f"{why}: a radiologist rejected it before (identity conflict {held['conflict_id']})"
    return (
        f"{why}, and is kept as identity conflict {held['conflict_id']} for a radiologist to "
        "reassign or reject"
    )


def form_birth_date(value: str | None) -> str | None:
    """The form's birth date (YYYY-MM-DD) as DICOM DA, checked: a real day, not after today,
    at most ``patient_context.OLDEST`` years ago (else 422 ``invalid``)."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    today = date.today()
    if day is None or day > today or today.year - day.year > OLDEST:
        raise study_state.StudyError(
            f"patient_birth_date must be a real day, not after today and at most {OLDEST} years ago"
        )
    return day.strftime("%Y%m%d")


async def upload(
    p: Platform,
    uploader: int,
    actor: audit.Actor,
    chunks: AsyncIterator[bytes],
    form: UploadForm,
    dispatch: Callable[[int, int, bool], Any],
) -> Uploaded:
    """File one upload by the user ``uploader`` (audited under ``actor``) and queue its
    analysis (``dispatch``: study, job, urgent). A DICOM file keeps its identity and joins
    the study of its StudyInstanceUID when that is here (200); one that names another patient
    is held (``ConflictHeld``, 409). With an ``Idempotency-Key`` a retry answers the study
    the first request filed (``Uploaded.replayed``); the key for another upload is refused
    (``idempotency.KeyReused``, 422)."""
    key = idempotency.checked(form.idempotency_key)
    born = form_birth_date(form.birth_date)  # refused before the file is stored
    sha, size, created = await p.store.receive(chunks, imaging_service.MAX_BYTES)
    if size == 0:
        await _forget(p, sha, created)
        raise study_state.StudyError("the file is empty")
    try:  # a decompression bomb is refused now, from its header, not by a worker decoding it
        identity = await run_in_threadpool(_checked_identity, p, sha)
    except imaging_service.ImageTooLarge as exc:  # refused on upload: 413, not 422
        await _forget(p, sha, created)
        exc.status = 413
        raise
    except BaseException:  # broad: the blob is forgotten on any exit (cancellation too), re-raised
        await _forget(p, sha, created)
        raise
    prints = _fingerprints(sha, form, born) if key else []
    if key and (earlier := await _earlier(p, uploader, actor, key, prints, sha, created)):
        return earlier
    red_flags = await run_in_threadpool(question_flags, p, form.question)
    arrival = Arrival(
        sha=sha,
        size=size,
        content_type=form.content_type,
        task=form.task,
        uploaded_by=uploader,
        identity=identity,
        stable_s=p.settings.serving.study_stable_s,  # an instance joining a DICOM study
        patient_ref=form.patient_ref,
        question=form.question,
        language=form.language,
        urgent=bool(red_flags),
        red_flags=tuple(red_flags),
        patient_sex=form.patient_sex,
        birth_date=born,
    )
    try:
        out, job_id, outcome = await run_in_threadpool(_file, p, actor, arrival, key, prints)
    except idempotency.KeyTaken:  # a request with this key filed first (or is filing)
        # KeyTaken: only an upload with a key is filed under one
        earlier = await _earlier(p, uploader, actor, cast(str, key), prints, sha, created)
        if earlier is None:  # it failed and rolled back: this one may try again
            await _forget(p, sha, created)
            raise FiledElsewhere(
                "an upload with this Idempotency-Key was being filed and did not finish; retry"
            ) from None
        return earlier
    except BaseException as exc:  # broad: no row: the blob forgotten on any exit; re-raised
        await _forget(p, sha, created)
        if isinstance(exc, IntegrityError):  # the same study filed at this very moment
            raise FiledElsewhere(
                "this DICOM study is being filed by another upload; retry"
            ) from None
        raise
    if outcome == "conflict":  # kept aside (its file too) for a person to decide
        log.warning(
            "upload quarantined as identity conflict %s with study %s (%s: %s)",
            out["conflict_id"],
            out["study_id"],
            out["reason"],
            ", ".join(out["fields"]),
        )
        raise ConflictHeld(out)
    if outcome == "duplicate":  # stored before (these bytes may differ from that copy)
        await _forget(p, sha, created)
    if job_id is not None:
        dispatch(out["id"], job_id, arrival.urgent)
    log.info(
        "study %s uploaded task=%s urgent=%s filed=%s",
        out["id"],
        form.task,
        arrival.urgent,
        outcome,
    )
    if key is not None:
        await run_in_threadpool(_sweep_keys, p)
    return Uploaded(out, 201 if outcome == "new" else 200)


def _file(
    p: Platform, actor: audit.Actor, arrival: Arrival, key: str | None, prints: list[str]
) -> tuple[dict[str, Any], int | None, str]:
    """The arrival filed and audited, its key claimed first, in one transaction: the study
    (or the conflict that holds it), the job to dispatch, and the filing's outcome."""
    with p.db.session() as db:
        # the key first: a request racing on it waits here, and files nothing
        claimed = idempotency.claim(db, arrival.uploaded_by, key, prints[0]) if key else None
        filed = filing.receive(
            db,
            p.store,
            actor,
            arrival,
            audit_detail=lambda f: {
                "task": arrival.task,
                "bytes": arrival.size,
                "urgent": arrival.urgent,
                **({"filed": f.outcome} if arrival.identity else {}),
            },
        )
        conflict = filed.conflict
        if claimed is not None and conflict is None:
            claimed.study_id = filed.study.id
            claimed.status = 201 if filed.outcome == "new" else 200
        elif claimed is not None:  # not filed: a retry finds the same conflict again
            db.delete(claimed)
        if conflict is not None:
            held = {
                "conflict_id": conflict.id,
                "study_id": filed.study.id,
                "reason": conflict.reason,
                "fields": list(conflict.fields),
                "rejected": conflict.state == "rejected",
            }
            return held, None, filed.outcome
        return (
            listing.as_dict(db, filed.study),
            filed.job.id if filed.job else None,
            filed.outcome,
        )


def _fingerprints(sha: str, form: UploadForm, born: str | None) -> list[str]:
    """The keyed upload's fingerprints: its file and the fields that shape its study. The
    names are the form's, as stored by every release since keys came: a retry across an
    upgrade keeps its key."""
    return idempotency.fingerprints(
        sha,
        {
            "task": form.task,
            "patient_ref": form.patient_ref,
            "clinical_question": form.question,
            "lang": form.language,
            "patient_sex": form.patient_sex,
            "patient_birth_date": born,
        },
    )


def _checked_identity(p: Platform, sha: str) -> dicom.DicomIdentity | None:
    """The stored upload's limits checked from its header (``ImageTooLarge``), then its
    DICOM identity, the same extraction as the DICOM node's (None when it has none; the
    analysis names a bad file). A UID, name or ID that breaks its VR is refused naming the
    attribute (``InvalidDicomAttribute``), never filed."""
    try:
        return dicom.checked_read(p.store.read(sha))
    except InvalidAttribute as exc:
        raise InvalidDicomAttribute(exc) from None
    except dicom.IdentityError:
        return None


async def _forget(p: Platform, sha: str, created: bool) -> None:
    """The file of an upload that got no row goes again: only when this upload stored it
    and no row names it (``held_blobs.discard_unnamed``)."""
    if not created:
        return
    await run_in_threadpool(held_blobs.discard_unnamed, p, sha, "a failed upload")


async def _earlier(
    p: Platform,
    uploader: int,
    actor: audit.Actor,
    key: str,
    prints: list[str],
    sha: str,
    created: bool,
) -> Uploaded | None:
    """``_replay``; when it answers (or refuses), this request's file goes unless a row
    names it (the earlier upload's row does: same fingerprint, same file)."""
    try:
        answer = await run_in_threadpool(_replay, p, uploader, actor, key, prints)
    except BaseException:  # broad: the blob is forgotten on any exit (cancellation too), re-raised
        await _forget(p, sha, created)
        raise
    if answer is not None:
        await _forget(p, sha, created)
    return answer


def _replay(
    p: Platform, uploader: int, actor: audit.Actor, key: str, prints: list[str]
) -> Uploaded | None:
    """The answer to an earlier upload of this user with ``key``: its study as it is now,
    with the first answer's status, replayed (None: no such upload committed). The same key
    for another upload is refused (``KeyReused``). Read first without the write lock
    (SQLite): most keyed uploads are first attempts."""
    with p.db.reader() as db:
        row = idempotency.find(db, uploader, key)
    if row is None:
        return None
    if row.fingerprint not in prints:
        raise idempotency.KeyReused(
            f"this {idempotency.HEADER} was used for another upload (another file or other "
            "fields) within 24 hours; use a new key for a new upload"
        )
    with p.db.session() as db:
        # a key whose upload was filed names its study
        out = listing.as_dict(db, study_state.get(db, cast(int, row.study_id)))
        audit.record(db, actor, "view", "study", row.study_id, replayed_upload=True)
    log.info("study %s: upload answered again (same %s)", out["id"], idempotency.HEADER)
    return Uploaded(out, row.status or 201, replayed=True)


def _sweep_keys(p: Platform) -> None:
    """Forget keys older than a day (hourly at most per process; a failure waits for the
    next time: an expired key is already ignored, the sweep only keeps the table small)."""
    try:
        idempotency.maybe_sweep(p.db)
    except (SQLAlchemyError, StorageFault) as exc:  # a failure waits for the next time
        log.warning("sweeping old upload keys failed: %s", type(exc).__name__)
