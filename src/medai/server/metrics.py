"""``GET /metrics``: Prometheus text for the people who run medai, never for the public.

What is measured here, in each process: every request's duration by method, route *template*
(``/api/v1/studies/{study_id}``: never the path's values nor its query string, which can name a
patient) and status class, and the requests in flight. Model calls are measured where they
happen (``services.model_metrics``). What every replica must report alike — queue depths, the
outbox, drift alerts, the active models — the face reads from the database at scrape time
(its ``Face.collectors``; the platform's are ``platform.ops.metrics``).

Who may read it: ``MEDAI_METRICS`` (default on) and ``MEDAI_METRICS_ALLOW``, client networks
(default loopback and the private ranges, where Prometheus scrapes pods and hosts from). A
request that came through a proxy — it carries ``Forwarded``, ``X-Forwarded-For`` or
``X-Real-IP``, as the front door's do — is refused whatever its address: the front door also
denies ``/metrics`` itself (docs/deploy/metrics.md). The Host check is not applied to this one
path (Prometheus names a pod by its address, which no Host list can know in advance); the
answer holds no patient data and no secret.

Several worker processes (``medai serve --workers N``): with ``PROMETHEUS_MULTIPROC_DIR`` set
each process writes its values to files there and any process's ``/metrics`` reports them all
(prometheus_client's multiprocess mode). ``serve`` sets it to a private temporary folder when
it starts more than one worker (``multiprocess_for_serve``).

A scrape never answers 5xx: a source that fails (the database down) is reported by its
``medai_metrics_source_up`` (and the database's own ``medai_database_up``) as 0, and the rest
is still answered.
"""

from __future__ import annotations

import glob
import ipaddress
import logging
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

import medai
from medai.server.middleware import route_path, send_json
from medai.settings import get_settings

log = logging.getLogger("medai.server")

PATH = "/metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
FORWARDED = (b"forwarded", b"x-forwarded-for", b"x-real-ip")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUEST_SECONDS = Histogram(
    "medai_http_request_seconds",
    "Time from a request's arrival to its last byte sent, by method, route template and "
    "status class (1xx-5xx; none: the client left before an answer)",
    ["method", "route", "status_class"],
    buckets=BUCKETS,
)
IN_FLIGHT = Gauge(
    "medai_http_requests_in_flight", "Requests being answered now", multiprocess_mode="livesum"
)


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "none"


class RequestMetrics:
    """What ``middleware.Guard`` reports of each request (the labels of its access line)."""

    def begin(self) -> None:
        IN_FLIGHT.inc()

    def end(self, method: str, route: str, status: int, seconds: float) -> None:
        IN_FLIGHT.dec()
        REQUEST_SECONDS.labels(method, route, status_class(status)).observe(seconds)


# --- what a scrape reports ----------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def prune_dead(path: str) -> None:
    """Forget the live gauges (requests in flight) of worker processes that died without
    saying so (killed, crashed): their files would count those requests for ever. Counters
    and histograms of a dead worker stay, as they should (a counter does not go down)."""
    from prometheus_client import multiprocess

    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        found = re.search(r"_(\d+)\.db$", name)
        if found and not _alive(int(found.group(1))):
            multiprocess.mark_process_dead(int(found.group(1)), path)


def process_exiting() -> None:
    """A worker process stopping cleanly drops its live gauges (multiprocess mode)."""
    path = multiprocess_dir()
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), path)


def _process_metrics() -> Iterable[Metric]:
    """This process's registry, or, in multiprocess mode, every worker's files merged."""
    path = multiprocess_dir()
    if not path:
        return REGISTRY.collect()
    from prometheus_client.multiprocess import MultiProcessCollector

    prune_dead(path)
    return MultiProcessCollector(None, path=path).collect()


@lru_cache(maxsize=1)
def source_commit() -> str:
    """``MEDAI_BUILD_COMMIT``, else the commit of the source checkout this runs from (read
    from its ``.git``, no git command), else ``unknown``."""

    given = get_settings().general.build_commit
    if given:
        return given.strip()[:40]
    git = Path(medai.__file__).resolve().parents[2] / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:40]
        ref = head[5:]
        if (git / ref).is_file():
            return (git / ref).read_text().strip()[:40]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0][:40]
    except OSError:
        pass
    return "unknown"


def _build_info() -> Iterable[Metric]:
    info = GaugeMetricFamily(
        "medai_build_info",
        "medai's version and source commit (1)",
        labels=["version", "commit", "python"],
    )
    info.add_metric([medai.__version__, source_commit(), platform.python_version()], 1)
    mode = GaugeMetricFamily(
        "medai_metrics_multiprocess", "1: the process metrics are every worker process's, merged"
    )
    mode.add_metric([], 1 if multiprocess_dir() else 0)
    return [info, mode]


class _Scrape:
    """Every source, each on its own: one that raises is reported down and left out."""

    def __init__(self, sources: Sequence[tuple[str, Callable[[], Iterable[Metric]]]]) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "medai_metrics_source_up",
            "1: this scrape read the source; 0: it failed (see the log)",
            labels=["source"],
        )
        for name, source in self.sources:
            try:
                metrics = list(source())
            except Exception as exc:  # broad: reported as down, never a 5xx (logged)
                log.error("metrics: source %s failed: %s", name, type(exc).__name__)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from metrics
        yield up


