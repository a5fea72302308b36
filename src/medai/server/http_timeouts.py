"""Bounded request reading for ``medai serve``: a client that trickles its request is answered
408 ``request_timeout`` and its connection closed.

uvicorn bounds only the idle time between requests (``timeout_keep_alive``); nothing bounded the
time a request itself may take to arrive, so a client sending a header byte every few seconds,
or a body a byte at a time, held its connection (and the worker's memory for it) for as long as
it liked: 200 such connections were all still open after 70 s. An ASGI middleware cannot close
them: the application never sees a request whose headers have not all arrived, and a route that
answers without reading the body (a 401, a 404) leaves the rest of it to trickle in unread.

So the bound lives in the HTTP protocol, where every byte arrives (``ReadTimeoutProtocol``,
uvicorn's h11 protocol with two deadlines, ``MEDAI_HTTP_READ_TIMEOUT_S``):

- headers: the whole request head must arrive within the timeout of its first byte (of the
  connection, for its first request);
- body: the timeout as a grace, extended by a second for every ``MEDAI_HTTP_MIN_BODY_RATE``
  bytes received (Apache's ``mod_reqtimeout`` rule): a 64 MiB upload over a slow link is
  fine, a body that trickles below the rate is not, whether or not the route reads it.

A request fully received has no deadline: a slow model call is bounded by the inference lanes,
not here. Nothing about the request (its path, its client's address) is logged."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from medai.server.middleware import READ_TIMED_OUT
from medai.settings import get_settings

log = logging.getLogger("medai.server")

CODE = "request_timeout"
# what the connection is waiting for when a deadline passes
HEADERS, BODY = "headers", "body"


def serve_options() -> dict[str, Any]:
    """``uvicorn.run`` options of ``medai serve``: this module's protocol (by import path, so
    every worker process loads it)."""
    return {"http": f"{__name__}:ReadTimeoutProtocol"}


def _body(phase: str, timeout_s: float) -> bytes:
    return json.dumps(
        {
            "detail": f"the request {phase} did not arrive in time (within "
            f"{timeout_s:g} s, or too slowly); the connection is closed",
            "code": CODE,
        }
    ).encode()


def _head(length: int) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json"),
        (b"content-length", str(length).encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        (b"connection", b"close"),
    ]


class ReadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a body deadline (module docstring).
    ``read_timeout_s`` and ``min_body_rate`` default to the settings."""

    def __init__(
        self,
        *args: Any,
        read_timeout_s: float | None = None,
        min_body_rate: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if read_timeout_s is None or min_body_rate is None:
            settings = get_settings()
            read_timeout_s = read_timeout_s or settings.serving.http_read_timeout_s
            min_body_rate = min_body_rate or settings.serving.http_min_body_rate
        self.read_timeout_s, self.min_body_rate = read_timeout_s, min_body_rate
        self._timer: asyncio.TimerHandle | None = None
        self._started = 0.0  # when the phase under a deadline began (loop time)
        self._body_bytes: int | None = None  # None until the body phase

    # --- uvicorn's protocol interface --------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # the loop gives a Transport
        super().connection_made(transport)
        self._begin_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._timer is None and self.conn.their_state is h11.IDLE:
            self._begin_headers()  # the next request on a kept-alive connection
        super().data_received(data)
        self._follow(len(data))

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()  # the connection is no longer ours to time
        super().handle_websocket_upgrade(event)

    # --- deadlines ---------------------------------------------------------------------------

    def _begin_headers(self) -> None:
        self._started, self._body_bytes = self.loop.time(), None
        self._arm()

    def _follow(self, received: int) -> None:
        """After bytes arrive: the body phase begins (or counts them), or the request is
        complete and needs no deadline."""
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self._body_bytes is None:
                self._started, self._body_bytes = self.loop.time(), 0
            else:
                self._body_bytes += received
            if self._timer is None:
                self._arm()
        elif state is not h11.IDLE:  # DONE, MUST_CLOSE, CLOSED, ERROR: nothing more to read
            self._disarm()

    def _deadline(self) -> float:
        grace = self._started + self.read_timeout_s
        if self._body_bytes is None:
            return grace
        return grace + self._body_bytes / self.min_body_rate

    def _arm(self) -> None:
        self._disarm()
        self._timer = self.loop.call_at(self._deadline(), self._check)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        """The timer: a body that kept its rate has a later deadline now (one timer, moved
        when it fires, not on every packet)."""
        self._timer = None
        if self.transport.is_closing():
            return
        if self.loop.time() < self._deadline():
            self._arm()
            return
        self._expire()

    def _expire(self) -> None:
        phase = HEADERS if self._body_bytes is None else BODY
        log.warning(
            "request %s not received within %gs (or below %d bytes/s): 408, connection closed",
            phase,
            self.read_timeout_s,
            self.min_body_rate,
        )
        self._answer(phase)
        if self.cycle is not None:  # the route's receive() says so; its answer goes nowhere
            self.cycle.scope[READ_TIMED_OUT] = True  # type: ignore[literal-required]  # medai's own scope key
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()

    def _answer(self, phase: str) -> None:
        """408 when no response has begun: through h11 once the request head is in, raw
        before (h11 has no request to answer then)."""
        payload = _body(phase, self.read_timeout_s)
        if self.conn.their_state is h11.IDLE:
            head = b"".join(k + b": " + v + b"\r\n" for k, v in _head(len(payload)))
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\n" + head + b"\r\n" + payload)
            return
        if self.cycle is None or self.cycle.response_started:
            return
        try:
            self.cycle.response_started = self.cycle.response_complete = True
            for event in (
                h11.Response(
                    status_code=408, headers=_head(len(payload)), reason=b"Request Timeout"
                ),
                h11.Data(data=payload),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event))
        except h11.LocalProtocolError:  # h11 refuses a response now: the close says enough
            pass
