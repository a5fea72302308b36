"""A FHIR R4 receiver for the compose smoke test (``--profile smoke``): it stands in for the
hospital's FHIR server at ``http://fhir-sink:8080/fhir``.

``POST /fhir`` takes a transaction Bundle (what medai's outbox sends: PUTs with stable ids),
checks it with fhir.resources (R4B) — 400 with an OperationOutcome when it is not valid — keeps
every resource and answers a transaction-response. ``GET /fhir/DiagnosticReport`` lists the
reports kept (id and status), so the smoke test can see a signed report arrive as ``final``.
Runs in the medai image (its Python has fhir.resources); keeps nothing on disk.

The two-node check (deploy/two-node/driver.py) serves the same ``Handler`` in-process: every
PUT is also a row of ``RECEIPTS`` (a resend is a second row with the same id), every refused
POST a line of ``INVALID``, and ``ON_RECEIPT`` (if set) sees each row as it is kept."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RESOURCES: dict[tuple[str, str], dict] = {}
RECEIPTS: list[dict[str, Any]] = []
INVALID: list[str] = []
ON_RECEIPT: Callable[[dict[str, Any]], None] | None = None
LOG_REQUESTS = True
LOCK = threading.RLock()  # _refuse may run inside the loop that holds it


def _receipt(res: dict, at: float) -> dict[str, Any]:
    row = {"type": res["resourceType"], "id": res["id"], "status": res.get("status"), "at": at}
    if res["resourceType"] == "DiagnosticReport":
        row["identifier"] = [i.get("value") for i in res.get("identifier", [])]
    return row


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt: str, *args) -> None:
        if LOG_REQUESTS:
            print(f"fhir-sink: {self.command} {self.path} {fmt % args}", flush=True)

    def _answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _outcome(self, code: int, issue: str, text: str) -> None:
        self._answer(
            code,
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": issue, "diagnostics": text[:500]}],
            },
        )

    def _refuse(self, code: int, issue: str, text: str) -> None:
        """A transaction not taken: answered as a FHIR server would, and counted."""
        with LOCK:
            INVALID.append(f"{code} {issue}")
        self._outcome(code, issue, text)

    def do_POST(self) -> None:
        from fhir.resources.R4B.bundle import Bundle

        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw)
            bundle = Bundle.model_validate(body)
        except Exception as exc:  # not FHIR: what a real server answers
            return self._refuse(400, "invalid", f"{type(exc).__name__}: {exc}")
        if self.path.rstrip("/") != "/fhir" or bundle.type != "transaction":
            return self._refuse(400, "not-supported", "POST a transaction Bundle to /fhir")
        answers, now = [], time.time()
        with LOCK:
            for entry in body.get("entry", []):
                res, req = entry["resource"], entry["request"]
                key = (res["resourceType"], res["id"])
                if req.get("method") != "PUT" or req.get("url") != "/".join(key):
                    return self._refuse(400, "not-supported", f"expected PUT {'/'.join(key)}")
                created = key not in RESOURCES
                RESOURCES[key] = res
                RECEIPTS.append(_receipt(res, now))
                if ON_RECEIPT is not None:
                    ON_RECEIPT(RECEIPTS[-1])
                answers.append(
                    {
                        "response": {
                            "status": "201 Created" if created else "200 OK",
                            "location": f"{key[0]}/{key[1]}/_history/1",
                        }
                    }
                )
        self._answer(
            200, {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}
        )

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/fhir/DiagnosticReport":
            with LOCK:
                reports = [
                    {"id": rid, "status": r.get("status")}
                    for (kind, rid), r in RESOURCES.items()
                    if kind == "DiagnosticReport"
                ]
            return self._answer(200, {"reports": reports})
        self._outcome(404, "not-found", self.path)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("0.0.0.0", 8080), Handler)
    server.daemon_threads = True
    print("fhir-sink: listening on :8080/fhir", flush=True)
    server.serve_forever()
