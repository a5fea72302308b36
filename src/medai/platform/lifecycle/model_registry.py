"""The model registry: which sealed model directories a hospital holds for each task, and
which one serves.

States: ``candidate`` → ``shadow`` → ``active`` → ``retired``; exactly one ``active`` per task
(the database refuses a second). Every change of state is a ``model_transitions`` row and an
audit event, each with its reason and who made it. Promotion needs the site validation to
find the candidate non-inferior (``validation``) or an admin's override with a reason;
rollback re-activates the model that was active before the current one (``rollback_target``).

What identifies a model is its **content hash**: the sha256 of every file in its directory
(weights, configuration, gate, operating points, ONNX export, …) except its own
``model_card.json`` and the ``evaluation/`` and ``checkpoints/`` folders (``HASHED``). A copy
whose card alone was edited is the same model: registering it is refused
(``AlreadyRegistered``, 409 ``already_registered``), naming the model registered with that
hash, unless the card is unchanged (then the existing row is the answer). A model's **name and
version** name one set of files per task: registering other files under a name and version the
task already has is refused (``VersionTaken``, 409 ``version_taken``) — results, reports and the
audit log cite the name and version, and a hospital's ML engineer reads "cxr-site 2026-11" as
one artefact, so two must never share it; the card's version is edited instead (the card is
outside the content hash: no reseal). Wherever a version is shown to people it travels with a
short content hash (``display_version``), so rows registered before this rule are told apart
too.

Plain functions over a session, shared by the CLI, the API and the first start."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from medai.core import model_dir as model_dirs
from medai.core import task_registry
from medai.core.errors import MedaiError
from medai.platform.access import audit
from medai.platform.lifecycle import model_store
from medai.platform.records.db import utcnow
from medai.platform.records.localtime import iso_utc
from medai.platform.records.tables import ModelTransition, RegisteredModel
from medai.services import tracking
from medai.services.model_handles import served_tasks

STATES = ("candidate", "shadow", "active", "retired")
# the states each move starts from (promote: to active; rollback goes through ``rollback``)
MOVES: dict[str, tuple[str, ...]] = {
    "active": ("candidate", "shadow", "retired"),
    "shadow": ("candidate", "retired"),
    "retired": ("candidate", "shadow"),
}
MAX_REASON = 400


class LifecycleError(MedaiError, ValueError):
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


class AlreadyRegistered(LifecycleError):
    """These files are registered already, under another card (the card is not the model)."""

    status, code = 409, "already_registered"


class VersionTaken(LifecycleError):
    """Another set of files is registered under this task, name and version."""

    status, code = 409, "version_taken"


class NoRollbackTarget(MoveRefused):
    """No model was active before the current one (or each was rolled back from)."""

    code = "no_rollback_target"


class RollbackTargetChanged(MoveRefused):
    """The rollback target is no longer the one the admin confirmed."""

    code = "rollback_target_changed"


class EmptySiteSet(LifecycleError):
    """A site set with no study: nothing to freeze, or nothing to validate on (the site's
    state, not the request, is wrong: 409; the CLI exits 2, refused as asked)."""

    status, code = 409, "empty_site_set"


class PromotionRefused(LifecycleError):
    """Site validation did not clear the candidate and no override was given (``code``:
    ``no_site_set``, ``empty_site_set``, ``not_validated``, ``validation_inconclusive`` or
    ``not_non_inferior``)."""

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
        spec = task_registry.get(task)
    except task_registry.TaskError as exc:
        raise ModelRefused(str(exc)) from None
    if card.task != task:
        raise ModelRefused(f"{directory} is a {card.task!r} model, not {task!r}")
    if not card.labels:
        raise ModelRefused(f"{directory}: its card names no labels")
    unknown = sorted(lab for lab in card.labels if lab not in spec.labels) if spec.labels else []
    if unknown:
        raise ModelRefused(
            f"{directory}: labels {unknown} are not labels of the {task} task "
            f"(valid: {', '.join(spec.labels)})"
        )
    if not card.content_hash:
        raise ModelRefused(
            f"{directory}: not sealed (its card has no content hash); seal it "
            "with `medai models reseal` if you trust its files"
        )
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

    served = served_tasks()
    if task not in served:
        hint = (
            " (the red-flag engine serves from the sealed folder MEDAI_RED_FLAG_RULES "
            "names: docs/red-flag-rules.md)"
            if task.startswith("red_flag")
            else ""
        )
        raise NotServed(
            f"{task} models are kept in the registry as a record and are not "
            f"served through it, so one cannot be {what}{hint}; served tasks: "
            f"{', '.join(served)}"
        )


def reason_of(reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise LifecycleError("a reason is required (it is kept in the audit log)")
    if len(text) > MAX_REASON:
        raise LifecycleError(f"the reason is longer than {MAX_REASON} characters")
    return text


# what the content hash covers (core.results.directory_hash)
HASHED = (
    "the sha256 content hash of its files (every file in its directory except "
    "model_card.json, evaluation/ and checkpoints/)"
)


def short_hash(content_hash: str) -> str:
    """The first 12 hex digits of a content hash: enough to tell two models apart."""
    return content_hash.split(":", 1)[-1][:12]


def display_version(row: RegisteredModel) -> str:
    """A model's version as people read it: the version and a short content hash, so two
    different models never read alike."""
    return f"{row.version} · {short_hash(row.content_hash)}"


def describe(row: RegisteredModel) -> str:
    """``#3 cxr-site version 2026-11 (active, sha256:1a2b3c4d5e6f…)``"""
    return (
        f"#{row.id} {row.name} version {row.version} ({row.state}, "
        f"sha256:{short_hash(row.content_hash)}…)"
    )


