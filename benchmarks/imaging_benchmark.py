"""Imaging benchmark: quality and speed per backbone, in one run, on one patient-level split.

    python benchmarks/imaging_benchmark.py --task cxr --data ../shared/data/chest_xray/manifest.csv
    python benchmarks/imaging_benchmark.py --task mri --data ../shared/data/brain_mri/manifest.csv

Compares on the split ``medai imaging train`` uses (patients, or near-identical-thumbnail groups
for MRI, never straddle it): the simple baseline (frozen ImageNet EfficientNet-Lite0 features +
logistic regression), DenseNet121 from scratch, and fine-tuned EfficientNet-Lite0. Reports macro
AUROC, accuracy and macro-F1 over the exclusive classes (overall and per source), single-image
latency p50 (eager PyTorch vs ONNX Runtime) and batch images/s.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medai.core.metrics import latency_summary
from medai.core.model_dir import ModelCard
from medai.imaging.datasets import ImageDataset, load_dataset, patient_split
from medai.imaging.evaluate import choose_thresholds, evaluate_arrays, exclusive_classes
from medai.imaging.export import OnnxModel, export_onnx
from medai.imaging.io import load_image
from medai.imaging.networks import ImagingNet
from medai.imaging.pipeline import _subset, split_groups
from medai.imaging.predict import ImagingPredictor
from medai.imaging.train import ImagingTrainConfig, train_model


def frozen_features(paths, size=224) -> np.ndarray:
    from medai.imaging.networks import head_features

    return head_features(
        ImagingNet("efficientnet-lite0", 1).eval(), [load_image(p).pixels for p in paths], size
    )


def latency(model, size: int, n: int = 50) -> dict:
    x = torch.rand(1, 1, size, size)
    with torch.no_grad():
        for _ in range(3):
            model(x)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
        xb = torch.rand(32, 1, size, size)
        t0 = time.perf_counter()
        model(xb)
        batch = 32 / (time.perf_counter() - t0)
    return {**latency_summary(times), "batch_images_per_second": batch}


def summarise(metrics: dict) -> dict:
    keep = ("n", "macro_auroc", "accuracy", "macro_f1")
    out = {k: metrics.get(k) for k in keep}
    out["per_label_auroc"] = {k: v["auroc"] for k, v in metrics["per_label"].items()}
    out["per_source"] = metrics.get("per_source")
    return out


def run(args) -> dict:
    ds = load_dataset(args.data, args.task)
    tr, va, te = patient_split(ds, groups=split_groups(ds))
    train, val, test = _subset(ds, tr), _subset(ds, va), _subset(ds, te)
    labels = [lab for lab in exclusive_classes(args.task) if lab in train.annotated_labels()]
    cols = [ds.labels.index(lab) for lab in labels]

    def keep(d):
        return ImageDataset(
            d.task,
            [r for r in d.records if np.nansum(r.targets[cols] == 1) == 1],
        )

    train, val, test = keep(train), keep(val), keep(test)
    results = {
        "task": args.task,
        "labels": labels,
        "split": {
            "train": len(train.records),
            "validation": len(val.records),
            "test": len(test.records),
        },
        "models": {},
    }
    t_val = val.targets()[:, cols]
    t_test = test.targets()[:, cols]
    sources = [r.source for r in test.records]

    # 1. baseline: frozen ImageNet features + logistic regression
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    f_tr, f_va, f_te = (frozen_features([r.path for r in d.records]) for d in (train, val, test))
    clf = LogisticRegression(C=0.5, max_iter=3000, class_weight="balanced")
    clf.fit(f_tr, train.targets()[:, cols].argmax(1))
    p_val, p_te = clf.predict_proba(f_va), clf.predict_proba(f_te)
    thr = choose_thresholds(t_val, p_val, labels)
    results["models"]["baseline: frozen EfficientNet-Lite0 + LR"] = {
        **summarise(evaluate_arrays(args.task, labels, t_test, p_te, thr, sources)),
        "fit_seconds": time.perf_counter() - t0,
    }
    print(json.dumps(results["models"], indent=1), flush=True)

    # 2./3. trained networks
    for backbone, lr, epochs in (
        ("densenet121", 1e-3, args.epochs),
        ("efficientnet-lite0", 3e-4, args.epochs),
    ):
        cfg = ImagingTrainConfig(
            task=args.task,
            backbone=backbone,
            labels=labels,
            epochs=epochs,
            batch_size=16,
            learning_rate=lr,
            patience=3,
        )
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as work:
            model, history = train_model(cfg, train, val, Path(work))
        fit_s = time.perf_counter() - t0
        card = ModelCard(task=args.task, model_type=backbone, labels=labels)
        predictor = ImagingPredictor(model, cfg, card)
        pix = lambda d: [load_image(r.path).pixels for r in d.records]  # noqa: E731
        p_val = predictor.predict_proba_pixels(pix(val))
        predictor.thresholds = choose_thresholds(t_val, p_val, labels)
        p_te = predictor.predict_proba_pixels(pix(test))
        row = {
            **summarise(
                evaluate_arrays(args.task, labels, t_test, p_te, predictor.thresholds, sources)
            ),
            "fit_seconds": fit_s,
            "epochs_run": len(history),
            "latency_eager": latency(model, cfg.image_size),
        }
        with tempfile.TemporaryDirectory() as work:
            onnx = OnnxModel(export_onnx(model, cfg.image_size, Path(work) / "m.onnx"))
            row["latency_onnxruntime"] = latency(onnx, cfg.image_size)
        results["models"][
            f"{backbone} ({'from scratch' if backbone == 'densenet121' else 'ImageNet, fine-tuned'})"
        ] = row
        print(json.dumps(row, indent=1), flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", required=True, choices=["cxr", "mri"])
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", default="docs/benchmarks/imaging")
    args = ap.parse_args()
    if not Path(args.data).exists():
        raise SystemExit(f"skip: {args.data} not found")
    torch.manual_seed(0)
    results = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.task}_results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
