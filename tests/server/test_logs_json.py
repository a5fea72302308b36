"""``MEDAI_LOG_FORMAT=json`` (issue 47, operations): every line ``serve`` and ``medai worker``
write is one JSON object (time, level, logger, message, place; method, route, status,
duration and request id on access lines), and what the text log withholds — a library's
message that can quote content, a traceback, a path's values, a query string — the JSON log
withholds too (the same filter, ``server.logs.Withhold``)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from helpers.platform import (
    PASSWORD,
    bearer,
    clinic,
    drain_output,
    free_port,
    server_log,
    wait_ready,
)

pytestmark = [pytest.mark.server, pytest.mark.broker]

MARK = "ZZMARKER-Ayşe"
ASCII_MARK = "ZZMARKER-Ayse"
KEYS = {"time", "level", "logger", "message", "place", "pid"}
ACCESS = {"method", "route", "status", "duration_ms", "request_id"}


def _leaks(text: str) -> bool:
    low = text.lower()
    return "zzmarker" in low or "ayşe" in low or "traceback (most recent" in low


def json_lines(text: str) -> list[dict]:
    """Every non-empty line parsed; fails naming the first line that is not one JSON object."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line[:300]!r}") from None
        assert isinstance(record, dict), line
        assert set(record) >= KEYS, record
        out.append(record)
    return out


@pytest.fixture
def json_logging():
    """``serve``'s handler in the JSON format and its pinned levels on the root logger."""
    from medai.server import logs

    buf = io.StringIO()
    handler = logs.handler(stream=buf, log_format="json")
    root = logging.getLogger()
    saved = {n: logging.getLogger(n).level for n in logs.logger_levels("DEBUG")}
    saved_root = root.level
    for name, level in logs.logger_levels("DEBUG").items():
        logging.getLogger(name).setLevel(level)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buf
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_root)
        logging.captureWarnings(False)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def test_withheld_records_are_withheld_in_json_too(json_logging):
    import warnings

    logging.getLogger("fpdf.svg").warning("unsupported attribute %r", MARK)
    logging.getLogger("pydicom.valuerep").warning("Invalid value for VR PN: %r", MARK)
    logging.getLogger("python_multipart.multipart").info("Opening file: %r", MARK)
    warnings.warn(f"a library warning quoting {MARK}", UserWarning, stacklevel=1)
    try:
        raise ValueError(MARK)
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    logging.getLogger("medai.platform").info("two\nlines")
    written = json_logging.getvalue()
    assert not _leaks(written), written
    records = json_lines(written)
    by_logger = {r["logger"]: r for r in records}
    assert by_logger["fpdf.svg"]["message"].startswith("warning message withheld")
    assert by_logger["fpdf.svg"]["level"] == "WARNING"
    assert by_logger["pydicom.valuerep"]["place"].startswith("test_logs_json:")
    assert by_logger["py.warnings"]["place"].startswith("UserWarning at server/test_logs_json.py")
    assert by_logger["uvicorn.error"]["message"] == (
        "Exception in ASGI application [ValueError; traceback withheld]"
    )
    assert by_logger["medai.platform"]["message"] == "two\nlines"  # one line, escaped
    assert "python_multipart.multipart" not in by_logger
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"]) for r in records)


