"""A study is analysed when it is complete (issue 58): brain MRI series sent by a modality
(dcmtk's storescu) to `medai serve --dicom-port`, before and after the change, in one run.

    .venv/bin/python benchmarks/study_stable_benchmark.py \\
        --out docs/benchmarks/study_stable/results.json

Real processes, as a hospital runs them: ``medai serve --dicom-port P`` on the SQLite file of a
temporary MEDAI_HOME, the bundled models, the embedded analysis pool, every setting the
product's default (MEDAI_*, OMP_NUM_THREADS and PYTHONPATH cleared for the child;
MEDAI_DICOM_ALLOW names the sending modality, which a node otherwise refuses). *Before*: the
``--before`` commit (default ``BEFORE``, the last commit before issue 58) checked out in a
temporary git worktree and served from its ``src`` (PYTHONPATH) with the same interpreter;
*after*: this working tree. Started with ``dicom_e2e_benchmark.start_medai`` and stopped per
process group (``platform_benchmark.stop``).

Data: held-out slices of ``../shared/data/brain_mri`` (the *test* split of the split
mri-default was trained with, seed 13), written as one MR series per study with pydicom:
BodyPartExamined BRAIN (routing gives the mri task), axial ImageOrientationPatient,
ImagePositionPatient 5 mm apart, InstanceNumber, the same patient, accession and study on
every instance, 12 bits stored. The issue's scenario: slice 1 a No_Tumor slice, slices 2..n
glioma slices (reused in turn for 200). Built in a temporary folder, never in the repository.

Per tree, after a 3-slice warm-up study (models loaded, not counted), for each size and
arrival pattern, a fresh study: ``one`` sends the series in one association (a PACS forwarding
a study, most modalities), ``per-slice`` opens one association per slice, back to back (some
modalities send that way); ``pause`` (``--pause-s`` > 0, 20 slices) sends the first half, waits
``--pause-s`` (longer than the window) and sends the rest: a modality pausing longer than the
window, which re-opens the study. Measured per study from the node's own database:

- arrival gaps: between consecutive instances' filing times (``dicom_instances.created_at``),
  the quantity the stable window must exceed (p50/p95/max);
- the draft: when the AI report version was created (and the job's start and end), from the
  first and from the last slice filed; whether it came before the last slice; the decision,
  its probability and ``read.instances_read`` (before: which instance the study's file was);
- the analyses (imaging results) and AI drafts per study;
- serve's CPU seconds (process tree, psutil) and peak resident memory (sampled every 0.2 s)
  from the first slice sent to the draft, per slice; the machine's load (other people's jobs
  share the cores) beside it.

Writes ``--out`` (JSON) and prints it. Skips (exit 0, a message) without the shared data or
dcmtk. Keep it short: ~5 min on 2 cores with the default sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from dicom_e2e_benchmark import Cpu, _epoch, code_state, dist, send, start_medai  # noqa: E402
from platform_benchmark import Memory  # noqa: E402
from platform_benchmark import stop as stop_all  # noqa: E402
from serving_benchmark import worktree  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "brain_mri" / "manifest.csv"
BEFORE = "bb80d52"  # the last commit before issue 58: a study read from its first instance
AET = "MODALITY"  # the sending modality's AE title (MEDAI_DICOM_ALLOW)
AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
SLICE_MM = 5.0


# --- the series ---------------------------------------------------------------------------------


def held_out(data: Path, seed: int) -> tuple[list[Path], list[Path]]:
    """The No_Tumor and Glioma slices of the test split mri-default was trained beside."""
    from medai.imaging.datasets import load_dataset, patient_split
    from medai.imaging.pipeline import split_groups

    ds = load_dataset(data, "mri")
    _, _, test = patient_split(ds, seed=seed, groups=split_groups(ds))
    targets = np.nan_to_num(ds.targets())
    by_label: dict[str, list[Path]] = {}
    for i in sorted(int(k) for k in test):
        label = ds.labels[int(targets[i].argmax())]
        by_label.setdefault(label, []).append(Path(ds.records.path(i)))
    return sorted(by_label["No_Tumor"]), sorted(by_label["Glioma"])


def build_series(normal: Path, tumour: list[Path], n: int, out: Path, tag: str) -> list[Path]:
    """One MR brain series of ``n`` slices, its own study: slice 1 ``normal``, then ``tumour``
    slices in turn; the files in instance order."""
    from PIL import Image
    from pydicom.uid import generate_uid

    from helpers.dicom import make_dicom

    out.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    paths = []
    for i in range(n):
        png = normal if i == 0 else tumour[(i - 1) % len(tumour)]
        img = Image.open(png).convert("L")
        px = (np.asarray(img, dtype=np.uint32) * 4095 // 255).astype("<u2")
        paths.append(
            make_dicom(
                out / f"{tag}-{i + 1:03d}.dcm",
                "MR",
                body_part="BRAIN",
                view=None,
                study=study,
                series=series,
                accession=f"SS{tag}"[:16],
                name=f"BENCH^{tag.upper()}",
                patient_id=f"BENCH-{tag}",
                description="AX T1 POST GD",
                rows=img.height,
                cols=img.width,
                seed=i,
                PixelData=px.tobytes(),
                InstanceNumber=i + 1,
                SeriesNumber=3,
                ImageOrientationPatient=AXIAL,
                ImagePositionPatient=[-120.0, -120.0, SLICE_MM * i],
                SliceThickness=str(SLICE_MM),
                SpacingBetweenSlices=str(SLICE_MM),
                PixelSpacing=["0.9375", "0.9375"],
                StudyDescription="MR BRAIN WITH CONTRAST",
                PatientSex="F",
                PatientBirthDate="19700101",
            )
        )
    return paths


def study_uid(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


# --- the node -----------------------------------------------------------------------------------


def node_env(home: Path, tree: Path | None, stable_s: float | None) -> dict:
    """The product's defaults: MEDAI_* and thread variables cleared; ``tree``: serve that
    source tree (the before commit) instead of the installed one."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MEDAI_")
        and k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PYTHONPATH")
    }
    env.update(
        MEDAI_HOME=str(home),
        MEDAI_DATABASE_URL=f"sqlite:///{home / 'medai.db'}",
        MEDAI_DICOM_ALLOW=json.dumps([AET]),
    )
    if tree is not None:
        env["PYTHONPATH"] = str(tree / "src")
    if stable_s is not None:
        env["MEDAI_STUDY_STABLE_S"] = str(stable_s)
    return env


