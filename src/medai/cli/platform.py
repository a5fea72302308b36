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
    """The database, migrated (or exit 2 naming the revisions: ``cli.operations``)."""
    from medai.cli.operations import open_database

    return open_database()


def _account_failed(exc: Exception, as_json: bool) -> None:
    """Exit 2 with the reason (and, with --json, the API's ``code`` and password reason)."""
    code = getattr(exc, "code", "invalid")
    verdict = getattr(exc, "verdict", None)
    if as_json:
        _emit({"error": str(exc), "error_type": type(exc).__name__, "code": code,
               **({"reason": verdict.reason} if verdict else {})}, True)
    else:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _stdin_line() -> str:
    return sys.stdin.readline().rstrip("\r\n")


def _issued(user, code: str, now) -> dict:
    from medai.platform.accounts import pending

    exp = pending(user, now)
    return {"id": user.id, "username": user.username, "role": user.role, "enrol_code": code,
            "enrol_code_expires_at": exp.isoformat() + "Z" if exp else None}


def _code_text(out: dict) -> str:
    c = out["enrol_code"]
    return (f"one-time enrolment code for {out['username']} ({out['role']}): "
            f"{c[:4]}-{c[4:8]}-{c[8:]}\nvalid until {out['enrol_code_expires_at']}; the user opens "
            "/enrol (or runs `medai users enrol CODE --password-stdin`) and chooses a password")


EnrolHours = Annotated[float, typer.Option(
    "--enrol-hours", min=0.01, max=336, help="How long the enrolment code is valid.")]


@users_app.command("add")
def users_add(
        name: Annotated[str, typer.Argument(help="User name (letters, digits, . _ -).")],
        role: Annotated[str, typer.Option(help="admin | radiologist | clinician | patient")],
        password_stdin: Annotated[bool, typer.Option(
            "--password-stdin", help="admin only: read your own password from standard "
                                     "input (one line); e.g. the first admin")] = False,
        enrol_hours: EnrolHours = 72.0,
        as_json: JsonFlag = False) -> None:
    """Create a user. Without --password-stdin the account gets a one-time enrolment code
    (printed once) with which its user chooses their own password; clinical and patient
    accounts always do. Passwords are never taken from the command line."""
    from medai.platform import accounts, audit
    from medai.platform.db import utcnow

    try:
        accounts.check_role(role)
    except accounts.AccountError as exc:
        _account_failed(exc, as_json)
    if password_stdin and role not in accounts.ADMIN:
        _account_failed(ValueError(f"a {role}'s password is chosen by its user: leave out "
                                   "--password-stdin and give them the enrolment code"),
                        as_json)
    actor = audit.Actor("cli")
    now = utcnow()
    try:
        with _db().session() as db:
            if password_stdin:
                user, code = accounts.create_user(db, name, _stdin_line(), role), None
            else:
                user, code = accounts.invite(db, name, role, now, enrol_hours)
            audit.record(db, actor, "admin", "user", user.id, op="create", role=role)
            accounts.record_grant(db, actor, user, "grant", None, role)
            out = (_issued(user, code, now) if code else
                   {"id": user.id, "username": user.username, "role": user.role})
    except accounts.AccountError as exc:
        _account_failed(exc, as_json)
    _emit(out, as_json, _code_text(out) if code else f"created {out['username']} ({out['role']})")


@users_app.command("reset")
def users_reset(name: str, enrol_hours: EnrolHours = 72.0, as_json: JsonFlag = False) -> None:
    """Reset a password: the old one stops working, the user's sessions and tokens are
    revoked, and a new one-time enrolment code is printed (once)."""
    from medai.platform import accounts, audit
    from medai.platform.db import utcnow

    now = utcnow()
    try:
        with _db().session() as db:
            user, code = accounts.reset(db, name, now, enrol_hours)
            audit.record(db, audit.Actor("cli"), "admin", "user", user.id, op="reset")
            out = _issued(user, code, now)
    except accounts.AccountError as exc:
        _account_failed(exc, as_json)
    _emit(out, as_json, _code_text(out))


