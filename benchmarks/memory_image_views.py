"""Server memory under image views and heatmap bursts (issue 24, "memory stays bounded").

Starts `medai serve` as a real process on the bundled models with an embedded SQLite database in
a temporary MEDAI_HOME, once from a git worktree of a baseline commit ("before") and once from
this checkout ("after"), in one run, and measures the server's resident memory (RSS of its
process tree, sampled every 50 ms):

- image views, on a fresh server per film: the issue's bomb (a ~300 KB PNG declaring
  6000×6600 16-bit RGBA), the largest image the limits accept (6000×6600 16-bit gray) and a
  normal radiograph (3000×2500 16-bit gray, a real chest X-ray from ../shared/data scaled up),
  uploaded and analysed by the job pool; idle RSS after the analysis, then 10 and 50
  concurrent `GET /studies/{id}/image`: peak during and RSS 3 s after, against idle (target:
  within 200 MB);
- heatmap bursts, on a fresh server with two films (a 1024×1024 one, the size of the public
  chest X-ray sets, and the normal one): 160 Grad-CAM requests
  (`GET /studies/{id}/heatmap?label=…`, labels other than the stored one, so each is computed)
  from 8 clients, repeated; the peak and settled RSS of each burst (target: later bursts within
  10 % of the first burst's peak).

A guard stops a server whose RSS passes ``--guard-mb`` (the old code can take gigabytes) and
records it. The machine is shared: OMP_NUM_THREADS=1, one server at a time.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/memory_image_views.py \
        --baseline e70929d --after HEAD

Writes docs/benchmarks/memory/results.json and results.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "docs" / "benchmarks" / "memory"
USER, PASSWORD = "bench-rad", "Vq7#memory-bench-Lx2!"


# --- images -----------------------------------------------------------------------------------


def bomb_png(width: int = 6000, height: int = 6600) -> bytes:
    """A valid PNG of zeros declaring 16-bit RGBA: ~300 KB on disk, 317 MB decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    z = zlib.compressobj(9)
    row = b"\0" * (1 + width * 8)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def radiograph(size: tuple[int, int], noise: float = 40.0) -> bytes:
    """A real chest X-ray (the first PA film of the shared manifest) scaled to ``size``,
    16-bit gray, with a little noise so that it compresses like a film; a synthetic film when
    the shared data is absent."""
    manifest = SHARED / "chest_xray" / "manifest.csv"
    base = None
    if manifest.is_file():
        with manifest.open() as fh:
            for row in csv.DictReader(fh):
                path = manifest.parent / row["file"]
                if row.get("view") == "PA" and path.is_file():
                    base = Image.open(path).convert("L")
                    break
    if base is None:
        y, x = np.mgrid[0:256, 0:256]
        base = Image.fromarray((128 + 60 * np.sin(x / 20) * np.cos(y / 30)).astype(np.uint8))
    big = np.asarray(base.resize(size, Image.Resampling.BICUBIC), dtype=np.float32) * 257
    if noise:
        big += np.random.default_rng(0).normal(0, noise, big.shape).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(big, 0, 65535).astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def make_images(work: Path) -> dict[str, Path]:
    out = {
        "bomb": bomb_png(),
        "large": radiograph((6000, 6600), noise=0),
        "normal": radiograph((3000, 2500)),
        "small": radiograph((1024, 1024)),
    }
    paths = {}
    for name, data in out.items():
        paths[name] = work / f"{name}.png"
        paths[name].write_bytes(data)
    return paths


