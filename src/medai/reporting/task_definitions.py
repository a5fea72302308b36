"""The caption task: a radiology image → a suggested caption (retrieval or BLIP-2 + LoRA)."""

from __future__ import annotations

from medai.core.task_registry import Task, loader_from, register


def register_tasks() -> None:
    """Entry point ``medai.tasks``: caption."""
    register(
        Task(
            name="caption",
            kind="caption",
            loader=loader_from("medai.reporting.captioning.captioner:load_predictor"),
            modality="image",
            display={"tr": "Görüntü açıklaması", "en": "Image caption"},
        )
    )