def test_access_lines_carry_route_and_request_id_fields(
    tmp_path, tfidf_model_dir, tiny_imaging_dir, json_logging
):
    with clinic(
        "sqlite",
        tmp_path / "home",
        tfidf_model_dir,
        tiny_imaging_dir,
        job_threads=0,
        outbox_threads=0,
    ) as (_app, client):
        clin = bearer(client, "clin")
        client.cookies.clear()
        r = client.get(f"/api/v1/studies/987654?patient_name={MARK}", headers=clin)
        assert r.status_code == 404
        rid = r.headers["x-request-id"]
        r = client.post("/api/v1/triage", json={"text": f"Başım çok ağrıyor {MARK}"})
        assert r.status_code == 200, r.text
    written = json_logging.getvalue()
    assert not _leaks(written), [line for line in written.splitlines() if _leaks(line)][:3]
    access = [r for r in json_lines(written) if r["logger"] == "medai.access"]
    assert all(set(r) >= ACCESS for r in access), access[:2]
    mine = [r for r in access if r["request_id"] == rid]
    assert len(mine) == 1
    assert mine[0]["route"] == "/api/v1/studies/{study_id}" and mine[0]["status"] == 404
    assert mine[0]["method"] == "GET" and isinstance(mine[0]["duration_ms"], float)
    assert mine[0]["message"].startswith("GET /api/v1/studies/{study_id} 404 ")
    assert any(r["route"] == "/api/v1/triage" and r["status"] == 200 for r in access)


def test_medai_serve_writes_only_json_lines(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    """A real ``medai serve``: its first-start notice, uvicorn's lines and the access log, all
    JSON, none quoting what the requests carried."""
    env = {
        **os.environ,
        "MEDAI_HOME": str(tmp_path / "home"),
        "MEDAI_LOG_FORMAT": "json",
        "MEDAI_MODELS": f"triage={tfidf_model_dir},cxr={tiny_imaging_dir},mri={tiny_imaging_dir}",
        "MEDAI_JOB_THREADS": "0",
        "MEDAI_LOG_LEVEL": "debug",
    }
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "medai.cli", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    drain_output(proc)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base, models=("triage",))  # the first triage loads no model
        # generous timeouts: the first triage loads its model while the machine is busy
        assert httpx.get(
            f"{base}/api/v1/studies/{ASCII_MARK}", params={"q": MARK}, timeout=60
        ).status_code in (401, 422)
        r = httpx.post(
            f"{base}/api/v1/auth/login", json={"username": MARK, "password": PASSWORD}, timeout=60
        )
        assert r.status_code == 401
        assert (
            httpx.post(
                f"{base}/api/v1/triage", json={"text": f"Başım ağrıyor {MARK}"}, timeout=120
            ).status_code
            == 200
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    out = server_log(proc)
    assert not _leaks(out), [line for line in out.splitlines() if _leaks(line)][:5]
    records = json_lines(out)
    assert any("no admin yet" in r["message"] for r in records)
    assert any(r["logger"].startswith("uvicorn") for r in records)
    routes = {(r.get("route"), r.get("status")) for r in records if r["logger"] == "medai.access"}
    assert ("/api/v1/studies/{study_id}", 401) in routes or (
        "/api/v1/studies/{study_id}",
        422,
    ) in routes
    assert ("/api/v1/triage", 200) in routes


@pytest.mark.slow
@pytest.mark.usefixtures("broker_lock")
def test_medai_worker_writes_only_json_lines_and_serves_its_metrics(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError:
        pytest.skip("Redis not reachable on 127.0.0.1:6379")
    port = free_port()
    env = {
        **os.environ,
        "MEDAI_HOME": str(tmp_path / "home"),
        "MEDAI_LOG_FORMAT": "json",
        "MEDAI_BROKER_URL": "redis://127.0.0.1:6379/15",
        "MEDAI_MODELS": f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
    }
    (tmp_path / "home").mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medai.cli",
            "worker",
            "--queues",
            "cpu",
            "--metrics-port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    drain_output(proc)
    try:
        deadline = time.monotonic() + 120
        while " ready." not in server_log(proc):
            assert proc.poll() is None, server_log(proc)[-3000:]
            assert time.monotonic() < deadline, server_log(proc)[-3000:]
            time.sleep(0.3)
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert r.status_code == 200, r.text
        assert "medai_build_info" in r.text and "medai_database_up" not in r.text
        refused = httpx.get(
            f"http://127.0.0.1:{port}/metrics",
            timeout=10,
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
        assert refused.status_code == 403
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    records = json_lines(server_log(proc))
    assert any(r["message"].endswith(" ready.") for r in records)
