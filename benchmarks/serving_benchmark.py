"""Serving under load and bad input: `medai serve` before and after a change, in one run.

Starts each server as a real process (the "before" one from a git worktree of a baseline
commit), drives it with wrk (20 connections, 60 s) for triage and chest X-ray prediction,
soaks heatmaps at 8 clients checking every PNG against the serial one and sampling resident
memory, runs a mixed soak (triage under imaging load), and sends the bad-input table,
recording each status and the server's peak RSS. Writes results.json and results.md.

    python benchmarks/serving_benchmark.py --baseline 07f16f2 --out docs/benchmarks/serving
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).parent / "serving" / "wrk_post.lua"
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).parent))
from serving.badinputs import bad_input_table  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `medai serve` process tree from a source tree (``src`` on PYTHONPATH)."""

    def __init__(
        self, tree: Path, workers: int | None, label: str, extra_env: dict | None = None
    ) -> None:
        self.tree, self.workers, self.label = tree, workers, label
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "medai.cli", "serve", "--port", str(self.port)]
        if workers:
            cmd += ["--workers", str(workers)]
        self.home = tempfile.mkdtemp(prefix=f"medai-bench-{label}-")
        env = dict(
            os.environ, PYTHONPATH=str(tree / "src"), MEDAI_HOME=self.home, **(extra_env or {})
        )
        self.env, self.headers = env, {}
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, cwd=tree, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.crashes = 0

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        for path in ("/api/v1/health/ready", "/api/v1/health"):
            while time.time() < deadline:
                try:
                    r = httpx.get(self.base + path, timeout=30)
                    if r.status_code == 200 and r.json().get("status") in ("ready", "ok"):
                        self._sign_in()
                        return self._warm()
                    if r.status_code == 404:
                        break
                except httpx.HTTPError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.label} exited: {Path(self.log.name).read_text()}")
                time.sleep(0.5)
        raise RuntimeError(f"{self.label} did not become ready")

    def _sign_in(self) -> None:
        """Since the clinical platform, every model route needs a signed-in clinician: create
        one in this server's MEDAI_HOME (a tree without `medai users` serves openly)."""

        def users(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "medai.cli", "users", *args],
                cwd=self.tree,
                env=self.env,
                input=stdin,
                text=True,
                capture_output=True,
            )

        password = "kestane-kebap-ilkbahar"
        made = users(
            "add", "bench", "--role", "radiologist", "--password-stdin", stdin=password + "\n"
        )
        if made.returncode != 0:  # newer trees: the user chooses it with an enrolment code
            made = users("add", "bench", "--role", "radiologist", "--json")
            if made.returncode != 0:
                return
            made = users(
                "enrol",
                json.loads(made.stdout)["enrol_code"],
                "--password-stdin",
                stdin=password + "\n",
            )
            if made.returncode != 0:
                return
        token = httpx.post(
            f"{self.base}/api/v1/auth/login",
            timeout=30,
            json={"username": "bench", "password": password},
        ).json()["access_token"]
        self.headers = {"Authorization": f"Bearer {token}"}

    def _warm(self) -> None:
        for task in ("cxr", "mri"):  # the old server loads imaging models on first use
            httpx.post(
                f"{self.base}/api/v1/imaging/{task}/predict",
                timeout=120,
                headers=self.headers,
                files={"file": ("w.png", _tiny_png(), "image/png")},
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_mb(self) -> float:
        try:
            p = psutil.Process(self.proc.pid)
            procs = [p, *p.children(recursive=True)]
            return sum(q.memory_info().rss for q in procs if q.is_running()) / 2**20
        except psutil.NoSuchProcess:
            return 0.0

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _tiny_png() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((256, 256)) * 255).astype("uint8")).save(
        buf, "PNG"
    )
    return buf.getvalue()


class RssSampler:
    def __init__(self, server: Server, every_s: float = 0.02) -> None:
        self.server, self.every_s = server, every_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.time()
        while not self._stop.is_set():
            self.samples.append((time.time() - start, self.server.rss_mb()))
            time.sleep(self.every_s)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    @property
    def peak(self) -> float:
        return max((m for _, m in self.samples), default=0.0)


