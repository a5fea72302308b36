"""The bundled imaging models as shipped: the learned gate, and int8 vs fp32 ONNX Runtime.

    python benchmarks/bundled_imaging_benchmark.py --cxr ../shared/data/chest_xray/manifest.csv \
        --mri ../shared/data/brain_mri/manifest.csv \
        --pairs ../shared/data/captions/ieee8023_pairs/pairs.csv

For each bundled model, on the patient-level split it was trained with:
- gate: acceptance on its own held-out test split (should be ~99 %), on the other modality's
  images (should be ~0 %), and on the caption pairs' CT and X-ray images;
- runtime: held-out macro AUROC / accuracy and single-image p50 latency for PyTorch eager,
  ONNX Runtime fp32 and statically quantised int8 (calibrated on training images only).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from medai.core import registry
from medai.imaging.datasets import load_dataset, patient_split
from medai.imaging.io import ImageInputError, load_image
from medai.imaging.pipeline import _subset, readable, split_groups


def acceptance(predictor, pixels: list[np.ndarray]) -> dict:
    _, feats = predictor.proba_and_features(pixels)
    d = predictor.gate.distance(feats)
    return {"n": len(pixels), "accepted": predictor.gate.acceptance(feats),
            "median_distance": float(np.median(d))}


def runtime_rows(predictor, ds, tr, te) -> dict:
    """fp32 eager / ORT fp32 / ORT int8 on the test split; int8 calibrated on training images."""
    import copy
    import tempfile
    import time

    import torch

    from medai.imaging.evaluate import evaluate_arrays
    from medai.imaging.export import OnnxModel, export_onnx, quantize_int8
    from medai.imaging.models import to_tensor

    test_pixels, keep, _ = readable(_subset(ds, te))
    cols = [ds.labels.index(lab) for lab in predictor.labels]
    targets = ds.targets()[te][keep][:, cols]
    calib_pixels = readable(_subset(ds, tr))[0][:128]
    size = predictor.cfg.image_size
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(predictor.torch_model, size, Path(tmp) / "m.onnx")
        calib = torch.stack([to_tensor(p, size) for p in calib_pixels])
        int8 = quantize_int8(fp32, calib, Path(tmp) / "m.int8.onnx")
        for name, model in (("pytorch_eager_fp32", predictor.torch_model),
                            ("onnxruntime_fp32", OnnxModel(fp32)),
                            ("onnxruntime_int8", OnnxModel(int8))):
            p = copy.copy(predictor)
            p.model = model
            probs = p.predict_proba_pixels(test_pixels)
            m = evaluate_arrays(ds.task, predictor.labels, targets, probs, predictor.thresholds,
                                n_boot=0)
            x = torch.rand(1, 1, size, size)
            times = []
            with torch.no_grad():
                for i in range(40):
                    t0 = time.perf_counter()
                    model(x)
                    if i >= 5:
                        times.append(1000 * (time.perf_counter() - t0))
            rows[name] = {"macro_auroc": m["macro_auroc"], "accuracy": m["accuracy"],
                          "macro_f1": m["macro_f1"], "p50_ms": float(np.median(times))}
        rows["int8_file_mb"] = Path(int8).stat().st_size / 1e6
    return rows


def pair_pixels(pairs: Path, modality: str) -> list[np.ndarray]:
    out = []
    for row in csv.DictReader(pairs.open(encoding="utf-8")):
        if row["modality"] == modality:
            try:
                out.append(load_image(pairs.parent / row["file"]).pixels)
            except ImageInputError:
                pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cxr", type=Path, required=True)
    ap.add_argument("--mri", type=Path, required=True)
    ap.add_argument("--pairs", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/imaging/bundled.json"))
    args = ap.parse_args()
    data = {"cxr": args.cxr, "mri": args.mri}
    all_pixels = {t: readable(load_dataset(p, t))[0] for t, p in data.items()}
    result = {}
    for task in ("cxr", "mri"):
        predictor = registry.load(registry.resolve_model(None, task))
        ds = load_dataset(data[task], task)
        tr, _, te = patient_split(ds, seed=13, groups=split_groups(ds))
        other = "mri" if task == "cxr" else "cxr"
        row = {"threshold": predictor.gate.threshold,
               "own_test_split": acceptance(predictor, readable(_subset(ds, te))[0]),
               f"all_{other}_images": acceptance(predictor, all_pixels[other])}
        if args.pairs:
            for modality in ("CT", "X-ray"):
                row[f"caption_pairs_{modality}"] = acceptance(
                    predictor, pair_pixels(args.pairs, modality))
        row["runtime"] = runtime_rows(predictor, ds, tr, te)
        result[f"{task}-default"] = row
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