# --- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`medai serve` from a source tree, with its own MEDAI_HOME (SQLite) and one user."""

    def __init__(self, tree: Path, label: str, work: Path, guard_mb: float) -> None:
        self.label, self.guard_mb, self.guarded = label, guard_mb, False
        self.home = work / f"home-{label}"
        self.home.mkdir()
        self.env = dict(
            os.environ,
            PYTHONPATH=str(tree / "src"),
            MEDAI_HOME=str(self.home),
            MEDAI_JOB_THREADS="1",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
        )
        for var in ("MEDAI_DATABASE_URL", "MEDAI_BROKER_URL"):
            self.env.pop(var, None)
        self.cwd = tree
        self._add_user()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = work / f"serve-{label}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "medai.cli", "serve", "--port", str(self.port)],
            cwd=tree,
            env=self.env,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()
        r = httpx.post(
            f"{self.base}/api/v1/auth/login",
            timeout=30,
            json={"username": USER, "password": PASSWORD},
        )
        r.raise_for_status()
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        self._stop_watch = threading.Event()
        self.peak = 0.0
        threading.Thread(target=self._watch, daemon=True).start()

    def _cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "medai.cli", *args],
            cwd=self.cwd,
            env=self.env,
            input=stdin,
            text=True,
            capture_output=True,
            timeout=300,
        )

    def _add_user(self) -> None:
        """A radiologist: with a password at once (older trees), or by enrolment code."""
        made = self._cli("users", "add", USER, "--role", "radiologist", "--json")
        if made.returncode == 0 and "enrol_code" in made.stdout:
            code = json.loads(made.stdout)["enrol_code"]
            done = self._cli("users", "enrol", code, "--password-stdin", stdin=PASSWORD + "\n")
        else:
            done = self._cli(
                "users",
                "add",
                USER,
                "--role",
                "radiologist",
                "--password-stdin",
                stdin=PASSWORD + "\n",
            )
        if done.returncode != 0:
            raise RuntimeError(f"{self.label}: cannot add a user: {done.stdout}{done.stderr}")

    def _wait_ready(self, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.base}/api/v1/health/ready", timeout=30).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited: {self.log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        raise RuntimeError(f"{self.label} did not become ready")

    def rss_mb(self) -> float:
        try:
            p = psutil.Process(self.proc.pid)
            procs = [p, *p.children(recursive=True)]
            return sum(q.memory_info().rss for q in procs if q.is_running()) / 2**20
        except psutil.Error:
            return 0.0

    def _watch(self) -> None:
        """Sample RSS every 50 ms (the peak of the current phase) and enforce the guard."""
        while not self._stop_watch.wait(0.05):
            rss = self.rss_mb()
            self.peak = max(self.peak, rss)
            if rss > self.guard_mb and not self.guarded:
                self.guarded = True
                print(
                    f"[{self.label}] RSS {rss:.0f} MB passed the guard: stopping the server",
                    file=sys.stderr,
                )
                self.stop()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def settle(self, seconds: float = 4.0) -> float:
        """RSS once it has stopped moving (the lowest of the last samples)."""
        samples = []
        for _ in range(int(seconds / 0.25)):
            time.sleep(0.25)
            samples.append(self.rss_mb())
        return round(min(samples[-4:]), 1)


# --- measurements -------------------------------------------------------------------------------


def upload(server: Server, path: Path) -> dict:
    with path.open("rb") as fh:
        r = httpx.post(
            f"{server.base}/api/v1/studies",
            headers=server.headers,
            timeout=300,
            files={"file": (path.name, fh, "image/png")},
            data={"task": "cxr"},
        )
    body = r.json()
    if r.status_code != 201:
        return {
            "status_code": r.status_code,
            "code": body.get("code"),
            "detail": body.get("detail"),
        }
    sid = body["id"]
    deadline = time.time() + 600
    while time.time() < deadline and server.alive():
        s = httpx.get(
            f"{server.base}/api/v1/studies/{sid}", headers=server.headers, timeout=60
        ).json()
        if s["status"] not in ("received", "analysing"):
            return {
                "status_code": 201,
                "id": sid,
                "study_status": s["status"],
                "labels": [f["label"] for f in (s.get("ai_result") or {}).get("findings", [])],
                "heatmap_label": (s.get("ai_result") or {}).get("heatmap_label"),
            }
        time.sleep(0.5)
    return {"status_code": 201, "id": sid, "study_status": "timeout"}


