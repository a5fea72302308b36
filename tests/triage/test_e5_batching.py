"""Micro-batching of e5 (issue 27): the windows of concurrent requests are embedded in one call.
Concurrent results equal serial ones — the vectors bit for bit, and the red flags of real
development and blind texts checked concurrently equal those checked one by one with batching
off; a batch really forms when requests queue behind a busy engine."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from helpers.paths import TESTS

FIXTURE = TESTS / "data" / "red_flag_texts.jsonl"  # from development sets


def _texts() -> list[str]:
    return [
        json.loads(x)["text"] for x in FIXTURE.read_text(encoding="utf-8").splitlines() if x.strip()
    ]


def test_concurrent_vectors_equal_serial_ones_and_a_batch_forms():
    from medai.core.embeddings import E5Encoder

    plain = E5Encoder(micro_batch=0)
    batched = E5Encoder(micro_batch=8)
    texts = [f"query: {t}" for t in _texts()[:24]]
    serial = np.stack([plain.encode([t])[0] for t in texts])
    results: dict[int, np.ndarray] = {}
    batched._lock.acquire()  # the engine busy: every request queues behind the first
    try:
        threads = [
            threading.Thread(
                target=lambda i=i: results.__setitem__(i, batched.encode([texts[i]])[0])
            )
            for i in range(len(texts))
        ]
        for t in threads:
            t.start()
        for _ in range(2000):  # every request queued (the first is waiting for the engine)
            if batched.batcher._queue.qsize() >= len(texts) - 1:
                break
            time.sleep(0.005)
    finally:
        batched._lock.release()
    for t in threads:
        t.join(timeout=120)
    assert np.array_equal(np.stack([results[i] for i in range(len(texts))]), serial)
    assert max(batched.batcher.batches) == 8  # batches of up to max_batch formed
    assert sum(batched.batcher.batches) == len(texts)


def test_red_flags_checked_concurrently_equal_those_checked_one_by_one():
    from medai.core.embeddings import E5Encoder
    from medai.triage.red_flags.engine import build_engine

    texts = _texts()
    engine = build_engine()
    engine.knn.encoder = E5Encoder(micro_batch=0)
    serial = [[f.id for f in engine.check(t).flags] for t in texts]
    engine.knn.encoder = E5Encoder(micro_batch=16)
    with ThreadPoolExecutor(12) as pool:
        concurrent = list(pool.map(lambda t: [f.id for f in engine.check(t).flags], texts))
    assert concurrent == serial
    assert any(serial) and not all(serial)  # urgent and ordinary texts both in the sample
