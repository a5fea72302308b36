"""How long model calls take, for ``GET /metrics`` (``server.metrics``).

Measured here, where every face's prediction passes (the API's routes, the analysis jobs of
``serve``'s pool and of Celery workers, shadow runs, site validation), so one histogram covers
them all. Labels name the model — task, name and version from its card — and what came of the
call; never anything of the input (a complaint, an image, a patient).

In a process with ``PROMETHEUS_MULTIPROC_DIR`` set (``medai serve --workers N``) the values go
to that folder and every worker's ``/metrics`` reports the sum of all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import Histogram

# a triage answer takes milliseconds, an imaging call on a CPU up to seconds, a heatmap more
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

MODEL_SECONDS = Histogram(
    "medai_model_call_seconds",
    "Time of one model call (prediction or heatmap), by task, model name and version "
    "(from the model card), call and outcome (ok, refused: the input was refused, error)",
    ["task", "model", "version", "call", "outcome"],
    buckets=BUCKETS,
)


@dataclass
class Call:
    """What the caller learnt of the call: set ``outcome`` to ``refused`` when the model
    answered with a refusal instead of raising."""

    outcome: str = "ok"


def model_labels(predictor: Any, task: str | None = None) -> tuple[str, str, str]:
    """(task, name, version) of a predictor's identity (``core.model_dir.identity``)."""
    ident = getattr(predictor, "identity", None)
    return (
        str(task or getattr(ident, "task", None) or "unknown"),
        str(getattr(ident, "name", None) or "unknown"),
        str(getattr(ident, "version", None) or "unknown"),
    )


@contextmanager
def timed(
    predictor: Any,
    task: str | None = None,
    call: str = "predict",
    refusals: tuple[type[BaseException], ...] = (),
) -> Iterator[Call]:
    """Observe the block's duration under the predictor's labels; an exception of
    ``refusals`` (an input the model will not read) counts as ``refused``, any other as
    ``error``, and is raised on."""
    result, start = Call(), time.perf_counter()
    try:
        yield result
    except refusals:
        result.outcome = "refused"
        raise
    except BaseException:  # broad: the outcome is recorded on any exit, re-raised
        result.outcome = "error"
        raise
    finally:
        task_, name, version = model_labels(predictor, task)
        MODEL_SECONDS.labels(task_, name, version, call, result.outcome).observe(
            time.perf_counter() - start
        )


def timer_for(predictor: Any) -> Callable[[str], AbstractContextManager[Call]]:
    """An ``imaging.reading.Timer``: each model call the imaging reader makes (``predict``,
    ``series``, ``heatmap``) observed under the predictor's labels, an image it cannot read
    (``imaging``'s ``ImageInputError``) counted as ``refused``."""
    from medai.imaging.limits import ImageInputError

    def timer(call: str) -> AbstractContextManager[Call]:
        return timed(predictor, call=call, refusals=(ImageInputError,))

    return timer
