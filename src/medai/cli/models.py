"""`medai models …`: the model registry (register, list, show, shadow, promote, roll back,
retire) and the sealed model directories on disk."""

from __future__ import annotations

import contextlib
import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer

from medai.cli.common import JsonFlag, _emit, _error, _guard
from medai.cli.dataset import light_platform, parse_since
from medai.cli.operations import open_database
from medai.core.model_dir import list_models, read_card, reseal
from medai.core.task_registry import TaskError
from medai.platform.access.audit import Actor
from medai.platform.lifecycle import dataset, model_registry, retrain, site_sets, validation
from medai.platform.lifecycle.validation import as_dict
from medai.platform.records.tables import Validation
from medai.services.model_handles import model_folder
from medai.services.tracking import PREFIX
from medai.settings import get_settings
from medai.triage.red_flags.identity import seal

models_app = typer.Typer(no_args_is_help=True)  # its help: COMMANDS in medai.cli
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")]


def _actor():

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(f"cli:{user}"[:64])


@contextlib.contextmanager
def _registry(as_json: bool):
    """A session on MEDAI_DATABASE_URL (migrated), the store's home, and registry errors as
    the CLI's error contract (2: refused as asked, 1: not found or a conflict)."""

    db = open_database(as_json)
    try:
        with db.session() as s:
            yield s, get_settings().storage.home
    except model_registry.LifecycleError as exc:
        _error(str(exc), exc.code, as_json, 2 if exc.status == 422 else 1)
    finally:
        db.dispose()


def _row_line(r: dict) -> str:
    return (
        f"{r['id']:>4}  {r['task']:<8} {r['state']:<10} {r['name'][:28]:<28} "
        f"{r['version'][:20]:<20} {r['content_hash'][:19]}"
    )


