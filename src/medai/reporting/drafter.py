"""The drafting service shared by ``medai report draft`` and the server: image → findings (the
imaging model, or findings given by the caller) → optional caption → retrieval → draft."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from medai.core import model_dir
from medai.imaging.io import ImageRefused, LoadedImage, load_image
from medai.imaging.scope import of_payload
from medai.reporting.draft import FindingsInputError, draft_report, imaging_task, parse_decided
from medai.reporting.knowledge import load_chunks
from medai.reporting.llm import LLMConfig, LLMError, make_backend
from medai.reporting.results import DraftResult
from medai.reporting.retrieve import HybridRetriever


def image_meta(loaded: LoadedImage) -> dict:
    """What a draft says of its image: the format, size and view (never its pixels)."""
    return {
        "format": loaded.source_format,
        "width": int(loaded.pixels.shape[1]),
        "height": int(loaded.pixels.shape[0]),
        "view_position": loaded.metadata.get("view_position") or None,
    }


class Drafter:
    def __init__(
        self,
        kb: Path | None = None,
        caption_model: Path | None = None,
        llm: str | None = None,
        embeddings: bool = True,
        llm_config: LLMConfig | None = None,
        models_dir: Path | None = None,
        models: Mapping[str, Path] | None = None,
    ) -> None:
        """``kb``: an extra knowledge base; ``llm_config``: the LLM backend (default: the
        template, no LLM), ``llm`` another backend name; ``models_dir``: where a BLIP-2
        captioner's base (and a model named, not given as a folder) may be found; ``models``:
        the folder serving each task (``MEDAI_MODELS``), so a draft's findings come from the
        model that ``/predict`` serves. The faces pass the configured ones
        (``services.reports.new_drafter``): reporting reads no settings."""
        self.kb = kb
        self.caption_model, self.embeddings = caption_model, embeddings
        self.models_dir, self.models = models_dir, dict(models or {})
        self.llm_config = llm_config or LLMConfig()
        if llm is not None:
            self.llm_config = replace(self.llm_config, backend=llm)
        self._retriever = None
        self._captioner: Any = None  # the caption model (model_dir.load), on first use
        self._imaging: dict[tuple[str, str | None], Any] = {}
        self._llm, self._llm_built = None, False
        self._lock = threading.RLock()

    @property
    def retriever(self):
        with self._lock:
            return self._load_retriever()

    def _load_retriever(self):
        if self._retriever is None:
            self._retriever = HybridRetriever(load_chunks(self.kb), use_embeddings=self.embeddings)
        return self._retriever

    def imaging(self, task: str, model: str | None):
        key = (task, model)
        with self._lock:
            if key not in self._imaging:
                self._imaging[key] = model_dir.load(
                    model_dir.resolve_model(model, task, self.models, self.models_dir)
                )
            return self._imaging[key]

    def draft(
        self,
        image: bytes | Path | LoadedImage | None,
        findings: Any = None,
        *,
        task: str | None = None,
        model: str | None = None,
        lang: str = "en",
        question: str | None = None,
        imaging_predictor=None,
        findings_model=None,
        prior: dict | None = None,
    ) -> DraftResult:
        """Raises ``ImageInputError``/``ImageRefused`` for an image that gets no findings and
        ``FindingsInputError`` for unusable findings, as the imaging service does. An image
        already decoded (``LoadedImage``) is used as it is: a study's analysis decodes once.
        No ``task``: the task registry's default imaging task. ``prior``: the patient's latest
        signed prior of this task (``reporting.comparison``), compared in the findings."""

        task = imaging_task(task)
        loaded = (
            image
            if isinstance(image, LoadedImage)
            else load_image(image)
            if image is not None
            else None
        )
        model_ref = findings_model  # the model that produced the given findings, when known
        if findings is None:
            if loaded is None:
                raise FindingsInputError("give an image or findings to draft from")
            predictor = imaging_predictor or self.imaging(task, model)
            result = predictor.predict(loaded)
            if result.refused:
                raise ImageRefused(result.reason or "image refused")
            findings, model_ref = result.model_dump(mode="json"), result.model
        parsed, decision = parse_decided(findings, task)
        # the model's scope, as its result states it (a person's findings have none)
        scope = (
            of_payload(findings) if isinstance(findings, dict) and "findings" in findings else None
        )
        caption = None
        if self.caption_model is not None and loaded is not None:
            if self._captioner is None:
                self._captioner = model_dir.load(self.caption_model, models_dir=self.models_dir)
            suggested = self._captioner.caption_pixels([loaded.pixels])[0]
            caption = suggested["caption"]
        warnings = []
        if caption is None and self.caption_model is not None and loaded is not None:
            # said, not silently dropped: the configured captioner declined this image
            warnings.append(f"no automatic caption: {suggested.get('reason') or 'abstained'}")
        try:
            backend = self._backend()
        except LLMError as exc:
            backend = None
            warnings.append(
                f"LLM backend {self.llm_config.backend!r} unavailable ({exc}); "
                "template draft instead"
            )
        meta = image_meta(loaded) if loaded is not None else None
        read = findings.get("read") if isinstance(findings, dict) else None
        if meta is not None and read and (read.get("instances_in_series") or 1) > 1:
            # a series: the technique says how much of it the model read (``imaging.series``)
            meta["series_slices"] = [read.get("instances_read"), read.get("instances_in_series")]
        if meta is not None and read:
            # a small lesion's slices and every series of the study (``reporting.series_words``)
            if read.get("undecided_slices"):
                meta["series_undecided"] = read["undecided_slices"]
            if len(read.get("series") or []) > 1:
                meta["series_accounts"] = read["series"]
        out = draft_report(
            parsed,
            self.retriever,
            backend,
            task=task,
            lang=lang,
            question=question,
            caption=caption,
            image=meta,
            model=None
            if model_ref is None
            else f"{model_ref.name} ({model_ref.content_hash[:19]})",
            decision=decision,
            scope=scope,
            prior=prior,
        )
        out["warnings"] = warnings + out["warnings"]
        return DraftResult(**out, model=model_ref, image=meta)

    def llm(self):
        """The configured LLM backend (None for ``template``), built once."""
        return self._backend()

    def _backend(self):
        """Built once per drafter (a local GGUF file is not re-read for every draft)."""
        with self._lock:
            if not self._llm_built:
                self._llm, self._llm_built = make_backend(self.llm_config), True
            return self._llm
