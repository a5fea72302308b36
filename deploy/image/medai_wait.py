"""What the image's entrypoint asks before it hands over to ``medai`` (deploy/image/
entrypoint.sh runs ``python medai_wait.py COMMAND``).

Why a wait at all: a compose file or a Deployment starts the database, the broker, the
migration job and the replicas together, and neither podman-compose nor Kubernetes can say
"after the database is up and migrated" for every role. Without it a replica that starts first
exits (no database, or with MEDAI_AUTO_MIGRATE=false a schema not migrated yet) and is
restarted in a loop; with it, it waits — bounded by MEDAI_WAIT_S (default 180 s) — then lets
medai itself report what is still wrong.

Commands (exit 0 when done, 1 when the bound passed, 2 for a wrong setting):
  ready ROLE   the database answers; the broker too when one is set; with
               MEDAI_AUTO_MIGRATE=false (not for ``migrate``) the schema is at this release's head
  has-admin    exit 0 when the database has an admin, 3 when it has none
  first-admin  when the database has no admin yet: create one (MEDAI_ADMIN_USER, default admin)
               with a one-time enrolment code instead of a password, and print
               {"created": true, "username", "enrol_code", "enrol_code_expires_at"}; else print
               {"created": false}. The code is shown once (deploy/compose/up.sh prints it to
               the operator) and used up when its holder chooses the password at /enrol: no
               password exists anywhere before the admin's own, none is stored in a file, and a
               second run never touches a site that has an admin.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable


def log(message: str) -> None:
    print(f"medai-entrypoint: {message}", file=sys.stderr, flush=True)


def settings():
    """medai's own settings (``MEDAI_*_FILE`` secrets read as medai reads them); a wrong one
    exits 2 with pydantic's explanation instead of a wait that could never end."""
    from pydantic import ValidationError

    from medai.settings import get_settings

    try:
        return get_settings()
    except (ValidationError, ValueError) as exc:
        log(f"the settings are not valid:\n{exc}")
        raise SystemExit(2) from None


def poll(what: str, check: Callable[[], bool | None], deadline: float) -> bool:
    """Call ``check`` until it returns without raising (and not False) or the deadline passes;
    the first and then every tenth failure is logged with its reason."""
    tries = 0
    while True:
        try:
            if check() is not False:
                if tries:
                    log(f"{what}: ready after {tries} tries")
                return True
            reason = "not yet"
        except Exception as exc:  # any failure to connect is a reason to wait
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        if time.monotonic() >= deadline:
            log(f"{what}: still not ready after {tries + 1} tries ({reason}); giving up")
            return False
        if tries % 10 == 0:
            log(f"{what}: waiting ({reason})")
        tries += 1
        time.sleep(1.0)


def wait_database(url: str | None, deadline: float) -> bool:
    from medai.platform.records.db import Database

    if not url:  # the SQLite file under MEDAI_HOME: nothing to wait for
        return True
    db = Database(url)
    try:
        return poll(db.label, db.check, deadline)
    finally:
        db.dispose()


def wait_broker(url: str, deadline: float) -> bool:
    from kombu import Connection

    def check() -> None:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)

    from medai.destinations_config import public_url

    return poll(f"broker {public_url(url)}", check, deadline)


def wait_schema(url: str | None, deadline: float) -> bool:
    """With MEDAI_AUTO_MIGRATE=false the migration job brings the schema to head; until then
    this replica waits. A schema newer than this release ends the wait at once: medai
    refuses it with the message that says what to do."""
    from medai.platform.records.db import Database

    db = Database(url)

    def check() -> None:
        state = db.schema()
        if not (state.at_head or state.newer):
            raise RuntimeError(f"at {state.revision}, this release needs {state.head}")

    try:
        return poll("database schema (waiting for `medai migrate`)", check, deadline)
    finally:
        db.dispose()


def ready(role: str) -> int:
    deadline = time.monotonic() + float(os.environ.get("MEDAI_WAIT_S", "180"))
    s = settings()
    ok = wait_database(s.storage.database_url, deadline)
    if ok and s.storage.broker_url and role in ("serve", "worker", "dicom"):
        ok = wait_broker(s.storage.broker_url, deadline)
    if (
        ok
        and s.storage.database_url
        and not s.storage.auto_migrate
        and role in ("serve", "worker", "dicom")
    ):
        ok = wait_schema(s.storage.database_url, deadline)
    return 0 if ok else 1


def has_admin() -> int:
    from sqlalchemy.exc import DBAPIError

    from medai.platform.records.db import Database

    db = Database(settings().storage.database_url)
    try:
        return 0 if db.has_admin() else 3
    except DBAPIError:  # no tables yet (serve migrates on its own start): no admin either
        return 3
    finally:
        db.dispose()


def first_admin(hours: float = 72.0) -> int:
    import json

    from sqlalchemy.exc import DBAPIError

    from medai.platform.access import account_errors, accounts, audit
    from medai.platform.records.db import Database, utcnow

    user = os.environ.get("MEDAI_ADMIN_USER") or "admin"
    db = Database(settings().storage.database_url)
    try:
        try:
            if db.has_admin():
                print(json.dumps({"created": False}))
                return 0
        except DBAPIError:
            log("first-admin: the database has no tables yet (run `medai migrate` first)")
            return 1
        now = utcnow()
        try:
            with db.session() as session:
                row, code = accounts.create_account(
                    session, user, "admin", audit.Actor("first-admin"), now, enrol_hours=hours
                )
                expires = accounts.pending(row, now)
                out = {
                    "created": True,
                    "username": row.username,
                    "enrol_code": code,
                    "enrol_code_expires_at": expires.isoformat() + "Z" if expires else None,
                }
        except account_errors.AccountError as exc:  # made by another run at the same moment
            if db.has_admin():
                print(json.dumps({"created": False}))
                return 0
            log(f"first-admin: could not create '{user}': {exc}")
            return 2
        print(json.dumps(out))
        return 0
    finally:
        db.dispose()


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "ready":
        return ready(argv[1])
    if argv == ["has-admin"]:
        return has_admin()
    if argv == ["first-admin"]:
        return first_admin(float(os.environ.get("MEDAI_ADMIN_ENROL_HOURS", "72")))
    log(f"usage: medai_wait.py ready ROLE | has-admin | first-admin (got {argv})")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
