"""The simulated hosts of the two-node check: their names, addresses and where medai and
PostgreSQL's programs are (shared by run.py, which builds the namespaces, and driver.py, which
runs inside them)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv" / "bin"
NET = "10.47.0"
HOSTS = {"mdb": 2, "mnode1": 11, "mnode2": 12, "mmod": 20}
BRIDGE = "mbr"


def addr(ns: str) -> str:
    return f"{NET}.{HOSTS[ns]}"


def pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None
