"""`medai db upgrade`: the platform database's schema."""

from __future__ import annotations

import typer

from medai.cli.common import JsonFlag
from medai.cli.operations import migrate

db_app = typer.Typer(no_args_is_help=True)  # its help: COMMANDS in medai.cli


@db_app.command("upgrade")
def db_upgrade(as_json: JsonFlag = False) -> None:
    """Apply the database migrations: the same as `medai migrate` (serve, the workers and
    the DICOM node do it on start too unless MEDAI_AUTO_MIGRATE=false)."""

    migrate(as_json)