@users_app.command("enrol")
def users_enrol(
        code: Annotated[str, typer.Argument(help="The one-time enrolment code.")],
        password_stdin: Annotated[bool, typer.Option(
            "--password-stdin", help="Read your new password from standard input.")] = False,
        as_json: JsonFlag = False) -> None:
    """Choose your own password with your enrolment code, at the server's console (the
    /enrol page does the same in a browser)."""
    from medai.platform import accounts, audit
    from medai.platform.db import utcnow

    if not password_stdin:
        _account_failed(ValueError("give the password on standard input with "
                                   "--password-stdin"), as_json)
    try:
        with _db().session() as db:
            user = accounts.enrol(db, code, _stdin_line(), utcnow())
            audit.record(db, audit.Actor(user.username, user.id, user.role, "cli"), "login",
                         "user", user.id, op="enrol")
            out = {"username": user.username, "role": user.role}
    except accounts.AccountError as exc:
        _account_failed(exc, as_json)
    _emit(out, as_json, f"password set for {out['username']}; sign in with it")


@users_app.command("role")
def users_role(name: str, role: Annotated[str, typer.Argument(
        help="radiologist | clinician | patient (an admin account stays admin)")],
        as_json: JsonFlag = False) -> None:
    """Change a user's role. An administrator account never takes a clinical or patient
    role, nor the reverse (refused as role_conflict, and audited)."""
    from medai.platform import accounts, audit

    actor = audit.Actor("cli")
    try:
        with _db().session() as db:
            user, before = accounts.change_role(db, name, role)
            if before != role:
                accounts.record_grant(db, actor, user, "change", before, role)
            out = {"username": user.username, "role": user.role, "before": before}
    except accounts.RoleConflict as exc:
        with _db().session() as db:
            user = accounts.get_user(db, name)
            accounts.record_grant(db, actor, user, "change", user.role, role, "denied")
        _account_failed(exc, as_json)
    except accounts.AccountError as exc:
        _account_failed(exc, as_json)
    _emit(out, as_json, f"{out['username']}: {out['before']} -> {out['role']}")


@users_app.command("approve")
def users_approve(name: str, as_json: JsonFlag = False) -> None:
    """Approve a clinical account for patient data (the two-person rule: an admin's new,
    reset or re-roled account waits for a radiologist or for this). Shell access to the server
    is the hospital's own trust root; this also makes the first clinical users."""
    from medai.platform import accounts, approval, audit
    from medai.platform.db import utcnow

    actor = audit.Actor("cli")
    try:
        with _db().session() as db:
            user = approval.approve(db, name, actor, utcnow())
            out = {"username": user.username, "role": user.role, "approval_pending": False}
    except accounts.NoSuchUser as exc:
        _account_failed(exc, as_json)
    except accounts.AccountError as exc:
        with _db().session() as db:
            approval.record_refusal(db, name, actor, exc)
        _account_failed(exc, as_json)
    _emit(out, as_json, f"{out['username']} ({out['role']}) approved for patient data")


@users_app.command("grants")
def users_grants(as_json: JsonFlag = False) -> None:
    """Every role granted or changed, every approval for patient data, and every refused
    change or approval, oldest first (for review)."""
    from medai.platform.accounts import role_grants

    with _db().session() as db:
        items, _ = role_grants(db, limit=1_000_000)
    _emit({"grants": items}, as_json, "\n".join(
        f"{g['at']}  {g['by']:<16} {g['op']:<7} {g['username'] or '?':<24} "
        f"{g['before'] or '-'} -> {g['role']}{'' if g['outcome'] == 'ok' else '  REFUSED'}"
        for g in items) or "no role grants")


