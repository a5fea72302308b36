"""``medai dataset export``: the site's signed studies of one task as a training set."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from medai.cli.common import JsonFlag, _emit, _error
from medai.cli.operations import platform_or_exit
from medai.core.task_registry import TaskError
from medai.core.task_registry import get as get_task
from medai.platform.access import audit
from medai.platform.lifecycle import dataset

dataset_app = typer.Typer(no_args_is_help=True)  # its help: COMMANDS in medai.cli


def light_platform(as_json: bool = False):
    """The database, the blob store and MEDAI_HOME, without registering or loading models
    (exit 3 ``keys_missing`` where the site's keys are not configured)."""

    return platform_or_exit(as_json, adopt_models=False)


def parse_since(since: str | None, as_json: bool) -> datetime | None:
    if since is None:
        return None
    try:
        return datetime.fromisoformat(since)
    except ValueError:
        _error(f"--since {since!r}: give a date (YYYY-MM-DD) or ISO time", "ValueError", as_json, 2)


@dataset_app.command("export")
def dataset_export(
    task: Annotated[str, typer.Option("--task", help="cxr, mri or another imaging task.")],
    out: Annotated[Path, typer.Option("--out", help="A new (or empty) folder.")],
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only studies signed since this date (YYYY-MM-DD)."),
    ] = None,
    deidentify: Annotated[
        bool,
        typer.Option(
            "--deidentify", help="DICOM PS3.15 Basic Profile; PNG/JPEG re-encoded from pixels."
        ),
    ] = False,
    exclude_site_set: Annotated[
        bool,
        typer.Option(
            "--exclude-site-set", help="Leave out the studies held out for site validation."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write the labelled studies (labels of each study's latest signed version) as
    ``manifest.csv`` + ``images/`` for `medai imaging train --data`, with a datasheet."""

    try:
        get_task(task)
    except TaskError as exc:
        _error(str(exc), "TaskError", as_json, 2)
    when = parse_since(since, as_json)
    p = light_platform(as_json)
    try:
        sheet = dataset.export(
            p, task, out, since=when, deidentify=deidentify, exclude_site_set=exclude_site_set
        )
        with p.db.session() as db:
            audit.record(
                db,
                audit.Actor("cli"),
                "export",
                "dataset",
                None,
                task=task,
                studies=sheet["studies"],
                deidentified=deidentify,
                content_hash=sheet["content_hash"],
            )
    except dataset.DatasetError as exc:
        _error(str(exc), "DatasetError", as_json, 2, exc.code)
    finally:
        p.db.dispose()
    _emit(
        {**sheet, "out": str(out)},
        as_json,
        f"{sheet['studies']} {task} studies → {out} ({sheet['content_hash'][:19]}…); "
        f"labels: {sheet['label_counts']}",
    )