def run_wrk(
    server: Server, path: str, kind: str, listing: Path, connections: int, duration: int
) -> dict:
    env = dict(
        os.environ,
        BENCH_PATH=path,
        BENCH_KIND=kind,
        BENCH_FILES=str(listing),
        BENCH_AUTH=server.headers.get("Authorization", ""),
    )
    with RssSampler(server, 0.5) as rss:
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{duration}s",
                "--timeout",
                "10s",
                "-s",
                str(LUA),
                server.base,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        return {"error": out.stdout[-500:] + out.stderr[-500:], "alive": server.alive()}
    result = json.loads(line[len("RESULT ") :])
    result["requests_per_s"] = round(result["requests"] / result["duration_s"], 1)
    result.update(connections=connections, alive_after=server.alive(), peak_rss_mb=round(rss.peak))
    return result


def heatmap_soak(server: Server, images: list[Path], clients: int, duration: int) -> dict:
    """``clients`` threads post heatmaps for ``duration`` s; every PNG must equal the serial
    one for its image; RSS sampled throughout."""
    data = [p.read_bytes() for p in images]
    url = f"{server.base}/api/v1/imaging/cxr/heatmap"
    with httpx.Client(timeout=120, headers=server.headers) as c:
        reference = [c.post(url, files={"file": ("x.png", d, "image/png")}).content for d in data]
    counts = {
        "requests": 0,
        "equal": 0,
        "different": 0,
        "5xx": 0,
        "other_status": 0,
        "connection_errors": 0,
    }
    lock = threading.Lock()
    stop = time.time() + duration

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(timeout=120, headers=server.headers) as c:
            while time.time() < stop:
                i = rng.randrange(len(data))
                try:
                    r = c.post(url, files={"file": ("x.png", data[i], "image/png")})
                except httpx.HTTPError:
                    with lock:
                        counts["connection_errors"] += 1
                    time.sleep(1)
                    continue
                with lock:
                    counts["requests"] += 1
                    if r.status_code >= 500:
                        counts["5xx"] += 1
                    elif r.status_code != 200:
                        counts["other_status"] += 1
                    elif r.content == reference[i]:
                        counts["equal"] += 1
                    else:
                        counts["different"] += 1

    with RssSampler(server, 1.0) as rss:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    warm = [m for t, m in rss.samples if t >= min(60, duration / 4) and m > 0]
    return {
        **counts,
        "clients": clients,
        "duration_s": duration,
        "alive_after": server.alive(),
        "rss_mb_after_warmup": round(warm[0]) if warm else None,
        "rss_mb_end": round(rss.samples[-1][1]) if rss.samples else None,
        "rss_growth_after_warmup": round(warm[-1] / warm[0] - 1, 4) if warm else None,
        "peak_rss_mb": round(rss.peak),
        "requests_per_s": round(counts["requests"] / duration, 2),
    }


def mixed_soak(
    server: Server, texts: Path, images: list[Path], duration: int, triage_connections: int
) -> dict:
    """Triage measured by wrk while predict, heatmap and draft clients load the server."""
    data = [p.read_bytes() for p in images]
    counts = {"predict": 0, "heatmap": 0, "draft": 0, "5xx": 0, "connection_errors": 0}
    lock = threading.Lock()
    stop = time.time() + duration

    def client(route: str, seed: int) -> None:
        rng = random.Random(seed)
        url = {
            "predict": "/api/v1/imaging/cxr/predict",
            "heatmap": "/api/v1/imaging/cxr/heatmap",
            "draft": "/api/v1/reports/draft",
        }[route]
        with httpx.Client(timeout=120, headers=server.headers) as c:
            while time.time() < stop:
                try:
                    form = {"task": "cxr"} if route == "draft" else None
                    r = c.post(
                        server.base + url,
                        data=form,
                        files={"file": ("x.png", rng.choice(data), "image/png")},
                    )
                except httpx.HTTPError:
                    with lock:
                        counts["connection_errors"] += 1
                    time.sleep(1)
                    continue
                with lock:
                    counts[route] += 1
                    counts["5xx"] += r.status_code >= 500

    threads = [
        threading.Thread(target=client, args=(route, k))
        for k, route in enumerate(["predict", "predict", "heatmap", "heatmap", "draft"])
    ]
    with RssSampler(server, 1.0) as rss:
        for t in threads:
            t.start()
        triage = run_wrk(server, "/api/v1/triage", "json", texts, triage_connections, duration)
        for t in threads:
            t.join()
    return {
        "triage_under_load": triage,
        **counts,
        "duration_s": duration,
        "peak_rss_mb": round(rss.peak),
        "alive_after": server.alive(),
    }


