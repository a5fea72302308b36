"""Triage throughput on the kiosk route (issue 27): wrk at 20 clients posting the written
development and blind complaints (every text different: no cache helps) to `POST /api/v1/triage`
with a registered kiosk's token, every red-flag detector on, `medai serve --workers 2` on
embedded SQLite. One run, side by side: the code before a change (``--baseline REF``, a git
worktree), this code, and this code with e5 micro-batching on (``MEDAI_E5_MICRO_BATCH=32``).

    .venv/bin/python benchmarks/triage_throughput_benchmark.py --baseline REF [--duration 30]

Writes docs/benchmarks/triage_throughput/results.{json,md}; prints each configuration's
complaints/s, p50/p95 latency, non-2xx and the red-flag engine it served (name, hash)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from serving_benchmark import ROOT, Server, run_wrk, worktree

DATA = ROOT / "data" / "red_flags"
OUT = ROOT / "docs" / "benchmarks" / "triage_throughput"


def bodies(work: Path) -> Path:
    texts = [
        json.loads(line)["text"]
        for folder in ("development", "blind")
        for f in sorted((DATA / folder).glob("*.jsonl"))
        for line in f.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    listing = work / "bodies.jsonl"
    listing.write_text(
        "".join(
            json.dumps({"text": t[:4000]}, ensure_ascii=False) + "\n" for t in dict.fromkeys(texts)
        ),
        encoding="utf-8",
    )
    return listing


def kiosk_token(server: Server) -> str | None:
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "medai.cli",
            "kiosks",
            "add",
            "bench",
            "--quota",
            "1000000",
            "--json",
        ],
        cwd=server.tree,
        env=server.env,
        capture_output=True,
        text=True,
    )
    return json.loads(made.stdout)["token"] if made.returncode == 0 else None


def measure(name: str, tree: Path, extra_env: dict, listing: Path, args) -> dict:
    server = Server(tree, args.workers, name, extra_env={"MEDAI_DATABASE_URL": "", **extra_env})
    try:
        server.wait_ready()
        token = kiosk_token(server)
        headers = {"X-Kiosk-Token": token} if token else server.headers
        probe = httpx.post(
            server.base + "/api/v1/triage",
            headers=headers,
            timeout=120,
            json={"text": "Göğsümde baskı var, sol koluma vuruyor"},
        ).json()
        os.environ["BENCH_HEADER"] = f"X-Kiosk-Token: {token}" if token else ""
        auth = server.headers
        if token:
            server.headers = {}  # the kiosk's token alone, as a kiosk sends it
        run_wrk(server, "/api/v1/triage", "json", listing, args.connections, 5)  # warm-up
        result = run_wrk(server, "/api/v1/triage", "json", listing, args.connections, args.duration)
        server.headers = auth
        result["route"] = "kiosk" if token else "signed-in user"
        result["red_flag_engine"] = {
            k: v
            for k, v in probe.get("red_flag_engine", {}).items()
            if k in ("name", "version", "content_hash", "rules_version", "detectors")
        }
        print(name, json.dumps(result), flush=True)
        return result
    finally:
        server.stop()
        os.environ.pop("BENCH_HEADER", None)


def render(r: dict) -> str:
    lines = [
        f"Run {r['date']} on {r['machine']}; wrk {r['connections']} clients, "
        f"{r['duration_s']} s, `medai serve --workers {r['workers']}`, embedded SQLite, "
        f"{r['texts']} different written complaints.",
        "",
        "| configuration | complaints/s | p50 ms | p95 ms | non-2xx + socket errors | "
        "red-flag engine |",
        "|---|---|---|---|---|---|",
    ]
    for name, x in r["configurations"].items():
        if "requests_per_s" not in x:
            lines.append(f"| {name} | – | – | – | {x.get('error', '')[:60]} | – |")
            continue
        e = x.get("red_flag_engine", {})
        lines.append(
            f"| {name} | {x['requests_per_s']} | {x['p50_ms']:.0f} | "
            f"{x['p95_ms']:.0f} | {x['non_2xx']} + {x['socket_errors']} | "
            f"{(e.get('content_hash') or e.get('rules_version') or '')[:19]} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default=None, help="git ref of the code before the change")
    ap.add_argument("--duration", type=int, default=30)
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medai-triage-throughput-"))
    listing = bodies(work)
    configs = []
    if args.baseline:
        configs.append((f"before ({args.baseline})", worktree(args.baseline, work), {}))
    configs += [
        ("this code", ROOT, {}),
        ("this code, e5 micro-batching on", ROOT, {"MEDAI_E5_MICRO_BATCH": "32"}),
    ]
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}",
        "connections": args.connections,
        "duration_s": args.duration,
        "workers": args.workers,
        "texts": sum(1 for _ in listing.open()),
        "configurations": {},
    }
    try:
        for name, tree, env in configs:
            result["configurations"][name] = measure(name, tree, env, listing, args)
    finally:
        if args.baseline:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(work / "before")],
                cwd=ROOT,
                capture_output=True,
            )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    (OUT / "results.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
