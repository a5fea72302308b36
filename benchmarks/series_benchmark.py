"""Series-level reading of brain MRI (issue 58): order invariance, cost per slice, the rule.

    python benchmarks/series_benchmark.py --data ../shared/data/brain_mri/manifest.csv \
        --out docs/benchmarks/series

With the bundled ``mri-default`` (its content hash is recorded), in one run:

(a) **order invariance** — held-out series built from the *test* split of the split the model
    was trained with (seed 13; slices it never trained on and that chose nothing), written as
    real MR DICOM files (16-bit, ImagePositionPatient/ImageOrientationPatient, instance
    numbers); each series arrives in 50 random orders. *Before*: the study decided from the
    first instance to arrive (``ImagingPredictor.predict`` on it, what the platform did);
    *after*: ``imaging.series.read_series`` on the headers (``slice_refs``) and a loader
    decoding each slice from its bytes. Counted: arrivals whose decision differs from the one
    the series gets in anatomical order, and decisions that are right;
(b) **cost per slice** — 20- and 200-slice series (256 × 256 DICOM) read from disk, each in a
    process of its own (a fresh peak RSS): CPU time (all threads) and wall time per slice read,
    peak traced Python/NumPy memory (``tracemalloc``) and the peak growth of the resident set
    over the process after the model was loaded and warmed (sampled every 2 ms). Compared in
    the same run: the first instance alone (before), ``read_series`` (every slice; and capped at
    64), and decoding every slice first and batching them all (what ``read_series`` avoids);
(c) **the rule** — each candidate rule's accuracy and macro-F1 on the validation series that
    chose it (``imaging.series_fit``: what ``medai imaging fit-series-rule`` records in the
    model's operating points), and the same construction on held-out test series.

Writes ``series.json`` under ``--out`` and prints it; the Markdown summary is
``docs/benchmarks/series.md``. Skips cleanly (exit 0, a message) when the data is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "src/medai/assets/models/mri-default"
SERIES_UID = "1.2.826.0.1.3680043.8.498.5800"


def mr_file(pixels: np.ndarray, index: int, series: str, side: int | None = None) -> bytes:
    """One MR slice as a DICOM file: 16-bit MONOCHROME2, axial, 5 mm apart."""
    import io

    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    gray = np.clip(pixels * 4095.0, 0, 4095)
    if side is not None:
        gray = np.asarray(Image.fromarray(gray.astype(np.float32), mode="F").resize((side, side)))
    sop = f"{series}.{index + 1}"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID = sop, ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = series + ".0", series
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber, ds.BodyPartExamined = (
        "MR",
        1,
        index + 1,
        "BRAIN",
    )
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.ImagePositionPatient = [-120.0, -120.0, 5.0 * index]
    ds.Rows, ds.Columns = gray.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.rint(gray).astype("<u2").tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_split(predictor, data: Path, seed: int):
    """Pixels, true class indices and paths of the test split's slices."""
    from medai.imaging.datasets import load_dataset, patient_split
    from medai.imaging.pipeline import _subset, readable, split_groups

    ds = load_dataset(data, predictor.cfg.task)
    _, _, te = patient_split(ds, seed=seed, groups=split_groups(ds))
    sub = _subset(ds, te)
    pixels, keep, errors = readable(sub)
    if errors:
        raise SystemExit(f"unreadable test images: {errors}")
    cols = [ds.labels.index(lab) for lab in predictor.labels]
    y = np.nan_to_num(sub.targets()[keep][:, cols]).argmax(axis=1)
    return pixels, y


def held_out_series(y: np.ndarray, labels: list[str], n: int = 20, seed: int = 7) -> list[dict]:
    """The order-invariance series (test split): the issue's (slice 1 normal, 2–20 a tumour)
    for each tumour class, one class throughout for each class, and a lesion on five
    neighbouring slices amid normal ones for each tumour class."""
    rng = np.random.default_rng(seed)
    z = labels.index("No_Tumor")
    pools = {c: np.flatnonzero(y == c) for c in range(len(labels))}

    def draw(c: int, count: int) -> list[int]:
        out: list[int] = []
        while len(out) < count:
            out += rng.permutation(pools[c]).tolist()
        return out[:count]

    out = []
    for c in range(len(labels)):
        if c == z:
            continue
        out.append(
            {
                "name": f"issue: slice 1 normal, 2-{n} {labels[c]}",
                "truth": c,
                "slices": draw(z, 1) + draw(c, n - 1),
            }
        )
    for c in range(len(labels)):
        out.append({"name": f"{labels[c]} throughout", "truth": c, "slices": draw(c, n)})
    for c in range(len(labels)):
        if c == z:
            continue
        slices = draw(z, n)
        slices[8:13] = draw(c, 5)
        out.append(
            {"name": f"{labels[c]} on slices 9-13, normal elsewhere", "truth": c, "slices": slices}
        )
    return out