def _fire(server: Server, n: int, requests: list[list[str]]) -> tuple[dict[int, int], float]:
    """``n`` clients, each sending its list of paths in turn; status counts and wall time."""
    codes: dict[int, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(n)

    def client(paths: list[str]) -> None:
        with httpx.Client(base_url=server.base, headers=server.headers, timeout=300) as c:
            start.wait()
            for path in paths:
                try:
                    code = c.get(path).status_code
                except httpx.HTTPError:
                    code = 0
                with lock:
                    codes[code] = codes.get(code, 0) + 1

    threads = [threading.Thread(target=client, args=(requests[i],)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes, round(time.perf_counter() - t0, 2)


def views(server: Server, sid: int, n: int, idle: float) -> dict:
    server.peak = server.rss_mb()
    codes, wall = _fire(server, n, [[f"/api/v1/studies/{sid}/image"]] * n)
    peak = server.peak
    after = server.settle() if server.alive() else None
    return {
        "concurrent": n,
        "codes": codes,
        "wall_s": wall,
        "peak_mb": round(peak, 1),
        "peak_over_idle_mb": round(peak - idle, 1),
        "after_mb": after,
        "after_over_idle_mb": round(after - idle, 1) if after else None,
        "guard_stopped": server.guarded,
    }


def heatmap_bursts(
    server: Server, study: dict, bursts: int, clients: int, per_client: int
) -> list[dict]:
    labels = [x for x in study["labels"] if x != study["heatmap_label"]] or study["labels"]
    out = []
    for b in range(bursts):
        if not server.alive():
            break
        plan = [
            [
                f"/api/v1/studies/{study['id']}/heatmap?label={labels[(c + i) % len(labels)]}"
                for i in range(per_client)
            ]
            for c in range(clients)
        ]
        server.peak = server.rss_mb()
        before = server.peak
        codes, wall = _fire(server, clients, plan)
        peak = server.peak
        after = server.settle()
        out.append(
            {
                "burst": b + 1,
                "start_mb": round(before, 1),
                "peak_mb": round(peak, 1),
                "after_mb": after,
                "codes": codes,
                "wall_s": wall,
            }
        )
        print(
            f"[{server.label}] heatmap burst {b + 1}: peak {peak:.0f} MB, after {after} MB, "
            f"{codes}, {wall} s",
            file=sys.stderr,
        )
    return out


def run_variant(label: str, tree: Path, images: dict[str, Path], args, work: Path) -> dict:
    """Views on one server; heatmap bursts on a fresh one (the views of the old code can leave
    gigabytes behind, or trip the guard)."""
    result: dict = {"label": label, "tree": str(tree), "guard_mb": args.guard_mb}
    if "views" in args.phases:
        result["uploads"], result["idle_mb"], result["views"] = {}, {}, {}
        for name in ("bomb", "large", "normal"):  # a fresh server per film: its own idle
            print(f"[{label}] views of {name}: starting medai serve from {tree}", file=sys.stderr)
            server = Server(tree, f"{label}-views-{name}", work, args.guard_mb)
            try:
                study = result["uploads"][name] = upload(server, images[name])
                print(
                    f"[{label}] upload of {name}: {study.get('study_status', study.get('code'))}",
                    file=sys.stderr,
                )
                if "id" not in study:
                    result["views"][name] = {"refused_at_upload": study}
                    continue
                idle = result["idle_mb"][name] = server.settle(6.0)
                rows = []
                for n in args.concurrency:
                    if not server.alive():
                        break
                    rows.append(views(server, study["id"], n, idle))
                    print(f"[{label}] {n} views of {name}: {rows[-1]}", file=sys.stderr)
                result["views"][name] = rows
            finally:
                server.stop()
    if "heatmaps" in args.phases:
        print(f"[{label}] heatmaps: starting medai serve from {tree}", file=sys.stderr)
        server = Server(tree, f"{label}-heatmaps", work, args.guard_mb)
        try:
            films = {name: upload(server, images[name]) for name in ("small", "normal")}
            result["heatmap_idle_mb"] = server.settle(6.0)
            result["heatmaps"] = {}
            for name, study in films.items():
                result["heatmaps"][name] = heatmap_bursts(
                    server, study, args.bursts, args.clients, args.per_client
                )
        finally:
            server.stop()
    return result


# --- report -------------------------------------------------------------------------------------


def _views_rows(r: dict) -> list[str]:
    rows = []
    for name, entries in r.get("views", {}).items():
        if isinstance(entries, dict):
            up = entries["refused_at_upload"]
            rows.append(
                f"| {r['label']} | {name} | – | upload refused: {up['status_code']} "
                f"`{up['code']}` | – | – | – |"
            )
            continue
        idle = r["idle_mb"].get(name)
        for e in entries:
            guard = (
                f" (passed the {r['guard_mb']:.0f} MB guard: stopped)" if e["guard_stopped"] else ""
            )
            after = e["after_over_idle_mb"]
            rows.append(
                f"| {r['label']} | {name} | {idle:.0f} | {e['concurrent']} concurrent "
                f"views{guard} | {e['peak_over_idle_mb']:+.0f} | "
                f"{'–' if after is None else f'{after:+.0f}'} | {e['codes']} |"
            )
    return rows


def _burst_rows(r: dict) -> list[str]:
    rows = []
    for name, bursts in (r.get("heatmaps") or {}).items():
        if not bursts:
            continue
        first = bursts[0]["peak_mb"]
        rows += [
            f"| {r['label']} | {name} | {b['burst']} | {b['start_mb']:.0f} | "
            f"{b['peak_mb']:.0f} | {(b['peak_mb'] / first - 1) * 100:+.1f} % | "
            f"{b['after_mb']:.0f} | {b['codes']} |"
            for b in bursts
        ]
    return rows or [f"| {r['label']} | – | – | – | – | – | – | – |"]


def render(results: dict) -> str:
    lines = [
        f"Before: `{results['baseline']}`; after: `{results['after_ref']}`. "
        f"{results['machine']}. Files: "
        + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in results["images"].items())
        + ".",
        "",
        "Image views (a fresh server per film; idle = RSS after its upload's analysis).",
        "",
        "| server | film | idle RSS MB | load | peak − idle MB | 3 s after − idle MB | statuses |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        lines += _views_rows(r)
    lines += [
        "",
        "Heatmap bursts (each: 160 Grad-CAM requests from 8 clients; RSS of a fresh "
        "server after the two uploads' analyses: "
        + ", ".join(f"{r['label']} {r.get('heatmap_idle_mb', '–')} MB" for r in results["runs"])
        + ").",
        "",
        "| server | film | burst | RSS at start MB | peak RSS MB | vs first burst's peak"
        " | settled RSS MB | statuses |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        lines += _burst_rows(r)
    return "\n".join(lines) + "\n"


def worktree(ref: str, work: Path, name: str) -> Path:
    tree = work / name
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(tree), ref],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return tree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--baseline",
        default=None,
        help="git ref of the 'before' code (none: measure this checkout only)",
    )
    ap.add_argument(
        "--after",
        default=None,
        help="git ref of the 'after' code (default: this checkout's working tree)",
    )
    ap.add_argument("--concurrency", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--bursts", type=int, default=4)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--per-client", type=int, default=20)
    ap.add_argument("--guard-mb", type=float, default=5000.0)
    ap.add_argument(
        "--phases", nargs="+", default=["views", "heatmaps"], choices=["views", "heatmaps"]
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medai-memory-bench-"))
    images = make_images(work)
    print(f"images: { {k: p.stat().st_size for k, p in images.items()} }", file=sys.stderr)
    trees = {}
    if args.baseline:
        trees["before"] = worktree(args.baseline, work, "before")
    trees["after"] = worktree(args.after, work, "after") if args.after else ROOT

    def short(ref: str) -> str:
        return subprocess.run(
            ["git", "rev-parse", "--short", ref], cwd=ROOT, text=True, capture_output=True
        ).stdout.strip()

    results = {
        "baseline": short(args.baseline) if args.baseline else None,
        "after_ref": short(args.after) if args.after else f"{short('HEAD')} + working tree",
        "machine": f"{psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GB, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}",
        "images": {k: p.stat().st_size for k, p in images.items()},
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "runs": [],
    }
    try:
        for label, tree in trees.items():
            results["runs"].append(run_variant(label, tree, images, args, work))
    finally:
        for tree in trees.values():
            if tree != ROOT:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(tree)],
                    cwd=ROOT,
                    capture_output=True,
                )
    args.out.mkdir(parents=True, exist_ok=True)
    results["args"]["out"] = (
        str(args.out.relative_to(ROOT)) if args.out.is_relative_to(ROOT) else str(args.out)
    )
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