def exposition(collectors: Sequence[Any] = ()) -> bytes:
    """The text Prometheus reads: this process (or all workers), the build, and the face's
    collectors (each with a ``name`` and a ``collect()``)."""
    sources: list[tuple[str, Callable[[], Iterable[Metric]]]] = [
        ("process", _process_metrics),
        ("build", _build_info),
    ]
    sources += [(getattr(c, "name", type(c).__name__), c.collect) for c in collectors]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(sources))
    return generate_latest(registry)


# --- who may read it ----------------------------------------------------------------------------


def networks(allow: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(a, strict=False) for a in allow]


def refusal(
    headers: Iterable[tuple[bytes, bytes]],
    client: str | None,
    allowed: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str | None:
    """Why this client may not read the metrics, or None when it may."""
    if any(k.lower() in FORWARDED for k, _ in headers):
        return (
            "metrics are not answered through a proxy: scrape each medai process "
            "directly (docs/deploy/metrics.md)"
        )
    try:
        address = ipaddress.ip_address(client or "")
    except ValueError:
        return "metrics are answered only to the networks of MEDAI_METRICS_ALLOW"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not any(address in net for net in allowed):
        return "metrics are answered only to the networks of MEDAI_METRICS_ALLOW"
    return None


class _MetricsRoute:
    """What ``middleware.route_of`` names the request by (the access log, the histogram)."""

    path = PATH


class MetricsEndpoint:
    """Answers ``GET /metrics`` before the Host check (see the module's docstring); any other
    path, or every path when ``enabled`` is false, goes on to the app (a 404 there)."""

    def __init__(
        self, app: Any, collectors: Sequence[Any], enabled: bool, allow: Iterable[str]
    ) -> None:
        self.app, self.collectors, self.enabled = app, collectors, enabled
        self.allowed = networks(allow)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.enabled or route_path(scope) != PATH:
            return await self.app(scope, receive, send)
        scope["route"] = _MetricsRoute()
        if scope["method"] not in ("GET", "HEAD"):
            return await send_json(
                send,
                405,
                {"detail": "Method Not Allowed", "code": "method_not_allowed"},
                [(b"allow", b"GET, HEAD")],
            )
        client = scope.get("client")
        why = refusal(scope.get("headers") or [], client[0] if client else None, self.allowed)
        if why is not None:
            return await send_json(send, 403, {"detail": why, "code": "forbidden"})
        from starlette.concurrency import run_in_threadpool

        body = await run_in_threadpool(exposition, self.collectors)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", CONTENT_TYPE_LATEST.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )


# --- several worker processes -------------------------------------------------------------------


def clear_multiprocess_dir(path: str | Path) -> None:
    """Make ``path`` and empty it of prometheus_client's files: values of a previous run
    would otherwise be added to this one's."""
    Path(path).mkdir(parents=True, exist_ok=True)
    for kind in ("counter", "gauge", "histogram", "summary"):
        for name in glob.glob(os.path.join(str(path), f"{kind}_*.db")):
            os.remove(name)


def multiprocess_for_serve(workers: int) -> Path | None:
    """Before ``serve`` starts its workers. ``PROMETHEUS_MULTIPROC_DIR`` given: that folder,
    emptied (it must be this serve's alone). Not given and more than one worker: a new private
    folder in the temporary directory (local to this host, never the shared MEDAI_HOME),
    returned so that ``serve`` removes it when it stops. One worker, none given: nothing
    (the process's own registry)."""
    given = multiprocess_dir()
    if given:
        clear_multiprocess_dir(given)
        return None
    if workers <= 1:
        return None
    made = tempfile.mkdtemp(prefix="medai-metrics-")
    os.environ[MULTIPROC_ENV] = made
    return Path(made)


def remove_multiprocess_dir(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


# --- a process without an HTTP server of its own (``medai worker``) ------------------------------


def start_metrics_server(
    host: str, port: int, allow: Iterable[str], collectors: Sequence[Any] = ()
) -> Any:
    """Serve ``GET /metrics`` of this process on ``host:port`` in a daemon thread (a Celery
    worker: its model calls, its process), with the same rules as ``MetricsEndpoint``.
    Returns the server (``shutdown()`` stops it)."""
    import json
    import threading
    from wsgiref.simple_server import make_server

    from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

    allowed = networks(allow)

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        def answer(status: str, body: bytes, kind: str = "application/json") -> list[bytes]:
            start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
            return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

        if environ.get("PATH_INFO") != PATH:
            return answer(
                "404 Not Found", json.dumps({"detail": "Not Found", "code": "not_found"}).encode()
            )
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return answer(
                "405 Method Not Allowed",
                json.dumps({"detail": "Method Not Allowed", "code": "method_not_allowed"}).encode(),
            )
        headers = [
            (k[5:].replace("_", "-").lower().encode(), b"")
            for k in environ
            if k.startswith("HTTP_")
        ]
        why = refusal(headers, environ.get("REMOTE_ADDR"), allowed)
        if why is not None:
            return answer(
                "403 Forbidden", json.dumps({"detail": why, "code": "forbidden"}).encode()
            )
        return answer("200 OK", exposition(collectors), CONTENT_TYPE_LATEST)

    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name="medai-metrics", daemon=True).start()
    log.info("metrics: GET http://%s:%d%s", host, server.server_port, PATH)
    return server
