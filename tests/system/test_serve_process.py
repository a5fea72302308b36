"""`medai serve` as real processes on a free port, with the bundled default models: two
workers, readiness, a streamed body cut off at its limit, and no server banner."""

import os
import select
import socket
import time

import httpx
import pytest

from helpers.platform import cli_add_user, free_port, http_login, start_serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {**os.environ, "MEDAI_HOME": str(tmp_path_factory.mktemp("serve-home"))}
    cli_add_user(env, "clin", "clinician")
    port = free_port()
    proc, base = start_serve(env, port, workers=2)
    try:
        yield base, port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_answers_triage_requests(server):
    base, _ = server
    headers = http_login(base, "clin")
    r = httpx.post(
        f"{base}/api/v1/triage",
        json={"text": "Boğazım ve kulağım ağrıyor"},
        headers=headers,
        timeout=30,
    )
    assert r.status_code == 200
    assert r.json()["departments"][0]["id"] == "ent"
    assert "server" not in r.headers
    assert httpx.get(f"{base}/docs", timeout=10).status_code == 200
    ready = httpx.get(f"{base}/api/v1/health/ready", timeout=10).json()
    assert all(m["ready"] for m in ready["models"].values())
    assert ready["models"]["cxr"]["runtime"] == "onnx"  # the bundled export is served


def test_a_streamed_body_is_cut_off_at_its_limit(server):
    """Chunked upload, no Content-Length: the server answers 413 after ~64 KB instead of
    reading (or spooling) everything the client sends."""
    _, port = server
    sent, response = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/triage HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b" " * 16_384
        framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        while sent < 20_000_000:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(framed)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(10)
        try:
            while b"\r\n\r\n" not in response:
                data = sock.recv(65536)
                if not data:
                    break
                response += data
        except (ConnectionResetError, TimeoutError):
            pass
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert sent < 20_000_000


def test_a_killed_worker_is_replaced(server):
    """A worker that dies (e.g. killed by the OOM killer) is restarted by the supervisor and
    the server keeps answering."""
    import signal

    import psutil

    base, port = server
    supervisor = next(
        p
        for p in psutil.process_iter(["cmdline"])
        if "serve" in (p.info["cmdline"] or []) and str(port) in (p.info["cmdline"] or [])
    )

    def workers() -> set[int]:
        found = set()
        for child in supervisor.children():
            try:  # a worker that just died (or a zombie) has no command line any more
                if "spawn_main" in " ".join(child.cmdline()) and child.status() != "zombie":
                    found.add(child.pid)
            except psutil.Error:
                continue
        return found

    before = workers()
    assert len(before) == 2
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.time() + 120
    while time.time() < deadline:
        now = workers()
        if victim not in now and len(now) >= len(before):
            break
        time.sleep(0.5)
    assert victim not in now and len(now) >= len(before), (before, now)
    for _ in range(240):
        try:
            if httpx.get(f"{base}/api/v1/health/ready", timeout=10).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    r = httpx.post(f"{base}/api/v1/triage", json={"text": "kulağım ağrıyor"}, timeout=30)
    assert r.status_code == 200


def test_serve_names_a_database_folder_that_does_not_exist(tmp_path):
    """Issue 46: a database URL whose folder does not exist killed `medai serve` with a
    129-line traceback; it is one line naming the folder, and exit status 2."""
    import subprocess
    import sys

    missing = tmp_path / "no" / "such" / "folder"
    env = {
        **os.environ,
        "MEDAI_HOME": str(tmp_path / "home"),
        "MEDAI_DATABASE_URL": f"sqlite:///{missing / 'medai.db'}",
    }
    run = subprocess.run(
        [sys.executable, "-m", "medai.cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert str(missing) in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) <= 3, run.stderr
    assert not missing.exists()  # no folder tree made from a typo
