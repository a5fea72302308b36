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
from typing import IO, Any

from medai.core.text import MAX_COMPLAINT_BYTES

MAX_LINE_BYTES = MAX_COMPLAINT_BYTES + 4096   # a complaint and its id, JSON-quoted
TEXT_COLUMNS = ("text", "complaint", "sikayet", "şikayet")
ID_COLUMNS = ("id", "patient_ref", "ref")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
FILE_COLUMNS = ("file", "path", "image")


class BatchInputError(ValueError):
    """The batch file itself cannot be used (the message says why)."""


@dataclass
class Item:
    row: int
    id: str | None
    value: Any = None          # the complaint's text, or the image's path
    error: str | None = None   # why this row cannot be used


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


def _jsonl(fh: IO[bytes]) -> Iterator[Item]:
    row = 0
    for line, too_long in _lines(fh):
        if line is not None and not line.strip():
            continue
        row += 1
        if too_long:
            yield Item(row, None, error=f"line longer than {MAX_LINE_BYTES} bytes")
            continue
        try:
            obj = json.loads(line.decode("utf-8-sig"))
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


def _csv(fh: IO[bytes], path: Path) -> Iterator[Item]:
    header_line, too_long = next(_lines(fh), (None, False))
    if header_line is None:
        raise BatchInputError(f"{path}: empty, or its header line is too long")
    try:
        header_text = header_line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BatchInputError(f"{path}: not UTF-8") from None
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    header = [h.strip().lower() for h in next(csv.reader([header_text], delimiter=delimiter))]
    text_col = next((header.index(c) for c in TEXT_COLUMNS if c in header), None)
    if text_col is None:
        raise BatchInputError(f"{path}: no text column (one of: {', '.join(TEXT_COLUMNS)}); "
                              f"found {', '.join(header) or 'none'}")
    id_col = next((header.index(c) for c in ID_COLUMNS if c in header), None)
    row = 0
    buffer = ""
    for line, too_long in _lines(fh):
        if too_long:
            row += 1
            buffer = ""
            yield Item(row, None, error=f"line longer than {MAX_LINE_BYTES} bytes")
            continue
        try:
            buffer += line.decode("utf-8")
        except UnicodeDecodeError:
            row += 1
            buffer = ""
            yield Item(row, None, error="not UTF-8")
            continue
        if buffer.count('"') % 2:  # a quoted field spanning lines: read on
            if len(buffer) > MAX_LINE_BYTES:
                row += 1
                buffer = ""
                yield Item(row, None, error=f"row longer than {MAX_LINE_BYTES} bytes")
            continue
        text, buffer = buffer, ""
        if not text.strip():
            continue
        row += 1
        fields = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
        ident = fields[id_col].strip()[:128] if id_col is not None and id_col < len(fields) \
            else None
        if text_col >= len(fields):
            yield Item(row, ident, error="no text in this row")
            continue
        yield Item(row, ident or None, fields[text_col])


def images(path: Path) -> Iterator[Item]:
    """The images of a folder (recursively, by suffix, sorted) or of a manifest CSV (a
    ``file`` column, relative to the manifest's folder)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and p.suffix.lower() in IMAGE_SUFFIXES)
        for row, f in enumerate(files, 1):
            yield Item(row, str(f.relative_to(path)), f)
        return
    if not path.is_file():
        raise BatchInputError(f"{path}: no such file or folder")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip().lower() for h in reader.fieldnames or []]
        column = next((reader.fieldnames[header.index(c)] for c in FILE_COLUMNS if c in header),
                      None)
        if column is None:
            raise BatchInputError(f"{path}: no file column (one of: {', '.join(FILE_COLUMNS)})")
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
        return {"rows": self.rows, "ok": self.ok, "errors": self.errors,
                "outcomes": dict(sorted(self.outcomes.items())),
                "seconds": round(self.seconds, 2),
                "per_second": round(self.rows / self.seconds, 2) if self.seconds else None}


def run(items: Iterator[Item], predict: Callable[[Item], dict[str, Any]],
        outcome: Callable[[dict[str, Any]], list[str]], out: IO[str],
        progress: bool = True, total: int | None = None) -> Summary:
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
                except Exception as exc:  # never patient text in the type; the message is
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
