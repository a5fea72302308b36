"""Heatmap bursts settle (issue 24): the process bounds glibc's heap (one arena per core, large
buffers mapped on their own), the imaging lane hands freed heap back when a burst leaves it
idle, and an overlay costs a few bytes a pixel of temporaries. The burst itself is measured
against a running server by benchmarks/memory_image_views.py."""

from __future__ import annotations

import asyncio
import tracemalloc

import numpy as np
import pytest

from medai.core import heap
from medai.imaging.explain import overlay_rgba
from medai.services import runtime


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def libc(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(heap, "libc", lambda: fake)
    monkeypatch.setattr(runtime, "_TUNED", False)
    return fake


def test_the_allocator_gets_one_arena_per_core_and_a_fixed_mmap_threshold(libc, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_count", lambda: 4)
    runtime.tune_allocator()
    runtime.tune_allocator()  # once per process
    assert libc.calls == [
        ("mallopt", runtime.M_ARENA_MAX, 4),
        ("mallopt", runtime.M_MMAP_THRESHOLD, 1 << 20),
    ]


def test_the_lane_gives_memory_back_once_when_a_burst_leaves_it_idle(libc):
    lane = runtime.InferenceLane(concurrency=2, queue=8, timeout_s=5)
    seen_during: list[int] = []

    async def call(gate: asyncio.Event) -> None:
        async with lane.slot():
            await gate.wait()
            seen_during.append(len(libc.calls))

    async def burst() -> None:
        gate = asyncio.Event()
        tasks = [asyncio.create_task(call(gate)) for _ in range(5)]
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(*tasks)
        await asyncio.sleep(0.05)  # the trim runs in the loop's executor

    asyncio.run(burst())
    assert seen_during == [0] * 5  # never while calls are running or waiting
    assert libc.calls == [("malloc_trim", 0)]


def test_an_overlay_costs_a_few_bytes_a_pixel():
    heat = np.random.default_rng(0).random((1000, 1200), dtype=np.float32)
    overlay_rgba(heat[:64, :64])  # matplotlib's import and colour map, once
    tracemalloc.start()
    rgba = overlay_rgba(heat)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rgba.shape == (1000, 1200, 4) and rgba.dtype == np.uint8
    assert peak < 16 * heat.size, peak / heat.size  # float RGB(A) copies cost ~70 a pixel
