"""What ``medai serve`` logs, and what it never logs.

medai's own lines name requests by route template, ids and counts (``middleware.Guard`` writes
the access log on ``medai.access``). Libraries are not so careful: fpdf2 quotes the characters a
font lacks, fontTools lists glyph names, python-multipart and Pillow describe what they parse,
pydicom warns with a tag's value (a patient's name), pynetdicom logs the
identifiers of what it receives, SQLAlchemy at INFO logs every statement's
parameters, ``warnings.warn`` messages can quote anything, and a traceback repeats an
exception's message. So, on the one handler ``serve`` installs:

- those libraries log nothing below WARNING, and a WARNING or worse from them is kept as
  level, logger and place only — its message is withheld;
- a record with a traceback keeps its message and the exception's type; the traceback is
  dropped;
- uvicorn's own access log (the full path with its query string) is off.

``MEDAI_LOG_FORMAT=json`` writes the same records, withheld the same way, as one JSON object
per line (``JsonLines``): ``time`` (UTC), ``level``, ``logger``, ``message``, ``place``
(module:line, or a withheld record's place), ``pid``, and on the access log's lines
``method``, ``route``, ``status``, ``duration_ms`` and ``request_id`` (``middleware.Guard``).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO, cast

from medai.settings import get_settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# libraries that can echo content: quiet below WARNING, message withheld at WARNING and above
WITHHELD = (
    "fpdf",
    "fontTools",
    "python_multipart",
    "multipart",
    "PIL",
    "pydicom",
    "pynetdicom",
    "dicomweb_client",
    "highdicom",
    "hl7apy",
    "sqlalchemy",
    "httpx",
    "httpx2",
    "httpcore",
    "urllib3",
    "uvicorn.asgi",
    "py.warnings",
)


_WARNING = re.compile(r"^(.*?):(\d+): (\w+): ")


def _withheld(name: str) -> bool:
    return any(name == w or name.startswith(w + ".") for w in WITHHELD)


def _place(record: logging.LogRecord) -> str:
    """Where a record comes from; for a Python warning its category, file and line (parsed
    from the formatted warning, whose message is not kept)."""
    if record.name == "py.warnings":
        # logging.captureWarnings logs ``"%s", warning`` : its args are a tuple, never a mapping
        text = str(cast(tuple, record.args)[0]) if record.args else str(record.msg)
        found = _WARNING.match(text)
        if found:
            path, line, category = found.groups()
            return f"{category} at {'/'.join(path.split('/')[-2:])}:{line}"
        return "a Python warning"
    return f"{record.module}:{record.lineno}"


class Withhold(logging.Filter):
    """Drops or blanks what could carry content (see the module's docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _withheld(record.name):
            if record.levelno < logging.WARNING:
                return False
            place = record.place = _place(record)
            record.msg = "%s message withheld (it can quote content; from %s)"
            record.args = (record.levelname.lower(), place)
        if record.exc_info or record.exc_text or record.stack_info:
            exc = record.exc_info[1] if record.exc_info else None
            kind = type(exc).__name__ if exc is not None else "exception"
            try:
                message = record.getMessage()
            except Exception:  # broad: a log filter must never raise
                message = f"{record.levelname.lower()} from {record.name}"
            record.msg, record.args = "%s [%s; traceback withheld]", (message, kind)
            record.exc_info = record.exc_text = record.stack_info = None
        return True


# what the access line (and the Guard's error line) carry as record attributes
FIELDS = ("method", "route", "status", "duration_ms", "request_id")


class JsonLines(logging.Formatter):
    """One JSON object per record, on one line (a newline in a message is escaped). It
    formats what ``Withhold`` left: never a traceback, a withheld library's message replaced."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # broad: a log formatter must never raise
            message = f"{record.levelname.lower()} from {record.name}"
        out = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            "place": getattr(record, "place", None) or f"{record.module}:{record.lineno}",
            "pid": record.process,
        }
        out.update({k: getattr(record, k) for k in FIELDS if hasattr(record, k)})
        return json.dumps(out, default=str)


def handler(
    stream: TextIO | None = None, level: int | str = logging.NOTSET, log_format: str = "text"
) -> logging.Handler:
    """The one handler of ``serve``: plain lines (or JSON lines) on stderr, ``Withhold``
    applied. Python warnings are routed to it (``py.warnings``) instead of being printed
    unfiltered."""
    if log_format not in ("text", "json"):
        raise ValueError(f"log format {log_format!r}: text or json")
    out = logging.StreamHandler(stream or sys.stderr)
    out.setLevel(level)
    out.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(FORMAT))
    out.addFilter(Withhold())
    logging.captureWarnings(True)
    return out


def logger_levels(level: str) -> dict[str, str]:
    """Levels ``serve`` pins: the content-echoing libraries at WARNING whatever the level
    asked for (SQLAlchemy at INFO would log every parameter), uvicorn's access log off."""
    return {
        **{name: "WARNING" for name in WITHHELD if name != "py.warnings"},
        "uvicorn": level,
        "uvicorn.error": level,
        "uvicorn.access": "CRITICAL",
        "medai": level,
    }


def log_config(level: str = "info", log_format: str | None = None) -> dict[str, Any]:
    """``uvicorn.run(log_config=...)``: applied in every worker process (and by ``medai
    worker``, ``dicom listen``, ``outbox run``). ``log_format``: text or json (default
    ``MEDAI_LOG_FORMAT``)."""
    if log_format is None:
        log_format = get_settings().general.log_format
    level = level.upper()
    loggers: dict[str, dict[str, Any]] = {
        name: {"level": lvl, "handlers": [], "propagate": True}
        for name, lvl in logger_levels(level).items()
    }
    loggers["uvicorn.access"]["propagate"] = False
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"medai": {"()": "medai.server.logs.handler", "log_format": log_format}},
        "root": {"level": level, "handlers": ["medai"]},
        "loggers": loggers,
    }


def notice(
    message: str,
    name: str = "medai.cli",
    level: int = logging.WARNING,
    stream: TextIO | None = None,
) -> None:
    """A command's word to the operator before its logging is set up (``serve``'s "no admin
    yet"): the plain text on stderr, or, with ``MEDAI_LOG_FORMAT=json``, one JSON line like
    every other, so that a log shipper reading the JSON never meets a stray line."""

    out = stream or sys.stderr
    if get_settings().general.log_format != "json":
        print(message, file=out, flush=True)
        return
    record = logging.LogRecord(name, level, __file__, 0, "%s", (message,), None)
    record.place = "cli"
    print(JsonLines().format(record), file=out, flush=True)
