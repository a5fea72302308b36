"""`medai audit export`: the audit log, for the hospital's records."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from medai.cli.common import JsonFlag, _emit
from medai.cli.operations import open_database
from medai.platform.access import audit
from medai.platform.access.audit import export_jsonl

audit_app = typer.Typer(no_args_is_help=True)  # its help: COMMANDS in medai.cli


@audit_app.command("list")
def audit_list(
    study: Annotated[int | None, typer.Option(min=1, help="Only events about this study.")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action (e.g. sign).")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor's events.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    oldest_first: Annotated[
        bool, typer.Option("--oldest-first", help="Oldest first (default: newest first).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """A page of the audit log, newest first, with how many events match in all."""

    with open_database().session() as db:
        page = audit.read_log(
            db,
            None,  # the server's own CLI: the read is not audited
            action=action,
            actor=actor,
            limit=limit,
            offset=offset,
            study_id=study,
            order="asc" if oldest_first else "desc",
        )
    items, total = page["items"], page["total"]
    lines = [
        f"{e['at']}  {e['actor']:<16} {e['action']:<10} "
        f"{e['target_type'] or '-'} {e['target_name'] or e['target_id'] or ''}"
        f"{'' if e['study_id'] is None else '  study ' + str(e['study_id'])}"
        f"{'' if e['outcome'] == 'ok' else '  ' + e['outcome'].upper()}"
        for e in items
    ]
    lines.append(f"{offset + 1 if items else 0}–{offset + len(items)} of {total}")
    _emit(
        {"items": items, "total": total, "limit": limit, "offset": offset},
        as_json,
        "\n".join(lines),
    )


@audit_app.command("export")
def audit_export(
    out: Annotated[str, typer.Option(help="File to write (JSON lines); '-' for stdout.")] = "-",
) -> None:
    """Every audit event, oldest first, one JSON object per line."""

    with open_database().session() as db:
        if out == "-":
            n = export_jsonl(db, sys.stdout)
        else:
            with open(out, "w", encoding="utf-8") as fh:
                n = export_jsonl(db, fh)
    typer.echo(f"{n} events", err=True)
