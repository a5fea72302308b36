"""The model registry: which sealed model directories a hospital holds for each task, and
which one serves.

States: ``candidate`` → ``shadow`` → ``active`` → ``retired``; exactly one ``active`` per task
(the database refuses a second). Every change of state is a ``model_transitions`` row and an
audit event, each with its reason and who made it. Promotion needs the site validation to
find the candidate non-inferior (``validation``) or an admin's override with a reason;
rollback re-activates the model that was active before the current one.

Plain functions over a session, shared by the CLI, the API and the first start."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.core import registry as model_dirs
from medai.core import tasks
from medai.platform import audit
from medai.platform.db import utcnow
from medai.platform.lifecycle import storage
from medai.platform.localtime import iso_utc
from medai.platform.tables import ModelTransition, RegisteredModel

STATES = ("candidate", "shadow", "active", "retired")
# the states each move starts from (promote: to active; rollback goes through ``rollback``)
MOVES: dict[str, tuple[str, ...]] = {
    "active": ("candidate", "shadow", "retired"),
    "shadow": ("candidate", "retired"),
    "retired": ("candidate", "shadow"),
}
MAX_REASON = 400


class LifecycleError(ValueError):
    """A registry request that cannot be done (message safe to show); ``status`` and
    ``code`` are the API's answer."""

    status, code = 422, "invalid"


class TrackingUnavailable(LifecycleError):
    """``mlflow:RUN_ID`` that cannot be fetched: no tracking store set, no such run, or
    MLflow not installed."""

    status, code = 422, "mlflow_unavailable"


@contextmanager
def fetched(source: str) -> Iterator[Path]:
    """The directory a registration reads: ``source`` itself, or for ``mlflow:RUN_ID`` the
    run's sealed model artifacts downloaded into a temporary folder (removed afterwards)."""
    from medai.services import tracking

    if not source.startswith(tracking.PREFIX):
        yield Path(source)
        return
    with tempfile.TemporaryDirectory(prefix="medai-mlflow-") as tmp:
        try:
            directory = tracking.download_model(source, Path(tmp))
        except tracking.TrackingSourceError as exc:
            raise ModelRefused(str(exc)) from None
        except tracking.TrackingError as exc:
            raise TrackingUnavailable(str(exc)) from None
        yield directory


class ModelRefused(LifecycleError):
    """A directory that is not a sealed model of the task it is registered for."""

    code = "model_refused"


class NoSuchModel(LifecycleError):
    status, code = 404, "not_found"


class MoveRefused(LifecycleError):
    status, code = 409, "state_conflict"


class NotServed(MoveRefused):
    """A move for a task the registry does not serve (the red-flag engine: a record only)."""

    code = "not_served"


class PromotionRefused(LifecycleError):
    """Site validation did not clear the candidate and no override was given (``code``:
    ``no_site_set``, ``not_validated`` or ``not_non_inferior``)."""

    status, code = 409, "not_validated"


@dataclass(frozen=True)
class Checked:
    card: model_dirs.ModelCard
    content_hash: str


def check_directory(directory: Path, task: str | None = None) -> Checked:
    """The card and content hash of a sealed model directory of ``task`` (the card's task when
    None); ModelRefused says what is wrong: not a model, not sealed, altered files, another
    task, or a label the task does not have (a model may read a subset of the task's labels,
    as the bundled ones do)."""
    directory = Path(directory)
    try:
        card = model_dirs.read_card(directory)
    except model_dirs.ModelLoadError as exc:
        raise ModelRefused(str(exc)) from None
    task = task or card.task
    try:
        spec = tasks.get(task)
    except tasks.TaskError as exc:
        raise ModelRefused(str(exc)) from None
    if card.task != task:
        raise ModelRefused(f"{directory} is a {card.task!r} model, not {task!r}")
    if not card.labels:
        raise ModelRefused(f"{directory}: its card names no labels")
    unknown = sorted(lab for lab in card.labels if lab not in spec.labels) if spec.labels else []
    if unknown:
        raise ModelRefused(f"{directory}: labels {unknown} are not labels of the {task} task "
                           f"(valid: {', '.join(spec.labels)})")
    if not card.content_hash:
        raise ModelRefused(f"{directory}: not sealed (its card has no content hash); seal it "
                           "with `medai models reseal` if you trust its files")
    try:
        content_hash = model_dirs.verify(directory, card)
    except model_dirs.ModelLoadError as exc:
        raise ModelRefused(str(exc)) from None
    return Checked(card, content_hash)


