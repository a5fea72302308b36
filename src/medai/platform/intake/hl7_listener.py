"""The HL7 v2 order listener: ORM^O01 and OMI^O23 over MLLP, so that the hospital's RIS/HIS
sends imaging orders to medai the way it sends them to a PACS (``intake.orders`` keeps and
matches them).

Run by ``medai hl7 listen``, on the same database as the API. Each message is answered with
an original-mode ACK (``MSA-1``):

- ``AA``: the order is kept (and applied, if its study has come);
- ``AR``: the message is not one this receiver takes — its sender is not allowed, it is not
  HL7, not ORM^O01 / OMI^O23, or in a character set it does not read (UTF-8, ISO 8859-9 and
  8859-1 are read). A resend will not help;
- ``AE``: this message has an error (no accession, an accession longer than DICOM allows, an
  unknown order control), or it could not be stored now (the database): the sender may fix
  it, or resend later.

MSA-3 and an ERR segment say why, in words that never repeat the message's content.

Bounded: a sender must be on the allow-list (``MEDAI_HL7_ALLOW``: ``APP`` names MSH-3, or
``APP^FACILITY`` MSH-3 and MSH-4; an empty list — a fresh install's — refuses every message,
``*`` alone takes any: a test bench). A frame larger than ``MAX_MESSAGE`` closes the
connection before it fills memory; at most ``max_connections`` are open at once (one more is
closed at once, the log says why); a connection idle for ``idle_s`` is closed. Log lines name
the peer address, the sender and the message control id, never patient data.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
from datetime import UTC, datetime
from typing import Any

from medai.platform.context import Platform
from medai.platform.documents.hl7.oru import escape
from medai.platform.intake import orders
from medai.settings import ANY_CALLER as ANY_SENDER
from medai.settings import check_hl7_senders

log = logging.getLogger("medai.integration")

START, END = b"\x0b", b"\x1c\x0d"
MAX_MESSAGE = 1 << 20  # one framed message; an order is a few kilobytes
VERSION = "2.5.1"


def allowed(sender: str, allow: list[str] | tuple[str, ...]) -> bool:
    """Whether ``sender`` (MSH-3^MSH-4) may send: named by its application alone, or by its
    application and facility."""
    if ANY_SENDER in allow:
        return True
    app = sender.split("^", 1)[0]
    return sender in allow or app in allow


def ack(received: str | None, code: str, text: str = "", *, application: str = "MEDAI") -> str:
    """The original-mode ACK (MSH, MSA, and ERR when refused) of ``received`` (its ER7 text;
    None when it could not be read at all: MSA-2 is then empty)."""
    from hl7apy.core import Message

    head = orders.Segment(received.split("\r", 1)[0], received[4:8]) if received else None
    m = Message("ACK", version=VERSION, validation_level=2)
    m.msh.msh_3 = application
    if head is not None:
        m.msh.msh_5 = escape(head.comp(3, 1))
        m.msh.msh_6 = escape(head.comp(4, 1))
    m.msh.msh_7 = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "+0000"
    trigger = head.comp(9, 2) if head is not None else ""
    m.msh.msh_9 = f"ACK^{escape(trigger)}^ACK" if trigger else "ACK"
    m.msh.msh_10 = "MA" + datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")[:18]
    m.msh.msh_11 = "P"
    m.msh.msh_12 = VERSION
    m.msh.msh_18 = "UNICODE UTF-8"
    m.msa.msa_1 = code
    m.msa.msa_2 = escape(head.comp(10)) if head is not None else ""
    if text:
        m.msa.msa_3 = escape(text)[:80]
    if code != "AA":
        err = m.add_segment("ERR")
        # ERR-3: HL7 error code (table 0357): 207 application internal error, 200 unsupported
        # message type; ERR-4 severity E; ERR-8 the user message
        err.err_3 = (
            "200^Unsupported message type^HL70357"
            if code == "AR"
            else "207^Application internal error^HL70357"
        )
        err.err_4 = "E"
        err.err_8 = escape(text)[:250]
    return m.to_er7()


def handle(p: Platform, data: bytes, allow: list[str] | tuple[str, ...], peer: str) -> str:
    """One framed message's bytes → its ACK's ER7 text (never raises)."""
    text: str | None = None
    try:
        text = orders.decode(data).replace("\r\n", "\r").replace("\n", "\r").strip("\r")
        got = orders.parse(text)
        sender = got[0].sender
        if not allowed(sender, allow):
            log.warning(
                "HL7 from %s: sender %s is not allowed (MEDAI_HL7_ALLOW%s); refused",
                peer,
                sender or "(none)",
                ": empty, every sender is refused" if not allow else "",
            )
            return ack(text, "AR", "sender not allowed")
        for order in got:
            filed = orders.receive_order(p, order)
            log.info(
                "HL7 %s %s from %s (%s): order %s %s%s",
                order.message_type,
                order.control_id,
                sender,
                peer,
                filed.order_id,
                filed.state,
                f", study {filed.study_id}" if filed.study_id else "",
            )
        return ack(text, "AA")
    except orders.OrderError as exc:
        log.warning("HL7 from %s: %s %s", peer, exc.ack, exc.text)
        return ack(text if text and text.startswith("MSH") else None, exc.ack, exc.text)
    except Exception as exc:  # broad: a listener answers AE to any failure (logged)
        log.error("HL7 from %s: could not file the order: %s", peer, type(exc).__name__)
        return ack(text if text and text.startswith("MSH") else None, "AE", "not stored, resend")


class _Handler(socketserver.BaseRequestHandler):
    server: Hl7Listener

    def handle(self) -> None:
        listener = self.server
        peer = self.client_address[0]
        sock: socket.socket = self.request
        sock.settimeout(listener.idle_s)
        buf = b""
        if listener.tls is not None:  # the handshake here, never in the accepting thread
            try:
                sock = listener.tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, TimeoutError, OSError) as exc:
                log.warning(
                    "HL7 from %s: TLS handshake failed (%s); connection closed",
                    peer,
                    getattr(exc, "reason", None) or type(exc).__name__,
                )
                return
        try:
            while True:
                while END not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                    if len(buf) > MAX_MESSAGE + 3:
                        log.warning(
                            "HL7 from %s: a message larger than %s bytes; connection closed",
                            peer,
                            f"{MAX_MESSAGE:,}",
                        )
                        return
                frame, buf = buf.split(END, 1)
                start = frame.find(START)
                body = frame[start + 1 :] if start >= 0 else frame
                reply = handle(listener.p, body, listener.allow, peer)
                sock.sendall(START + reply.encode("utf-8") + END)
        except (TimeoutError, OSError) as exc:
            log.info("HL7 from %s: connection closed (%s)", peer, type(exc).__name__)
        finally:
            if sock is not self.request:  # the TLS socket holds the connection now
                sock.close()


class Hl7Listener(socketserver.ThreadingTCPServer):
    """One MLLP listener; ``start`` binds (port 0: a free one, see ``port``) and serves on a
    thread, ``stop`` closes it."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        p: Platform,
        *,
        host: str = "127.0.0.1",
        port: int = 2575,
        allow: list[str] | tuple[str, ...] = (),
        max_connections: int = 8,
        idle_s: float = 60.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.p = p
        self.tls = tls  # MLLP over TLS: every connection's handshake first, in its own thread
        self.allow = tuple(check_hl7_senders(list(allow)))
        self.idle_s = idle_s
        self.max_connections = max_connections
        self._open = threading.BoundedSemaphore(max_connections)
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _Handler, bind_and_activate=False)

    @property
    def host(self) -> str:
        return str(self.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        try:
            self.server_bind()
            self.server_activate()
        except OSError:
            self.server_close()
            raise
        self._thread = threading.Thread(target=self.serve_forever, name="hl7-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        if self._open.acquire(blocking=False):
            return True
        log.warning(
            "HL7 from %s: %s connections already open (MEDAI_HL7_MAX_CONNECTIONS); closed",
            client_address[0],
            self.max_connections,
        )
        return False

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._open.release()
