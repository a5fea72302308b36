"""Model registry: a model is a directory holding its weights and a ``model_card.json``.

The card says what the model does (task, labels, thresholds), how it was made (training command,
data file hashes) and how well it did (metrics), so any model directory can be audited and
loaded the same way. ``load(path)`` returns the task's predictor whatever the backend, through
the loader its task registered (``core.task_registry``); core names no job module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import medai
from medai.core import task_registry
from medai.core.baselines import verdict
from medai.core.errors import MedaiError
from medai.core.results import ModelRef, directory_hash

CARD_FILE = "model_card.json"


class ModelLoadError(MedaiError, RuntimeError):
    """A directory that is not a usable model (no card, unknown task, missing weights)."""

    code = "unavailable"


@dataclass
class ModelCard:
    task: str
    model_type: str
    labels: list[str]
    name: str = ""
    version: str = ""
    description: str = ""
    thresholds: dict[str, float] = field(default_factory=dict)
    training_command: str = ""
    data: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    # the model beside its simplest baselines on the same split (core.baselines.compare)
    baselines: dict[str, Any] = field(default_factory=dict)
    licence_notes: str = ""
    intended_use: str = ""
    # sha256 of the directory's files (see core.results.directory_hash), written by save_card
    # and checked before any file is loaded: pickled scikit-learn models never load altered
    content_hash: str = ""
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    medai_version: str = field(default_factory=lambda: medai.__version__)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelCard:
        known = {f for f in cls.__dataclass_fields__}
        missing = {"task", "model_type", "labels"} - raw.keys()
        if missing:
            raise ModelLoadError(f"model card lacks required field(s): {sorted(missing)}")
        return cls(**{k: v for k, v in raw.items() if k in known})


def file_sha256(path: str | Path) -> str:
    """Hash of a training data file, recorded in the model card."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_card(directory: str | Path, card: ModelCard) -> Path:
    """Write the card with the content hash of the directory as it is now: call it after the
    last model file is written (``reseal`` after adding files such as an ONNX export)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    card.content_hash = directory_hash(directory)
    path = directory / CARD_FILE
    path.write_text(
        json.dumps(card.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return path


def read_card(directory: str | Path) -> ModelCard:
    path = Path(directory) / CARD_FILE
    if not path.is_file():
        raise ModelLoadError(f"{directory}: not a model directory (no {CARD_FILE})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path}: unreadable model card ({exc})") from None
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{path}: model card must be a JSON object")
    return ModelCard.from_dict(raw)


def reseal(directory: str | Path) -> ModelCard:
    """Re-write a directory's card after its files changed on purpose (export, gate refit)."""
    card = read_card(directory)
    save_card(directory, card)
    return card


def verify(directory: str | Path, card: ModelCard) -> str:
    """The directory's content hash; ModelLoadError when it differs from the card's."""
    actual = directory_hash(directory)
    if card.content_hash and card.content_hash != actual:
        raise ModelLoadError(
            f"{directory}: model files differ from those its card was written "
            f"for ({actual[:19]}… vs {card.content_hash[:19]}…); refusing to "
            "load them (re-create the model, or `medai models reseal` files "
            "you trust)"
        )
    return actual


def identity(directory: str | Path, card: ModelCard) -> ModelRef:
    """Name, version and content hash of a model directory (hashes every file: call once)."""
    directory = Path(directory)
    return ModelRef(
        name=card.name or directory.name,
        version=card.version or card.created_at,
        content_hash=directory_hash(directory),
        task=card.task,
        model_type=card.model_type,
    )


def load(directory: str | Path, **options: Any) -> Any:
    """The task's predictor for a model directory, with ``identity`` set (see ModelRef).

    ``options`` go to the task's loader (e.g. ``runtime`` for imaging models)."""

    directory = Path(directory)
    card = read_card(directory)
    try:
        task = task_registry.get(card.task)
    except task_registry.TaskError as exc:
        raise ModelLoadError(f"{directory}: {exc}") from None
    verify(directory, card)  # before any (pickled) file is read
    predictor = task.loader(directory, card, **options)
    if getattr(predictor, "identity", None) is None:
        predictor.identity = identity(directory, card)
    return predictor


