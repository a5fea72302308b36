"""`medai serve` as a real process on a free port, with the bundled default model."""

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_triage_requests():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "medai.cli", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.time() < deadline, "server did not start"
            time.sleep(0.5)
        r = httpx.post(f"{base}/api/v1/triage", json={"text": "Boğazım ve kulağım ağrıyor"},
                       timeout=30)
        assert r.status_code == 200
        assert r.json()["departments"][0]["id"] == "ent"
        assert httpx.get(f"{base}/docs", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