@models_app.command("register")
def models_register(
    source: Annotated[
        str,
        typer.Argument(
            help="A sealed model directory, or mlflow:RUN_ID "
            "(the run's model, from MLFLOW_TRACKING_URI)."
        ),
    ],
    task: Annotated[
        str | None,
        typer.Option(
            "--task", help="The task it is for (default: its card's); refused if they differ."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy a sealed model directory into the registry's content-addressed store as a
    candidate. A model is identified by the content hash of its files (all but its
    model_card.json): the same files again give the same entry; the same files under an
    edited card, or other files under a name and version already registered, are refused
    (exit 1) saying which model holds them."""

    tracked = source.startswith(PREFIX)
    if not tracked and not Path(source).is_dir():
        _error(f"{source}: no such model directory", "model_refused", as_json, 2)
    with _registry(as_json) as (db, home), model_registry.fetched(source) as directory:
        out = model_registry.registration(
            db, home, directory.resolve(), _actor(), task=task, source=source if tracked else None
        )
    new = out["new"]
    _emit(
        out,
        as_json,
        f"registered: {_row_line(out)}"
        if new
        else f"already registered: {out['note']}\n{_row_line(out)}",
    )


@models_app.command("list")
def models_list(
    task: Annotated[str | None, typer.Option("--task", help="Only this task.")] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="candidate, shadow, active or retired.")
    ] = None,
    dirs: Annotated[
        bool,
        typer.Option(
            "--dirs",
            help="List the model directories on disk "
            "(bundled, MEDAI_MODELS_DIR, --path) "
            "instead of the registry.",
        ),
    ] = False,
    path: Annotated[
        list[Path] | None, typer.Option("--path", help="Extra folder(s) to scan (implies --dirs).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The registered models with their states (or, with --dirs, the directories on disk)."""
    if dirs or path:
        _list_dirs(path, as_json)
        return

    with _registry(as_json) as (db, _):
        rows = [model_registry.as_dict(r) for r in model_registry.listing(db, task, state)]
    _emit(
        {"models": rows},
        as_json,
        "\n".join(_row_line(r) for r in rows)
        or "no registered models (the first `medai serve` registers the bundled ones)",
    )


def _list_dirs(path: list[Path] | None, as_json: bool) -> None:

    rows = [
        {
            "name": card.name or d.name,
            "path": str(d),
            "task": card.task,
            "model_type": card.model_type,
            "labels": len(card.labels),
            "macro_f1": card.metrics.get("macro_f1"),
            "created_at": card.created_at,
        }
        for d, card in list_models(path, get_settings().storage.models_dir)
    ]
    human = (
        "\n".join(
            f"{r['name']:<28} {r['task']:<8} {r['model_type']:<14} "
            f"labels={r['labels']:<3} macro_f1="
            f"{'-' if r['macro_f1'] is None else format(r['macro_f1'], '.4f')}  "
            f"{r['path']}"
            for r in rows
        )
        or "no models found"
    )
    _emit({"models": rows}, as_json, human)


@models_app.command("show")
def models_show(
    model: Annotated[
        str, typer.Argument(help="A registered model's id, or a directory or name on disk.")
    ],
    as_json: JsonFlag = False,
) -> None:
    """A registered model (card and history of states), or a directory's card."""
    if model.isdigit():
        with _registry(as_json) as (db, _):
            out = model_registry.view(db, int(model))
            out["validations"] = _validations(db, out["id"])
        _emit(out, as_json)
        return

    with _guard(as_json):
        directory = model_folder(model, "triage")
        card = read_card(directory).to_dict()
    card["path"] = str(directory)
    _emit(card, as_json)


def _validations(db, model_id: int) -> list[dict]:
    from sqlalchemy import select

    return [
        as_dict(v)
        for v in db.scalars(
            select(Validation).where(Validation.model_id == model_id).order_by(Validation.id)
        )
    ]


def _moved(out: dict, as_json: bool, verb: str) -> None:
    _emit(out, as_json, f"{verb}: {_row_line(out)}")


@models_app.command("promote")
def models_promote(
    model_id: Annotated[int, typer.Argument(help="The registered model's id.")],
    reason: ReasonOpt,
    override: Annotated[
        bool, typer.Option("--override", help="Promote although site validation did not clear it.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Make a model the active one of its task; every serve process and worker swaps to it
    within MEDAI_MODEL_WATCH_S, without a restart (the replaced one is retired)."""

    with _registry(as_json) as (db, _):
        out = validation.promote_model(db, model_id, _actor(), reason, override)
    _moved(out, as_json, "active")


@models_app.command("rollback")
def models_rollback(
    task: Annotated[str, typer.Option("--task", help="The task to roll back.")],
    reason: ReasonOpt,
    as_json: JsonFlag = False,
) -> None:
    """Re-activate the model that was active before the current one (which is retired); a
    model rolled back from is never re-activated this way (exit 1, ``no_rollback_target``,
    when there is none)."""

    with _registry(as_json) as (db, _):
        restored, replaced = model_registry.rollback(db, task, _actor(), reason)
        out = {**model_registry.as_dict(restored), "replaced": replaced.id}
    _moved(out, as_json, "rolled back to")


def _set_state(model_id: int, state: str, reason: str, as_json: bool) -> None:

    with _registry(as_json) as (db, _):
        out = model_registry.as_dict(
            model_registry.set_state(db, model_id, state, _actor(), reason)
        )
    _moved(out, as_json, state)


@models_app.command("shadow")
def models_shadow(
    model_id: Annotated[int, typer.Argument(help="The registered model's id.")],
    reason: ReasonOpt,
    as_json: JsonFlag = False,
) -> None:
    """Run a candidate in shadow: it analyses live studies too, its results never shown."""
    _set_state(model_id, "shadow", reason, as_json)


@models_app.command("retire")
def models_retire(
    model_id: Annotated[int, typer.Argument(help="The registered model's id.")],
    reason: ReasonOpt,
    as_json: JsonFlag = False,
) -> None:
    """Retire a candidate or shadow model (the active one is replaced by promote or
    rollback)."""
    _set_state(model_id, "retired", reason, as_json)


@models_app.command("reseal")
def models_reseal(
    model: Annotated[Path, typer.Argument(help="Model directory.")], as_json: JsonFlag = False
) -> None:
    """Record the present files' content hash in the card, after you changed them on purpose
    (a model whose files differ from its card is refused at load)."""

    with _guard(as_json):
        if read_card(model).task == "red_flags":  # validated and re-embedded, not just hashed
            content_hash = seal(model)["content_hash"]
        else:
            content_hash = reseal(model).content_hash
    _emit({"path": str(model), "content_hash": content_hash}, as_json, f"{model}: {content_hash}")


@models_app.command("retrain")
def models_retrain(
    task: Annotated[str, typer.Option("--task", help="The imaging task to retrain.")],
    work: Annotated[
        Path,
        typer.Option("--work", help="A new folder for the exported data and the trained model."),
    ],
    since: Annotated[
        str | None, typer.Option("--since", help="Only studies signed since this date.")
    ] = None,
    epochs: int = 5,
    image_size: int = 224,
    batch_size: int = 16,
    min_studies: Annotated[int, typer.Option(help="Refuse with fewer labelled studies.")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Export the task's signed studies (de-identified), train on them and register the
    model as a candidate whose card names the data (study ids, label counts, dates, hash)."""

    when = parse_since(since, as_json)
    p = light_platform(as_json)
    refused = None
    try:
        with _guard(as_json), contextlib.redirect_stdout(sys.stderr):  # progress: stderr
            try:
                out = retrain.retrain(
                    p,
                    task,
                    work,
                    _actor(),
                    since=when,
                    min_studies=min_studies,
                    epochs=epochs,
                    image_size=image_size,
                    batch_size=batch_size,
                )
            except dataset.DatasetError as exc:
                refused = exc
    finally:
        p.db.dispose()
    if refused is not None:
        _error(str(refused), "DatasetError", as_json, 2, refused.code)
    m = out["model"]
    _emit(
        out,
        as_json,
        f"candidate {m['id']}: {m['name']} ({m['content_hash'][:19]}…) "
        f"trained on {out['datasheet']['studies']} signed studies; validate, "
        f"shadow and promote it with `medai models …`",
    )


@models_app.command("site-set")
def models_site_set(
    task: Annotated[str, typer.Option("--task", help="The task whose set to build.")],
    as_json: JsonFlag = False,
) -> None:
    """Freeze the task's held-out signed studies (MEDAI_SITE_SET_FRACTION of them, never used
    for retraining) as its next site evaluation set version; refused (exit 2,
    ``empty_site_set``) while no signed study with labels is held out."""

    with _registry(as_json) as (db, _):
        try:
            fraction = get_settings().models.site_set_fraction
            out = site_sets.as_dict(site_sets.build(db, task, _actor().name, fraction))
        except TaskError as exc:
            _error(str(exc), "TaskError", as_json, 2)
        except model_registry.EmptySiteSet as exc:  # refused as asked: nothing to freeze yet
            _error(str(exc), exc.code, as_json, 2)
    _emit(
        out,
        as_json,
        f"{task} site set v{out['version']}: {out['studies']} studies, "
        f"labels {out['label_counts']} ({out['content_hash'][:19]}…)",
    )


@models_app.command("validate")
def models_validate(
    model_id: Annotated[int, typer.Argument(help="The registered model's id.")],
    margin: Annotated[
        float | None, typer.Option(help="Non-inferiority margin (default MEDAI_VALIDATION_MARGIN).")
    ] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 500,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate a model beside the active one on the newest site set: per-label AUROC,
    sensitivity and PPV with intervals, per subgroup; the verdict decides whether it may be
    promoted without an override."""

    p = light_platform(as_json)
    try:
        v = validation.validate(p, model_id, _actor().name, margin=margin, n_boot=bootstrap)
    except model_registry.LifecycleError as exc:  # an empty site set: refused as asked (2)
        _error(
            str(exc),
            exc.code,
            as_json,
            2 if exc.status == 422 or isinstance(exc, model_registry.EmptySiteSet) else 1,
        )
    finally:
        p.db.dispose()
    out = validation.as_dict(v)
    said = {
        "passed": "PASSED",
        "not_non_inferior": "NOT PASSED",
        "inconclusive": "INCONCLUSIVE (not passed)",
    }[out["outcome"]]
    _emit(out, as_json, f"model {model_id}: {said} — {v.metrics.get('summary')}")
