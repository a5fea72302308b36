"""Retraining from the site's signatures: export the task's labelled studies (de-identified,
without those held out for site validation),
train a model on them, write the data's datasheet into its card, and register it as a
``candidate`` — which then goes through site validation, shadow and promotion like any other.
Run by ``medai models retrain`` (or a job on the ``training`` queue)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from medai.core import model_dir as model_dirs
from medai.platform.access.audit import Actor
from medai.platform.lifecycle import dataset, model_registry
from medai.platform.lifecycle.model_registry import require_served
from medai.services import tracking
from medai.services.training import train_imaging_model

log = logging.getLogger("medai.platform.lifecycle")
MIN_STUDIES = 10


class TooFewStudies(dataset.DatasetError):
    """Not enough labelled studies to retrain on (the numbers travel for the page)."""

    code = "too_few_studies"

    def __init__(self, studies: int, needed: int, task: str) -> None:
        super().__init__(
            f"only {studies} labelled {task} studies (at least {needed} needed to retrain)"
        )
        self.params = {"studies": studies, "needed": needed}


def retrain(
    p,
    task: str,
    work: Path,
    actor: Actor,
    since: datetime | None = None,
    min_studies: int = MIN_STUDIES,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    **train_options: Any,
) -> dict[str, Any]:
    """Export → train → register; returns {datasheet, model (the registry row), summary}.
    ``progress(fraction, stage)`` and ``cancel()``: a job's hooks."""

    def say(fraction: float, stage: str) -> None:
        if progress is not None:
            progress(fraction, stage)

    require_served(task, "retrained from signed studies")
    work = Path(work)
    say(0.0, "export")
    sheet = dataset.export(
        p,
        task,
        work / "data",
        since=since,
        deidentify=True,
        actor=actor.name,
        exclude_site_set=True,
    )
    if sheet["studies"] < min_studies:
        raise TooFewStudies(sheet["studies"], min_studies, task)
    log.info("retraining %s on %s signed studies", task, sheet["studies"])
    train_options.setdefault("name", f"{task}-site-{sheet['content_hash'][7:19]}")
    say(0.1, "train")
    summary = train_imaging_model(
        task,
        work / "data" / dataset.MANIFEST,
        work / "model",
        cancel=cancel,
        progress=lambda f: say(0.1 + 0.8 * f, "train"),
        **train_options,
    )
    say(0.9, "register")
    model_dir = Path(summary["model_dir"])
    card = model_dirs.read_card(model_dir)
    card.data = [
        *card.data,
        {
            "kind": "site signatures",
            **{
                k: sheet[k]
                for k in (
                    "studies",
                    "study_ids",
                    "label_counts",
                    "label_sources",
                    "signed_from",
                    "signed_to",
                    "content_hash",
                    "deidentified",
                )
            },
        },
    ]
    model_dirs.save_card(model_dir, card)  # the card is outside the content hash
    (model_dir / "datasheet.json").write_text(json.dumps(sheet, indent=2) + "\n")
    model_dirs.reseal(model_dir)

    tracked = (
        tracking.log_training(
            task,
            {
                "task": task,
                "source": "site signatures",
                "studies": sheet["studies"],
                **train_options,
            },
            summary,
        )
        if tracking.enabled()
        else None
    )
    with p.db.session() as db:
        row, _ = model_registry.register(
            db,
            p.home,
            model_dir,
            actor,
            task=task,
            source=f"retrain:{sheet['content_hash'][:19]}",
            reason=f"retrained on {sheet['studies']} signed studies",
        )
        out = model_registry.as_dict(row)
    return {
        "datasheet": sheet,
        "model": out,
        "test": summary.get("test"),
        "model_dir": str(model_dir),
        **({"mlflow": tracked} if tracked else {}),
    }
