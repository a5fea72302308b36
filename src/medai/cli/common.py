"""Shared pieces of the ``medai`` CLI: the stable JSON output and the error contract."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from medai.core.errors import CODES, MedaiError
from medai.core.model_dir import ModelLoadError
from medai.core.text import TextInputError
from medai.services import tracking
from medai.triage.data import DataFormatError

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object (stable keys).")]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="Model directory or registered name; default: the bundled model."),
]


def _emit(obj: Any, as_json: bool, human: str | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    else:
        typer.echo(
            human
            if human is not None
            else json.dumps(obj, ensure_ascii=False, indent=2, default=str)
        )


@contextlib.contextmanager
def batch_output(out: Path | None, source: Path | None = None):
    """Where a batch writes its JSON lines: --out, else standard output. Never the input."""
    if out is None:
        yield sys.stdout
        return
    if source is not None and out.resolve() == source.resolve():
        raise ValueError(f"--out {out} is the input file; write the results elsewhere")
    with out.open("w", encoding="utf-8") as fh:
        yield fh


def report_batch(summary, out: Path | None, as_json: bool) -> None:
    """The batch's summary: on standard error while the rows went to standard output, else
    on standard output (``--json``: one JSON object). Exit status 1 when no row got a result
    (every row bad), 0 otherwise — bad rows are in the output, one line each."""
    data = summary.as_dict()
    outcomes = ", ".join(f"{k} {v}" for k, v in data["outcomes"].items())
    human = (
        f"{data['rows']} rows: {data['ok']} with a result, {data['errors']} bad "
        f"({data['seconds']} s)" + (f"; {outcomes}" if outcomes else "")
    )
    if out is None:
        typer.echo(human, err=True)
    else:
        _emit({"summary": data, "out": str(out)}, as_json, human)
    if data["rows"] and not data["ok"]:
        raise typer.Exit(1)


def track(summary: dict, task: str, params: dict) -> None:
    """With MLFLOW_TRACKING_URI set, log the finished training to MLflow and add
    ``mlflow: {run_id, experiment_id, uri}`` (or ``{error}``) to its summary."""

    if not tracking.enabled():
        return
    summary["mlflow"] = tracking.log_training(task, params, summary)
    if "error" in summary["mlflow"]:
        typer.echo(
            f"warning: the model is saved, but MLflow logging failed: {summary['mlflow']['error']}",
            err=True,
        )
    else:
        typer.echo(
            f"MLflow run {summary['mlflow']['run_id']} "
            f"(register it: medai models register mlflow:{summary['mlflow']['run_id']})",
            err=True,
        )


def _error(
    message: str, kind: str, as_json: bool, code: int, error_code: str | None = None
) -> NoReturn:
    """Say what went wrong (``--json``: ``{error, error_type, code}``, ``code`` a key of
    ``core.errors.CODES``: ``error_code``, else ``kind`` when it is one, else ``invalid`` for
    an exit 2 and ``internal`` otherwise) and exit with ``code``."""
    if as_json:
        if error_code is None:
            error_code = kind if kind in CODES else "invalid" if code == 2 else "internal"
        _emit({"error": message, "error_type": kind, "code": error_code}, True)
    else:
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _fail(exc: BaseException, as_json: bool, error_type: str | None = None) -> NoReturn:
    """Exit 2 for bad input (a ValueError, a missing file), else 1; ``--json``: ``{error,
    error_type, code}`` (the class name, or ``error_type``; the exception's code)."""

    bad_input = isinstance(exc, TextInputError | DataFormatError | ValueError | FileNotFoundError)
    if as_json:
        code = exc.code if isinstance(exc, MedaiError) else "invalid" if bad_input else "internal"
        kind = error_type or type(exc).__name__
        _emit({"error": str(exc), "error_type": kind, "code": code}, True)
    else:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2 if bad_input else 1)


@contextlib.contextmanager
def _guard(as_json: bool):

    try:
        yield
    except (
        TextInputError,
        DataFormatError,
        ModelLoadError,
        ValueError,
        FileNotFoundError,
        RuntimeError,
    ) as exc:
        _fail(exc, as_json)


def _distributed_child() -> bool:
    return os.environ.get("MEDAI_DISTRIBUTED_CHILD") == "1" or "LOCAL_RANK" in os.environ


def _relaunch_distributed(num_processes: int) -> None:
    """Re-run this very command as N processes (torchrun); Accelerate picks up the process group.

    On CPU the processes talk over gloo, on GPUs over NCCL, one GPU per process.
    """
    import subprocess

    args, skip = [], False
    for arg in sys.argv[1:]:  # the children must not relaunch themselves
        if skip:
            skip = False
        elif arg == "--num-processes":
            skip = True
        elif not arg.startswith("--num-processes="):
            args.append(arg)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(num_processes),
        "-m",
        "medai.cli",
        *args,
    ]
    env = dict(os.environ, MEDAI_DISTRIBUTED_CHILD="1")
    env.setdefault("OMP_NUM_THREADS", "1")
    raise typer.Exit(subprocess.call(cmd, env=env))


def relaunched(num_processes: int) -> bool:
    """True when this command was re-run as ``num_processes`` processes (then the caller
    returns); False in a single process or inside one of the children."""
    if num_processes > 1 and not _distributed_child():
        _relaunch_distributed(num_processes)
        return True
    return False
