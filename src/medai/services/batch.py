"""Batch use: a file of complaints, or a folder or manifest of images, through a model loaded
once — JSON lines out (one per input row, in order), a progress bar, a summary at the end. A
bad row (no text, too long, not JSON, an unreadable or refused image) is reported on its own
line and never stops the batch; only a file that cannot be read at all does.

Input is streamed: a complaints file of any length keeps memory flat, and each line is limited
(``MAX_LINE_BYTES``) before it is decoded."""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from medai.core.errors import MedaiError
from medai.core.text import MAX_COMPLAINT_BYTES

MAX_LINE_BYTES = MAX_COMPLAINT_BYTES + 4096  # a complaint and its id, JSON-quoted
TEXT_COLUMNS = ("text", "complaint", "sikayet", "şikayet")
ID_COLUMNS = ("id", "patient_ref", "ref")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
FILE_COLUMNS = ("file", "path", "image")
MAX_MANIFEST_BYTES = 64 << 20


class BatchInputError(MedaiError, ValueError):
    """The batch file itself cannot be used (the message says why)."""

    code = "invalid"


@dataclass
class Item:
    row: int
    id: str | None
    value: Any = None  # the complaint's text, or the image's path
    error: str | None = None  # why this row cannot be used


def _lines(fh: IO[bytes]) -> Iterator[tuple[bytes | None, bool]]:
    """Lines no longer than MAX_LINE_BYTES: (line, too_long); a longer one is skipped to its
    end and reported."""
    while True:
        line = fh.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := fh.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield None, True
            continue
        yield line, False


def _is_jsonl(path: Path, head: bytes) -> bool:
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return True
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        return False
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def complaints(path: Path) -> Iterator[Item]:
    """The complaints of a CSV (a ``text`` column, optionally ``id``) or JSON-lines file
    (``{"text": …, "id": …}`` per line)."""
    if not path.is_file():
        raise BatchInputError(f"{path}: no such file")
    with path.open("rb") as fh:
        head = fh.peek(64)[:64] if hasattr(fh, "peek") else b""
        yield from (_jsonl(fh) if _is_jsonl(path, head) else _csv(fh, path))


MAX_RECORD_LINES = 64  # a quoted field may span lines; one still open after this many is cut


def _jsonl(fh: IO[bytes]) -> Iterator[Item]:
    """``row`` is the line number (blank lines count), so a report points into the file."""
    row = 0
    for line, too_long in _lines(fh):
        row += 1
        if line is not None and not line.strip():
            continue
        if too_long:
            yield Item(row, None, error=f"line longer than {MAX_LINE_BYTES} bytes")
            continue
        try:
            # a line is None only when too long, skipped above
            obj = json.loads(cast(bytes, line).decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            yield Item(row, None, error=f"not a JSON object ({type(exc).__name__})")
            continue
        if not isinstance(obj, dict):
            yield Item(row, None, error="not a JSON object")
            continue
        ident = next((str(obj[k])[:128] for k in ID_COLUMNS if obj.get(k) is not None), None)
        text = next((obj[k] for k in TEXT_COLUMNS if k in obj), None)
        if not isinstance(text, str):
            yield Item(row, ident, error=f"no text (one of: {', '.join(TEXT_COLUMNS)})")
            continue
        yield Item(row, ident, text)


def _delimiter(header: str, path: Path) -> str:
    """Comma, or what a Turkish-locale spreadsheet writes (semicolon), or tab."""
    if path.suffix.lower() == ".tsv" or ("\t" in header and "," not in header):
        return "\t"
    return ";" if ";" in header and "," not in header else ","


def _records(fh: IO[bytes], delimiter: str) -> Iterator[tuple[list[str] | None, str | None]]:
    """CSV records, a quoted field allowed to span lines: (fields, None) or (None, why). A
    quote that never closes costs only its own line: that line is reported and the lines
    after it are read again as records of their own."""
    todo: list[bytes | None] = []  # lines to (re)read; None: a line that was too long
    source = _lines(fh)
    pending: list[str] = []
    while True:
        if todo:
            raw = todo.pop(0)
        else:
            nxt = next(source, None)
            if nxt is None:
                if not pending:
                    return
                yield None, "a quoted field is never closed"
                todo = [p.encode("utf-8") for p in pending[1:]]
                pending = []
                continue
            raw = None if nxt[1] else nxt[0]
        if raw is None:
            if pending:  # an open quote ran into a line too long: give up on the first line
                yield None, "a quoted field is never closed"
                todo = [p.encode("utf-8") for p in pending[1:]] + [None] + todo
                pending = []
                continue
            yield None, f"line longer than {MAX_LINE_BYTES} bytes"
            continue
        try:
            pending.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            yield None, "not UTF-8 (save the file as UTF-8)"
            continue
        text = "".join(pending)
        try:
            fields = next(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True), [])
        except csv.Error as exc:
            if (
                "unexpected end of data" in str(exc)
                and len(pending) < MAX_RECORD_LINES
                and len(text) <= MAX_LINE_BYTES
            ):
                continue  # a quoted field going on to the next line
            yield (
                None,
                (
                    "a quoted field is never closed"
                    if "unexpected end of data" in str(exc)
                    else f"not CSV ({exc})"
                ),
            )
            todo = [*(p.encode("utf-8") for p in pending[1:]), *todo]
            pending = []
            continue
        pending = []
        if text.strip():
            yield fields, None