@users_app.command("list")
def users_list(as_json: JsonFlag = False) -> None:
    """Every user with role and state (enrolled: has chosen a password; approval pending: a
    clinical account not yet approved for patient data)."""
    from sqlalchemy import select

    from medai.platform.accounts import enrolled
    from medai.platform.approval import is_pending
    from medai.platform.tables import User

    with _db().session() as db:
        rows = [{"id": u.id, "username": u.username, "role": u.role, "active": u.active,
                 "enrolled": enrolled(u), "approval_pending": is_pending(u)}
                for u in db.scalars(select(User).order_by(User.id))]
    _emit({"users": rows}, as_json, "\n".join(
        f"{r['id']:>4}  {r['username']:<24} {r['role']:<12} "
        f"{'active' if r['active'] else 'disabled'}"
        f"{'' if r['enrolled'] else ', not enrolled'}"
        f"{', approval pending' if r['approval_pending'] else ''}" for r in rows) or "no users")


def _set_active(name: str, active: bool, as_json: bool) -> None:
    from medai.platform import accounts, audit

    try:
        with _db().session() as db:
            user = accounts.set_active(db, name, active)
            audit.record(db, audit.Actor("cli"), "admin", "user", user.id,
                         op="enable" if active else "disable")
    except accounts.AccountError as exc:
        _account_failed(exc, as_json)
    _emit({"username": name, "active": active}, as_json,
          f"{name} {'enabled' if active else 'disabled'}")


@users_app.command("disable")
def users_disable(name: str, as_json: JsonFlag = False) -> None:
    """Disable a user; their sessions and tokens stop at once (never the last active,
    enrolled admin: exit 2, code last_admin)."""
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


@keys_app.command("ids")
def keys_ids(as_json: JsonFlag = False) -> None:
    """The ids of the configured keys, newest first (never the keys): what a backup's
    manifest lists under keys.needed, to check that the key file kept apart is the right one
    before a restore. Makes no key."""
    from medai.platform.backup import configured_keys, key_id
    from medai.settings import get_settings

    ids = [key_id(k) for k in configured_keys(get_settings())]
    _emit({"key_ids": ids}, as_json, "\n".join(ids) or "no key configured (MEDAI_SECRET_KEYS"
          "_FILE, MEDAI_SECRET_KEYS or MEDAI_HOME/secret.key)")
    if not ids:
        raise typer.Exit(1)


@keys_app.command("rotate")
def keys_rotate(as_json: JsonFlag = False) -> None:
    """Re-encrypt every stored message, complaint, patient name and stored file with the
    first key of MEDAI_SECRET_KEYS (files an older version kept in clear are encrypted too);
    afterwards the older keys can be removed."""
    from medai.platform.rotation import rotate_all
    from medai.platform.storage import BlobStore
    from medai.settings import get_settings

    with _db().session() as db:
        n = rotate_all(db)
    files = BlobStore(get_settings().home / "blobs").rotate()
    _emit({"re_encrypted": n, "files_re_encrypted": files["rotated"],
           "files_unreadable": files["unreadable"]}, as_json,
          f"re-encrypted {n} records and {files['rotated']} stored files"
          + (f"; {files['unreadable']} stored files could not be read (named in the log): "
             "keep the old keys listed" if files["unreadable"] else ""))
    if files["unreadable"]:
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(as_json: JsonFlag = False) -> None:
    """Apply the database migrations: the same as `medai migrate` (serve, the workers and
    the DICOM node do it on start too unless MEDAI_AUTO_MIGRATE=false)."""
    from medai.cli.operations import migrate

    migrate(as_json)


def _worker_logging(level: str, log_format: str = "text") -> None:
    """The worker logs like ``serve``: content-echoing libraries (pydicom decoding a study,
    fpdf) withheld, no tracebacks (Celery would otherwise install its own handlers). Applied
    at once too, so that a warning Celery raises while it starts goes through the same
    handler. With JSON logs, the lines Celery prints itself (its shutdown notice) are logged
    instead, as JSON lines like every other."""
    import logging.config

    from celery.signals import setup_logging

    from medai.server.logs import log_config

    @setup_logging.connect(weak=False)
    def configure(**_kwargs) -> None:
        logging.config.dictConfig(log_config(level))

    logging.config.dictConfig(log_config(level))
    if log_format == "json":
        import celery.apps.worker as celery_worker

        def say(message: str, *_args, **_kwargs) -> None:
            logging.getLogger("celery.apps.worker").warning("%s", message)

        celery_worker.safe_say = say


