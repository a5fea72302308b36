"""``GET /metrics`` (issue 47, operations): Prometheus text through the real app — requests by
route template, model calls by model, queues, the outbox and drift alerts read from the
database (SQLite and PostgreSQL) — never patient text or a path's values, never a 5xx when
the database is away, only to allowed clients that did not come through a proxy; and a real
``medai serve --workers 2`` reports both workers' requests from either."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import medai
from helpers.platform import (
    bearer,
    clinic,
    free_port,
    png_bytes,
    refusing_port,
    start_serve,
    use_home,
)

pytestmark = [pytest.mark.server]

MARK = "ZZMARKER-Ayşe"
ASCII_MARK = "ZZMARKER-Ayse"
LOCAL = ("127.0.0.1", 45000)  # the scraping client: allowed by the default networks


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of the exposition, parsed by prometheus_client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def grew(before: dict, after: dict, name: str, **labels: str) -> float:
    """How much a counter grew between two scrapes (the process's registry outlives an app:
    other tests in this process count too)."""
    return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)


def scrape(app, client=LOCAL, **kw) -> httpx.Response:
    """A scrape from ``client`` (a TestClient outside the app's lifespan: the app is running
    already, in the ``clinic`` block)."""
    return TestClient(app, base_url="http://localhost", client=client).get("/metrics", **kw)


def test_requests_by_template_and_model_calls_without_patient_text(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    with clinic(
        "sqlite",
        tmp_path / "home",
        tfidf_model_dir,
        tiny_imaging_dir,
        job_threads=0,
        outbox_threads=0,
    ) as (app, client):
        clin = bearer(client, "clin")
        client.cookies.clear()  # the bearer token only (a sign-in cookie asks for CSRF)
        before = samples(scrape(app).text)
        assert (
            client.get(
                f"/api/v1/studies/987654?patient_name={MARK}&tc={ASCII_MARK}", headers=clin
            ).status_code
            == 404
        )
        assert client.get(f"/api/v1/studies/{ASCII_MARK}", headers=clin).status_code == 422
        r = client.post("/api/v1/triage", json={"text": f"Başım çok ağrıyor {MARK} iki gündür"})
        assert r.status_code == 200, r.text
        model = r.json()["model"]
        r = client.post(
            "/api/v1/imaging/cxr/predict",
            headers=clin,
            files={"file": (f"{ASCII_MARK}.png", png_bytes(3), "image/png")},
        )
        assert r.status_code == 200, r.text
        r = scrape(app)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    found = samples(r.text)
    assert (
        grew(
            before,
            found,
            "medai_http_request_seconds_count",
            method="GET",
            route="/api/v1/studies/{study_id}",
            status_class="4xx",
        )
        == 2
    )
    assert (
        grew(
            before,
            found,
            "medai_http_request_seconds_count",
            method="POST",
            route="/api/v1/triage",
            status_class="2xx",
        )
        == 1
    )
    assert (
        grew(
            before,
            found,
            "medai_model_call_seconds_count",
            task="triage",
            model=model["name"],
            version=model["version"],
            call="predict",
            outcome="ok",
        )
        == 1
    )
    assert any(
        name == "medai_model_call_seconds_count" and dict(labels)["task"] == "cxr"
        for name, labels in found
    )
    assert value(found, "medai_database_up") == 1
    assert value(found, "medai_metrics_source_up", source="database") == 1
    build = [dict(labels) for name, labels in found if name == "medai_build_info"]
    assert [b["version"] for b in build] == [medai.__version__]
    for absent in ("zzmarker", "ayşe", "ayse", "987654", "patient_name", str(tmp_path)):
        assert absent not in r.text.lower(), absent


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_queues_outbox_and_alerts_come_from_the_database(
    kind, tmp_path, tfidf_model_dir, tiny_imaging_dir, monkeypatch
):
    from medai.platform.records.db import utcnow
    from medai.platform.records.tables import Job, ModelJob, MonitorAlert, OutboxItem

    monkeypatch.setenv("MEDAI_FHIR_URL", "http://127.0.0.1:9/fhir")  # one destination
    with clinic(
        kind, tmp_path / "home", tfidf_model_dir, tiny_imaging_dir, job_threads=0, outbox_threads=0
    ) as (app, client):
        clin = bearer(client, "clin")
        client.cookies.clear()
        r = client.post(
            "/api/v1/studies",
            headers=clin,
            data={"task": "cxr"},
            files={"file": ("x.png", png_bytes(5), "image/png")},
        )
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        now = utcnow()
        with app.state.platform.db.session() as db:
            assert db.query(Job).filter_by(study_id=sid, status="queued").count() == 1
            db.add(
                ModelJob(
                    kind="retrain", task="cxr", options={}, status="queued", created_by="admin"
                )
            )
            for n, (state, attempts) in enumerate([("failed", 5), ("queued", 3), ("queued", 0)]):
                db.add(
                    OutboxItem(
                        event="analysed",
                        event_key=f"k{n}",
                        destination="pacs-b",
                        kind="dicomweb",
                        study_id=sid,
                        state=state,
                        attempts=attempts,
                        code="refused" if attempts else None,
                        next_at=now,
                    )
                )
            db.add(
                MonitorAlert(
                    task="cxr",
                    model_hash="sha256:x",
                    kind="input",
                    key="brightness",
                    value=0.4,
                    threshold=0.05,
                    samples=30,
                    detail={},
                )
            )
        r = scrape(app)
    assert r.status_code == 200
    found = samples(r.text)
    assert value(found, "medai_database_up") == 1
    assert value(found, "medai_queue_jobs", queue="cpu", state="queued") == 1
    assert value(found, "medai_queue_jobs", queue="cpu", state="running") == 0
    assert value(found, "medai_queue_jobs", queue="training", state="queued") == 1
    assert value(found, "medai_queue_oldest_queued_seconds", queue="cpu") >= 0
    assert value(found, "medai_queue_jobs_lease_expired", queue="cpu") == 0
    assert value(found, "medai_outbox_items", destination="pacs-b", state="failed") == 1
    assert value(found, "medai_outbox_items", destination="pacs-b", state="retrying") == 1
    assert value(found, "medai_outbox_items", destination="pacs-b", state="queued") == 1
    assert value(found, "medai_outbox_attempts_max", destination="pacs-b") == 3
    assert value(found, "medai_outbox_destination_configured", destination="pacs-b") == 0
    # a configured destination with nothing waiting is reported, at zero
    assert value(found, "medai_outbox_items", destination="fhir", state="failed") == 0
    assert value(found, "medai_outbox_destination_configured", destination="fhir") == 1
    assert value(found, "medai_monitor_alerts_open", task="cxr", kind="input") == 1
    assert value(found, "medai_monitor_alerts_open", task="cxr", kind="output") == 0
    active = [dict(k[1]) for k in found if k[0] == "medai_model_info"]
    assert {m["task"] for m in active if m["state"] == "active"} >= {"triage", "cxr"}
    assert all(m["hash"].startswith("sha256:") and len(m["hash"]) == 19 for m in active)


def test_database_down_gives_up_zero_not_5xx(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    from medai.platform.records.db import Database

    with clinic(
        "sqlite",
        tmp_path / "home",
        tfidf_model_dir,
        tiny_imaging_dir,
        job_threads=0,
        outbox_threads=0,
    ) as (app, client):
        before = samples(scrape(app).text)
        assert client.get("/api/v1/health/live").status_code == 200
        real = app.state.platform.db
        with refusing_port() as port:
            app.state.platform.db = Database(f"postgresql+psycopg://medai@127.0.0.1:{port}/x")
            try:
                r = scrape(app)
            finally:
                app.state.platform.db.dispose()
                app.state.platform.db = real
        again = scrape(app)
    assert r.status_code == 200
    found = samples(r.text)
    assert value(found, "medai_database_up") == 0
    assert not any(name.startswith(("medai_queue_", "medai_outbox_")) for name, _ in found)
    assert (
        grew(
            before,
            found,
            "medai_http_request_seconds_count",
            method="GET",
            route="/api/v1/health/live",
            status_class="2xx",
        )
        == 1
    )
    assert value(samples(again.text), "medai_database_up") == 1  # back once it answers


def test_a_hung_database_is_reported_down_and_not_queried_twice():
    import threading

    from medai.platform.ops.metrics import PlatformCollector
    from medai.server.metrics import exposition

    release = threading.Event()

    def hanging():
        release.wait(60)
        raise RuntimeError("never answered")

    collector = PlatformCollector(hanging, timeout_s=0.2)
    try:
        for _ in range(2):  # the second scrape finds the first reading still hanging
            found = samples(exposition([collector]).decode())
            assert value(found, "medai_database_up") == 0
            assert value(found, "medai_metrics_source_up", source="database") == 1
    finally:
        release.set()


def test_a_failing_source_is_reported_and_the_rest_answered():
    from medai.server.metrics import exposition

    class Broken:
        name = "broken"

        def collect(self):
            raise OSError("gone")

    found = samples(exposition([Broken()]).decode())
    assert value(found, "medai_metrics_source_up", source="broken") == 0
    assert value(found, "medai_metrics_source_up", source="process") == 1
    assert any(name == "medai_build_info" for name, _ in found)


def test_only_allowed_clients_not_through_a_proxy_and_any_host(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    with clinic(
        "sqlite",
        tmp_path / "home",
        tfidf_model_dir,
        tiny_imaging_dir,
        job_threads=0,
        outbox_threads=0,
    ) as (app, _client):
        before = samples(scrape(app).text)
        public = scrape(app, client=("203.0.113.7", 40000))
        proxied = scrape(app, headers={"X-Forwarded-For": "203.0.113.7"})
        forwarded = scrape(app, headers={"Forwarded": "for=203.0.113.7"})
        pod = scrape(app, client=("10.42.0.7", 40000), headers={"Host": "10.42.0.9:8000"})
        mapped = scrape(app, client=("::ffff:192.168.1.20", 40000))
        posted = TestClient(app, base_url="http://localhost", client=LOCAL).post("/metrics")
        other_host = TestClient(app, base_url="http://10.42.0.9:8000", client=LOCAL).get(
            "/api/v1/health/live"
        )
    for refused in (public, proxied, forwarded):
        assert refused.status_code == 403
        assert refused.json()["code"] == "forbidden"
        assert "medai_" not in refused.text
    assert pod.status_code == 200 and "medai_http_request_seconds" in pod.text
    assert mapped.status_code == 200
    assert posted.status_code == 405
    assert other_host.status_code == 400  # the Host check stands for every other path
    found = samples(pod.text)  # the three refusals before it, under the route's template
    assert (
        grew(
            before,
            found,
            "medai_http_request_seconds_count",
            method="GET",
            route="/metrics",
            status_class="4xx",
        )
        == 3
    )
    assert "203.0.113.7" not in pod.text


def test_metrics_off_is_a_404(tmp_path, monkeypatch):
    from medai.server.kernel import Face, build_app
    from medai.settings import get_settings

    monkeypatch.setenv("MEDAI_METRICS", "off")
    use_home(tmp_path / "home")
    try:
        app = build_app(Face(), preload=False)
        r = TestClient(app, base_url="http://localhost", client=LOCAL).get("/metrics")
    finally:
        monkeypatch.delenv("MEDAI_METRICS")
        get_settings.cache_clear()
    assert r.status_code == 404


def test_allow_list_is_checked_at_start(monkeypatch):
    from pydantic import ValidationError

    from medai.settings import Settings

    monkeypatch.setenv("MEDAI_METRICS_ALLOW", '["10.0.0.0/8", "prometheus.local"]')
    with pytest.raises(ValidationError, match="MEDAI_METRICS_ALLOW"):
        Settings()


def test_dead_workers_in_flight_gauges_are_pruned(tmp_path):
    from medai.server.metrics import prune_dead

    done = subprocess.Popen(["true"])
    done.wait()  # a process that has exited and been reaped
    dead = tmp_path / f"gauge_livesum_{done.pid}.db"
    mine = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    kept = tmp_path / f"histogram_{done.pid}.db"
    for f in (dead, mine, kept):
        f.write_bytes(b"")
    prune_dead(str(tmp_path))
    assert not dead.exists() and mine.exists() and kept.exists()


@pytest.mark.slow
def test_serve_with_two_workers_reports_every_workers_requests(
    tmp_path, tfidf_model_dir, tiny_imaging_dir, tiny_mri_dir
):
    """``medai serve --workers 2``: each scrape, whichever worker answers it, counts every
    request both workers served; the folder given is emptied of a previous run's values."""
    prom = tmp_path / "prom"
    prom.mkdir()
    (prom / "counter_1.db").write_bytes(b"left by a previous run")
    env = {
        **os.environ,
        "MEDAI_HOME": str(tmp_path / "home"),
        "MEDAI_MODELS": f"triage={tfidf_model_dir},cxr={tiny_imaging_dir},mri={tiny_mri_dir}",
        "MEDAI_JOB_THREADS": "0",
        "MEDAI_OUTBOX_THREADS": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(prom),
    }
    proc, base = start_serve(env, free_port(), workers=2)
    try:
        assert not (prom / "counter_1.db").exists()

        def writers() -> set[str]:  # the worker processes that have observed a request
            return {p.name.rsplit("_", 1)[1] for p in prom.glob("histogram_*.db")}

        n = 0
        while n < 10 or (len(writers()) < 2 and n < 400):
            with httpx.Client(timeout=60) as c:  # a new connection each: either worker
                assert (
                    c.get(f"{base}/api/v1/health/live", params={"q": f"{MARK}{n}"}).status_code
                    == 200
                )
            n += 1
        assert len(writers()) == 2, f"one worker answered all {n} requests"
        counts = set()
        for _ in range(6):
            with httpx.Client(timeout=60) as c:
                r = c.get(f"{base}/metrics")
            assert r.status_code == 200
            found = samples(r.text)
            assert value(found, "medai_metrics_multiprocess") == 1
            counts.add(
                value(
                    found,
                    "medai_http_request_seconds_count",
                    method="GET",
                    route="/api/v1/health/live",
                    status_class="2xx",
                )
            )
            assert "zzmarker" not in r.text.lower()
        assert counts == {n}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    assert not list(Path(prom).glob("gauge_livesum_*.db"))  # workers that stopped say so


def test_serve_makes_a_private_folder_for_several_workers_and_empties_a_given_one(
    tmp_path, monkeypatch
):
    from medai.server.metrics import (
        MULTIPROC_ENV,
        multiprocess_for_serve,
        remove_multiprocess_dir,
    )

    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    assert multiprocess_for_serve(1) is None and MULTIPROC_ENV not in os.environ
    made = multiprocess_for_serve(2)
    try:
        assert made is not None and made.is_dir()
        assert os.environ[MULTIPROC_ENV] == str(made)
        assert not str(made).startswith(str(Path(os.environ["MEDAI_HOME"])))
    finally:
        remove_multiprocess_dir(made)
        os.environ.pop(MULTIPROC_ENV, None)  # not monkeypatch: its undo would set it again
    assert not made.exists()
    given = tmp_path / "prom"
    given.mkdir()
    (given / "histogram_123.db").write_bytes(b"old")
    (given / "notes.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    assert multiprocess_for_serve(4) is None  # given: used, emptied, not removed at the end
    assert sorted(p.name for p in given.iterdir()) == ["notes.txt"]