def require_served(task: str, what: str) -> None:
    """Moves that change what serves (promote, shadow, roll back) and the site sets, validations
    and retraining behind them are for the tasks served through the registry. The red-flag
    engine is registered as a record of its versions (find an alert's engine by its hash) and
    serves from the sealed folder MEDAI_RED_FLAG_RULES names."""
    from medai.services.models import served_tasks

    served = served_tasks()
    if task not in served:
        hint = (" (the red-flag engine serves from the sealed folder MEDAI_RED_FLAG_RULES "
                "names: docs/red-flag-rules.md)" if task.startswith("red_flag") else "")
        raise NotServed(f"{task} models are kept in the registry as a record and are not "
                          f"served through it, so one cannot be {what}{hint}; served tasks: "
                          f"{', '.join(served)}")


def _reason(reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise LifecycleError("a reason is required (it is kept in the audit log)")
    if len(text) > MAX_REASON:
        raise LifecycleError(f"the reason is longer than {MAX_REASON} characters")
    return text


def find(db: Session, task: str, content_hash: str) -> RegisteredModel | None:
    return db.scalar(select(RegisteredModel).where(RegisteredModel.task == task,
                                                   RegisteredModel.content_hash == content_hash))


def register(db: Session, home: Path, directory: Path, actor: audit.Actor, task: str | None = None,
             source: str | None = None, state: str = "candidate",
             reason: str = "registered") -> tuple[RegisteredModel, bool]:
    """Copy a sealed model directory into the store and record it (``state``: ``candidate``,
    or ``active`` on a first start); returns the row and whether it is new (the same files
    registered again for the same task give the existing row)."""
    checked = check_directory(directory, task)
    card, content_hash = checked.card, checked.content_hash
    existing = find(db, card.task, content_hash)
    if existing is not None:
        return existing, False
    name = card.name or Path(directory).name
    relative = storage.store(home, Path(directory), content_hash, name)
    now = utcnow()
    row = RegisteredModel(task=card.task, name=name[:128],
                          version=(card.version or card.created_at)[:64],
                          model_type=card.model_type[:32], content_hash=content_hash,
                          path=relative, state=state, source=(source or str(directory))[:255],
                          card=card.to_dict(), registered_by=actor.name[:64],
                          registered_at=now, state_at=now)
    db.add(row)
    db.flush()
    _transition(db, row, None, state, reason, actor)
    return row, True


def _transition(db: Session, row: RegisteredModel, old: str | None, new: str, reason: str,
                actor: audit.Actor, override: bool = False) -> None:
    db.add(ModelTransition(model_id=row.id, task=row.task, from_state=old, to_state=new,
                           reason=reason, actor=actor.name[:64], override=override))
    audit.record(db, actor, "model", "model", row.id, task=row.task, to=new, **{"from": old},
                 content_hash=row.content_hash, reason=reason, override=override)


def get(db: Session, model_id: int) -> RegisteredModel:
    row = db.get(RegisteredModel, model_id)
    if row is None:
        raise NoSuchModel(f"no registered model {model_id}")
    return row


def active(db: Session, task: str) -> RegisteredModel | None:
    return db.scalar(select(RegisteredModel).where(RegisteredModel.task == task,
                                                   RegisteredModel.state == "active"))


def listing(db: Session, task: str | None = None,
            state: str | None = None) -> list[RegisteredModel]:
    if state is not None and state not in STATES:
        raise LifecycleError(f"unknown state {state!r}; valid: {', '.join(STATES)}")
    query = select(RegisteredModel).order_by(RegisteredModel.task, RegisteredModel.id)
    if task is not None:
        query = query.where(RegisteredModel.task == task)
    if state is not None:
        query = query.where(RegisteredModel.state == state)
    return list(db.scalars(query))


def history(db: Session, task: str | None = None,
            model_id: int | None = None) -> list[ModelTransition]:
    query = select(ModelTransition).order_by(ModelTransition.id)
    if task is not None:
        query = query.where(ModelTransition.task == task)
    if model_id is not None:
        query = query.where(ModelTransition.model_id == model_id)
    return list(db.scalars(query))


def _move(db: Session, row: RegisteredModel, new: str, reason: str, actor: audit.Actor,
          override: bool = False) -> None:
    old = row.state
    row.state, row.state_at = new, utcnow()
    db.flush()  # the one-active index speaks now, inside the transaction
    _transition(db, row, old, new, reason, actor, override)


def _activate(db: Session, row: RegisteredModel, reason: str, actor: audit.Actor,
              override: bool = False) -> RegisteredModel | None:
    """Make ``row`` the task's active model; the one it replaces is retired (returned)."""
    current = active(db, row.task)
    if current is not None:
        _move(db, current, "retired", f"replaced by model {row.id}: {reason}", actor)
    _move(db, row, "active", reason, actor, override)
    return current


def promote(db: Session, model_id: int, actor: audit.Actor, reason: str | None,
            override: bool = False) -> RegisteredModel | None:
    """Make a registered model the active one of its task; returns the model it replaced.
    Without ``override`` the site validation must clear it (``validation.verdict``)."""
    from medai.platform.lifecycle import validation

    reason = _reason(reason)
    row = get(db, model_id)
    require_served(row.task, "promoted")
    if row.state == "active":
        raise MoveRefused(f"model {model_id} is already the active {row.task} model")
    if row.state not in MOVES["active"]:
        raise MoveRefused(f"model {model_id} is {row.state}; only "
                          f"{', '.join(MOVES['active'])} models can be promoted")
    if not override:
        verdict = validation.verdict(db, row)
        if not verdict.passed:
            refused = PromotionRefused(f"{verdict.message}; an admin may promote it anyway "
                                       "with an override and a reason")
            refused.code = verdict.code  # no_site_set | not_validated | not_non_inferior
            raise refused
    return _activate(db, row, reason, actor, override)


def set_state(db: Session, model_id: int, state: str, actor: audit.Actor,
              reason: str | None) -> RegisteredModel:
    """Move a model to ``shadow`` or ``retired`` (``active`` goes through ``promote``)."""
    reason = _reason(reason)
    if state not in ("shadow", "retired"):
        raise LifecycleError(f"cannot set state {state!r} here; valid: shadow, retired "
                             "(promote makes a model active)")
    row = get(db, model_id)
    if state == "shadow":
        require_served(row.task, "run in shadow")
    if row.state not in MOVES[state]:
        hint = (" (promote another model or roll back to replace the active one)"
                if row.state == "active" else "")
        raise MoveRefused(f"model {model_id} is {row.state}; only "
                          f"{', '.join(MOVES[state])} models can become {state}{hint}")
    _move(db, row, state, reason, actor)
    return row


def rollback(db: Session, task: str, actor: audit.Actor,
             reason: str | None) -> tuple[RegisteredModel, RegisteredModel]:
    """Re-activate the model that was active before the current one (the current one is
    retired); returns (restored, replaced)."""
    reason = _reason(reason)
    current = active(db, task)
    if current is None:
        raise MoveRefused(f"no active {task} model to roll back")
    earlier = db.scalars(select(ModelTransition.model_id).where(
        ModelTransition.task == task, ModelTransition.to_state == "active",
        ModelTransition.model_id != current.id).order_by(ModelTransition.id.desc()))
    for model_id in earlier:
        previous = db.get(RegisteredModel, model_id)
        if previous is not None and previous.state == "retired":
            _activate(db, previous, f"rollback: {reason}", actor)
            return previous, current
    raise MoveRefused(f"no earlier {task} model to roll back to")


def as_dict(row: RegisteredModel, card: bool = False) -> dict[str, Any]:
    from medai.services.models import served_tasks

    out = {"id": row.id, "task": row.task, "name": row.name, "version": row.version,
           # False: kept as a record only (the red-flag engine); no move applies to it
           "served": row.task in served_tasks(),
           "model_type": row.model_type, "content_hash": row.content_hash,
           "state": row.state, "source": row.source, "path": row.path,
           "registered_by": row.registered_by, "registered_at": iso_utc(row.registered_at),
           "state_at": iso_utc(row.state_at),
           "metrics": {k: v for k, v in ((row.card or {}).get("metrics") or {}).items()
                       if isinstance(v, int | float | str | bool)}}
    if card:
        out["card"] = {k: v for k, v in (row.card or {}).items() if k != "training_command"}
    return out


def transition_dict(t: ModelTransition) -> dict[str, Any]:
    return {"id": t.id, "model_id": t.model_id, "task": t.task, "from": t.from_state,
            "to": t.to_state, "reason": t.reason, "actor": t.actor, "override": t.override,
            "at": iso_utc(t.at)}
