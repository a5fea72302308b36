"""Where heatmap-burst memory goes, in one process (docs/benchmarks/memory.md): bursts of
Grad-CAM heatmaps, two at a time (the imaging lane), on a pool of worker threads like the
server's, under different glibc allocator settings. Prints peak and settled RSS per burst.

    OMP_NUM_THREADS=1 python benchmarks/heatmap_allocator_probe.py FILM.png \\
        [--threads 40] [--arenas 2] [--mmap-threshold 1048576] [--trim] [--bursts 5]

Without ``--arenas``/``--mmap-threshold`` glibc keeps its defaults (``services.runtime.
tune_allocator``, which the server runs at start, is switched off here).
"""

from __future__ import annotations

import argparse
import ctypes
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("film", type=Path)
    ap.add_argument("--threads", type=int, default=40, help="worker threads (anyio's: 40)")
    ap.add_argument("--arenas", type=int, default=None, help="mallopt M_ARENA_MAX")
    ap.add_argument("--mmap-threshold", type=int, default=None, help="mallopt M_MMAP_THRESHOLD")
    ap.add_argument("--trim", action="store_true", help="malloc_trim after every heatmap")
    ap.add_argument("--bursts", type=int, default=5)
    ap.add_argument("--per-burst", type=int, default=40)
    args = ap.parse_args()
    libc = ctypes.CDLL("libc.so.6")
    if args.arenas:
        libc.mallopt(-8, args.arenas)
    if args.mmap_threshold:
        libc.mallopt(-3, args.mmap_threshold)

    import torch

    from medai.services import imaging, runtime
    from medai.services.model_handles import ModelHandles

    runtime._TUNED = True  # the flags above decide; the service would tune at first decode

    torch.set_num_threads(1)
    predictor = ModelHandles(threads=1).get("cxr")
    data = args.film.read_bytes()
    proc = psutil.Process()

    def rss() -> float:
        return proc.memory_info().rss / 2**20

    lane = threading.Semaphore(2)

    def one(i: int) -> None:
        with lane:
            imaging.heatmap(predictor, data, predictor.labels[i % len(predictor.labels)])
            if args.trim:
                libc.malloc_trim(0)

    print(f"loaded: {rss():.0f} MB ({predictor.runtime})", flush=True)
    for b in range(args.bursts):
        peak, stop = [rss()], threading.Event()

        def watch(peak=peak, stop=stop) -> None:
            while not stop.wait(0.05):
                peak[0] = max(peak[0], rss())

        threading.Thread(target=watch, daemon=True).start()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:  # threads come and go, as in a server
            list(pool.map(one, range(args.per_burst)))
        wall = time.perf_counter() - t0
        stop.set()
        time.sleep(1)
        print(
            f"burst {b + 1}: peak {peak[0]:.0f} MB, after {rss():.0f} MB, {wall:.1f} s", flush=True
        )


if __name__ == "__main__":
    main()