def open_payloads(home: Path):
    """A function opening this node's sealed JSON (its key is in its MEDAI_HOME)."""
    from medai.platform.records import crypto
    from medai.settings import get_settings

    for key in [k for k in os.environ if k.startswith("MEDAI_")]:
        del os.environ[key]
    os.environ["MEDAI_HOME"] = str(home)
    get_settings.cache_clear()
    crypto.cipher.cache_clear()
    from medai.platform.records.sealed import open_text

    def opened(raw):
        token = json.loads(raw) if isinstance(raw, str) and raw.startswith('"') else raw
        return json.loads(open_text(token)) if isinstance(token, str) else token

    return opened


class Db:
    """Read-only queries on the node's SQLite file while it runs."""

    def __init__(self, path: Path) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine(f"sqlite:///{path}")

    def rows(self, sql: str, **params) -> list:
        from sqlalchemy import text
        from sqlalchemy.exc import OperationalError

        for attempt in range(20):
            try:
                with self.engine.connect() as conn:
                    return conn.execute(text(sql), params).mappings().all()
            except OperationalError:  # the node holds a write lock for a moment
                if attempt == 19:
                    raise
                time.sleep(0.1)
        return []

    def columns(self, table: str) -> set[str]:
        return {r["name"] for r in self.rows(f"PRAGMA table_info({table})")}

    def close(self) -> None:
        self.engine.dispose()


def state(db: Db, uid: str) -> dict | None:
    rows = db.rows(
        "SELECT s.id, s.status, (SELECT COUNT(*) FROM dicom_instances i WHERE i.study_id = s.id) "
        "AS filed, j.status AS job FROM studies s LEFT JOIN jobs j ON j.study_id = s.id "
        "AND j.kind = 'analyse' WHERE s.study_uid = :uid",
        uid=uid,
    )
    return dict(rows[0]) if rows else None


