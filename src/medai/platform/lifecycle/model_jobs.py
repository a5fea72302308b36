"""Retraining and site validation as jobs an admin starts from the page or the API and
watches: on the Celery ``training`` queue when a broker is set (``medai worker --queues
training`` on the machine with the GPU), else one at a time in the server's own thread.

A job row holds its progress (fraction and stage), its result or its error, and a lease its
worker renews: a worker that dies leaves a lease that runs out, and the job is taken over
(``leases.claim_first``: exactly one claimer wins). A cancelled retraining stops at the next
batch with its state saved."""

from __future__ import annotations

import logging
import queue as queue_mod
import shutil
import threading
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, or_, select, update

from medai.core import task_registry
from medai.core.trainer import TrainingCancelled
from medai.platform.access import audit
from medai.platform.lifecycle import dataset, retrain, site_sets, validation
from medai.platform.lifecycle.model_registry import LifecycleError, NoSuchModel
from medai.platform.records.db import utcnow
from medai.platform.records.leases import claim_first, worker_name
from medai.platform.records.localtime import iso_utc
from medai.platform.records.tables import ModelJob, RegisteredModel

if TYPE_CHECKING:
    from medai.platform.context import Platform

log = logging.getLogger("medai.platform.lifecycle")
KINDS = ("retrain", "validate")
ACTIVE = ("queued", "running")
# option: (least, most, default) — a retraining's knobs an admin may set
RETRAIN_OPTIONS: dict[str, tuple[int, int, int]] = {
    "epochs": (1, 200, 5),
    "image_size": (32, 1024, 224),
    "batch_size": (1, 512, 16),
    "min_studies": (2, 1_000_000, 10),
}


class JobRefused(LifecycleError):
    code = "job_refused"


class JobConflict(LifecycleError):
    status, code = 409, "job_running"


def _options(kind: str, given: dict[str, Any] | None) -> dict[str, int]:
    given = dict(given or {})
    if kind != "retrain":
        if given:
            raise JobRefused(f"a {kind} job takes no options")
        return {}
    unknown = sorted(set(given) - set(RETRAIN_OPTIONS))
    if unknown:
        raise JobRefused(f"unknown options {unknown}; valid: {', '.join(RETRAIN_OPTIONS)}")
    out = {}
    for name, (low, high, default) in RETRAIN_OPTIONS.items():
        value = given.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise JobRefused(f"{name} must be a whole number from {low} to {high}")
        out[name] = value
    return out


