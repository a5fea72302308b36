"""Knowledge base: citable chunks of text, each keeping its source and licence.

The bundled base (``assets/knowledge/medai_kb.jsonl``) has a short English and Turkish passage
for every imaging label, written by the medai team: what to look for and what is usually
recommended (a draft leaves the advice out: ``reporting.safety.without_advice``).
A hospital adds its own documents — Markdown/text, CSV with a text column, PDF, JSONL — and
prior reports; ``medai kb ingest`` writes them to a knowledge-base folder (``chunks.jsonl``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from medai.core.errors import MedaiError
from medai.core.text import TextInputError, decode_text

CHUNKS_FILE = "chunks.jsonl"
MAX_CHUNK_CHARS = 900
MAX_FILE_BYTES = 50 * 1024 * 1024


class KnowledgeInputError(MedaiError, ValueError):
    """A knowledge-base file that cannot be read as text; nothing is ingested from it."""

    code = "invalid"


@dataclass
class Chunk:
    id: str
    text: str
    source: str
    licence: str = "unknown (check before redistribution)"
    title: str = ""
    label: str | None = None
    lang: str | None = None
    meta: dict = field(default_factory=dict)


def builtin_chunks() -> list[Chunk]:
    ref = resources.files("medai") / "assets" / "knowledge" / "medai_kb.jsonl"
    return [Chunk(**json.loads(line)) for line in ref.read_text("utf-8").splitlines() if line]


def split_text(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[str]:
    """Paragraph-aware chunks of at most ~``max_chars`` (a long paragraph splits at sentences)."""
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        if len(para) <= max_chars:
            pieces.append(para)
            continue
        current = ""
        for sentence in re.split(r"(?<=[.!?])\s+", para):
            if current and len(current) + len(sentence) + 1 > max_chars:
                pieces.append(current)
                current = ""
            current = f"{current} {sentence}".strip()
        if current:
            pieces.append(current)
    chunks: list[str] = []
    for p in pieces:  # merge very short neighbours (headings, list stubs) into the next piece
        if chunks and len(chunks[-1]) < 120 and len(chunks[-1]) + len(p) < max_chars:
            chunks[-1] = f"{chunks[-1]} {p}"
        else:
            chunks.append(p)
    return chunks


def _chunk_id(source: str, i: int, text: str) -> str:
    digest = hashlib.sha1(f"{source}\0{i}\0{text}".encode()).hexdigest()[:10]
    return f"{Path(source).stem[:40]}-{i}-{digest}"


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise KnowledgeInputError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise KnowledgeInputError(f"{path}: {size:,} bytes is over the {MAX_FILE_BYTES:,} limit")
    return path.read_bytes()


def _text(data: bytes, path: Path) -> str:
    if b"\0" in data[:4096]:
        raise KnowledgeInputError(f"{path}: looks like a binary file, not text")
    try:
        return decode_text(data)
    except TextInputError as exc:
        raise KnowledgeInputError(f"{path}: {exc}") from None


def read_document(
    path: Path, licence: str, text_column: str | None = None, source: str | None = None
) -> list[Chunk]:
    """Chunks of one document. CSV: one or more chunks per row from ``text_column`` (default:
    ``text``, or ``findings`` + ``impression`` for report exports)."""
    path = Path(path)
    data = _read_bytes(path)
    suffix = path.suffix.lower()
    src = source or path.name
    texts: list[tuple[str, dict]]
    if suffix == ".pdf":
        texts = [(_pdf_text(data, path), {})]
    elif suffix == ".csv":
        texts = _csv_texts(_text(data, path), path, text_column)
    elif suffix == ".jsonl":
        texts = []
        for n, line in enumerate(_text(data, path).splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise KnowledgeInputError(f"{path}:{n}: not JSON ({exc.msg})") from None
                texts.append(
                    (
                        str(row.get(text_column or "text", "")),
                        {k: v for k, v in row.items() if k != (text_column or "text")},
                    )
                )
    elif suffix in (".md", ".markdown", ".txt", ".text"):
        texts = [(_text(data, path), {})]
    else:
        raise KnowledgeInputError(
            f"{path}: unsupported type {suffix or '(none)'}; use .md, .txt, .csv, .jsonl or .pdf"
        )
    chunks: list[Chunk] = []
    for text, meta in texts:
        for piece in split_text(text):
            i = len(chunks)
            chunks.append(
                Chunk(
                    id=_chunk_id(src, i, piece),
                    text=piece,
                    source=str(meta.get("source") or meta.get("citation") or src),
                    licence=str(meta.get("licence") or meta.get("license") or licence),
                    title=str(meta.get("title") or meta.get("article") or path.stem),
                    meta={
                        k: str(v)
                        for k, v in meta.items()
                        if k in ("source_url", "doi", "uid", "section")
                    },
                )
            )
    if not chunks:
        raise KnowledgeInputError(f"{path}: no text found")
    return chunks


def _csv_texts(text: str, path: Path, column: str | None) -> list[tuple[str, dict]]:
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    if column and column not in fields:
        raise KnowledgeInputError(f"{path}: no column {column!r} (columns: {fields})")
    rows = []
    for row in reader:
        if column or "text" in fields:
            body = row.get(column or "text") or ""
        elif {"findings", "impression"} & set(fields):  # a prior-report export
            body = "\n\n".join(
                f"{k.upper()}: {row[k]}"
                for k in ("findings", "impression")
                if row.get(k) and row[k] != "None."
            )
        else:
            raise KnowledgeInputError(
                f"{path}: say which column holds the text (--text-column; columns: {fields})"
            )
        rows.append((body, row))
    return rows


def _pdf_text(data: bytes, path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise KnowledgeInputError(f"{path}: not a readable PDF ({exc})") from None


def save_chunks(directory: Path, chunks: list[Chunk]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CHUNKS_FILE
    with path.open("w", encoding="utf-8") as fh:
        for c in chunks:
            fh.write(json.dumps(asdict(c), ensure_ascii=False) + "\n")
    return path


def load_chunks(directory: Path | None, include_builtin: bool = True) -> list[Chunk]:
    chunks = builtin_chunks() if include_builtin else []
    if directory is not None:
        path = Path(directory) / CHUNKS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{directory}: not a knowledge-base folder (no {CHUNKS_FILE})")
        chunks += [
            Chunk(**json.loads(line))
            for line in path.read_text("utf-8").splitlines()
            if line.strip()
        ]
    return chunks
