#!/usr/bin/env python3
"""The two-node proof (issue 47, "Several nodes"): two medai nodes on one PostgreSQL, one Redis
broker and one shared MEDAI_HOME, each in its own Linux network namespace, take 100 studies
(half DICOM C-STORE with dcmtk's storescu, half HTTP uploads) while node 1 is killed with
SIGKILL (serve, worker and DICOM node at once) mid-way and restarted. Then, from the database
and from a FHIR receiver that parses every transaction: every study analysed exactly once,
every delivery exactly once by its deterministic id, nothing lost; sessions, the login
throttle and the anonymous triage quota hold across the nodes; and a model promoted on node 1
is served by node 2 within MEDAI_MODEL_WATCH_S.

Hosts (namespaces on one bridge, 10.47.0.0/24; the root namespace gets no address and sends
nothing to them):

    mdb     10.47.0.2   its own PostgreSQL cluster (initdb, pg_ctl) and Redis
    mnode1  10.47.0.11  medai serve :8000, medai worker --queues cpu, medai dicom listen :11112
    mnode2  10.47.0.12  the same
    mmod    10.47.0.20  the modality and the uploader, the FHIR receiver :8080, this driver

Network namespaces isolate the network only: the file system is shared, which stands in for
the ReadWriteMany volume both nodes mount as MEDAI_HOME (blobs, registered models).

    sudo .venv/bin/python deploy/two-node/run.py      # or: make two-node-check

Writes deploy/dist/two-node/results.json and the logs beside it; exit 0 when every check
passed, 1 when one failed, 2 when a tool is missing. Everything it started is stopped and the
namespaces are deleted on exit, on failure and on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hosts import BRIDGE, HOSTS, ROOT, VENV, addr, pg_bin  # beside this script

NAMESPACES = (*HOSTS, BRIDGE)
OUT = ROOT / "deploy" / "dist" / "two-node"
IMAGES = Path(
    os.environ.get("MEDAI_TWO_NODE_IMAGES")
    or ROOT.parent / "shared" / "data" / "chest_xray" / "images"
)


def sh(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kw)


# --- outside: the namespaces, and their removal whatever happens ---------------------------


def _ns_pids(ns: str) -> list[int]:
    out = sh("ip", "netns", "pids", ns, check=False).stdout.split()
    return [int(p) for p in out if p.isdigit() and int(p) != os.getpid()]


def teardown(work: Path | None) -> None:
    """Stop PostgreSQL cleanly if it runs, kill every process left in the namespaces (all
    started by this run), delete the namespaces."""
    pg = pg_bin()
    if work is not None and pg and (work / "pg" / "data" / "postmaster.pid").exists():
        sh(
            "ip",
            "netns",
            "exec",
            "mdb",
            "runuser",
            "-u",
            "postgres",
            "--",
            str(pg / "pg_ctl"),
            "-D",
            str(work / "pg" / "data"),
            "-m",
            "immediate",
            "-w",
            "stop",
            check=False,
            timeout=60,
        )
    existing = set(sh("ip", "netns", "list", check=False).stdout.split())
    for ns in NAMESPACES:
        if ns not in existing:
            continue
        for _ in range(3):
            pids = _ns_pids(ns)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        sh("ip", "netns", "del", ns, check=False)


def setup_network() -> None:
    """A bridge in its own namespace and one veth pair per host: created inside the
    namespaces (``ip -n``), so the root namespace never holds an end or an address."""
    for ns in NAMESPACES:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", BRIDGE, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", BRIDGE, "link", "set", "br0", "up")
    for ns, host in HOSTS.items():
        port = f"v{host}"
        sh(
            "ip",
            "-n",
            BRIDGE,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns,
        )
        sh("ip", "-n", BRIDGE, "link", "set", port, "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{addr(ns)}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")


def preflight(images: Path) -> str | None:
    if os.geteuid() != 0:
        return "run as root (network namespaces): sudo .venv/bin/python deploy/two-node/run.py"
    for tool in ("ip", "runuser", "redis-server", "storescu", "echoscu"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2 redis-server dcmtk)"
    if not any(Path(images).glob("*.png")):
        return (
            f"no chest radiographs (PNG) in {images}: give --images DIR or "
            "MEDAI_TWO_NODE_IMAGES (analysed studies are what is delivered)"
        )
    if pg_bin() is None:
        return "PostgreSQL's server binaries are not installed (apt-get install postgresql)"
    if not (VENV / "medai").exists():
        return f"{VENV / 'medai'} is missing: install medai into .venv first (make install)"
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        return "no 'postgres' user to run the PostgreSQL cluster as"
    return None


def outer(args: argparse.Namespace) -> int:
    why = preflight(args.images)
    if why:
        print(f"two-node: cannot run: {why}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="medai-two-node-"))
    os.chmod(work, 0o755)

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    teardown(None)  # what a run killed before its cleanup left
    rc = 1
    try:
        setup_network()
        cmd = [
            "ip",
            "netns",
            "exec",
            "mmod",
            str(VENV / "python"),
            __file__,
            "--inner",
            "--work",
            str(work),
            "--studies",
            str(args.studies),
            "--images",
            str(args.images),
        ]
        rc = subprocess.call(cmd, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f"two-node: gave up after {args.timeout} s", file=sys.stderr)
    finally:
        teardown(work)
        for name in ("logs",):
            if (work / name).exists():
                shutil.rmtree(OUT / name, ignore_errors=True)
                shutil.copytree(work / name, OUT / name)
        if args.keep:
            print(f"two-node: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--studies", type=int, default=100, help="studies sent (even)")
    ap.add_argument("--timeout", type=int, default=900, help="whole run, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument(
        "--images",
        type=Path,
        default=IMAGES,
        help="a folder of chest radiographs (PNG) to send (default %(default)s)",
    )
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        from driver import run

        return run(args.work, args.studies, OUT, args.images)
    return outer(args)


if __name__ == "__main__":
    sys.exit(main())
