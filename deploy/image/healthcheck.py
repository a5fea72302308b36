#!/opt/medai/bin/python
"""The image's HEALTHCHECK: one image runs every role, so the check asks PID 1 (tini) which
role this container runs and checks that one — serve: ``GET /api/v1/health/live`` over
loopback; ``dicom listen``: the DICOM port accepts a connection; a worker or any other
command: its process is alive. No curl in the image: the standard library is enough.

Liveness only (the process can answer): readiness — database, broker, models — is
``/api/v1/health/ready``, for the front door and the orchestrator to route by."""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from pathlib import Path


def role_args() -> list[str]:
    """The arguments after the entrypoint in PID 1's command line."""
    args = Path("/proc/1/cmdline").read_bytes().decode().split("\0")
    for i, arg in enumerate(args):
        if arg.endswith("medai-entrypoint"):
            return [a for a in args[i + 1 :] if a]
    return [a for a in args[1:] if a]


def option(args: list[str], name: str, default: str) -> str:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def main() -> int:
    args = role_args()
    role = args[0] if args else "serve"
    if role == "serve":
        port = option(args, "--port", os.environ.get("MEDAI_PORT", "8000"))
        url = f"http://127.0.0.1:{port}/api/v1/health/live"
        with urllib.request.urlopen(url, timeout=5) as r:
            return 0 if r.status == 200 else 1
    if role == "dicom" and args[1:2] == ["listen"]:
        port = int(option(args, "--port", os.environ.get("MEDAI_DICOM_PORT", "11112")))
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return 0
    return 0  # a worker or a one-off command: PID 1 (tini) answers while its child runs


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # unhealthy, with the reason in `podman healthcheck run`'s output
        print(f"unhealthy: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