def order_invariance(predictor, pixels, y, permutations: int, seed: int) -> dict:
    from medai.imaging import series as S
    from medai.imaging import slices as SL
    from medai.imaging.io import load_image

    labels = list(predictor.labels)
    rng = np.random.default_rng(seed)
    rows = []
    totals = {
        "before_changed": 0,
        "after_changed": 0,
        "before_right": 0,
        "after_right": 0,
        "arrivals": 0,
    }
    started = time.perf_counter()
    for k, spec in enumerate(held_out_series(y, labels)):
        uid = f"{SERIES_UID}.{k + 1}"
        blobs = [mr_file(pixels[i], j, uid) for j, i in enumerate(spec["slices"])]
        refs = [SL.slice_refs(b)[0] for b in blobs]
        by_uid = {r.sop_uid: b for r, b in zip(refs, blobs, strict=True)}

        def load(ref, by_uid=by_uid):
            return load_image(by_uid[ref.sop_uid], frame=ref.frame)

        def first_decision(blob: bytes) -> str:
            d = predictor.predict(blob).decision
            return d.primary if d.state != "indeterminate" else "indeterminate"

        def series_decision(arrival) -> tuple[str, list[str]]:
            read = S.read_series(predictor, arrival, load)
            d = read.decision
            return (
                d.primary if d.state != "indeterminate" else "indeterminate",
                read.read.key_instances,
            )

        canonical_before = first_decision(blobs[0])
        canonical_after, canonical_key = series_decision(refs)
        before_first = {i: first_decision(blobs[i]) for i in range(len(blobs))}  # per slice
        row = {
            "series": spec["name"],
            "truth": labels[spec["truth"]],
            "slices": len(blobs),
            "anatomical_order": {"before": canonical_before, "after": canonical_after},
            "key_slices_after": len(canonical_key),
            "before_changed": 0,
            "after_changed": 0,
            "after_key_changed": 0,
            "before_right": 0,
            "after_right": 0,
            "before_decisions": {},
        }
        for _ in range(permutations):
            perm = rng.permutation(len(blobs)).tolist()
            before = before_first[perm[0]]
            after, key = series_decision([refs[i] for i in perm])
            row["before_changed"] += before != canonical_before
            row["after_changed"] += after != canonical_after
            row["after_key_changed"] += key != canonical_key
            row["before_right"] += before == labels[spec["truth"]]
            row["after_right"] += after == labels[spec["truth"]]
            row["before_decisions"][before] = row["before_decisions"].get(before, 0) + 1
        for name in ("before_changed", "after_changed", "before_right", "after_right"):
            totals[name] += row[name]
        totals["arrivals"] += permutations
        rows.append(row)
        print(
            f"  {spec['name']}: before changed {row['before_changed']}/{permutations}, "
            f"after changed {row['after_changed']}",
            file=sys.stderr,
        )
    return {
        "permutations_per_series": permutations,
        "series": rows,
        "totals": totals,
        "seconds": round(time.perf_counter() - started, 1),
    }


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(mode: str, folder: Path) -> dict:
    """One measurement in this process: ``first`` (the first instance alone), ``series``,
    ``series_cap64`` or ``all_decoded`` over the DICOM files in ``folder``."""
    import tracemalloc

    import torch

    from medai.core import model_dir
    from medai.imaging import series as S
    from medai.imaging import slices as SL
    from medai.imaging.io import load_image

    predictor = model_dir.load(MODEL)
    paths = sorted(folder.glob("*.dcm"))
    predictor.predict(paths[0].read_bytes())  # warm-up (untimed): first-call allocations
    S.read_series(
        predictor,
        SL.slice_refs(paths[0].read_bytes()),
        lambda ref: load_image(paths[0].read_bytes()),
    )
    by_uid = {}
    peak, stop = [0], threading.Event()
    base = rss_bytes()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    tracemalloc.start()
    thread.start()
    wall, cpu = time.perf_counter(), time.process_time()
    if mode == "first":
        result = predictor.predict(paths[0].read_bytes())
        read = 1
    elif mode == "all_decoded":
        images = [load_image(p.read_bytes()).pixels for p in paths]
        predictor.proba_and_features(images)  # every slice held, batched as usual (32)
        read = len(images)
    else:
        refs = []
        for p in paths:  # headers: the bytes are read again when the slice is decoded
            for ref in SL.slice_refs(p.read_bytes()):
                refs.append(ref)
                by_uid[ref.sop_uid] = p
        cap = 64 if mode == "series_cap64" else SL.DEFAULT_CAP
        out = S.read_series(
            predictor, refs, lambda ref: load_image(by_uid[ref.sop_uid].read_bytes()), cap=cap
        )
        result = S.series_result(predictor, out)
        read = result.read.instances_read
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    traced = tracemalloc.get_traced_memory()[1]
    stop.set()
    thread.join()
    tracemalloc.stop()
    return {
        "mode": mode,
        "slices_in_series": len(paths),
        "slices_read": read,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "wall_ms_per_slice": round(1000 * wall / read, 1),
        "cpu_ms_per_slice": round(1000 * cpu / read, 1),
        "tracemalloc_peak_mib": round(traced / 2**20, 1),
        "rss_peak_growth_mib": round(max(peak[0] - base, 0) / 2**20, 1),
        "runtime": predictor.runtime,
        "torch_threads": torch.get_num_threads(),
    }


