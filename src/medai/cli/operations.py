"""Operating a site: ``medai migrate``, ``medai backup DEST``, ``medai restore SRC`` (the
work is in ``platform.records.db``, ``platform.ops.backup`` and ``platform.ops.restore``), and the
one way every long-running command opens the database (``open_database``: the site's keys checked
against its data, or exit 3 naming the key ids it needs; migrated, or exit 2 naming the
revisions, ``MEDAI_AUTO_MIGRATE``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from medai.cli.common import JsonFlag, _emit, _error
from medai.platform.boot import open_platform
from medai.platform.ops import backup as bk
from medai.platform.ops import backup_files
from medai.platform.ops.key_check import KeysMissing, require_keys
from medai.platform.ops.pg_tools import PgToolError
from medai.platform.ops.restore import restore as run_restore
from medai.platform.records.db import (
    Database,
    DatabaseLocationError,
    SchemaMismatch,
    migration_heads,
)
from medai.settings import GROUP_MODELS, GROUPS, get_settings
from medai.settings_doc import settings_markdown


def open_database(as_json: bool = False, force: bool = False):
    """The database, migrated to this release's schema (``force``: even with
    ``MEDAI_AUTO_MIGRATE=false``, as ``medai migrate``); a database in a missing folder, not
    migrated (auto-migrate off) or newer than this release exits 2 with the message; one
    holding data no configured key opens exits 3 (``keys_missing``, the key ids named), and
    no key is ever made for it."""

    try:
        database = Database()
    except DatabaseLocationError as exc:
        _error(str(exc), "DatabaseLocationError", as_json, 2)
    require_site_keys(database, as_json)  # before the migration: it seals with the key
    try:
        database.upgrade(force=force)
    except SchemaMismatch as exc:
        database.dispose()
        if as_json:
            _emit(
                {
                    "error": str(exc),
                    "error_type": "SchemaMismatch",
                    "code": exc.code,
                    "revision": list(exc.state.current),
                    "head": list(exc.state.heads),
                },
                True,
            )
        else:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    return database


KEYS_MISSING_EXIT = 3
"""The exit status of a command refused because the site's keys are missing (``keys_missing``)."""


def require_site_keys(database, as_json: bool = False) -> None:
    """The site's keys open its data (``platform.ops.key_check``), or exit 3 (``keys_missing``)
    naming the key ids the data needs; on a new site its key is made here, once."""

    settings = get_settings()
    try:
        require_keys(database.engine, settings.storage.home / "blobs", settings)
    except KeysMissing as exc:
        database.dispose()
        _error(str(exc), "KeysMissing", as_json, KEYS_MISSING_EXIT, exc.code)


def platform_or_exit(as_json: bool = False, **kwargs):
    """``boot.open_platform(**kwargs)`` for a command, exiting 3 (``keys_missing``, the key ids
    named) where the site's keys are not configured instead of a traceback."""

    try:
        return open_platform(**kwargs)
    except KeysMissing as exc:
        _error(str(exc), "KeysMissing", as_json, KEYS_MISSING_EXIT, exc.code)


def migrate(as_json: JsonFlag = False) -> None:
    """Migrate the database to this release's schema, once, before the new release's serve,
    workers and DICOM node start (with MEDAI_AUTO_MIGRATE=false they refuse an unmigrated
    database). Take a backup first (`medai backup DEST`). Replicas of several processes
    starting at once are safe: one migrates, the others wait (PostgreSQL advisory lock)."""

    database = open_database(as_json, force=True)
    found = database.upgrade(force=True)  # done already: what it found before migrating
    heads = list(migration_heads())
    out = {
        "database": database.engine.url.render_as_string(hide_password=True),
        "from": list(found.current),
        "to": heads,
        "upgraded": not found.at_head,
    }
    database.dispose()
    _emit(
        out,
        as_json,
        f"{database.label}: migrated from {found.revision} to {', '.join(heads)}"
        if out["upgraded"]
        else f"{database.label} is at {', '.join(heads)}: up to date",
    )