def inputs(work: Path, n_texts: int, n_images: int) -> tuple[Path, list[Path]]:
    """Real complaints and chest X-rays when ../shared/data is present, else made up."""
    rng = random.Random(0)
    complaints = SHARED / "triage" / "complaints.csv"
    if complaints.is_file():
        with complaints.open(encoding="utf-8") as fh:
            texts = [r["text"] for r in csv.DictReader(fh) if 20 <= len(r["text"]) <= 4000]
        texts = rng.sample(texts, min(n_texts, len(texts)))
    else:
        texts = [f"{i} gündür başım ve kulağım ağrıyor, ne yapmalıyım" for i in range(n_texts)]
    listing = work / "texts.jsonl"
    listing.write_text(
        "\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in texts) + "\n",
        encoding="utf-8",
    )
    manifest = SHARED / "chest_xray" / "manifest.csv"
    images: list[Path] = []
    if manifest.is_file():
        with manifest.open() as fh:
            rows = [r for r in csv.DictReader(fh)]
        for r in rng.sample(rows, min(n_images, len(rows))):
            p = Path(r.get("path") or r.get("file") or "")
            p = p if p.is_absolute() else manifest.parent / p
            if p.suffix.lower() in (".png", ".jpg", ".jpeg") and p.is_file():
                images.append(p)
    if not images:
        for i in range(n_images):
            p = work / f"img{i}.png"
            p.write_bytes(_tiny_png())
            images.append(p)
    return listing, images


def image_listing(work: Path, images: list[Path]) -> Path:
    listing = work / "images.txt"
    listing.write_text("\n".join(str(p) for p in images) + "\n")
    return listing


def worktree(ref: str, work: Path) -> Path:
    tree = work / "before"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(tree), ref],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return tree


def _row(name: str, r: dict | None) -> str:
    if not r or "requests_per_s" not in r:
        return f"| {name} | – | – | – | – | – |"
    return (
        f"| {name} | {r['requests_per_s']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
        f"{r['non_2xx']} + {r['socket_errors']} | {r['peak_rss_mb']} |"
    )