def _csv(fh: IO[bytes], path: Path) -> Iterator[Item]:
    header_line, _ = next(_lines(fh), (None, False))
    if header_line is None:
        raise BatchInputError(f"{path}: empty, or its header line is too long")
    try:
        header_text = header_line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BatchInputError(f"{path}: not UTF-8 (save the file as UTF-8)") from None
    delimiter = _delimiter(header_text, path)
    header = [h.strip().lower() for h in next(csv.reader([header_text], delimiter=delimiter))]
    text_col = next((header.index(c) for c in TEXT_COLUMNS if c in header), None)
    if text_col is None:
        raise BatchInputError(
            f"{path}: no text column (one of: {', '.join(TEXT_COLUMNS)}); "
            f"found {', '.join(header) or 'none'}"
        )
    id_col = next((header.index(c) for c in ID_COLUMNS if c in header), None)
    for row, (fields, why) in enumerate(_records(fh, delimiter), 1):
        if fields is None:
            yield Item(row, None, error=why)
            continue
        ident = (
            fields[id_col].strip()[:128] if id_col is not None and id_col < len(fields) else None
        )
        if text_col >= len(fields):
            yield Item(row, ident or None, error="no text in this row")
            continue
        yield Item(row, ident or None, fields[text_col])


def images(path: Path) -> Iterator[Item]:
    """The images of a folder (recursively, by suffix, sorted) or of a manifest CSV (a
    ``file`` column, relative to the manifest's folder)."""
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise BatchInputError(
                f"{path}: no image in it (looked for "
                f"{', '.join(IMAGE_SUFFIXES)}, in every subfolder)"
            )
        for row, f in enumerate(files, 1):
            yield Item(row, str(f.relative_to(path)), f)
        return
    if not path.is_file():
        raise BatchInputError(f"{path}: no such file or folder")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BatchInputError(f"{path}: larger than {MAX_MANIFEST_BYTES >> 20} MB; split it")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BatchInputError(f"{path}: not UTF-8 (save the manifest as UTF-8)") from None
    first = text.split("\n", 1)[0]
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(first, path))
    names = reader.fieldnames or []
    header = [h.strip().lower() for h in names]
    column = next((names[header.index(c)] for c in FILE_COLUMNS if c in header), None)
    if column is None:
        raise BatchInputError(
            f"{path}: no file column (one of: {', '.join(FILE_COLUMNS)}); "
            f"found {', '.join(header) or 'none'}"
        )
    for row, rec in enumerate(reader, 1):
        name = (rec.get(column) or "").strip()
        if not name:
            yield Item(row, None, error="no file in this row")
            continue
        f = Path(name) if Path(name).is_absolute() else path.parent / name
        yield Item(row, name, f)


@dataclass
class Summary:
    rows: int = 0
    ok: int = 0
    errors: int = 0
    outcomes: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "ok": self.ok,
            "errors": self.errors,
            "outcomes": dict(sorted(self.outcomes.items())),
            "seconds": round(self.seconds, 2),
            "per_second": round(self.rows / self.seconds, 2) if self.seconds else None,
        }


def run(
    items: Iterator[Item],
    predict: Callable[[Item], dict[str, Any]],
    outcome: Callable[[dict[str, Any]], list[str]],
    out: IO[str],
    progress: bool = True,
    total: int | None = None,
) -> Summary:
    """Each item through ``predict`` (its result) in order, one JSON line each; a row whose
    input or prediction fails is a line with ``error`` and ``error_type``. ``outcome`` names
    what a result counts as in the summary."""
    from tqdm.auto import tqdm

    summary = Summary()
    start = time.perf_counter()
    bar = tqdm(total=total, unit="row", disable=not progress, mininterval=0.5, leave=True)
    try:
        for item in items:
            summary.rows += 1
            line: dict[str, Any] = {"row": item.row, "id": item.id}
            if item.error is not None:
                line.update(ok=False, error=item.error, error_type="BadRow")
            else:
                try:
                    result = predict(item)
                except Exception as exc:  # broad: recorded on the item's line; the batch goes on
                    # the library's own account of the input (too long, unreadable, …)
                    line.update(ok=False, error=str(exc)[:300], error_type=type(exc).__name__)
                else:
                    line.update(ok=True, result=result)
                    summary.outcomes.update(outcome(result))
            if line["ok"]:
                summary.ok += 1
            else:
                summary.errors += 1
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            bar.update(1)
    finally:
        bar.close()
        out.flush()
    summary.seconds = time.perf_counter() - start
    return summary