def worker(
        queues: Annotated[str, typer.Option(
            help="Comma-separated queues: cpu, gpu, training (retraining, validation).")
        ] = "cpu",
        concurrency: Annotated[int, typer.Option(min=1, help="Analyses at once.")] = 1,
        threads: Annotated[int, typer.Option(
            min=1, help="Intra-op threads of each model call (torch and ONNX Runtime). Keep "
                        "workers × concurrency × threads at or below the cores: one worker "
                        "process per core with the default 1 uses a CPU machine fully.")] = 1,
        outbox_threads: Annotated[int | None, typer.Option(
            min=0, max=16, help="Threads delivering the outbox from this worker (default "
                                "MEDAI_OUTBOX_THREADS for a cpu or gpu worker, 0 for a "
                                "training-only one; 0: leave delivery to serve or `medai "
                                "outbox run`, e.g. on a host that cannot reach the PACS). A "
                                "study analysed here is sent the moment it commits.")] = None,
        metrics_port: Annotated[int | None, typer.Option(
            min=1, max=65535, help="Serve GET /metrics of this worker (its model calls and "
                                   "process) on this port, at MEDAI_HOST, to the networks "
                                   "of MEDAI_METRICS_ALLOW (docs/deploy/metrics.md).")] = None,
        as_json: JsonFlag = False) -> None:
    """Run a Celery worker that analyses studies (needs MEDAI_BROKER_URL: redis:// or
    amqp://). Messages are acknowledged late: a worker killed mid-study loses nothing."""
    from medai.platform import queue
    from medai.platform.queue import QUEUES, celery_app
    from medai.services.runtime import CpuPlan, apply_thread_limits
    from medai.settings import get_settings

    settings = get_settings()
    if not settings.broker_url:
        _fail(ValueError("set MEDAI_BROKER_URL (e.g. redis://localhost:6379/0)"), as_json)
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    bad = [q for q in wanted if q not in QUEUES]
    if bad or not wanted:
        _fail(ValueError(f"unknown queues {bad}; valid: {', '.join(QUEUES)}"), as_json)
    from medai.cli.operations import open_database

    open_database(as_json).dispose()  # migrated before the first task, or exit 2
    _worker_logging(settings.log_level, settings.log_format)
    # sized like serve's pools (runtime.plan_cpu): two workers on two cores had torch and ONNX
    # Runtime at two threads each, four busy threads fighting for two cores
    apply_thread_limits(CpuPlan(1, concurrency, threads))
    queue.WORKER_THREADS = threads
    if outbox_threads is None:  # a training-only worker analyses nothing, so sends nothing
        outbox_threads = settings.outbox_threads if {"cpu", "gpu"} & set(wanted) else 0
    queue.deliver_while_working(outbox_threads)
    if metrics_port is not None and settings.metrics:
        from medai.server.metrics import start_metrics_server

        try:
            start_metrics_server(settings.host, metrics_port, settings.metrics_allow)
        except OSError as exc:
            _fail(ValueError(f"cannot serve metrics on {settings.host}:{metrics_port}: "
                             f"{exc.strerror or type(exc).__name__}"), as_json)
    app = celery_app(settings.broker_url)
    # its start banner is printed, not logged: left out where the log is JSON lines
    quiet = ["--quiet"] if settings.log_format == "json" else []
    app.worker_main([*quiet, "worker", "-Q", ",".join(wanted), "--concurrency",
                     str(concurrency), "--pool", "threads" if concurrency > 1 else "solo",
                     "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                     "--without-heartbeat"])
