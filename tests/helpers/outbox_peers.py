"""Real receivers for the outbox tests, on localhost: a FHIR server that validates what it gets
with ``fhir.resources`` and stores it, and an MLLP server that parses HL7 with hl7apy and
answers an ACK. Neither is a mock of medai's client: they speak the protocols over sockets,
can be stopped and started again on the same port (a destination that is down), and can be
told to refuse (a destination that rejects)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import ThreadingTCPServer
from typing import Any

from helpers.platform import free_port


def unescape(value: str) -> str:
    """HL7 escape sequences back to text."""
    out = value
    for esc, raw in (
        ("\\F\\", "|"),
        ("\\S\\", "^"),
        ("\\T\\", "&"),
        ("\\R\\", "~"),
        ("\\E\\", "\\"),
    ):
        out = out.replace(esc, raw)
    return out


class _Restartable:
    """A server started and stopped on one fixed port (down, then back)."""

    port: int
    _server: Any = None

    def _make(self) -> Any:
        raise NotImplementedError

    def start(self):
        self._server = self._make()
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def up(self) -> bool:
        return self._server is not None


@dataclass
class FhirServer(_Restartable):
    """POST a transaction Bundle to ``url``: validated as an R4B Bundle (400 otherwise), each
    PUT stored by type and id; answers a transaction-response. ``reject`` makes it answer 422
    with an OperationOutcome whose diagnostics quote the request (as real servers do)."""

    port: int = field(default_factory=free_port)
    resources: dict[tuple[str, str], dict] = field(default_factory=dict)
    history: list[tuple[str, str, str | None]] = field(default_factory=list)
    requests: int = 0
    invalid: list[str] = field(default_factory=list)
    reject: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def reports(self) -> dict[str, dict]:
        return {rid: r for (t, rid), r in self.resources.items() if t == "DiagnosticReport"}

    def _make(self) -> ThreadingHTTPServer:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _answer(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                from fhir.resources.R4B.bundle import Bundle

                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with peer.lock:
                    peer.requests += 1
                try:
                    body = json.loads(raw)
                    bundle = Bundle.model_validate(body)
                except Exception as exc:
                    peer.invalid.append(type(exc).__name__)
                    return self._answer(
                        400,
                        {
                            "resourceType": "OperationOutcome",
                            "issue": [
                                {"severity": "error", "code": "invalid", "diagnostics": str(exc)}
                            ],
                        },
                    )
                if self.path.rstrip("/") != "/fhir" or bundle.type != "transaction":
                    peer.invalid.append("not a transaction to the base")
                    return self._answer(
                        400,
                        {
                            "resourceType": "OperationOutcome",
                            "issue": [{"severity": "error", "code": "not-supported"}],
                        },
                    )
                if peer.reject:
                    return self._answer(
                        422,
                        {
                            "resourceType": "OperationOutcome",
                            "issue": [
                                {
                                    "severity": "error",
                                    "code": "business-rule",
                                    "diagnostics": raw.decode(errors="replace")[:2000],
                                }
                            ],
                        },
                    )
                answers = []
                with peer.lock:
                    for entry in body["entry"]:
                        res, req = entry["resource"], entry["request"]
                        key = (res["resourceType"], res["id"])
                        assert req["method"] == "PUT" and req["url"] == "/".join(key)
                        created = key not in peer.resources
                        peer.resources[key] = res
                        peer.history.append((*key, res.get("status")))
                        answers.append(
                            {
                                "response": {
                                    "status": "201 Created" if created else "200 OK",
                                    "location": f"{key[0]}/{key[1]}/_history/1",
                                }
                            }
                        )
                self._answer(
                    200,
                    {"resourceType": "Bundle", "type": "transaction-response", "entry": answers},
                )

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        return server


@dataclass
class MllpServer(_Restartable):
    """An HL7 v2 receiver over MLLP (hl7apy's server): each ORU^R01 is parsed (with its
    groups) and kept; the ACK is AA, or ``ack`` when set (AE, AR ...). ``messages`` keeps
    every one received, ``distinct`` by control id (a resend is the same message)."""

    port: int = field(default_factory=free_port)
    messages: list[Any] = field(default_factory=list)
    ack: str = "AA"
    unparsed: list[str] = field(default_factory=list)

    @property
    def distinct(self) -> dict[str, Any]:
        return {str(m.msh.msh_10.value): m for m in self.messages}

    def _make(self) -> ThreadingTCPServer:
        from hl7apy.mllp import AbstractHandler, MLLPServer

        peer = self

        class OruHandler(AbstractHandler):
            def reply(self) -> str:
                from hl7apy.core import Message
                from hl7apy.parser import parse_message

                try:
                    msg = parse_message(self.incoming_message, validation_level=2, find_groups=True)
                except Exception as exc:
                    peer.unparsed.append(type(exc).__name__)
                    raise
                peer.messages.append(msg)
                ack = Message("ACK", version="2.5.1", validation_level=2)
                ack.msh.msh_3 = "HIS"
                ack.msh.msh_9 = "ACK^R01^ACK"
                ack.msh.msh_10 = "ACK" + str(len(peer.messages))
                ack.msh.msh_11 = "P"
                ack.msa.msa_1 = peer.ack
                ack.msa.msa_2 = msg.msh.msh_10.value
                if peer.ack != "AA":
                    ack.msa.msa_3 = "refused: " + self.incoming_message[:200].replace(
                        "|", " "
                    ).replace("^", " ").replace("\r", " ")
                return "\x0b" + ack.to_er7() + "\x1c\x0d"

        handlers = {"ORU^R01^ORU_R01": (OruHandler,), "ORU^R01": (OruHandler,)}
        server = MLLPServer("127.0.0.1", self.port, handlers, timeout=5)
        server.daemon_threads = True
        return server
