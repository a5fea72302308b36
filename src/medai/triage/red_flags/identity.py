"""Which red-flag engine raised a flag: one content hash over everything that can change
whether a text fires — the rule files (concepts, flags, exemplars), the shipped exemplar
embeddings, the learned classifier's files, the Python that reads texts (its word lists and
regular expressions: tokens, reading, timing, rules, the detectors), the e5 encoder's identity
and the engine's settings (matcher, detectors on, the embedding operating point). The shipped
exemplar embeddings are derived from exemplars.yaml and the encoder, so they are covered. Any
edit to any of them gives another hash, so a hospital can say which engine produced a past
alert.

A result names the engine as ``{name, version, content_hash, rules_version}``:
``rules_version`` is the first 12 hex digits of the hash (what results reported before, then
over the rule files alone)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

ENGINE_NAME = "red-flag-engine"
PACKAGE_DIR = Path(__file__).parent
RULE_FILES = ("concepts.yaml", "flags.yaml", "exemplars.yaml")
CLASSIFIER_FILES = ("model_card.json", "config.json", "vocabulary.json", "model.safetensors")


def code_files() -> list[Path]:
    """The Python that decides firing (every module of this package)."""
    return sorted(PACKAGE_DIR.glob("*.py"))


def content_hash(files: list[tuple[str, Path]], settings: dict[str, Any]) -> str:
    """sha256 over each (name, bytes) in name order, then the settings as sorted JSON; a file
    that does not exist counts as named-and-absent (adding it changes the hash too)."""
    h = hashlib.sha256()
    for name, path in sorted(files, key=lambda x: x[0]):
        h.update(name.encode() + b"\0")
        if path is not None and path.is_file():
            data = path.read_bytes()
            h.update(len(data).to_bytes(8, "big") + data)
        else:
            h.update(b"absent")
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return "sha256:" + h.hexdigest()


def engine_files(rules_dir: Path, classifier_dir: Path | None) -> list[tuple[str, Path]]:
    """The files hashed. The exemplar embeddings are not: they are derived from
    exemplars.yaml and the encoder, both of which are."""
    files = [(f"rules/{n}", rules_dir / n) for n in RULE_FILES]
    if classifier_dir is not None:
        files += [(f"classifier/{n}", classifier_dir / n) for n in CLASSIFIER_FILES]
    files += [(f"code/{p.name}", p) for p in code_files()]
    return files


def identity(rules_dir: Path, classifier_dir: Path | None,
             settings: dict[str, Any]) -> dict[str, str]:
    digest = content_hash(engine_files(rules_dir, classifier_dir), settings)
    from medai import __version__

    return {"name": ENGINE_NAME, "version": f"{__version__}+{digest[7:15]}",
            "content_hash": digest, "rules_version": digest[7:19]}
