"""Registry operations and a hot swap under load: 20 wrk clients triage complaints against
`medai serve` (2 worker processes, embedded SQLite) while an admin promotes and rolls back the
triage model every few seconds through the API — no request may fail, and both processes must
serve both models. Side by side, in the same run, the same load with no promotion (the
baseline), and the time of each registry operation (register a 14 MB and a 27 MB model,
promote, roll back, list).

    .venv/bin/python benchmarks/model_swap_benchmark.py [--duration 40] [--every 4]

Writes docs/benchmarks/lifecycle/results.json and results.md. Uses real complaints from
../shared/data when present (else made-up ones).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from platform_benchmark import stop  # noqa: E402
from serving_benchmark import free_port, inputs  # noqa: E402

OUT = ROOT / "docs" / "benchmarks" / "lifecycle"
BUNDLED = ROOT / "src" / "medai" / "assets" / "models"
PASSWORD = "kestane-kebap-ilkbahar"


def cli(env: dict, *args: str, stdin: str = "") -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "medai.cli", *args, "--json"],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode != 0:
        raise RuntimeError(r.stdout + r.stderr)
    return json.loads(r.stdout)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return round(time.perf_counter() - start, 3), out


def serve(env: dict, log: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medai.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=open(log, "w"),  # noqa: SIM115 (the server keeps it for its life)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/api/v1/health/ready", timeout=30).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready; see {log}")


def wrk(base: str, token: str, listing: Path, duration: int, connections: int) -> dict:
    env = dict(
        os.environ,
        BENCH_PATH="/api/v1/triage",
        BENCH_KIND="json",
        BENCH_FILES=str(listing),
        BENCH_AUTH=f"Bearer {token}",
    )
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "--timeout",
            "30s",
            "-s",
            str(ROOT / "benchmarks" / "serving" / "wrk_post.lua"),
            base,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    result["rps"] = round(result["requests"] / result["duration_s"], 1)
    return result


def served_hashes(db: Path, since_id: int) -> dict[str, int]:
    with sqlite3.connect(db) as c:
        rows = c.execute(
            "SELECT model_hash, count(*) FROM triage_requests WHERE id > ? GROUP BY model_hash",
            (since_id,),
        ).fetchall()
    return {h: n for h, n in rows}


def last_id(db: Path) -> int:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT coalesce(max(id), 0) FROM triage_requests").fetchone()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=40)
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--every", type=float, default=4.0, help="seconds between promotions")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medai-swap-"))
    home = work / "home"
    env = {
        **os.environ,
        "MEDAI_HOME": str(home),
        "MEDAI_DATABASE_URL": "",
        "MEDAI_MODEL_WATCH_S": "1",
        "OMP_NUM_THREADS": "1",
        "MEDAI_LOG_LEVEL": "WARNING",
    }
    cli(env, "users", "add", "admin", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    ops: dict[str, float] = {}
    ops["register_triage_14MB_s"], extended = timed(
        lambda: cli(env, "models", "register", str(BUNDLED / "triage-extended"))
    )
    ops["register_again_same_files_s"], _ = timed(
        lambda: cli(env, "models", "register", str(BUNDLED / "triage-extended"))
    )
    ops["register_cxr_27MB_s"], _ = timed(
        lambda: cli(env, "models", "register", str(BUNDLED / "cxr-default"))
    )
    listing, _ = inputs(work, 400, 0)
    proc, base = serve(env, work / "serve.log", args.workers)
    db = home / "medai.db"
    try:
        token = httpx.post(
            f"{base}/api/v1/auth/login",
            timeout=30,
            json={"username": "admin", "password": PASSWORD},
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        models = httpx.get(
            f"{base}/api/v1/models/registry", headers=auth, params={"task": "triage"}
        ).json()["items"]
        default = next(m for m in models if m["state"] == "active")
        ops["list_registry_s"], _ = timed(
            lambda: httpx.get(f"{base}/api/v1/models/registry", headers=auth, timeout=30)
        )
        httpx.post(
            f"{base}/api/v1/triage", headers=auth, json={"text": "başım ağrıyor"}, timeout=60
        )  # warm
        print(f"baseline: wrk {args.duration}s, {args.connections} clients", file=sys.stderr)
        before = last_id(db)
        baseline = wrk(base, token, listing, args.duration, args.connections)
        baseline["served"] = served_hashes(db, before)

        # the other model alone, for what its own speed is (the swap run mixes the two)
        r = httpx.post(
            f"{base}/api/v1/models/registry/{extended['id']}/promote",
            headers=auth,
            timeout=120,
            json={"reason": "benchmark: baseline", "override": True},
        )
        r.raise_for_status()
        time.sleep(15)  # both serve processes load and warm it before the run
        print("baseline of the other model", file=sys.stderr)
        before = last_id(db)
        other = wrk(base, token, listing, args.duration, args.connections)
        other["served"] = served_hashes(db, before)
        httpx.post(
            f"{base}/api/v1/models/rollback",
            headers=auth,
            timeout=120,
            json={"task": "triage", "reason": "benchmark: baseline"},
        ).raise_for_status()
        time.sleep(3)

        swaps: list[dict] = []
        stop_event = threading.Event()

        def swapper() -> None:
            turn = 0
            while not stop_event.wait(args.every):
                if turn % 2 == 0:
                    t, r = timed(
                        lambda: httpx.post(
                            f"{base}/api/v1/models/registry/{extended['id']}/promote",
                            headers=auth,
                            timeout=60,
                            json={"reason": "benchmark: swap under load", "override": True},
                        )
                    )
                    swaps.append({"op": "promote", "s": t, "status": r.status_code})
                else:
                    t, r = timed(
                        lambda: httpx.post(
                            f"{base}/api/v1/models/rollback",
                            headers=auth,
                            timeout=60,
                            json={"task": "triage", "reason": "benchmark: swap under load"},
                        )
                    )
                    swaps.append({"op": "rollback", "s": t, "status": r.status_code})
                turn += 1

        print(f"swapping every {args.every}s under the same load", file=sys.stderr)
        before = last_id(db)
        thread = threading.Thread(target=swapper)
        thread.start()
        loaded = wrk(base, token, listing, args.duration, args.connections)
        stop_event.set()
        thread.join()
        loaded["served"] = served_hashes(db, before)
        loaded["swaps"] = len(swaps)
        loaded["swap_failures"] = sum(1 for s in swaps if s["status"] != 200)
        promote_s = [s["s"] for s in swaps if s["op"] == "promote"]
        rollback_s = [s["s"] for s in swaps if s["op"] == "rollback"]
        ops["promote_api_s_median"] = sorted(promote_s)[len(promote_s) // 2] if promote_s else None
        ops["rollback_api_s_median"] = (
            sorted(rollback_s)[len(rollback_s) // 2] if rollback_s else None
        )
    finally:
        stop([proc])
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, "
        f"{platform.machine()}, Python {platform.python_version()}",
        "serve_workers": args.workers,
        "connections": args.connections,
        "duration_s": args.duration,
        "swap_every_s": args.every,
        "model_watch_s": 1,
        "models": {
            "triage-default": default["content_hash"],
            "triage-extended": extended["content_hash"],
        },
        "registry_ops": ops,
        "baseline": baseline,
        "baseline_other": other,
        "with_swaps": loaded,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (OUT / "results.md").write_text(render(result))
    print(render(result))


def render(r: dict) -> str:
    b, e, s, o = r["baseline"], r["baseline_other"], r["with_swaps"], r["registry_ops"]
    names = {v: k for k, v in r["models"].items()}

    def served(d: dict) -> str:
        return ", ".join(f"{names.get(h, h[:19])} {n}" for h, n in sorted(d.items()))

    return (
        f"Run {r['date']} on {r['machine']}; `medai serve --workers {r['serve_workers']}` "
        f"on embedded SQLite, MEDAI_MODEL_WATCH_S={r['model_watch_s']}; wrk "
        f"{r['connections']} clients × {r['duration_s']} s on POST /api/v1/triage.\n\n"
        "| run | complaints/s | p50 ms | p95 ms | p99 ms | non-2xx | socket errors | "
        "answers per model (each names its model) |\n|---|---|---|---|---|---|---|---|\n"
        f"| no promotion | {b['rps']} | {b['p50_ms']} | {b['p95_ms']} | {b['p99_ms']} | "
        f"{b['non_2xx']} | {b['socket_errors']} | {served(b['served'])} |\n"
        f"| the other model, no promotion | {e['rps']} | {e['p50_ms']} | {e['p95_ms']} | "
        f"{e['p99_ms']} | {e['non_2xx']} | {e['socket_errors']} | {served(e['served'])} |\n"
        f"| promote/rollback every {r['swap_every_s']} s ({s['swaps']} swaps, "
        f"{s['swap_failures']} failed) | {s['rps']} | {s['p50_ms']} | {s['p95_ms']} | "
        f"{s['p99_ms']} | {s['non_2xx']} | {s['socket_errors']} | "
        f"{served(s['served'])} |\n\n"
        "Registry operations (seconds): " + ", ".join(f"{k} {v}" for k, v in o.items()) + "\n"
    )


if __name__ == "__main__":
    main()
