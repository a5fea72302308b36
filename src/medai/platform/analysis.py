"""One study's analysis: imaging findings → Grad-CAM heatmap → report draft (version 1).

Idempotent, keyed by study and model content hash: each step first looks for its stored
output, so a job repeated after a crash or delivered twice by the broker finishes the work
without duplicating a result or a report version. Model work runs outside any database
transaction (a slow model never holds the database's write lock).
"""

from __future__ import annotations

import logging
import time

from medai.core.task_registry import get as get_task
from medai.platform import review, studies
from medai.platform.audit import Actor, record
from medai.platform.context import Platform
from medai.platform.finding_states import decided_positives
from medai.platform.integration import outbox
from medai.platform.lifecycle import monitoring, shadow
from medai.platform.studies import latest_result, save_result, set_status, stored_result
from medai.platform.tables import AIResultRow, Study
from medai.services import imaging as imaging_service
from medai.services.reports import shared_drafter

log = logging.getLogger("medai.platform.jobs")
WORKER = Actor(name="medai-worker")


def analyse_study(p: Platform, study_id: int) -> str:
    """Run (or finish) the analysis; returns the study's resulting status. A study whose file
    holds no image (a report or a header-only instance filed first) is analysed from its next
    instance instead, in the same job (``_refused``: each turn moves to a later instance)."""
    while True:
        status = _analyse_once(p, study_id)
        if status != "received":  # received: moved on to a later instance of the study
            return status


def _analyse_once(p: Platform, study_id: int) -> str:
    with p.db.session() as db:
        # locked: a retraction committing meanwhile is seen, never overwritten by "analysing"
        study = db.get(Study, study_id, with_for_update=True, populate_existing=True)
        if study is None:
            raise LookupError(f"no study {study_id}")
        if study.status not in ("received", "analysing"):
            return study.status  # done before (a repeated delivery)
        set_status(study, "analysing")
        task, sha, question, lang = (
            study.task,
            study.file_sha256,
            study.clinical_question,
            study.language,
        )
        display = study.display_sha256
        meta = {"modality": study.modality, "source": study.source or "upload"}
    predictor = p.models.get(task)
    ref = predictor.identity
    data = p.store.read(sha)
    row = stored_result(p, study_id, "imaging", ref.content_hash)
    source = data  # what the draft reads its image's size and view from
    if row is None or display is None:
        try:  # one decode for the rendition, the findings, the heatmap and the draft
            with imaging_service.decoded(data) as image:
                source = image
                if display is None:
                    keep_display(p, study_id, imaging_service.display_png(image))
                if row is None:
                    row = _findings(p, study_id, predictor, image, meta)
        except imaging_service.ImageInputError as exc:
            if row is None:
                return _refused(
                    p,
                    study_id,
                    imaging_service.Refusal(exc.refusal_code, str(exc), exc.params),
                    ref,
                )
        if isinstance(row, str):  # refused
            return row
    payload = row.payload
    if payload.get("refused"):  # stored by an earlier delivery of this job
        return _refused(
            p,
            study_id,
            imaging_service.refusal_of(imaging_service.ImagingResult.model_validate(payload)),
            ref,
            store=False,
        )
    draft_row = stored_result(p, study_id, "draft", ref.content_hash)
    if draft_row is None:
        draft = shared_drafter(p.knowledge_dir).draft(
            source, payload, task=task, lang=lang, question=question, findings_model=ref
        )
        draft_row = save_result(p, study_id, "draft", ref, draft.model_dump(mode="json"))
    urgent = urgent_labels(task, payload)
    with p.db.session() as db:
        study = studies.lock_study(db, db.get(Study, study_id))  # a retraction races this
        if study.status == studies.RETRACTED:  # retracted meanwhile: no draft, nothing sent
            return study.status
        d = draft_row.payload
        made = review.ai_draft(
            db, study, d["sections"], d["citations"], d["findings_used"], draft_row.id
        )
        for label, state in urgent:
            studies.add_urgency(
                study, "ai_finding" if state == "present" else "ai_possible_finding", label
            )
        if study.status == "analysing":
            set_status(study, "ai_drafted")
        if made is not None:
            record(
                db,
                WORKER,
                "predict",
                "study",
                study_id,
                model=ref.name,
                model_hash=ref.content_hash,
                positive=len(decided_positives(payload)),
            )
            record(db, WORKER, "draft", "study", study_id, version=1, backend=d["backend"])
            outbox.on_analysed(db, study, row.id, made)  # results out, in this transaction
        status = study.status
    shadow.analyse(p, study_id, task, data, payload)  # after the study is done; never shown
    return status


