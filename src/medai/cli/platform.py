"""Platform administration: users, the audit log, the job worker, encryption keys, the
database schema."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from medai.cli.common import JsonFlag, _emit, _fail

users_app = typer.Typer(help="Accounts (the first admin of a fresh install is made here).",
                        no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys of chat messages and complaints.",
                       no_args_is_help=True)
db_app = typer.Typer(help="The platform database.", no_args_is_help=True)


def _db():
    from medai.platform.db import Database

    db = Database()
    db.upgrade()
    return db


@users_app.command("add")
def users_add(
        name: Annotated[str, typer.Argument(help="User name (letters, digits, . _ -).")],
        role: Annotated[str, typer.Option(help="admin | radiologist | clinician | patient")],
        password_stdin: Annotated[bool, typer.Option(
            "--password-stdin", help="Read the password from standard input (one line).")
        ] = False,
        as_json: JsonFlag = False) -> None:
    """Create a user. The password is read from stdin, never from the command line."""
    from medai.platform import accounts, audit

    if not password_stdin:
        _fail(ValueError("give the password on standard input with --password-stdin"),
              as_json)
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        with _db().session() as db:
            user = accounts.create_user(db, name, password, role)
            audit.record(db, audit.Actor("cli"), "admin", "user", user.id, op="create",
                         role=role)
            out = {"id": user.id, "username": user.username, "role": user.role}
    except accounts.AccountError as exc:
        _fail(ValueError(str(exc)), as_json)
    _emit(out, as_json, f"created {out['username']} ({out['role']})")


@users_app.command("list")
def users_list(as_json: JsonFlag = False) -> None:
    """Every user with role and state."""
    from sqlalchemy import select

    from medai.platform.tables import User

    with _db().session() as db:
        rows = [{"id": u.id, "username": u.username, "role": u.role, "active": u.active}
                for u in db.scalars(select(User).order_by(User.id))]
    _emit({"users": rows}, as_json, "\n".join(
        f"{r['id']:>4}  {r['username']:<24} {r['role']:<12} "
        f"{'active' if r['active'] else 'disabled'}" for r in rows) or "no users")


def _set_active(name: str, active: bool, as_json: bool) -> None:
    from medai.platform import accounts, audit

    try:
        with _db().session() as db:
            user = accounts.set_active(db, name, active)
            audit.record(db, audit.Actor("cli"), "admin", "user", user.id,
                         op="enable" if active else "disable")
    except accounts.AccountError as exc:
        _fail(ValueError(str(exc)), as_json)
    _emit({"username": name, "active": active}, as_json,
          f"{name} {'enabled' if active else 'disabled'}")


@users_app.command("disable")
def users_disable(name: str, as_json: JsonFlag = False) -> None:
    """Disable a user; their sessions and tokens stop at once."""
    _set_active(name, False, as_json)


@users_app.command("enable")
def users_enable(name: str, as_json: JsonFlag = False) -> None:
    _set_active(name, True, as_json)


@audit_app.command("export")
def audit_export(out: Annotated[str, typer.Option(
        help="File to write (JSON lines); '-' for stdout.")] = "-") -> None:
    """Every audit event, oldest first, one JSON object per line."""
    from medai.platform.audit import export_jsonl

    with _db().session() as db:
        if out == "-":
            n = export_jsonl(db, sys.stdout)
        else:
            with open(out, "w", encoding="utf-8") as fh:
                n = export_jsonl(db, fh)
    typer.echo(f"{n} events", err=True)


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new key (put it first in MEDAI_SECRET_KEYS, then run `medai keys rotate`)."""
    from cryptography.fernet import Fernet

    typer.echo(Fernet.generate_key().decode())


@keys_app.command("rotate")
def keys_rotate(as_json: JsonFlag = False) -> None:
    """Re-encrypt every stored message and complaint with the first key of
    MEDAI_SECRET_KEYS; afterwards the older keys can be removed."""
    from medai.platform.chat import rotate_all

    with _db().session() as db:
        n = rotate_all(db)
    _emit({"re_encrypted": n}, as_json, f"re-encrypted {n} records")


@db_app.command("upgrade")
def db_upgrade(as_json: JsonFlag = False) -> None:
    """Apply the database migrations (serve does this on start too)."""
    db = _db()
    _emit({"database": db.engine.url.render_as_string(hide_password=True), "upgraded": True},
          as_json, "database is up to date")


def worker(
        queues: Annotated[str, typer.Option(help="Comma-separated queues: cpu, gpu.")] = "cpu",
        concurrency: Annotated[int, typer.Option(min=1, help="Analyses at once.")] = 1,
        as_json: JsonFlag = False) -> None:
    """Run a Celery worker that analyses studies (needs MEDAI_BROKER_URL: redis:// or
    amqp://). Messages are acknowledged late: a worker killed mid-study loses nothing."""
    from medai.platform.queue import QUEUES, celery_app
    from medai.settings import get_settings

    settings = get_settings()
    if not settings.broker_url:
        _fail(ValueError("set MEDAI_BROKER_URL (e.g. redis://localhost:6379/0)"), as_json)
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    bad = [q for q in wanted if q not in QUEUES]
    if bad or not wanted:
        _fail(ValueError(f"unknown queues {bad}; valid: {', '.join(QUEUES)}"), as_json)
    _db()  # migrations before the first task
    app = celery_app(settings.broker_url)
    app.worker_main(["worker", "-Q", ",".join(wanted), "--concurrency", str(concurrency),
                     "--pool", "threads" if concurrency > 1 else "solo",
                     "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                     "--without-heartbeat"])