def wait_settled(db: Db, uid: str, n: int, timeout: float) -> dict:
    """Until all ``n`` instances are filed and the study's analysis ran after the last one
    (its job done or failed, nothing queued or running)."""
    end = time.time() + timeout
    st = None
    while time.time() < end:
        st = state(db, uid)
        if (
            st
            and st["filed"] >= n
            and st["job"] in ("done", "failed")
            and st["status"] not in ("received", "analysing")
        ):
            return st
        time.sleep(0.2)
    raise TimeoutError(f"study not settled after {timeout} s: {st}")


def send_series(port: int, files: list[Path], pattern: str, pause_s: float) -> dict:
    """Send one study by ``pattern``; when each send began and ended, and failures."""
    started, failed = time.time(), 0
    if pattern == "one":
        failed += send(port, files, aet=AET).returncode != 0
    elif pattern == "per-slice":
        for path in files:
            failed += send(port, [path], aet=AET).returncode != 0
    elif pattern == "pause":
        half = len(files) // 2
        failed += send(port, files[:half], aet=AET).returncode != 0
        time.sleep(pause_s)
        failed += send(port, files[half:], aet=AET).returncode != 0
    else:
        raise ValueError(pattern)
    return {"started": started, "ended": time.time(), "failed": failed}


# --- one study ----------------------------------------------------------------------------------


def measure(db: Db, opened, uid: str) -> dict:
    """What the node recorded for the study: arrival gaps, analyses, drafts, the job."""
    (study,) = db.rows(
        "SELECT id, status, file_sha256 FROM studies WHERE study_uid = :uid", uid=uid
    )
    sid = study["id"]
    inst = db.rows(
        "SELECT sop_uid, instance_number, file_sha256, created_at FROM dicom_instances "
        "WHERE study_id = :sid ORDER BY id",
        sid=sid,
    )
    filed = [_epoch(r["created_at"]) for r in inst]
    number = {r["sop_uid"]: r["instance_number"] for r in inst}
    gaps = [b - a for a, b in zip(filed, filed[1:], strict=False)]
    job_cols = db.columns("jobs")
    extra = ", not_before" if "not_before" in job_cols else ""
    (job,) = db.rows(
        f"SELECT status, attempts, started_at, finished_at{extra} FROM jobs "
        "WHERE study_id = :sid AND kind = 'analyse'",
        sid=sid,
    )
    drafts = [
        _epoch(r["created_at"])
        for r in db.rows(
            "SELECT created_at FROM report_versions WHERE study_id = :sid AND source = 'ai' "
            "ORDER BY version",
            sid=sid,
        )
    ]
    analyses = []
    for r in db.rows(
        "SELECT created_at, model_name, model_version, model_hash, payload FROM ai_results "
        "WHERE study_id = :sid AND kind = 'imaging' ORDER BY id",
        sid=sid,
    ):
        payload = opened(r["payload"])
        read = payload.get("read")
        primary = payload.get("primary")
        prob = next(
            (
                f.get("probability")
                for f in payload.get("findings", [])
                if f.get("label") == primary
            ),
            None,
        )
        if read:
            read_numbers = sorted(number.get(s.split("#")[0]) or 0 for s in read["read_instances"])
            keys = sorted(number.get(s.split("#")[0]) or 0 for s in read["key_instances"])
            instances_read = read["instances_read"]
        else:  # the code before series reading: the study's file, the first instance filed
            read_numbers = [
                r2["instance_number"] for r2 in inst if r2["file_sha256"] == study["file_sha256"]
            ][:1]
            keys, instances_read = [], 1
        analyses.append(
            {
                "at": _epoch(r["created_at"]),
                "primary": primary,
                "probability": round(prob, 3) if prob is not None else None,
                "state": (payload.get("decision") or {}).get("state"),
                "refused": payload.get("refused"),
                "instances_in_series": read["instances_in_series"] if read else None,
                "instances_read": instances_read,
                "read_instance_numbers": _ranges(read_numbers),
                "key_instance_numbers": keys,
                "rule": read.get("rule") if read else None,
                "sampled": read.get("sampled") if read else None,
                "model": f"{r['model_name']} {r['model_version']} {r['model_hash'][:19]}",
            }
        )
    first, last = filed[0], filed[-1]

    def after(t, ref):
        return round(t - ref, 2) if t is not None and ref is not None else None

    last_analysis = analyses[-1] if analyses else {}
    return {
        "study_status": study["status"],
        "instances_filed": len(inst),
        "filing_span_s": round(last - first, 2),
        "gaps_ms": dist([g * 1000 for g in gaps], 1),
        "analyses": len(analyses),
        "ai_drafts": len(drafts),
        "decision": last_analysis.get("primary"),
        "probability": last_analysis.get("probability"),
        "instances_read": last_analysis.get("instances_read"),
        "key_instance_numbers": last_analysis.get("key_instance_numbers"),
        "first_draft_after_first_slice_s": after(drafts[0] if drafts else None, first),
        "first_draft_after_last_slice_s": after(drafts[0] if drafts else None, last),
        "first_draft_before_last_slice": bool(drafts and drafts[0] < last),
        "final_draft_after_last_slice_s": after(drafts[-1] if drafts else None, last),
        "job": {
            "status": job["status"],
            "attempts": job["attempts"],
            "not_before_after_last_slice_s": after(_epoch(job.get("not_before")), last),
            "started_after_last_slice_s": after(_epoch(job["started_at"]), last),
            "analysis_s": after(_epoch(job["finished_at"]), _epoch(job["started_at"])),
            "finished_after_last_slice_s": after(_epoch(job["finished_at"]), last),
        },
        "each_analysis": [
            {
                **{k: v for k, v in a.items() if k != "at"},
                "after_first_slice_s": after(a["at"], first),
                "after_last_slice_s": after(a["at"], last),
            }
            for a in analyses
        ],
        "_first": first,
    }


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3,5" (the instance numbers read, compactly)."""
    out, start, prev = [], None, None
    for k in sorted(set(numbers)):
        if start is None:
            start = prev = k
        elif k == prev + 1:
            prev = k
        else:
            out.append(f"{start}-{prev}" if prev != start else str(start))
            start = prev = k
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else str(start))
    return ",".join(out)