def model_identity(directory: str | Path | None, card: ModelCard) -> ModelRef:
    """``identity`` of a saved model; an in-memory one (never saved) says so in its hash."""
    if directory is not None:
        return identity(directory, card)
    return ModelRef(
        name=card.name or "unsaved",
        version=card.version or card.created_at,
        content_hash="unsaved",
        task=card.task,
        model_type=card.model_type,
    )


def bundled_models_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "assets" / "models"


def search_paths(extra: list[Path] | None = None, models_dir: Path | None = None) -> list[Path]:
    """The bundled models, then ``models_dir`` (the configured MEDAI_MODELS_DIR: the caller
    passes it, core reads no settings), then ``extra``."""
    paths = [bundled_models_dir(), *([models_dir] if models_dir else []), *(extra or [])]
    unique: list[Path] = []
    for p in paths:
        if p not in unique:
            unique.append(p)
    return unique


def list_models(
    extra: list[Path] | None = None, models_dir: Path | None = None
) -> list[tuple[Path, ModelCard]]:
    """Every model directory (one level deep) under the bundled folder, ``models_dir`` and
    ``extra``."""
    found: list[tuple[Path, ModelCard]] = []
    for root in search_paths(extra, models_dir):
        if not root.is_dir():
            continue
        candidates = [root] if (root / CARD_FILE).is_file() else sorted(root.iterdir())
        for d in candidates:
            if (d / CARD_FILE).is_file():
                try:
                    found.append((d, read_card(d)))
                except ModelLoadError:
                    continue
    return found


def no_default_reason(task: str) -> str:
    """Why a task has no default model, naming what is bundled for it and its verdict against
    its baselines (a bundled model that does not beat them is shipped, but not as a default)."""
    bundled = [
        (d, card)
        for d, card in list_models()
        if card.task == task and d.resolve().is_relative_to(bundled_models_dir().resolve())
    ]
    lines = [
        f"no default model for task {task!r}: pass --model, or name its folder in "
        f"MEDAI_MODELS ({task}=DIR)"
    ]
    for d, card in bundled:
        said = f" ({verdict(card.baselines)})" if card.baselines else ""
        lines.append(f"bundled, not a default: {d.name}{said}")
    return "; ".join(lines)


def check_tasks(models: Mapping[str, Any], var: str = "MEDAI_MODELS") -> None:
    """Every task ``models`` names is a registered one; an unknown name is refused naming
    ``var`` (where it was given) and the known tasks."""

    known = task_registry.names()
    unknown = sorted(t for t in models if t not in known)
    if unknown:
        raise ValueError(
            f"{var}: unknown task {', '.join(map(repr, unknown))}; known tasks: {', '.join(known)}"
        )


def resolve_model(
    ref: str | Path | None,
    task: str,
    models: Mapping[str, str | Path] | None = None,
    models_dir: Path | None = None,
) -> Path:
    """The one place that decides which model folder serves ``task``: ``ref`` when given (a
    command's ``--model``), else the folder ``models`` names for the task (the configured
    mapping, ``MEDAI_MODELS`` / ``serve --model TASK=DIR``, or a registry's pin), else the
    bundled default ``assets/models/<task>-default``. A ref that is no folder is a model name
    from ``list_models`` (under ``models_dir`` too). Core reads no settings: the caller passes
    the mapping and the folder (``services.model_handles.model_folder``)."""
    where = "model"
    if ref is None and models and models.get(task):
        ref, where = models[task], f"the {task} model of MEDAI_MODELS (or serve --model)"
    if ref is None:
        default = bundled_models_dir() / f"{task}-default"
        if not (default / CARD_FILE).is_file():
            raise ModelLoadError(no_default_reason(task))
        return default
    path = Path(ref)
    if path.is_dir():
        return path
    for d, card in list_models(models_dir=models_dir):
        if d.name == str(ref) or card.name == str(ref):
            return d
    raise ModelLoadError(f"{where} '{ref}': no such directory or registered model name")


def record_in_card(directory, entry: Mapping[str, Any]) -> None:
    """Write a benchmark's comparison into a model directory's card. The card is not part of
    the directory's content hash, so the model stays sealed; a directory whose files no longer
    match its card is refused rather than re-sealed here."""
    directory = Path(directory)
    card = read_card(directory)
    if card.content_hash and card.content_hash != directory_hash(directory):
        raise ModelLoadError(
            f"{directory}: files differ from the card's content hash; "
            "reseal it before recording baselines"
        )
    card.baselines = dict(entry)
    save_card(directory, card)
