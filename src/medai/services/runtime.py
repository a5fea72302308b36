"""CPU budgeting and the bounded inference lane.

``workers × concurrent calls × threads per call`` must not exceed the cores: oversubscribed
torch/ONNX Runtime thread pools made every request slower under load. Each process gets a
fixed number of concurrent model calls; the rest wait in a short queue with a timeout, and a
full queue is refused at once (the API answers 503 with ``Retry-After``) instead of piling up
work and memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from medai.core import heap
from medai.core.errors import MedaiError
from medai.core.heap import release_memory


class Overloaded(MedaiError, RuntimeError):
    """Every inference slot is busy and the queue is full (or the wait timed out)."""

    status, code = 503, "overloaded"

    def __init__(self, message: str, retry_after_s: int = 2) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    # read-only: derived from retry_after_s, never set
    @property
    def headers(self) -> dict[str, str]:  # type: ignore[override]
        return {"Retry-After": str(self.retry_after_s)}


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class CpuPlan:
    workers: int
    concurrency: int  # model calls at once per process
    threads: int  # intra-op threads per model call


def plan_cpu(workers: int = 1, concurrency: int | None = None, cores: int | None = None) -> CpuPlan:
    """Split the cores: by default one concurrent call per core per process, one thread each
    (throughput under load beats the latency of one call on every core)."""
    cores = cores or cpu_count()
    workers = max(1, workers)
    per_process = max(1, cores // workers)
    concurrency = max(1, concurrency or per_process)
    return CpuPlan(workers, concurrency, max(1, per_process // concurrency))


def apply_thread_limits(plan: CpuPlan) -> None:
    """Set torch's pools for this process (ONNX Runtime sessions take ``plan.threads``) and
    bound the allocator (``tune_allocator``)."""
    tune_allocator()
    import torch

    torch.set_num_threads(plan.threads)
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel op
        torch.set_num_interop_threads(1)


class InferenceLane:
    """At most ``concurrency`` model calls at once, ``queue`` more waiting ``timeout_s``.
    When the last call of a burst leaves an idle lane, the heap its buffers used is handed
    back to the OS (``release_memory``, off the event loop)."""

    def __init__(self, concurrency: int, queue: int, timeout_s: float) -> None:
        self.concurrency, self.queue, self.timeout_s = concurrency, queue, timeout_s
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0
        self._busy = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots is None:  # bound to the running event loop on first use
            self._slots = asyncio.Semaphore(self.concurrency)
        if self._slots.locked() and self._waiting >= self.queue:
            raise Overloaded(
                f"all {self.concurrency} inference slots are busy and "
                f"{self._waiting} requests are queued; retry shortly"
            )
        self._waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), self.timeout_s)
        except TimeoutError:
            raise Overloaded(
                f"no inference slot became free within {self.timeout_s:g} s; retry shortly"
            ) from None
        finally:
            self._waiting -= 1
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            self._slots.release()
            if self._busy == 0 and self._waiting == 0:
                asyncio.get_running_loop().run_in_executor(None, release_memory)


_TUNED = False
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters
MMAP_THRESHOLD = 1 << 20


def tune_allocator() -> None:
    """Bound glibc's heap for model calls, once per process (idempotent).

    Model calls run on whichever of the server's ~40 worker threads is free, and glibc gives
    threads their own malloc arenas (up to 8 per core), each keeping the pages of the ~100 MB
    of image, Grad-CAM and overlay buffers its calls freed; after the first free of a large
    buffer glibc also raises its mmap threshold, so later large buffers come from those heaps
    instead of being unmapped. 160 heatmaps from 8 clients held 1.5 GB after each burst, more
    after every burst. Here: one arena per core, and every buffer of 1 MiB or more mapped on
    its own and returned to the OS when freed (measured: the same bursts settle).
    """
    global _TUNED
    if _TUNED:
        return
    _TUNED = True
    try:
        libc = heap.libc()
        libc.mallopt(M_ARENA_MAX, max(2, cpu_count()))
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):  # not glibc
        pass