def already_note(row: RegisteredModel) -> str:
    """What a registration of files already registered says (the same card again)."""
    return (
        f"these files are already registered as model {describe(row)}: a model is "
        f"identified by {HASHED}; nothing new was registered (use model {row.id})"
    )


def find(db: Session, task: str, content_hash: str) -> RegisteredModel | None:
    return db.scalar(
        select(RegisteredModel).where(
            RegisteredModel.task == task, RegisteredModel.content_hash == content_hash
        )
    )


def _card_json(card: dict[str, Any] | None) -> str:
    return json.dumps(
        {k: v for k, v in (card or {}).items() if k != "content_hash"}, sort_keys=True, default=str
    )


def _card_edited(directory: Path, card: model_dirs.ModelCard, registered: dict | None) -> bool:
    """Whether ``directory``'s card differs from the card registered with the same files (a
    field the card file leaves out, filled in when read — its date, medai's version — is
    not an edit)."""
    incoming = card.to_dict()
    try:
        written = json.loads((Path(directory) / model_dirs.CARD_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        written = incoming
    for key in ("created_at", "medai_version"):
        if key not in written:
            incoming[key] = (registered or {}).get(key)
    return _card_json(incoming) != _card_json(registered)


def register(
    db: Session,
    home: Path,
    directory: Path,
    actor: audit.Actor,
    task: str | None = None,
    source: str | None = None,
    state: str = "candidate",
    reason: str = "registered",
    edited_card: str = "refuse",
) -> tuple[RegisteredModel, bool]:
    """Copy a sealed model directory into the store and record it (``state``: ``candidate``,
    or ``active`` on a first start); returns the row and whether it is new.

    A model is identified by its content hash (``HASHED``: its files, not its card). The same
    files with the same card again give the existing row (``new`` false, ``already_note`` says
    so). The same files under an edited card are refused with ``AlreadyRegistered``, which
    names the model registered with that hash (``edited_card="existing"``: the existing row
    instead, as a server's first start does). Other files under a name and version the task
    already has are refused with ``VersionTaken`` (see the module docstring)."""
    checked = check_directory(directory, task)
    card, content_hash = checked.card, checked.content_hash
    existing = find(db, card.task, content_hash)
    if existing is not None:
        if edited_card == "existing" or not _card_edited(directory, card, existing.card):
            return existing, False
        raise AlreadyRegistered(
            f"these files are already registered: model {describe(existing)}. A model is "
            f"identified by {HASHED}: a copy with only its card edited is the same model. Use "
            f"model {existing.id}, or change the files (retrain, re-export) and reseal them "
            "for a new one"
        )
    name = card.name or Path(directory).name
    version = (card.version or card.created_at)[:64]
    clash = db.scalar(
        select(RegisteredModel).where(
            RegisteredModel.task == card.task,
            RegisteredModel.name == name[:128],
            RegisteredModel.version == version,
        )
    )
    if clash is not None:
        raise VersionTaken(
            f"{card.task} model {name!r} version {version!r} is already registered with other "
            f"files (model #{clash.id}, {clash.state}, sha256:{short_hash(clash.content_hash)}…"
            f"; these are sha256:{short_hash(content_hash)}…). A name and version name one set "
            "of files: give this model its own version in its model_card.json (outside the "
            "content hash: no reseal needed) and register it again"
        )
    relative = model_store.store(home, Path(directory), content_hash, name)
    now = utcnow()
    row = RegisteredModel(
        task=card.task,
        name=name[:128],
        version=version,
        model_type=card.model_type[:32],
        content_hash=content_hash,
        path=relative,
        state=state,
        source=(source or str(directory))[:255],
        card=card.to_dict(),
        registered_by=actor.name[:64],
        registered_at=now,
        state_at=now,
    )
    db.add(row)
    db.flush()
    _transition(db, row, None, state, reason, actor)
    return row, True


def _transition(
    db: Session,
    row: RegisteredModel,
    old: str | None,
    new: str,
    reason: str,
    actor: audit.Actor,
    override: bool = False,
) -> None:
    db.add(
        ModelTransition(
            model_id=row.id,
            task=row.task,
            from_state=old,
            to_state=new,
            reason=reason,
            actor=actor.name[:64],
            override=override,
        )
    )
    audit.record(
        db,
        actor,
        "model",
        "model",
        row.id,
        task=row.task,
        to=new,
        **{"from": old},  # type: ignore[arg-type]  # "from": a detail key, not a parameter
        content_hash=row.content_hash,
        reason=reason,
        override=override,
    )


def get(db: Session, model_id: int) -> RegisteredModel:
    row = db.get(RegisteredModel, model_id)
    if row is None:
        raise NoSuchModel(f"no registered model {model_id}")
    return row


def active(db: Session, task: str) -> RegisteredModel | None:
    return db.scalar(
        select(RegisteredModel).where(
            RegisteredModel.task == task, RegisteredModel.state == "active"
        )
    )


def listing(
    db: Session, task: str | None = None, state: str | None = None
) -> list[RegisteredModel]:
    if state is not None and state not in STATES:
        raise LifecycleError(f"unknown state {state!r}; valid: {', '.join(STATES)}")
    query = select(RegisteredModel).order_by(RegisteredModel.task, RegisteredModel.id)
    if task is not None:
        query = query.where(RegisteredModel.task == task)
    if state is not None:
        query = query.where(RegisteredModel.state == state)
    return list(db.scalars(query))


def history(
    db: Session, task: str | None = None, model_id: int | None = None
) -> list[ModelTransition]:
    query = select(ModelTransition).order_by(ModelTransition.id)
    if task is not None:
        query = query.where(ModelTransition.task == task)
    if model_id is not None:
        query = query.where(ModelTransition.model_id == model_id)
    return list(db.scalars(query))


def _move(
    db: Session,
    row: RegisteredModel,
    new: str,
    reason: str,
    actor: audit.Actor,
    override: bool = False,
) -> None:
    old = row.state
    row.state, row.state_at = new, utcnow()
    db.flush()  # the one-active index speaks now, inside the transaction
    _transition(db, row, old, new, reason, actor, override)


def activate(
    db: Session, row: RegisteredModel, reason: str, actor: audit.Actor, override: bool = False
) -> RegisteredModel | None:
    """Make ``row`` the task's active model; the one it replaces is retired (returned)."""
    current = active(db, row.task)
    if current is not None:
        _move(db, current, "retired", f"replaced by model {row.id}: {reason}", actor)
    _move(db, row, "active", reason, actor, override)
    return current


def set_state(
    db: Session, model_id: int, state: str, actor: audit.Actor, reason: str | None
) -> RegisteredModel:
    """Move a model to ``shadow`` or ``retired`` (``active`` goes through ``promote``)."""
    reason = reason_of(reason)
    if state not in ("shadow", "retired"):
        raise LifecycleError(
            f"cannot set state {state!r} here; valid: shadow, retired "
            "(promote makes a model active)"
        )
    row = get(db, model_id)
    if state == "shadow":
        require_served(row.task, "run in shadow")
    if row.state not in MOVES[state]:
        hint = (
            " (promote another model or roll back to replace the active one)"
            if row.state == "active"
            else ""
        )
        raise MoveRefused(
            f"model {model_id} is {row.state}; only "
            f"{', '.join(MOVES[state])} models can become {state}{hint}"
        )
    _move(db, row, state, reason, actor)
    return row


ROLLBACK = "rollback: "  # the reason of a rollback's activation starts so (``activate``)


def _active_stack(db: Session, task: str) -> tuple[list[int], set[int]]:
    """The task's activations as rollbacks left them, oldest first (the top is the model
    active now), and the models rolled back from. Walks ``model_transitions``: a promotion (or
    a first start) puts its model on top; a rollback takes the model it rolled back from off
    the top (it is never a target again, unless promoted again afterwards)."""
    stack: list[int] = []
    rolled_back_from: set[int] = set()
    for t in db.scalars(
        select(ModelTransition)
        .where(ModelTransition.task == task, ModelTransition.to_state == "active")
        .order_by(ModelTransition.id)
    ):
        if t.reason.startswith(ROLLBACK):
            if stack:
                rolled_back_from.add(stack.pop())
            if not stack or stack[-1] != t.model_id:  # a history that went another way
                stack = [m for m in stack if m != t.model_id] + [t.model_id]
        else:
            rolled_back_from.discard(t.model_id)
            stack.append(t.model_id)
    return stack, rolled_back_from


def rollback_target(db: Session, task: str) -> tuple[RegisteredModel, RegisteredModel]:
    """(current, target): the task's active model and the model that was active before it —
    never one that was rolled back from. NoRollbackTarget (409 ``no_rollback_target``) says
    why there is none."""
    current = active(db, task)
    if current is None:
        raise NoRollbackTarget(f"no active {task} model to roll back")
    stack, rolled_back_from = _active_stack(db, task)
    while stack and stack[-1] != current.id:
        stack.pop()
    for model_id in reversed(stack[:-1]):
        if model_id == current.id or model_id in rolled_back_from:
            continue
        previous = db.get(RegisteredModel, model_id)
        if previous is not None and previous.state in ("retired", "shadow"):
            return current, previous
        break  # the model active before the current one cannot come back
    gone = sorted(rolled_back_from - {current.id})
    why = (
        f"; rolled back from, so never re-activated by a rollback: "
        f"{', '.join(f'#{m}' for m in gone)} (promote one to serve it again)"
        if gone
        else ""
    )
    raise NoRollbackTarget(
        f"no earlier {task} model to roll back to: no model was active "
        f"before model {describe(current)}{why}"
    )


def rollback(
    db: Session, task: str, actor: audit.Actor, reason: str | None, expected: int | None = None
) -> tuple[RegisteredModel, RegisteredModel]:
    """Re-activate the model that was active before the current one (``rollback_target``: a
    model rolled back from never comes back this way; the current one is retired); returns
    (restored, replaced). ``expected``: the target the admin confirmed (RollbackTargetChanged
    when it is no longer the one)."""
    reason = reason_of(reason)
    current, previous = rollback_target(db, task)
    if expected is not None and previous.id != expected:
        raise RollbackTargetChanged(
            f"the {task} rollback now goes to model "
            f"{describe(previous)}, not model {expected}; look again "
            "and confirm"
        )
    activate(db, previous, f"{ROLLBACK}{reason}", actor)
    return previous, current


def rollback_preview(db: Session, task: str) -> dict[str, Any] | None:
    """The model a rollback of ``task`` would re-activate, briefly (None: no rollback)."""
    try:
        _, target = rollback_target(db, task)
    except NoRollbackTarget:
        return None
    return {
        "id": target.id,
        "name": target.name,
        "version": target.version,
        "display_version": display_version(target),
        "content_hash": target.content_hash,
        "state": target.state,
    }


def as_dict(row: RegisteredModel, card: bool = False) -> dict[str, Any]:

    out = {
        "id": row.id,
        "task": row.task,
        "name": row.name,
        "version": row.version,
        # the version as people read it: with a short content hash (two models differ)
        "display_version": display_version(row),
        # False: kept as a record only (the red-flag engine); no move applies to it
        "served": row.task in served_tasks(),
        "model_type": row.model_type,
        "content_hash": row.content_hash,
        "state": row.state,
        "source": row.source,
        "path": row.path,
        "registered_by": row.registered_by,
        "registered_at": iso_utc(row.registered_at),
        "state_at": iso_utc(row.state_at),
        "metrics": {
            k: v
            for k, v in ((row.card or {}).get("metrics") or {}).items()
            if isinstance(v, int | float | str | bool)
        },
    }
    if card:
        out["card"] = {k: v for k, v in (row.card or {}).items() if k != "training_command"}
    return out


def view(db: Session, model_id: int) -> dict[str, Any]:
    """One registered model as people read it: its row and card (``as_dict``) and every
    change of its state, oldest first (``history``: ``transition_dict`` each)."""
    row = get(db, model_id)
    return {
        **as_dict(row, card=True),
        "history": [transition_dict(t) for t in history(db, model_id=row.id)],
    }


def registration(
    db: Session,
    home: Path,
    directory: Path,
    actor: audit.Actor,
    task: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """``register`` a candidate from ``directory`` (fetched by the caller: ``fetched``) and
    say what was registered: its row (``as_dict``), ``new``, and when not new a ``note``
    (``already_note``: these files were registered already)."""
    row, new = register(db, home, directory, actor, task=task, source=source)
    out = {**as_dict(row), "new": new}
    if not new:
        out["note"] = already_note(row)
    return out


def transition_dict(t: ModelTransition) -> dict[str, Any]:
    return {
        "id": t.id,
        "model_id": t.model_id,
        "task": t.task,
        "from": t.from_state,
        "to": t.to_state,
        "reason": t.reason,
        "actor": t.actor,
        "override": t.override,
        "at": iso_utc(t.at),
    }