def cost(pixels, repeats: int) -> dict:
    """Each mode ``repeats`` times, the modes' order rotated between rounds (the machine is
    shared: a slow spell then hits every mode alike); the median run of each is reported."""
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (20, 200):
            folder = Path(tmp) / f"s{n}"
            folder.mkdir()
            for j in range(n):
                (folder / f"{j:04d}.dcm").write_bytes(
                    mr_file(pixels[j % len(pixels)], j, f"{SERIES_UID}.9{n}", side=256)
                )
            modes = ["first", "series", "all_decoded"] + (["series_cap64"] if n == 200 else [])
            for r in range(repeats):
                for mode in modes[r % len(modes) :] + modes[: r % len(modes)]:
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", mode, str(folder)],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    runs.append({"round": r, **json.loads(out.stdout.strip().splitlines()[-1])})
                    print(f"  {n} slices, {mode}: {runs[-1]}", file=sys.stderr)
    median = {}
    for key in sorted({(x["slices_in_series"], x["mode"]) for x in runs}):
        same = [x for x in runs if (x["slices_in_series"], x["mode"]) == key]
        median[f"{key[0]} slices, {key[1]}"] = {
            name: float(np.median([x[name] for x in same]))
            for name in (
                "slices_read",
                "wall_s",
                "cpu_s",
                "wall_ms_per_slice",
                "cpu_ms_per_slice",
                "tracemalloc_peak_mib",
                "rss_peak_growth_mib",
            )
        }
    return {"repeats": repeats, "median": median, "runs": runs}


def rules(predictor, data: Path, seed: int) -> dict:
    from medai.imaging.labels import space
    from medai.imaging.series_fit import (
        build_series,
        evaluate_rules,
        fit_series_rule,
        split_probabilities,
    )

    fit = fit_series_rule(MODEL, data, seed, write=False)
    task, labels = space(predictor.cfg.task), list(predictor.labels)
    probs, y = split_probabilities(predictor, data, seed, "test")
    series = build_series(y, labels, task.normal, seed=1)
    test = evaluate_rules(probs, series, task, labels, predictor.policy)
    return {
        "chosen": fit["tag"],
        "recorded": predictor.series_rule,
        "chosen_on": fit["chosen_on"],
        "validation": fit["full_table"],
        "test": test,
        "test_series": {
            k: sum(s["kind"] == k for s in series)
            for k in ("one_class", "lesion_in_normal", "tumour_with_normal", "stray_in_normal")
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/brain_mri/manifest.csv")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=13, help="the model's split seed")
    ap.add_argument("--permutations", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each cost measurement")
    ap.add_argument("--sections", default="rules,order,cost")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return
    if not args.data.is_file():
        print(f"skipped: {args.data} is absent (the shared brain MRI data)")
        return
    from medai.core import model_dir
    from medai.core.model_dir import read_card

    predictor = model_dir.load(MODEL)
    result = {
        "model": "mri-default",
        "content_hash": read_card(MODEL).content_hash,
        "runtime": predictor.runtime,
        "data": str(args.data),
        "seed": args.seed,
        "cpu_count": os.cpu_count(),
    }
    sections = args.sections.split(",")
    started = time.perf_counter()
    if "rules" in sections:
        print("(c) rules", file=sys.stderr)
        result["rules"] = rules(predictor, args.data, args.seed)
    pixels, y = test_split(predictor, args.data, args.seed)
    if "order" in sections:
        print("(a) order invariance", file=sys.stderr)
        result["order_invariance"] = order_invariance(predictor, pixels, y, args.permutations, 0)
    if "cost" in sections:
        print("(b) cost per slice", file=sys.stderr)
        result["cost"] = cost(pixels, args.repeats)
    result["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=2, ensure_ascii=False, default=float)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "series.json").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
