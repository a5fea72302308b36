"""Imaging from little data: what, on validation, beats the bundled chest X-ray model?

    python benchmarks/imaging_little_data.py --cxr ../shared/data/chest_xray/manifest.csv \
        --members DIR_SEED14 DIR_SEED15 --strong DIR_STRONG \
        --pairs ../shared/data/captions/ieee8023_pairs/pairs.csv

(``make benchmark-imaging-little-data`` trains the members into build/imaging-little-data first.)
On the patient split the bundled model was trained with (seed 13), every candidate below is
scored on validation and test, overall and per population (paediatric Kermany / adult), with
bootstrap CIs, and beside the bundled model with a paired bootstrap CI of the macro-AUROC
difference:

- seed ensemble: the bundled model and the ``--members`` (same recipe and split, other seeds),
  probabilities averaged; each member alone too;
- longer schedule with stronger augmentation (``--strong``: ``--epochs 24 --augment strong``);
- backbone ensemble: the fine-tuned model averaged with frozen ImageNet features + logistic
  regression (the only other pretrained image backbone here is the same EfficientNet-Lite0);
- test-time augmentation: the image and its mirror; and the mirror plus a 90 % centre crop;
- semi-supervised: frozen features + logistic regression self-trained (scikit-learn's
  ``SelfTrainingClassifier``) on the unlabelled chest X-rays of the caption pairs that are not
  in the labelled manifest and share no publication with its validation or test images.

A candidate replaces the bundled model only if, on validation, the paired CI of its macro-AUROC
difference is above 0 and neither population's macro-AUROC drops. Test is reported beside it
and never chooses. Writes docs/benchmarks/imaging/little_data.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from bundled_imaging_benchmark import (
    auroc_ci,
    fit_probe,
    frozen_features,
    macro_auroc,
    paired_auroc_ci,
    probe_proba,
    split_parts,
)
from medai.core import model_dir
from medai.imaging.datasets import load_dataset, patient_split
from medai.imaging.evaluate import hierarchical_scores
from medai.imaging.io import ImageInputError, load_image
from medai.imaging.pipeline import split_groups

BUNDLED = "bundled cxr-default (seed 13)"


def centre_crop(p: np.ndarray, frac: float = 0.9) -> np.ndarray:
    h, w = p.shape[:2]
    dh, dw = round(h * (1 - frac) / 2), round(w * (1 - frac) / 2)
    return np.ascontiguousarray(p[dh : h - dh, dw : w - dw])


def unlabelled_pool(pairs: Path, manifest: Path, held_dois: set[str]) -> tuple[list, dict]:
    """Chest X-rays of the caption pairs not in the labelled manifest (by the original file's
    SHA-1) and from no publication that has a validation or test image."""
    labelled = {r["sha1_original"] for r in csv.DictReader(manifest.open(encoding="utf-8"))}
    pixels, report = (
        [],
        {"x_ray_pairs": 0, "in_manifest": 0, "shares_held_out_publication": 0, "unreadable": 0},
    )
    for row in csv.DictReader(pairs.open(encoding="utf-8")):
        if row["modality"] != "X-ray":
            continue
        report["x_ray_pairs"] += 1
        if row["sha1_original"] in labelled:
            report["in_manifest"] += 1
        elif (row.get("doi") or "").lower() in held_dois:
            report["shares_held_out_publication"] += 1
        else:
            try:
                pixels.append(load_image(pairs.parent / row["file"]).pixels)
            except ImageInputError:
                report["unreadable"] += 1
    report["used"] = len(pixels)
    return pixels, report


def self_trained_probe(f_tr: np.ndarray, t_tr: np.ndarray, f_unl: np.ndarray) -> list:
    """Per label: logistic regression self-trained on the labelled images plus the unlabelled
    pool (and the labelled images that do not annotate this label)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.semi_supervised import SelfTrainingClassifier

    models = []
    for j in range(t_tr.shape[1]):
        y = np.where(np.isnan(t_tr[:, j]), -1, t_tr[:, j]).astype(int)
        x = np.concatenate([f_tr, f_unl])
        y = np.concatenate([y, -np.ones(len(f_unl), dtype=int)])
        if len(set(y[y >= 0])) < 2:
            models.append(float(y[y >= 0].mean()))
            continue
        base = make_pipeline(
            StandardScaler(), LogisticRegression(C=0.1, max_iter=3000, class_weight="balanced")
        )
        models.append(SelfTrainingClassifier(base, threshold=0.9).fit(x, y))
    return models


def rows_for(targets, probs_by_system, labels, sources, reference: str) -> dict:
    out = {}
    pops = sorted(set(sources))
    scores = {n: hierarchical_scores("cxr", labels, p) for n, p in probs_by_system.items()}
    for name, s in scores.items():
        row = {"macro_auroc": macro_auroc(targets, s), "macro_auroc_ci95": auroc_ci(targets, s)}
        row["per_population"] = {}
        for pop in pops:
            idx = np.array([x == pop for x in sources])
            row["per_population"][pop] = {
                "n": int(idx.sum()),
                "macro_auroc": macro_auroc(targets[idx], s[idx]),
                "macro_auroc_ci95": auroc_ci(targets[idx], s[idx]),
            }
        if name != reference:
            row["vs_bundled"] = paired_auroc_ci(targets, s, scores[reference])
        out[name] = row
    return out


