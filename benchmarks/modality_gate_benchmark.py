"""How often the learned out-of-distribution gate lets an image through, per model and image set.

    python benchmarks/modality_gate_benchmark.py --cxr ../shared/data/chest_xray/manifest.csv \
        --mri ../shared/data/brain_mri/manifest.csv \
        --pairs ../shared/data/captions/ieee8023_pairs/pairs.csv

For each bundled imaging model: acceptance on its own held-out test split (should be ~99 %),
on the other modality's images (should be ~0 %), and on the caption pairs' CT and X-ray images.
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
    return {"n": len(pixels), "accepted": float(np.mean(d <= predictor.gate.threshold)),
            "median_distance": float(np.median(d))}


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
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/imaging/gate.json"))
    args = ap.parse_args()
    data = {"cxr": args.cxr, "mri": args.mri}
    all_pixels = {t: readable(load_dataset(p, t))[0] for t, p in data.items()}
    result = {}
    for task in ("cxr", "mri"):
        predictor = registry.load(registry.resolve_model(None, task))
        ds = load_dataset(data[task], task)
        _, _, te = patient_split(ds, seed=13, groups=split_groups(ds))
        other = "mri" if task == "cxr" else "cxr"
        row = {"threshold": predictor.gate.threshold,
               "own_test_split": acceptance(predictor, readable(_subset(ds, te))[0]),
               f"all_{other}_images": acceptance(predictor, all_pixels[other])}
        if args.pairs:
            for modality in ("CT", "X-ray"):
                row[f"caption_pairs_{modality}"] = acceptance(
                    predictor, pair_pixels(args.pairs, modality))
        result[f"{task}-default"] = row
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
