"""`medai keys …`: the encryption keys of chat messages and complaints (generate, list, rotate)."""

from __future__ import annotations

import typer

from medai.cli.common import JsonFlag, _emit
from medai.cli.operations import open_database

keys_app = typer.Typer(
    help="Encryption keys of chat messages and complaints.", no_args_is_help=True
)


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new key (put it first in MEDAI_SECRET_KEYS, then run `medai keys rotate`)."""
    from cryptography.fernet import Fernet

    typer.echo(Fernet.generate_key().decode())


@keys_app.command("ids")
def keys_ids(as_json: JsonFlag = False) -> None:
    """The ids of the configured keys, newest first (never the keys): what a backup's
    manifest lists under keys.needed, to check that the key file kept apart is the right one
    before a restore. Makes no key."""
    from medai.platform.backup import configured_keys, key_id
    from medai.settings import get_settings

    ids = [key_id(k) for k in configured_keys(get_settings())]
    _emit(
        {"key_ids": ids},
        as_json,
        "\n".join(ids)
        or "no key configured (MEDAI_SECRET_KEYS_FILE, MEDAI_SECRET_KEYS or MEDAI_HOME/secret.key)",
    )
    if not ids:
        raise typer.Exit(1)


@keys_app.command("rotate")
def keys_rotate(as_json: JsonFlag = False) -> None:
    """Re-encrypt every stored message, complaint, patient name and stored file with the
    first key of MEDAI_SECRET_KEYS (files an older version kept in clear are encrypted too);
    afterwards the older keys can be removed."""
    from medai.platform.blobs import BlobStore
    from medai.platform.rotation import rotate_all
    from medai.settings import get_settings

    with open_database().session() as db:
        n = rotate_all(db)
    files = BlobStore(get_settings().home / "blobs").rotate()
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
