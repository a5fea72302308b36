"""One study's analysis: imaging findings → Grad-CAM heatmap → report draft (version 1).

Idempotent, keyed by study and model content hash: each step first looks for its stored
output, so a job repeated after a crash or delivered twice by the broker finishes the work
without duplicating a result or a report version. Model work runs outside any database
transaction (a slow model never holds the database's write lock).

The path of one job, in order: ``_opened`` (the study's row, locked: what is to be read),
the model's side in one call (``services.study_read.read_study``: the film or series read, the
findings, the heatmap, the decision, or why none, and the report draft made from them),
``_kept`` (the result or the refusal stored, then its draft and its monitoring sample), then
``_drafted`` (the draft as the report's version 1, urgency, the audit and the results out, in
the study's transaction).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

from medai.core.task_registry import get as get_task
from medai.platform.access import audit
from medai.platform.context import Platform
from medai.platform.delivery import outbox
from medai.platform.documents.words.finding_states import decided_positives
from medai.platform.lifecycle import monitoring, shadow
from medai.platform.reading import report_templates, review
from medai.platform.records.tables import AIResultRow, Study
from medai.platform.worklist import (
    filing,
    patient_context,
    reading_order,
    study_reading,
    study_state,
)
from medai.platform.worklist.ai_results import latest_result, save_result, stored_result
from medai.platform.worklist.study_state import set_status
from medai.services import imaging as imaging_service
from medai.services import study_read
from medai.services.reports import with_question

log = logging.getLogger("medai.platform.jobs.jobs")
WORKER = audit.Actor(name="medai-worker")
# a turn that found another run's read stored before its own: the next turn goes on from that
# one, as a repeated job does (one reading per study and model, whichever run stored it)
AGAIN = "again"


@dataclass(frozen=True)
class Job:
    """What one turn of a study's analysis reads, taken from the study's locked row (plain
    values: used outside the session)."""

    study_id: int
    task: str
    sha: str
    question: str | None
    lang: str
    want_display: bool
    meta: dict
    members: list[study_read.Member]
    reading: str
    reopened: bool
    prior: dict | None  # the latest signed prior of the patient, of this task: one per job


def analyse_study(p: Platform, study_id: int) -> str:
    """Run (or finish) the analysis; returns the study's resulting status. A study whose file
    holds no image (a report or a header-only instance filed first) is analysed from its next
    instance instead, in the same job (``_refused``: each turn moves to a later instance)."""
    while True:
        status = _analyse_once(p, study_id)
        if status not in ("received", AGAIN):  # received: moved on to a later instance
            return status


def _analyse_once(p: Platform, study_id: int) -> str:
    job = _opened(p, study_id)
    if isinstance(job, str):
        return job  # done before (a repeated delivery)
    predictor = p.models.get(job.task)
    ref = predictor.identity
    row = stored_result(p, study_id, "imaging", ref.content_hash, job.reading)
    draft_row = stored_result(p, study_id, "draft", ref.content_hash, job.reading)
    got = study_read.read_study(
        predictor,
        members=job.members,
        study_sha=job.sha,
        read_bytes=p.store.read,
        reads_series=get_task(job.task).reads_series,
        want_display=job.want_display,
        stored=row.payload if row is not None else None,
        ask=None
        if draft_row is not None
        else study_read.Ask(job.task, job.lang, job.question, job.prior, p.knowledge_dir),
    )
    if got.member is not None:  # another instance than the study's file was read: it is now
        _read_instead(p, study_id, got.member, got.display_png)
    elif got.display_png is not None:
        keep_display(p, study_id, got.display_png)
    kept = _kept(p, job, ref, got, row, draft_row)
    if kept is None:  # a twin delivery stored another read first
        return AGAIN
    row, draft_row = kept
    if got.refusal is not None:  # refused now, or by an earlier delivery of this job
        return _refused(p, study_id, got.refusal, ref)
    return _drafted(p, job, ref, row, cast(AIResultRow, draft_row), got)


def _opened(p: Platform, study_id: int) -> Job | str:
    """The study's row, locked (a retraction committing meanwhile is seen, never overwritten
    by "analysing"): the job to do, or the status of a study done before (a repeated
    delivery). A reported study is read again only when instances arrived after its reading
    (a re-open: ``filing.defer_analysis``); its report keeps its state meanwhile."""
    with p.db.session() as db:
        study = study_state.locked(db, study_id)
        reading = filing.reading_key(db, study_id)
        reopened = study.status in study_state.REPORTED and not filing.read_already(
            db, study_id, reading
        )
        if study.status not in ("received", "analysing") and not reopened:
            return study.status
        if not reopened:
            set_status(study, "analysing")
        return Job(
            study_id=study_id,
            task=study.task,
            sha=study.file_sha256,
            question=study.clinical_question,
            lang=study.language,
            want_display=study.display_sha256 is None,
            meta={"modality": study.modality, "source": study.source or "upload"},
            members=study_reading.image_instances(db, study),
            reading=reading,
            reopened=reopened,
            prior=patient_context.comparison_prior(db, study),
        )


def _kept(
    p: Platform,
    job: Job,
    ref,
    got: study_read.StudyRead,
    row: AIResultRow | None,
    draft_row: AIResultRow | None,
) -> tuple[AIResultRow, AIResultRow | None] | None:
    """What this turn read, stored once per reading: the result with its heatmap, or the
    refusal with its code (for every view to translate, naming the model that refused); then
    the draft made from it; then its monitoring sample (a result, or the model's own refusal:
    its scope or view check). ``row``/``draft_row``: what an earlier delivery stored (kept as
    it is). None when a twin delivery stored another read first: nothing of this one is kept,
    and the next turn goes on from the twin's. A drafter that failed fails the job here, its
    read kept (a retry drafts from it, with nothing inferred again)."""
    fresh = row is None
    if row is None:
        payload = cast(dict, got.payload)  # a read comes with its result or its refusal
        heatmap = (
            None if got.heatmap is None else (p.store.put_bytes(got.heatmap[0]), got.heatmap[1])
        )
        source = got.member.sha if got.member is not None else job.sha
        row = save_result(
            p, job.study_id, "imaging", ref, payload, heatmap, job.reading, source=source
        )
        if row.payload != got.payload:
            return None
    if draft_row is None and got.draft is not None:
        draft_row = save_result(p, job.study_id, "draft", ref, got.draft, reading=job.reading)
    if fresh and (got.refusal is None or got.judged):
        monitoring.observe(
            p,
            job.study_id,
            ref.task,
            ref.content_hash,
            row.payload if got.refusal is None else {"refused": True},
            got.image,
            got.latency_ms,
            job.meta,
            got.embedding,
        )
    if got.draft_failure is not None:
        raise got.draft_failure
    return row, draft_row


def _drafted(
    p: Platform, job: Job, ref, row: AIResultRow, draft_row: AIResultRow, got: study_read.StudyRead
) -> str:
    """The findings and their draft stored: the AI draft (a re-read replaces it only while it
    is the AI's own and unsigned), urgency, the audit, the results out; returns the study's
    status. ``ref``: the model the findings came from, taken once (a promotion meanwhile is
    the next study's)."""
    study_id, payload = job.study_id, row.payload
    urgent = reading_order.urgent_labels(job.task, got.decision)
    with p.db.session() as db:
        # the job's study (never deleted under a running job), locked: a retraction races this
        study = study_state.locked(db, study_id)
        if study.status == study_state.RETRACTED:  # retracted meanwhile: no draft, nothing sent
            return study.status
        d = draft_row.payload
        # the study's question as it stands now opens the draft, whatever question the stored
        # draft was made with: one that came while it was being made (an HL7 order matched
        # meanwhile: ``intake.orders``), or a draft stored by another run of this job that read
        # the study before the order (two runs at once: a redelivery, the job pool and a
        # caller); ``with_question`` adds the line once. One that comes after finds the draft
        sections = with_question(d["sections"], study.clinical_question, study.language)
        # in the site's template of its result (a normal film, a glioma's follow-up with its
        # measurement slots): ``report_templates``
        sections = report_templates.draft_sections(
            db,
            job.task,
            got.decision,
            study.language,
            sections,
            follow_up=job.prior is not None,
        )
        # version 1; or in place of the AI's own draft withdrawn when the study was re-analysed
        # as another type (``review.withdraw_ai_draft``), a person's kept; or a re-read's
        made, why = review.ai_redraft(
            db, study, sections, d["citations"], d["findings_used"], draft_row.id
        )
        if job.reopened:
            # the reading is history either way; a signer is told (the study page compares
            # the newest reading with the one the report was made from), never overruled
            audit.record(
                db,
                WORKER,
                "reanalyse",
                "study",
                study_id,
                model_hash=ref.content_hash,
                reading=job.reading,
                report=why,
            )
        for label, state in urgent:
            filing.add_urgency(
                study, "ai_finding" if state == "present" else "ai_possible_finding", label
            )
        reading_order.refresh(db, study)  # the worklist's AI column and rank
        if study.status == "analysing":
            set_status(study, "ai_drafted")
        if made is not None:
            audit.record(
                db,
                WORKER,
                "predict",
                "study",
                study_id,
                model=ref.name,
                model_hash=ref.content_hash,
                positive=len(decided_positives(payload)),
            )
            audit.record(db, WORKER, "draft", "study", study_id, version=1, backend=d["backend"])
            # results out, in this transaction
            outbox.on_analysed(db, study, row.id, made, p.settings.destinations())
        status = study.status
    shadow.run(p, study_id, job.task, got.data, payload)  # after the study is done; never shown
    return status


def _read_instead(p: Platform, study_id: int, member: study_read.Member, png: bytes | None) -> None:
    """The study's analysed file becomes the instance read (a chest study's frontal film, a
    series' key slice): its report names that image. Its display rendition ``png`` (None: made
    again on the next view) is stored in the same transaction, so no view in between draws the
    new file's picture from another frame or keeps the old one."""
    display = p.store.put_bytes(png) if png is not None else None
    with p.db.session() as db:
        # the job's study: studies are never deleted under a running job
        study = study_state.locked(db, study_id)
        if study.status == study_state.RETRACTED:  # retracted meanwhile: left as it was
            return
        study.file_sha256, study.file_size = member.sha, member.size
        study.display_sha256 = display


def keep_display(p: Platform, study_id: int, png: bytes) -> str:
    """Store a display rendition for the study (the first one stored wins: the study's row is
    locked, so two nodes making it at once agree on one — the per-process lock of the API's
    ``_OnePerStudy`` only saves a second decode in the same process)."""
    sha = p.store.put_bytes(png)
    with p.db.session() as db:
        # the job's study: studies are never deleted under a running job
        study = study_state.locked(db, study_id)
        if study.display_sha256 is None:
            study.display_sha256 = sha
        return study.display_sha256


def stored_display(p: Platform, study_id: int) -> str | None:
    """The stored rendition, None when there is none yet; ``ImageInputError`` when the
    analysis found the original unreadable (no decode to retry on every view)."""
    with p.db.session() as db:
        study = db.get(Study, study_id)
        if study is None:
            raise LookupError(f"no study {study_id}")
        if study.display_sha256 is None:
            row = latest_result(db, study_id)
            if row is not None and (row.payload or {}).get("reason_code") in (
                "unreadable",
                filing.NO_IMAGE,
            ):
                raise imaging_service.ImageInputError(
                    str(row.payload.get("reason") or "the image cannot be read")
                )
        return study.display_sha256


def display_rendition(p: Platform, study_id: int) -> str:
    """The study's display rendition: the stored one, or (a study analysed before renditions
    existed, or viewed before its analysis ran) made now from the original and stored, so the
    original is decoded for display once. Raises ``ImageInputError``; callers run it in the
    imaging lane."""
    display = stored_display(p, study_id)
    if display is not None:
        return display
    with p.db.session() as db:
        # the job's study: studies are never deleted under a running job
        sha = cast(Study, db.get(Study, study_id)).file_sha256
    with imaging_service.decoded(p.store.read(sha)) as image:
        png = imaging_service.display_png(image)
    return keep_display(p, study_id, png)


def _refused(p: Platform, study_id: int, refusal: imaging_service.Refusal, ref) -> str:
    """A refusal is an AI result too (kept by ``_kept``, naming the model that refused); the
    study can then be reported by hand. A file that holds
    no image is not the study's last word while another instance of it was filed after that
    file: the study moves on to it (``filing.next_instance``, the refusal removed) and is
    ``received`` again. The study's row is locked for that decision, as a filing instance
    locks it (``filing._route_late``): one of the two always sees the other."""
    with p.db.session() as db:
        # the job's study: studies are never deleted under a running job
        study = study_state.locked(db, study_id)
        if (
            refusal.code == filing.NO_IMAGE
            and study.status in ("received", "analysing")
            and filing.next_instance(db, study)
        ):
            return study.status
        reading_order.refresh(db, study)  # the worklist's AI column: refused
        if study.status in ("received", "analysing"):
            set_status(study, "refused", refusal.message)
            audit.record(
                db,
                WORKER,
                "predict",
                "study",
                study_id,
                outcome="refused",
                model=ref.name,
                model_hash=ref.content_hash,
                reason=refusal.code,
            )
        return study.status