def run_study(port, proc, db, opened, files, pattern, args, warm=False) -> dict:
    uid = study_uid(files[0])
    mem = Memory([proc])
    rss_start = mem.now()
    cpu = Cpu({"serve": [proc.pid]})
    load = os.getloadavg()[0]
    sent = send_series(port, files, pattern, args.pause_s)
    wait_settled(db, uid, len(files), args.timeout)
    machine = cpu.stop()
    peak = mem.stop()
    if warm:
        return {}
    m = measure(db, opened, uid)
    serve_cpu = machine["processes_s"]["serve"]
    m.pop("_first")
    return {
        "slices": len(files),
        "pattern": pattern,
        "send_s": round(sent["ended"] - sent["started"], 2),
        "send_failures": sent["failed"],
        **m,
        "serve": {
            "cpu_s": serve_cpu,
            "cpu_ms_per_slice": round(1000 * serve_cpu / len(files), 1),
            "rss_start_mib": round(rss_start, 1),
            "rss_peak_mib": peak,
            "rss_growth_mib": round(peak - rss_start, 1),
        },
        "machine": {
            "wall_s": machine["wall_s"],
            "busy_share": machine["machine_busy_share"],
            "loadavg_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
            "others_s": machine["others_s"],
            "others_top_s": machine["others_top_s"],
        },
    }


def run_tree(name: str, tree: Path | None, sets: dict, warm: list[Path], work: Path, args):
    home = work / f"{name}-home"
    home.mkdir()
    env = node_env(home, tree, args.stable_s if name == "after" else None)
    procs, port = start_medai(name, env, work)
    db = Db(home / "medai.db")
    results = []
    try:
        opened = open_payloads(home)
        print(f"[{name}] warm-up: {len(warm)} slices", file=sys.stderr)
        run_study(port, procs[0], db, opened, warm, "one", args, warm=True)
        for (size, pattern), files in sets.items():
            print(f"[{name}] {size} slices, {pattern}", file=sys.stderr)
            r = run_study(port, procs[0], db, opened, files, pattern, args)
            print(
                f"[{name}] {size} {pattern}: {r['decision']} read {r['instances_read']}, "
                f"draft {r['first_draft_after_first_slice_s']} s after the first slice, "
                f"{r['final_draft_after_last_slice_s']} s after the last; gaps {r['gaps_ms']}",
                file=sys.stderr,
            )
            results.append({"code": name, **r})
    finally:
        db.close()
        stop_all(procs)
        shutil.rmtree(home, ignore_errors=True)
    return results