def submit(
    p: Platform,
    kind: str,
    actor: audit.Actor,
    task: str | None = None,
    model_id: int | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record a job (refused with the reason, or 409 while the same job runs); the caller
    dispatches it."""
    if kind not in KINDS:
        raise JobRefused(f"unknown job kind {kind!r}; valid: {', '.join(KINDS)}")
    opts = _options(kind, options)
    with p.db.session() as db:
        # any job names its model by a foreign key: one that does not exist is a 404 naming
        # the id, before the insert (it was the database's IntegrityError: a 500)
        model = db.get(RegisteredModel, model_id) if model_id is not None else None
        if model_id is not None and model is None:
            raise NoSuchModel(f"no registered model {model_id}")
        if kind == "validate":
            if model is None:
                raise NoSuchModel("a validate job names its candidate: model_id is missing")
            if model.state == "retired":
                raise JobRefused(f"model {model_id} is retired")
            task = model.task
        elif task not in task_registry.names("imaging"):
            raise JobRefused(
                f"retraining from the platform is for imaging tasks; valid: "
                f"{', '.join(task_registry.names('imaging'))} (a triage model: "
                "`medai dataset export --task triage`, then `medai triage train`)"
            )
        running = db.scalar(
            select(ModelJob.id).where(
                ModelJob.kind == kind,
                ModelJob.task == task,
                ModelJob.status.in_(ACTIVE),
                *([ModelJob.model_id == model_id] if kind == "validate" else []),
            )
        )
        if running is not None:
            raise JobConflict(
                f"a {kind} job for {task} is already {running}: wait for it or cancel it"
            )
        job = ModelJob(
            kind=kind,
            task=task,
            model_id=model_id,
            options=opts,
            status="queued",
            progress=0.0,
            stage="queued",
            created_by=actor.name[:64],
        )
        db.add(job)
        db.flush()
        audit.record(
            db,
            actor,
            "model",
            "model",
            model_id,
            op=f"{kind}_job",
            task=task,
            job=job.id,
            **opts,  # type: ignore[arg-type]  # options: none named like record's parameters
        )
        return as_dict(job)


def cancel(p: Platform, job_id: int, actor: audit.Actor) -> dict[str, Any]:
    """Ask a job to stop: a queued one is cancelled now, a running one at its next batch."""
    with p.db.session() as db:
        job = db.get(ModelJob, job_id)
        if job is None:
            raise NoSuchModel(f"no model job {job_id}")
        if job.status not in ACTIVE:
            raise JobConflict(f"job {job_id} is already {job.status}")
        job.cancel_requested = True
        if job.status == "queued":
            job.status, job.stage, job.finished_at = "cancelled", "cancelled", utcnow()
        audit.record(db, actor, "model", "model", job.model_id, op="cancel_job", job=job_id)
        return as_dict(job)


def _claimable(now):
    return or_(
        ModelJob.status == "queued", (ModelJob.status == "running") & (ModelJob.lease_until < now)
    )


def claim(p: Platform, job_id: int, worker: str, lease_s: float) -> bool:
    from datetime import timedelta

    with p.db.session() as db:
        now = utcnow()
        return (
            claim_first(
                db,
                ModelJob,
                [job_id],
                _claimable(now),
                {
                    "status": "running",
                    "worker": worker,
                    "attempts": ModelJob.attempts + 1,
                    "lease_until": now + timedelta(seconds=lease_s),
                    "started_at": now,
                },
            )
            is not None
        )


def _update(p: Platform, job_id: int, worker: str, **values: Any) -> bool:
    """Set values on the job while this worker still holds it."""
    with p.db.session() as db:
        done = db.execute(
            update(ModelJob)
            .where(ModelJob.id == job_id, ModelJob.worker == worker, ModelJob.status == "running")
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult, done).rowcount == 1  # an UPDATE's result is a CursorResult


class _Hooks:
    """Progress, cancel and lease renewal for one running job."""

    def __init__(self, p: Platform, job_id: int, worker: str, lease_s: float) -> None:
        self.p, self.job_id, self.worker, self.lease_s = p, job_id, worker, lease_s
        self.shown = (-1.0, "")
        self.stop = threading.Event()
        self.cancelled = False
        self.beat = threading.Thread(target=self._renew, name=f"model-job-{job_id}", daemon=True)

    def _renew(self) -> None:
        from datetime import timedelta

        while not self.stop.wait(self.lease_s / 3):
            _update(
                self.p,
                self.job_id,
                self.worker,
                lease_until=utcnow() + timedelta(seconds=self.lease_s),
            )
            with self.p.db.reader() as db:
                self.cancelled = bool(
                    db.scalar(select(ModelJob.cancel_requested).where(ModelJob.id == self.job_id))
                )

    def progress(self, fraction: float, stage: str) -> None:
        fraction = round(min(max(fraction, 0.0), 1.0), 3)
        if stage != self.shown[1] or fraction - self.shown[0] >= 0.01:
            self.shown = (fraction, stage)
            _update(self.p, self.job_id, self.worker, progress=fraction, stage=stage[:64])

    def cancel(self) -> bool:
        return self.cancelled


def run(p: Platform, job_id: int, worker: str, lease_s: float) -> str:
    """Claim and run one job; returns its status afterwards."""

    if not claim(p, job_id, worker, lease_s):
        with p.db.reader() as db:
            return db.scalar(select(ModelJob.status).where(ModelJob.id == job_id)) or "missing"
    with p.db.reader() as db:
        job = cast(ModelJob, db.get(ModelJob, job_id))  # claimed above: the row exists
        kind, task, model_id = job.kind, job.task, job.model_id
        options, actor = dict(job.options), job.created_by
    hooks = _Hooks(p, job_id, worker, lease_s)
    hooks.beat.start()
    try:
        result = _execute(p, job_id, kind, task, model_id, options, actor, hooks)
        values: dict[str, Any] = {
            "status": "done",
            "progress": 1.0,
            "stage": "done",
            "result": result,
        }
    except TrainingCancelled:
        values = {"status": "cancelled", "stage": "cancelled"}
    except LifecycleError as exc:  # refused as asked: the message is safe to show
        values = {
            "status": "failed",
            "stage": "failed",
            "error": str(exc)[:400],
            "result": {"error_code": exc.code, **getattr(exc, "params", {})},
        }
    except Exception as exc:  # broad: any failure is recorded on the job row (logged: type, where)
        log.exception("model job %s (%s %s) failed", job_id, kind, task)
        values = {
            "status": "failed",
            "stage": "failed",
            "error": f"{type(exc).__name__}: {str(exc)[:300]}",
        }
    finally:
        hooks.stop.set()
    _update(p, job_id, worker, finished_at=utcnow(), lease_until=None, **values)
    log.info("model job %s (%s %s): %s", job_id, kind, task, values["status"])
    return values["status"]


def _execute(
    p: Platform,
    job_id: int,
    kind: str,
    task: str,
    model_id: int | None,
    options: dict,
    actor: str,
    hooks: _Hooks,
) -> dict[str, Any]:
    if kind == "validate":
        hooks.progress(0.02, "site_set")
        built = _site_set(p, task, actor)
        hooks.progress(0.05, "validate")
        return {
            # a validate job names its model
            "validation": validation.as_dict(validation.validate(p, cast(int, model_id), actor)),
            **({"site_set": built} if built else {}),
        }
    work = p.home / "training" / f"job-{job_id}"
    shutil.rmtree(work, ignore_errors=True)  # a job taken over starts its folder afresh
    try:
        out = retrain.retrain(
            p,
            task,
            work,
            audit.Actor(actor),
            min_studies=options.pop("min_studies"),
            progress=hooks.progress,
            cancel=hooks.cancel,
            **options,
        )
    except dataset.DatasetError as exc:
        refused = LifecycleError(str(exc))
        refused.code = "too_few_studies" if isinstance(exc, retrain.TooFewStudies) else "dataset"
        # read back with getattr(exc, "params", {}): not every LifecycleError has one
        refused.params = getattr(exc, "params", {})  # type: ignore[attr-defined]
        raise refused from None
    sheet = out["datasheet"]
    return {
        "model": out["model"],
        "test": out["test"],
        "mlflow": out.get("mlflow"),
        "datasheet": {
            k: sheet[k]
            for k in ("studies", "label_counts", "signed_from", "signed_to", "content_hash")
        },
    }


def _site_set(p: Platform, task: str, actor: str) -> dict[str, Any] | None:
    """A validation started from the page needs a site set: with none yet (or only an empty
    one, frozen before empty sets were refused), freeze the held-out signed studies as the
    next version (returned); with none of those either, say so."""
    fraction = p.settings.models.site_set_fraction
    with p.db.session() as db:
        latest = site_sets.latest(db, task)
        if latest is not None and latest.studies:
            return None
        signed = site_sets.signed_labels(db, task)
        if not any(site_sets.held_out(task, sid, fraction) for sid in signed):
            refused = LifecycleError(
                f"no signed {task} study is held out for site validation "
                "yet: sign more studies, then validate"
            )
            refused.code = "no_site_set"
            raise refused
        return site_sets.as_dict(site_sets.build(db, task, actor, fraction))


def listing(p: Platform, task: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    with p.db.reader() as db:
        q = select(ModelJob).order_by(ModelJob.id.desc()).limit(limit)
        if task:
            q = q.where(ModelJob.task == task)
        return [as_dict(j) for j in db.scalars(q)]


def get(p: Platform, job_id: int) -> dict[str, Any]:
    with p.db.reader() as db:
        job = db.get(ModelJob, job_id)
        if job is None:
            raise NoSuchModel(f"no model job {job_id}")
        return as_dict(job)


def pending(p: Platform) -> list[int]:
    """Jobs no live worker holds (queued, or running with a lease run out)."""
    with p.db.reader() as db:
        return list(
            db.scalars(select(ModelJob.id).where(_claimable(utcnow())).order_by(ModelJob.id))
        )


def as_dict(j: ModelJob) -> dict[str, Any]:
    return {
        "id": j.id,
        "kind": j.kind,
        "task": j.task,
        "model_id": j.model_id,
        "options": j.options,
        "status": j.status,
        "progress": j.progress,
        "stage": j.stage,
        "attempts": j.attempts,
        "result": j.result,
        "error": j.error,
        "cancel_requested": j.cancel_requested,
        "created_by": j.created_by,
        "created_at": iso_utc(j.created_at),
        "started_at": iso_utc(j.started_at),
        "finished_at": iso_utc(j.finished_at),
    }


class LocalRunner:
    """No broker: the server runs model jobs itself, one at a time, in one thread (training
    is heavy; the analyses keep their own pool)."""

    def __init__(self, p: Platform, lease_s: float) -> None:
        self.p, self.lease_s, self.name = p, lease_s, worker_name("training")
        self.jobs: queue_mod.Queue[int | None] = queue_mod.Queue()
        self.thread = threading.Thread(target=self._loop, name="medai-model-jobs", daemon=True)

    def start(self) -> LocalRunner:
        self.thread.start()
        for job_id in pending(self.p):  # left by a restart
            self.jobs.put(job_id)
        return self

    def submit(self, job_id: int) -> None:
        self.jobs.put(job_id)

    def stop(self, timeout: float = 5.0) -> None:
        self.jobs.put(None)
        self.thread.join(timeout)

    def _loop(self) -> None:
        while (job_id := self.jobs.get()) is not None:
            try:
                run(self.p, job_id, self.name, self.lease_s)
            except Exception:  # broad: the runner thread outlives any job (logged)
                log.exception("model job %s could not run", job_id)
