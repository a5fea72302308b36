"""`medai keys …`: the encryption keys of chat messages and complaints (generate, list, rotate)."""

from __future__ import annotations

import typer

from medai.cli.common import JsonFlag, _emit
from medai.cli.operations import KEYS_MISSING_EXIT, open_database
from medai.platform.ops.backup import configured_keys, database_url
from medai.platform.ops.key_check import inspect_site
from medai.platform.ops.rotation import rotate_all
from medai.platform.records.blobs import BlobStore
from medai.settings import get_settings

WHERE = "MEDAI_SECRET_KEYS_FILE, MEDAI_SECRET_KEYS or MEDAI_HOME/secret.key"

keys_app = typer.Typer(no_args_is_help=True)  # its help: COMMANDS in medai.cli


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new key (put it first in MEDAI_SECRET_KEYS, then run `medai keys rotate`)."""
    from cryptography.fernet import Fernet

    typer.echo(Fernet.generate_key().decode())


@keys_app.command("ids")
def keys_ids(as_json: JsonFlag = False) -> None:
    """The key ids the site's data needs and those configured, newest first (ids only, never
    a key): what `medai serve` checks before it starts, and what a backup's manifest lists
    under keys.needed. Reads a sample of the database (the newest sealed values and stored
    files' headers), never creates it, and never makes a key. Exit 0: the configured keys
    open the data; 1: no key configured and none needed (a new site: the first start makes
    one); 3: keys the data needs are not configured (status keys_missing, or
    some_keys_missing where the configured keys open part of it)."""

    settings = get_settings()
    state = inspect_site(
        database_url(settings), settings.storage.home / "blobs", configured_keys(settings)
    )
    out = state.as_dict()
    sampled = out["sampled"]
    human = [
        f"configured: {', '.join(state.configured) or f'none ({WHERE})'}",
        f"needed by the stored files: {', '.join(state.needed) or 'none named'}",
        f"sampled: {sampled['sealed_values']} sealed values ({sampled['sealed_values_opened']} "
        f"opened), {sampled['files']} stored files ({sampled['files_opened']} under a "
        "configured key)",
    ]
    if state.status == "keys_missing":
        human.append(f"keys missing: {state.problem()}")
    elif state.missing:
        human.append(f"not configured: {', '.join(state.missing)} (their records answer 503)")
    elif state.status == "new_site":
        human.append("a new site: the first start makes its key")
    _emit(out, as_json, "\n".join(human))
    if state.status in ("keys_missing", "some_keys_missing"):
        raise typer.Exit(KEYS_MISSING_EXIT)
    if not state.configured:
        raise typer.Exit(1)


@keys_app.command("rotate")
def keys_rotate(as_json: JsonFlag = False) -> None:
    """Re-encrypt every stored message, complaint, patient name and stored file with the
    first key of MEDAI_SECRET_KEYS (files an older version kept in clear are encrypted too);
    afterwards the older keys can be removed."""

    with open_database().session() as db:
        n = rotate_all(db)
    files = BlobStore(get_settings().storage.home / "blobs").rotate()
    _emit(
        {
            "re_encrypted": n,
            "files_re_encrypted": files["rotated"],
            "files_unreadable": files["unreadable"],
        },
        as_json,
        f"re-encrypted {n} records and {files['rotated']} stored files"
        + (
            f"; {files['unreadable']} stored files could not be read (named in the log): "
            "keep the old keys listed"
            if files["unreadable"]
            else ""
        ),
    )
    if files["unreadable"]:
        raise typer.Exit(1)