def machine_info() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": False,
        "python": sys.version.split()[0],
        "os": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--sizes", default="20,200", help="slices per series, comma-separated")
    ap.add_argument("--patterns", default="one,per-slice")
    ap.add_argument(
        "--pause-s",
        type=float,
        default=8.0,
        help="the pause scenario (20 slices, this long between halves; 0: not run)",
    )
    ap.add_argument("--before", default=BEFORE, help="the commit before the change ('': none)")
    ap.add_argument(
        "--stable-s",
        type=float,
        default=None,
        help="MEDAI_STUDY_STABLE_S for after (default: the product's)",
    )
    ap.add_argument("--seed", type=int, default=13, help="mri-default's split seed")
    ap.add_argument("--timeout", type=float, default=240, help="per study")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from helpers.dicom import STORESCU

    if not args.data.is_file():
        print(f"skipped: {args.data} is absent (the shared brain MRI data)")
        return
    if STORESCU is None:
        print("skipped: dcmtk's storescu is not installed (apt-get install dcmtk)")
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # cleanup runs in finally
    from medai.settings import ServingSettings

    window = (
        args.stable_s
        if args.stable_s is not None
        else ServingSettings.model_fields["study_stable_s"].default
    )
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="medai-study-stable-"))
    before_tree = None
    try:
        normal, gliomas = held_out(args.data, args.seed)
        sizes = [int(s) for s in args.sizes.split(",") if s]
        patterns = [p for p in args.patterns.split(",") if p]
        trees = ([("before", args.before)] if args.before else []) + [("after", None)]
        sets = {}  # the same files go to both nodes (each its own database)
        for size in sizes:
            for pattern in patterns:
                tag = f"{size}{pattern[0]}"
                sets[(size, pattern)] = build_series(
                    normal[0], gliomas, size, work / "in" / tag, tag
                )
        if args.pause_s > 0:
            sets[(20, "pause")] = build_series(normal[0], gliomas, 20, work / "in" / "20x", "20x")
        warm = build_series(normal[1], gliomas[::-1], 3, work / "in" / "w", "w")
        report = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "command": shlex.join(["python", *sys.argv]),
            "machine": machine_info(),
            "code": {"after": working_tree(), "before": args.before or None},
            "window_s": window,
            "window_source": "MEDAI_STUDY_STABLE_S" if args.stable_s is not None else "default",
            "pause_s": args.pause_s,
            "data": {
                "source": str(args.data),
                "split": f"test split of seed {args.seed} (held out from mri-default's training)",
                "slice_1": normal[0].name,
                "slices_2_n": f"{len(gliomas)} held-out Glioma slices in turn, from {gliomas[0].name}",
                "bytes_per_slice": next(iter(sets.values()))[0].stat().st_size,
            },
            "runs": [],
        }
        for name, ref in trees:
            tree = None
            if name == "before":
                before_tree = worktree(ref, work)
                report["code"]["before"] = subprocess.run(
                    ["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True
                ).stdout.strip()
                tree = before_tree
            report["runs"] += run_tree(name, tree, sets, warm, work, args)
            save(report, args.out)
        report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        report["wall_s"] = round(time.time() - started, 1)
        save(report, args.out)
    finally:
        if before_tree is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(before_tree)],
                cwd=ROOT,
                check=False,
                capture_output=True,
            )
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))


def working_tree() -> dict:
    """The commit under the working tree and how its src/ differed when the run began."""
    import hashlib

    state = code_state()
    diff = subprocess.run(
        ["git", "diff", "HEAD", "--", "src"], cwd=ROOT, capture_output=True
    ).stdout
    return {
        "commit": state["commit"],
        "src_files_changed_or_new": len(state["src_changed"]),
        "src_diff_sha256": hashlib.sha256(diff).hexdigest()[:16],
    }


def save(report: dict, out: Path | None) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