def adopt(val_rows: dict) -> dict[str, str]:
    """The rule: validation paired CI above 0 and no population worse."""
    ref = val_rows[BUNDLED]["per_population"]
    out = {}
    for name, row in val_rows.items():
        if name == BUNDLED:
            continue
        ci = row["vs_bundled"]["ci95"]
        worse = [
            p for p, v in row["per_population"].items() if v["macro_auroc"] < ref[p]["macro_auroc"]
        ]
        out[name] = (
            "ADOPT"
            if ci[0] > 0 and not worse
            else "keep bundled: "
            + (
                "; ".join(
                    (
                        [f"paired CI {ci[0]:+.3f}..{ci[1]:+.3f} includes or is below 0"]
                        if ci[0] <= 0
                        else []
                    )
                    + ([f"worse on {', '.join(worse)}"] if worse else [])
                )
            )
        )
    return out


def p50_ms(predictors: list, pixel: np.ndarray, repeats: int = 20) -> float:
    times = []
    for i in range(repeats + 3):
        t0 = time.perf_counter()
        for p in predictors:
            p.predict_proba_pixels([pixel])
        if i >= 3:
            times.append(1000 * (time.perf_counter() - t0))
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cxr", type=Path, required=True)
    ap.add_argument("--members", type=Path, nargs="*", default=[])
    ap.add_argument("--strong", type=Path)
    ap.add_argument("--pairs", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/imaging/little_data.json"))
    args = ap.parse_args()
    bundled = model_dir.load(model_dir.resolve_model(None, "cxr"))
    labels = bundled.labels
    ds = load_dataset(args.cxr, "cxr")
    tr, va, te = patient_split(ds, seed=13, groups=split_groups(ds))
    parts = split_parts(ds, labels, tr, va, te)
    members = [model_dir.load(m) for m in args.members]
    for m in members:
        if m.labels != labels:
            raise SystemExit(f"{m.card.name}: labels {m.labels} differ from {labels}")
    strong = model_dir.load(args.strong) if args.strong else None
    feats = {k: frozen_features(v[0]) for k, v in parts.items()}
    probe = fit_probe("cxr", feats["train"], parts["train"][1])
    manifest_rows = list(csv.DictReader(args.cxr.open(encoding="utf-8")))
    by_file = {str((args.cxr.parent / r["file"]).resolve()): r for r in manifest_rows}
    held_dois = {
        (by_file.get(str(Path(ds.records[i].path).resolve()), {}).get("doi") or "").lower()
        for i in list(va) + list(te)
    } - {""}
    pool_report: dict = {}
    semi = None
    if args.pairs:
        pool, pool_report = unlabelled_pool(args.pairs, args.cxr, held_dois)
        if pool:
            semi = self_trained_probe(feats["train"], parts["train"][1], frozen_features(pool))
    result: dict = {
        "split": {k: len(v[0]) for k, v in parts.items()},
        "unlabelled_pool": pool_report,
        "splits": {},
    }
    for split in ("validation", "test"):
        pixels, targets, sources = parts[split]
        p = {BUNDLED: bundled.predict_proba_pixels(pixels)}
        for m in members:
            p[f"{m.card.name} alone"] = m.predict_proba_pixels(pixels)
        if members:
            p[f"seed ensemble ({1 + len(members)} members)"] = np.mean(
                [p[BUNDLED]] + [p[f"{m.card.name} alone"] for m in members], axis=0
            )
        if strong is not None:
            p[f"{strong.card.name}: longer schedule, strong augmentation"] = (
                strong.predict_proba_pixels(pixels)
            )
        lr = probe_proba("cxr", probe, feats[split])
        p["baseline: frozen EfficientNet-Lite0 + LR"] = lr
        p["backbone ensemble (bundled + frozen features LR)"] = (p[BUNDLED] + lr) / 2
        mirror = bundled.predict_proba_pixels([np.ascontiguousarray(x[:, ::-1]) for x in pixels])
        p["TTA: mirror"] = (p[BUNDLED] + mirror) / 2
        crop = bundled.predict_proba_pixels([centre_crop(x) for x in pixels])
        p["TTA: mirror + 90 % centre crop"] = (p[BUNDLED] + mirror + crop) / 3
        if semi is not None:
            p[f"semi-supervised: frozen features LR self-trained (+{len(pool)} unlabelled)"] = (
                probe_proba("cxr", semi, feats[split])
            )
        result["splits"][split] = rows_for(targets, p, labels, sources, BUNDLED)
    result["decision"] = adopt(result["splits"]["validation"])
    one = parts["test"][0][0]
    result["p50_ms_per_image_pytorch_cpu"] = {
        "bundled": p50_ms([bundled], one),
        **(
            {f"seed ensemble ({1 + len(members)})": p50_ms([bundled, *members], one)}
            if members
            else {}
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(summary(result))


def _fmt(row: dict) -> str:
    ci = row.get("macro_auroc_ci95")
    return f"{row['macro_auroc']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def summary(result: dict) -> str:
    lines = [f"split {result['split']}; unlabelled pool {result['unlabelled_pool']}"]
    for split, rows in result["splits"].items():
        lines.append(f"== {split}")
        for name, row in rows.items():
            pops = "; ".join(
                f"{pop} {_fmt(v)} (n={v['n']})" for pop, v in row["per_population"].items()
            )
            diff = row.get("vs_bundled")
            d = (
                (
                    f" | Δ {diff['mean_difference']:+.3f} [{diff['ci95'][0]:+.3f}, "
                    f"{diff['ci95'][1]:+.3f}]"
                )
                if diff
                else ""
            )
            lines.append(f"  {name}: macro-AUROC {_fmt(row)}{d} | {pops}")
    lines.append("== decision (validation)")
    lines += [f"  {name}: {d}" for name, d in result["decision"].items()]
    lines.append(f"p50 ms/image (PyTorch CPU): {result['p50_ms_per_image_pytorch_cpu']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
