"""`medai audit export`: the audit log, for the hospital's records."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from medai.cli.operations import open_database

audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)


@audit_app.command("export")
def audit_export(
    out: Annotated[str, typer.Option(help="File to write (JSON lines); '-' for stdout.")] = "-",
) -> None:
    """Every audit event, oldest first, one JSON object per line."""
    from medai.platform.audit import export_jsonl

    with open_database().session() as db:
        if out == "-":
            n = export_jsonl(db, sys.stdout)
        else:
            with open(out, "w", encoding="utf-8") as fh:
                n = export_jsonl(db, fh)
    typer.echo(f"{n} events", err=True)