def render(results: dict) -> str:
    """results.md: the tables of docs/benchmarks/serving.md."""
    b, a = results.get("before", {}), results.get("after", {})
    lines = [
        "| load (wrk, 20 connections) | req/s | p50 ms | p95 ms | non-2xx + socket errors "
        "| peak RSS MB |",
        "|---|---|---|---|---|---|",
        _row("triage, before", b.get("triage")),
        _row("triage, after", a.get("triage")),
        _row("triage, after, rules only (no e5 detector)", a.get("triage_rules_only")),
        _row("chest X-ray predict, before", b.get("cxr_predict")),
        _row("chest X-ray predict, after", a.get("cxr_predict")),
        "",
    ]
    lines += [
        "| heatmap soak (8 clients) | requests | equal to serial | different | 5xx | "
        "connection errors | alive after | RSS after warm-up → end MB | growth |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in (("before", b.get("heatmap_soak")), ("after", a.get("heatmap_soak"))):
        if r:
            lines.append(
                f"| {name}, {r['duration_s']} s | {r['requests']} | {r['equal']} | "
                f"{r['different']} | {r['5xx']} | {r['connection_errors']} | "
                f"{r['alive_after']} | {r['rss_mb_after_warmup']} → {r['rss_mb_end']} "
                f"| {r['rss_growth_after_warmup']} |"
            )
    m = a.get("mixed_soak")
    if m:
        t, alone = m["triage_under_load"], a.get("triage_alone_8", {})
        lines += [
            "",
            "| mixed soak | value |",
            "|---|---|",
            f"| duration | {m['duration_s']} s |",
            f"| predict / heatmap / draft requests | {m['predict']} / {m['heatmap']} / "
            f"{m['draft']} |",
            f"| 5xx (imaging clients + triage) | {m['5xx']} + {t.get('non_2xx')} |",
            f"| connection errors | {m['connection_errors']} |",
            f"| peak RSS | {m['peak_rss_mb']} MB |",
            f"| triage p95 alone (8 connections) | {alone.get('p95_ms', 0):.0f} ms |",
            f"| triage p95 under imaging load | {t.get('p95_ms', 0):.0f} ms |",
        ]
    for name in ("before", "after"):
        rows = results.get(name, {}).get("bad_inputs")
        if rows:
            lines += [
                "",
                f"| bad input ({name}) | status | seconds | RSS before → peak MB |",
                "|---|---|---|---|",
            ]
            for r in rows:
                rss = (
                    f"{r['rss_before_mb']} → {r['peak_rss_mb']}"
                    if "rss_before_mb" in r
                    else r.get("peak_rss_mb", "")
                )
                lines.append(f"| {r['case']} | {r['status']} | {r.get('seconds', '')} | {rss} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default=None, help="git ref of the code before the change")
    ap.add_argument("--out", default="docs/benchmarks/serving")
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--heatmap-duration", type=int, default=300)
    ap.add_argument("--mixed-duration", type=int, default=600)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip", nargs="*", default=[], help="parts to skip: load heatmap mixed bad")
    ap.add_argument("--render", default=None, help="only write results.md from a results.json")
    args = ap.parse_args()
    if args.render:
        path = Path(args.render)
        (path.parent / "results.md").write_text(render(json.loads(path.read_text())))
        return
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="medai-serving-"))
    texts, images = inputs(work, 400, 16)
    img_list = image_listing(work, images)
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30),
        },
        "inputs": {
            "texts": sum(1 for _ in texts.open()),
            "images": len(images),
            "real_data": (SHARED / "triage").is_dir(),
        },
        "settings": vars(args),
    }
    trees = {"after": (ROOT, args.workers)}
    if args.baseline:
        trees = {"before": (worktree(args.baseline, work), None), **trees}
    try:
        for name, (tree, workers) in trees.items():
            res: dict = {}
            if "load" not in args.skip:
                for route, path, kind, listing in [
                    ("triage", "/api/v1/triage", "json", texts),
                    ("cxr_predict", "/api/v1/imaging/cxr/predict", "multipart", img_list),
                ]:
                    server = Server(tree, workers, name)
                    try:
                        server.wait_ready()
                        if route == "triage":  # which red-flag engine this tree serves
                            res["red_flag_engine"] = (
                                httpx.post(
                                    server.base + path,
                                    headers=server.headers,
                                    timeout=60,
                                    json={"text": "Göğsümde baskı var, sol koluma vuruyor"},
                                )
                                .json()
                                .get("red_flag_engine", {})
                            )
                            print(
                                name,
                                "red_flag_engine",
                                json.dumps(res["red_flag_engine"]),
                                flush=True,
                            )
                        run_wrk(server, path, kind, listing, 20, 5)  # warm-up
                        res[route] = run_wrk(server, path, kind, listing, 20, args.duration)
                    finally:
                        server.stop()
                    print(name, route, json.dumps(res[route]), flush=True)
            if "load" not in args.skip and name == "after":  # the embedding detector's cost
                server = Server(tree, workers, name, {"MEDAI_RED_FLAG_EMBEDDINGS": "false"})
                try:
                    server.wait_ready()
                    run_wrk(server, "/api/v1/triage", "json", texts, 20, 5)
                    res["triage_rules_only"] = run_wrk(
                        server, "/api/v1/triage", "json", texts, 20, args.duration
                    )
                finally:
                    server.stop()
                print(name, "triage_rules_only", json.dumps(res["triage_rules_only"]), flush=True)
            if "heatmap" not in args.skip:
                server = Server(tree, workers, name)
                try:
                    server.wait_ready()
                    dur = (
                        args.heatmap_duration if name == "after" else min(60, args.heatmap_duration)
                    )
                    res["heatmap_soak"] = heatmap_soak(server, images[:8], 8, dur)
                finally:
                    server.stop()
                print(name, "heatmap", json.dumps(res["heatmap_soak"]), flush=True)
            if "mixed" not in args.skip and name == "after":
                server = Server(tree, workers, name)
                try:
                    server.wait_ready()
                    res["triage_alone_8"] = run_wrk(
                        server, "/api/v1/triage", "json", texts, 8, args.duration
                    )
                    res["mixed_soak"] = mixed_soak(server, texts, images, args.mixed_duration, 8)
                finally:
                    server.stop()
                print(name, "mixed", json.dumps(res["mixed_soak"]), flush=True)
            if "bad" not in args.skip:
                server = Server(tree, workers, name)
                try:
                    server.wait_ready()
                    res["bad_inputs"] = bad_input_table(
                        server, work, RssSampler, cli=name == "after", xray=images[0]
                    )
                finally:
                    server.stop()
                print(name, "bad", json.dumps(res["bad_inputs"]), flush=True)
            results[name] = res
            (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    finally:
        if args.baseline:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(work / "before")],
                cwd=ROOT,
                check=False,
                capture_output=True,
            )
        shutil.rmtree(work, ignore_errors=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.md").write_text(render(results))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