def _findings(p: Platform, study_id: int, predictor, image, meta: dict) -> AIResultRow | str:
    """Findings and the leading finding's heatmap, stored (with the monitoring sample); or
    the study's status after a refusal."""
    ref = predictor.identity
    start = time.perf_counter()
    try:
        result = imaging_service.analyse(predictor, image)
    except imaging_service.ImageRefused as exc:
        status = _refused(p, study_id, exc.refusal, ref)
        monitoring.record(
            p,
            study_id,
            ref.task,
            ref.content_hash,
            {"refused": True},
            image,
            (time.perf_counter() - start) * 1000,
            meta,
        )
        return status
    latency_ms = (time.perf_counter() - start) * 1000
    payload = result.model_dump(mode="json")
    heat, png = imaging_service.heatmap(predictor, image, _heatmap_label(result))
    row = save_result(p, study_id, "imaging", ref, payload, (p.store.put_bytes(png), heat.label))
    monitoring.record(
        p, study_id, ref.task, ref.content_hash, payload, image, latency_ms, meta, result.embedding
    )
    return row


def keep_display(p: Platform, study_id: int, png: bytes) -> str:
    """Store a display rendition for the study (the first one stored wins: the study's row is
    locked, so two nodes making it at once agree on one — the per-process lock of the API's
    ``_OnePerStudy`` only saves a second decode in the same process)."""
    sha = p.store.put_bytes(png)
    with p.db.session() as db:
        study = db.get(Study, study_id, with_for_update=True, populate_existing=True)
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
                studies.NO_IMAGE,
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
        sha = db.get(Study, study_id).file_sha256
    with imaging_service.decoded(p.store.read(sha)) as image:
        png = imaging_service.display_png(image)
    return keep_display(p, study_id, png)


def urgent_labels(task: str, payload: dict) -> list[tuple[str, str]]:
    """The task's urgent labels the result did not rule out, with their state: present, or
    undecided among the candidates (a possible pneumothorax is read first too; a red flag is
    never hidden by the model's doubt)."""
    decision = imaging_service.decision_of(payload) or {}
    urgent = set(get_task(task).urgent)
    return [
        (r["label"], r["state"])
        for r in decision.get("labels") or []
        if r["label"] in urgent and r["state"] in ("present", "indeterminate")
    ]


def _heatmap_label(result) -> str | None:
    """The default heatmap shows the decision's leading finding (the one a reader most wants
    to see); for an undecided one, its most probable candidate that is a finding (a map of
    "no finding" shows a reader nothing to check); for a normal one, the most probable label."""
    d = result.decision
    if d is not None and d.state == "abnormal" and d.primary:
        return d.primary
    if d is not None and d.state == "indeterminate":
        normal = get_task(result.task).normal
        findings = [c for c in d.candidates if c != normal]
        if findings:
            return findings[0]
    return max(result.findings, key=lambda f: f.probability).label if result.findings else None


def _refused(
    p: Platform, study_id: int, refusal: imaging_service.Refusal, ref, store: bool = True
) -> str:
    """A refusal is an AI result too: stored (with its code, for every view to translate) and
    naming the model that refused; the study can then be reported by hand. A file that holds
    no image is not the study's last word while another instance of it was filed after that
    file: the study moves on to it (``studies.next_instance``, the refusal removed) and is
    ``received`` again. The study's row is locked for that decision, as a filing instance
    locks it (``studies._route_late``): one of the two always sees the other."""
    if store:
        payload = imaging_service.ImagingResult(
            status="refused",
            task=ref.task,
            refused=True,
            reason=refusal.message,
            reason_code=refusal.code,
            reason_params=refusal.params,
            model=ref,
        ).model_dump(mode="json")
        save_result(p, study_id, "imaging", ref, payload)
    with p.db.session() as db:
        study = db.get(Study, study_id, with_for_update=True, populate_existing=True)
        if (
            refusal.code == studies.NO_IMAGE
            and study.status in ("received", "analysing")
            and studies.next_instance(db, study)
        ):
            return study.status
        if study.status in ("received", "analysing"):
            set_status(study, "refused", refusal.message)
            record(
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
