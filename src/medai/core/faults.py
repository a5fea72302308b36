"""Storage faults by name: a read-only or full disk, a database that cannot write or cannot
be reached. The error layer answers them with 503 and a ``code`` instead of a bare 500, and
readiness reports them, so an operator reads "read-only" or "no space" and which path.

``classify`` recognises an ``OSError`` by its errno, SQLite by its result code (or message)
and PostgreSQL by its SQLSTATE (no driver is imported here)."""

from __future__ import annotations

import errno

from medai.core.errors import MedaiError

# code -> what the operator reads
REASONS = {
    "storage_read_only": "read-only",
    "storage_full": "no space left",
    "storage_denied": "permission denied",
    "storage_io_error": "input/output error",
    "storage_unavailable": "cannot be opened",
    "storage_undecryptable": "cannot be decrypted with the configured keys",
    "storage_missing": "missing",
    "record_undecryptable": "cannot be decrypted with the configured keys",
    "database_busy": "busy (locked or out of connections)",
    "database_unavailable": "unreachable",
}
_ERRNO = {
    errno.EROFS: "storage_read_only",
    errno.ENOSPC: "storage_full",
    errno.EDQUOT: "storage_full",
    errno.EFBIG: "storage_full",
    errno.EACCES: "storage_denied",
    errno.EPERM: "storage_denied",
    errno.EIO: "storage_io_error",
}
# SQLite primary result codes (https://sqlite.org/rescode.html)
_SQLITE = {
    8: "storage_read_only",
    13: "storage_full",
    10: "storage_io_error",
    14: "storage_unavailable",
    5: "database_busy",
    6: "database_busy",
    23: "storage_denied",
}
_SQLITE_TEXT = (
    ("readonly database", "storage_read_only"),
    ("database or disk is full", "storage_full"),
    ("disk i/o error", "storage_io_error"),
    ("unable to open database file", "storage_unavailable"),
    ("database is locked", "database_busy"),
)
# PostgreSQL SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html)
_SQLSTATE = {
    "53100": "storage_full",
    "25006": "storage_read_only",
    "58030": "storage_io_error",
    "53300": "database_busy",
    "55P03": "database_busy",
    "57P01": "database_unavailable",
    "57P02": "database_unavailable",
    "57P03": "database_unavailable",
}


class StorageFault(MedaiError, Exception):
    """A write (or read) that failed because of the storage itself, not the request.
    ``where`` is a path or a database address (never request content)."""

    def __init__(self, code: str, where: str, cause: str = "") -> None:
        self.code, self.where, self.cause = code, where, cause
        super().__init__(f"{where}: {REASONS.get(code, code)}" + (f" ({cause})" if cause else ""))

    @property
    def reason(self) -> str:
        return REASONS.get(self.code, self.code)


class StorageMissing(StorageFault, FileNotFoundError):
    """A stored file that a database row names is gone from the disk (deleted by hand, a
    backup restored without its files): named ``storage_missing`` for the API (503, like any
    storage fault, never a bare 500), and still the ``FileNotFoundError`` it is for the code
    that expects one (a blob discarded while it was read, a delivery that cannot be built)."""

    def __init__(self, where: str) -> None:
        super().__init__("storage_missing", where, "ENOENT")
        self.errno, self.strerror, self.filename = errno.ENOENT, self.reason, where


def _sqlite_code(exc: BaseException) -> str | None:
    number = getattr(exc, "sqlite_errorcode", None)
    if isinstance(number, int) and (number & 0xFF) in _SQLITE:
        return _SQLITE[number & 0xFF]
    text = str(exc.args[0]).lower() if exc.args else ""
    return next((code for needle, code in _SQLITE_TEXT if needle in text), None)


def _driver_code(orig: BaseException) -> str | None:
    if type(orig).__module__.startswith("sqlite3"):
        return _sqlite_code(orig)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(state, str):
        if state in _SQLSTATE:
            return _SQLSTATE[state]
        if state.startswith("08"):  # connection exception
            return "database_unavailable"
        return None
    # psycopg raises OperationalError without a SQLSTATE when it cannot connect at all
    if type(orig).__module__.startswith("psycopg") and type(orig).__name__ == "OperationalError":
        return "database_unavailable"
    return None


def classify(exc: BaseException, where: str | None = None) -> StorageFault | None:
    """The named fault behind ``exc``, or None when it is not one (then it stays what it is).
    ``where`` names the database for driver errors; an OSError names its own path."""
    if isinstance(exc, StorageFault):
        return exc
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError | TimeoutError):
        code = _ERRNO.get(exc.errno or -1)
        if code is None:
            return None
        path = exc.filename if exc.filename is not None else where
        return StorageFault(code, str(path or "storage"), errno.errorcode.get(exc.errno or -1, ""))
    orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
    code = _driver_code(orig if isinstance(orig, BaseException) else exc)
    if code is None:
        return None
    source = orig if isinstance(orig, BaseException) else exc
    cause = (
        getattr(source, "sqlstate", None)
        or getattr(source, "sqlite_errorname", None)
        or type(source).__name__
    )
    return StorageFault(code, where or "database", str(cause))
