"""The second, independent detector: nearest urgent exemplars in the e5 embedding space.

Each chunk of the complaint (a sentence, or a window of a long run-on sentence) is embedded and
compared with the team-written urgent exemplars of every flag and with non-urgent contrast
sentences. A flag fires when its nearest exemplar is at least ``threshold`` similar *and* beats
the nearest contrast sentence by ``margin`` (both chosen on the development set; see
benchmarks/red_flag_benchmark.py). Embedding costs ~1 ms a wordpiece on 2 cores (an 8-word
window ≈ 25 ms), so at most ``max_chunks`` windows are embedded, the ones holding the most lexicon
concepts first: urgent signs are local, and a window around them keeps the latency bounded.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medai.triage.red_flags.schema import RuleSet
from medai.triage.red_flags.tokens import Token, span

log = logging.getLogger(__name__)
CHUNK_MAX_TOKENS = 8
CHUNK_STRIDE = 4
CHUNK_MIN_TOKENS = 3


@dataclass(frozen=True)
class KnnSettings:
    threshold: float = 0.90
    margin: float = 0.0
    max_chunks: int = 1


@dataclass(frozen=True)
class Chunk:
    first: int  # token indices, inclusive
    last: int


@dataclass(frozen=True)
class KnnHit:
    flag_id: str
    similarity: float
    exemplar: str
    contrast_similarity: float
    chunk: Chunk


def chunk_tokens(tokens: list[Token]) -> list[Chunk]:
    """Sentences cut into overlapping windows of ``CHUNK_MAX_TOKENS`` words; tiny ones joined."""
    chunks: list[Chunk] = []
    start = 0
    for i in range(len(tokens) + 1):
        if i < len(tokens) and tokens[i].sentence == tokens[start].sentence:
            continue
        s, e = start, i - 1
        while e - s + 1 > CHUNK_MAX_TOKENS:
            chunks.append(Chunk(s, s + CHUNK_MAX_TOKENS - 1))
            s += CHUNK_STRIDE
        chunks.append(Chunk(s, e))
        start = i
    merged: list[Chunk] = []
    for c in chunks:
        if merged and merged[-1].last - merged[-1].first + 1 < CHUNK_MIN_TOKENS:
            merged[-1] = Chunk(merged[-1].first, c.last)
        else:
            merged.append(c)
    return merged


def _digest(model_id: str, texts: list[str]) -> str:
    return hashlib.sha256("\x00".join([model_id, *texts]).encode()).hexdigest()


class ExemplarDetector:
    """Embeds the exemplar bank once (or reads it from a matching .npz) and scores chunks."""

    def __init__(
        self,
        ruleset: RuleSet,
        encoder,
        settings: KnnSettings,
        cache_file: Path | None = None,
        write_file: Path | None = None,
    ) -> None:
        self.encoder, self.settings = encoder, settings
        self.flag_of: list[str] = []
        self.texts: list[str] = []
        for fid, items in ruleset.exemplars.items():
            self.flag_of += [fid] * len(items)
            self.texts += list(items)
        self.contrast_texts = list(ruleset.contrast)
        vecs = self._bank(self.texts + self.contrast_texts, cache_file, write_file or cache_file)
        self.urgent = vecs[: len(self.texts)]
        self.contrast = vecs[len(self.texts) :]
        self.flag_ids = sorted(set(self.flag_of))
        self._flag_index = np.array([self.flag_ids.index(f) for f in self.flag_of])

    def _bank(
        self, texts: list[str], cache_file: Path | None, write_file: Path | None
    ) -> np.ndarray:
        """Exemplar vectors from the first cache whose digest matches, else embedded now and
        written to ``write_file`` (never into the installed package)."""
        digest = _digest(self.encoder.model_id, texts)
        for path in dict.fromkeys(p for p in (cache_file, write_file) if p):
            if path.is_file():
                with np.load(path) as z:
                    if str(z["digest"]) == digest:
                        return z["vectors"].astype(np.float32)
        log.warning(
            "no current embedding cache for the exemplars; embedding %d sentences", len(texts)
        )
        vecs = self.encoder.encode(texts).astype(np.float32)
        if write_file:
            try:
                write_file.parent.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(
                    write_file, vectors=vecs.astype(np.float16), digest=np.array(digest)
                )
            except OSError as exc:  # a read-only folder still works, it just re-embeds
                log.warning("could not write %s: %s", write_file, exc)
        return vecs

    def select(self, chunks: list[Chunk], salience: list[int]) -> list[Chunk]:
        order = sorted(range(len(chunks)), key=lambda i: (-salience[i], i))
        return [chunks[i] for i in order[: self.settings.max_chunks]]

    def detect(self, text: str, tokens: list[Token], chunks: list[Chunk]) -> list[KnnHit]:
        """The best hit per flag over the chunks; the caller applies the thresholds."""
        if not chunks:
            return []
        pieces = [span(text, tokens, c.first, c.last) for c in chunks]
        emb = self.encoder.encode(pieces)
        sim = emb @ self.urgent.T  # chunks × exemplars
        contrast = (emb @ self.contrast.T).max(1) if len(self.contrast) else np.zeros(len(emb))
        hits = []
        for k, fid in enumerate(self.flag_ids):
            cols = np.flatnonzero(self._flag_index == k)
            sub = sim[:, cols]
            ci, ej = np.unravel_index(int(np.argmax(sub)), sub.shape)
            hits.append(
                KnnHit(
                    fid, float(sub[ci, ej]), self.texts[cols[ej]], float(contrast[ci]), chunks[ci]
                )
            )
        return hits

    def fires(self, hit: KnnHit) -> bool:
        s = self.settings
        margin = hit.similarity - hit.contrast_similarity
        return hit.similarity >= s.threshold and margin >= s.margin