class _Progress:
    """Progress of a long copy on standard error (stdout stays the ``--json`` answer): a
    line rewritten in place on a terminal, a line every 10 % (and each phase) otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.phase, self.step, self.last = "", -1, 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            if self.tty and self.phase:
                sys.stderr.write("\n")
            self.phase, self.step = phase, -1
        step = done * 10 // total if total else -1
        now = time.monotonic()
        end = bool(total) and done >= total
        if self.tty:
            if now - self.last >= 0.2 or end:
                self.last = now
                shown = f"{done}/{total}" if total else str(done)
                sys.stderr.write(f"\r{phase}: {shown}" + (" done" if end else ""))
                if end:
                    sys.stderr.write("\n")
                    self.phase = ""
                sys.stderr.flush()
        elif step != self.step and (step >= 0 or done == 0):
            self.step = step
            shown = f"{done}/{total} ({step * 10} %)" if total else "started"
            sys.stderr.write(f"{phase}: {shown}\n")
            sys.stderr.flush()


def _backup_failed(exc: Exception, as_json: bool) -> None:
    code = getattr(exc, "code", "failed")
    bad_input = code in (
        "destination_not_empty",
        "target_not_empty",
        "not_a_backup",
        "unknown_format",
        "keys_missing",
        "manifest_unauthenticated",
        "manifest_forged",
        "unlisted_files",
        "unsafe_file",
        "engine_mismatch",
        "schema_newer",
        "pg_tool_missing",
        "pg_tool_version",
        "no_database",
        "unsupported_database",
    )
    if as_json:
        _emit({"error": str(exc), "error_type": type(exc).__name__, "code": code}, True)
    else:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2 if bad_input else 1)


def backup(
    dest: Annotated[Path, typer.Argument(help="A new (or empty) folder to write the backup into.")],
    as_json: JsonFlag = False,
) -> None:
    """A consistent snapshot of this site while it runs: the database (SQLite online backup,
    or pg_dump), then every stored file and model copy, the settings that are not secrets,
    and manifest.json (sha256 of every file). The KEYS ARE NOT IN IT: keep the operator's
    copy of MEDAI_SECRET_KEYS / the key file apart; the manifest names the key ids a restore
    needs. docs/deploy/backup.md."""

    try:
        manifest = bk.backup(dest, get_settings(), progress=_Progress())
    except (backup_files.BackupError, PgToolError) as exc:
        _backup_failed(exc, as_json)
    out = bk.summary(manifest, dest)
    counts, keys = manifest["counts"], manifest["keys"]
    _emit(
        out,
        as_json,
        "\n".join(
            [
                f"backup of medai {manifest['medai_version']} (schema {manifest['database']['revision']})"
                f" in {dest}: {counts.get('studies', 0)} studies, {counts.get('signed_reports', 0)} "
                f"signed reports, {counts.get('audit_events', 0)} audit events, {counts['files']} "
                f"files, {counts['bytes'] / 1e6:.1f} MB in {manifest['seconds']} s",
                "the keys are NOT in the backup: keep the operator's copy of the key file "
                "(MEDAI_SECRET_KEYS_FILE or MEDAI_HOME/secret.key) apart from it; a restore needs "
                f"key id(s) {', '.join(keys['needed']) or '(none: nothing sealed yet)'}",
            ]
        ),
    )


def restore(
    src: Annotated[Path, typer.Argument(help="A folder written by `medai backup`.")],
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Check stored files by hash and key id only, without "
            "decrypting each (faster on a large store).",
        ),
    ] = False,
    migrate_after: Annotated[
        bool | None,
        typer.Option(
            "--migrate/--no-migrate",
            help="Migrate a backup of an older release to this "
            "release's schema (default: "
            "MEDAI_AUTO_MIGRATE).",
        ),
    ] = None,
    accept_unauthenticated: Annotated[
        str | None,
        typer.Option(
            "--accept-unauthenticated-backup",
            metavar="CREATED_AT",
            help="Restore a backup whose manifest has no MAC (made by a release before "
            "manifests were authenticated): type that backup's created_at (from its "
            "manifest.json, or the refusal's message) to accept it. Only for a backup whose "
            "keeping you trust; every other check still runs.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Restore a backup into this process's EMPTY home and database (MEDAI_HOME,
    MEDAI_DATABASE_URL), with the keys configured (the operator's copy: MEDAI_SECRET_KEYS_FILE,
    or the key file at MEDAI_HOME/secret.key). The manifest's MAC is checked first (a forged
    or unauthenticated manifest, or a file it does not list, is refused); every file is checked
    against the manifest, and afterwards every sealed value and stored file must decrypt; a
    missing key is named. The non-secret settings are put in MEDAI_HOME/restored-config for you
    to apply."""

    try:
        out = run_restore(
            src,
            get_settings(),
            progress=_Progress(),
            quick=quick,
            migrate=migrate_after,
            accept_unauthenticated=accept_unauthenticated,
        )
    except (backup_files.BackupError, PgToolError) as exc:
        _backup_failed(exc, as_json)
    checked = out["checked"]
    _emit(
        out,
        as_json,
        "\n".join(
            filter(
                None,
                [
                    f"restored {src} (medai {out['medai_version']}, {out['created_at']}) into "
                    f"{out['database']} and {out['home']}: {out['counts'].get('studies', 0)} studies, "
                    f"{out['counts'].get('signed_reports', 0)} signed reports; {checked['sealed_values']} "
                    f"sealed values and {checked['files_decrypted']} of {checked['files_named']} stored "
                    f"files decrypted with the configured keys ({out['seconds']} s)",
                    None
                    if out["manifest"]["authenticated"]
                    else "warning: the backup's manifest had no MAC; restored because "
                    "--accept-unauthenticated-backup named it",
                    f"migrated to {out['migrated_to']}" if out["migrated_to"] else None,
                    f"schema {out['revision']} is older than this release's: run `medai migrate`"
                    if out["needs_migrate"]
                    else None,
                    f"settings (not applied): {out['config']}" if out["config"] else None,
                ],
            )
        ),
    )


def settings_command(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="the whole settings documentation (docs/settings.md)")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """The settings by group: each group's MEDAI_* variables (no values: some are secrets);
    --markdown prints docs/settings.md as generated from the fields."""
    if markdown:
        sys.stdout.write(settings_markdown())
        return
    groups = {
        g: [f"MEDAI_{f.upper()}" for f in model.model_fields] for g, model in GROUP_MODELS.items()
    }
    if as_json:
        _emit(groups, True)
        return
    for group, names in groups.items():
        typer.echo(f"{group} ({GROUPS[group][0]}): {', '.join(names)}")
