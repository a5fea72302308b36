"""PostgreSQL's own dump and restore programs, as a backup runs them.

A PostgreSQL database is saved with ``pg_dump --format=custom`` and loaded with ``pg_restore``,
taken from ``PATH`` (the site's PostgreSQL client package), never re-implemented: only they
know every object of the schema (the append-only triggers and their functions included).
``pg_dump`` refuses a server newer than itself, and ``pg_restore`` an archive written by a
newer ``pg_dump``; both are checked first and named with the package to install, instead of
failing half-way with the tool's own message.

The password never appears on a command line (``ps`` shows those to every user): it goes to
the child in ``PGPASSWORD``; the URL passed is the libpq form of ``MEDAI_DATABASE_URL``
without it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from sqlalchemy.engine import make_url

from medai.core.errors import MedaiError


class PgToolError(MedaiError, RuntimeError):
    """A PostgreSQL client program is missing, too old for the server or archive, or
    failed (its message, which never holds the password, is kept)."""

    def __init__(self, message: str, code: str = "pg_tool_failed") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Connection:
    """What a libpq program needs: a URL without password, and the environment with it."""

    url: str
    env: dict[str, str]


def connection(database_url: str) -> Connection:
    """The libpq form of a SQLAlchemy URL (``postgresql+psycopg://`` → ``postgresql://``)."""
    parsed = make_url(database_url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    bare = parsed.set(drivername="postgresql", password=None)
    return Connection(bare.render_as_string(hide_password=False), env)


def tool(name: str) -> str:
    """The path of ``pg_dump`` or ``pg_restore`` on ``PATH``."""
    found = shutil.which(name)
    if found is None:
        raise PgToolError(
            f"{name} is not on PATH: install the PostgreSQL client of the "
            "server's major version (Debian: postgresql-client-<major>, e.g. "
            "postgresql-client-15)",
            "pg_tool_missing",
        )
    return found


def major(path: str) -> int:
    """The major version of a client program (``pg_dump (PostgreSQL) 15.20`` → 15)."""
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    found = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    if out.returncode != 0 or found is None:
        raise PgToolError(f"{path} --version failed: {out.stderr.strip()[:200]}")
    return int(found.group(1))


def check_dump_tool(path: str, server_version_num: int) -> int:
    """``pg_dump`` must be at least the server's major version (it refuses newer servers);
    returns its major version."""
    mine, server = major(path), server_version_num // 10000
    if mine < server:
        raise PgToolError(
            f"{path} is PostgreSQL {mine}, older than the server "
            f"(PostgreSQL {server}): pg_dump refuses a newer server. Install "
            f"postgresql-client-{server} and put its pg_dump first on PATH",
            "pg_tool_version",
        )
    return mine


def check_restore_tool(path: str, dumped_by: int | None) -> None:
    """``pg_restore`` must be at least the major version of the ``pg_dump`` that wrote the
    archive (an older one cannot read a newer archive)."""
    mine = major(path)
    if dumped_by is not None and mine < dumped_by:
        raise PgToolError(
            f"{path} is PostgreSQL {mine}, but the backup was written by "
            f"pg_dump {dumped_by}: install postgresql-client-{dumped_by} and "
            "put its pg_restore first on PATH",
            "pg_tool_version",
        )


def run(args: list[str], conn: Connection, what: str) -> None:
    """Run a client program; a failure is raised with the end of its own message."""
    done = subprocess.run(args, capture_output=True, text=True, env=conn.env)
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])[:600]
        raise PgToolError(f"{what} failed (exit {done.returncode}): {tail}")
