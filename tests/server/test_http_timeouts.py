"""Slow clients are bounded (issue 45, finding 7 of the hostile test: 200 connections that
trickled their requests were all still open after 70 s). ``medai serve``'s uvicorn options
(``server.http_timeouts``) on a real server in a thread, driven by raw sockets that trickle
their request head or body: each is answered 408 ``request_timeout`` and closed, an honest
request on the same server is served, and no connection stays behind. Short timeout (0.5 s);
every wait is bounded by a condition, never by measuring time."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from helpers.platform import free_port, signed_in

TIMEOUT_S = "0.5"
GIVE_UP_S = 30.0  # a connection still open after this is a failure, not a slow machine
HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[int, object]]:
    """The platform app under uvicorn with serve's options, MEDAI_HTTP_READ_TIMEOUT_S short."""
    import uvicorn

    from medai.server.http_timeouts import serve_options
    from medai.settings import get_settings

    mp = pytest.MonkeyPatch()
    mp.setenv("MEDAI_HTTP_READ_TIMEOUT_S", TIMEOUT_S)
    mp.setenv("MEDAI_HTTP_MIN_BODY_RATE", "1000")
    get_settings.cache_clear()
    with signed_in(tmp_path_factory.mktemp("slow"), "clinician") as (app, _client):
        port = free_port()
        config = uvicorn.Config(
            app,
            host=HOST,
            port=port,
            log_level="warning",
            log_config=None,
            lifespan="off",
            **serve_options(),
        )
        srv = uvicorn.Server(config)
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        _until(lambda: srv.started, "the server to start")
        try:
            yield port, srv
        finally:
            srv.should_exit = True
            thread.join(10)
            mp.undo()
            get_settings.cache_clear()


def _until(condition, what: str) -> None:
    end = time.monotonic() + GIVE_UP_S
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.05)


@contextmanager
def _connection(port: int) -> Iterator[socket.socket]:
    sock = socket.create_connection((HOST, port), timeout=GIVE_UP_S)
    try:
        yield sock
    finally:
        sock.close()


def _trickle_until_closed(sock: socket.socket, first: bytes, drip: bytes) -> bytes:
    """Send ``first``, then ``drip`` a byte at a time until the server closes the connection;
    everything the server sent back."""
    sock.sendall(first)
    sock.settimeout(0.1)
    received = b""
    end = time.monotonic() + GIVE_UP_S
    for byte in (drip[i : i + 1] for i in range(len(drip))):
        assert time.monotonic() < end, "the trickling connection is still open"
        try:
            sock.sendall(byte)
        except OSError:  # reset: closed by the server
            return received
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError("the server read the whole trickled request without closing")


def _timed_out(answer: bytes) -> None:
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code": "request_timeout"' in answer and b"connection: close" in answer.lower()


def test_a_request_head_that_trickles_is_answered_408_and_closed(server):
    port, _srv = server
    with _connection(port) as sock:
        answer = _trickle_until_closed(
            sock, b"GET /api/v1/health/live HTTP/1.1\r\n", b"X-Slow: " + b"a" * 100_000
        )
    _timed_out(answer)


def test_a_body_that_trickles_is_answered_408_and_closed(server):
    port, _srv = server
    head = (
        b"POST /api/v1/triage HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nContent-Length: 50000\r\n\r\n"
    )
    with _connection(port) as sock:  # within the route's body limit (64 KiB): it reads it
        answer = _trickle_until_closed(sock, head, b'{"text": "' + b"a" * 49_000)
    _timed_out(answer)


def test_a_body_the_route_never_reads_cannot_keep_the_connection(server):
    """A route that answers before the body (here a 404) leaves the rest unread: it may not
    trickle in for ever either (each byte used to restart uvicorn's keep-alive timer)."""
    port, _srv = server
    head = (
        b"POST /api/v1/no-such-route HTTP/1.1\r\nHost: localhost\r\nContent-Length: 50000\r\n\r\n"
    )
    with _connection(port) as sock:
        answer = _trickle_until_closed(sock, head, b"a" * 49_000)
    assert answer.startswith(b"HTTP/1.1 404"), answer[:200]


def test_many_slow_clients_are_all_closed_and_an_honest_one_is_served(server):
    port, srv = server
    socks = [socket.create_connection((HOST, port), timeout=GIVE_UP_S) for _ in range(40)]
    try:
        for i, sock in enumerate(socks):  # half trickle the head, half a body
            sock.sendall(
                b"GET / HTTP/1.1\r\nX-A: b"
                if i % 2
                else b"POST /api/v1/triage HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Length: 50\r\n\r\n{"
            )
        with _connection(port) as honest:
            honest.sendall(b"GET /api/v1/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert honest.recv(65536).startswith(b"HTTP/1.1 200")
        for sock in socks:
            sock.settimeout(GIVE_UP_S)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            _timed_out(answer)
        _until(lambda: not srv.server_state.connections, "every connection to be closed")
    finally:
        for sock in socks:
            sock.close()


def test_serve_runs_uvicorn_with_the_bounded_protocol(monkeypatch, tmp_path):
    """``medai serve`` passes the protocol to uvicorn (what the tests above run)."""
    import uvicorn
    from typer.testing import CliRunner

    from medai.cli import app as cli

    seen = {}
    monkeypatch.setattr(os, "environ", dict(os.environ))  # serve sets its workers' variables
    monkeypatch.setenv("MEDAI_HOME", str(tmp_path))
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    from medai.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert seen["http"] == "medai.server.http_timeouts:ReadTimeoutProtocol"
    assert uvicorn.importer.import_from_string(seen["http"]).__name__ == "ReadTimeoutProtocol"
