"""Imaging out-of-scope benchmark: lateral films, diseases outside the model's labels, other body
parts, and the in-scope films wrongly flagged — before (no scope check: every film read) and
after (``imaging.scope`` + ``imaging.views``) in one run.

    python benchmarks/out_of_scope_benchmark.py --cxr-data ../shared/data/chest_xray/manifest.csv \
        --mri-data ../shared/data/brain_mri/manifest.csv [--out docs/benchmarks/imaging]

On the bundled models as served (ONNX Runtime), on the split each was trained with (seed 13):

- **candidates** for the out-of-scope score, compared on the chest validation split's in-label
  frontal films (where the threshold is chosen: 99th percentile) — the gate's feature-space
  distance, the logits' energy, the largest probability of the four exclusive classes — by what
  each catches of the laterals and out-of-label films at that threshold, and AUROC;
- **after**: the served check, each group's share *flagged* (out of scope, still read) or
  *refused* (a lateral film); the view check's rates are cross-validated by patient (each
  lateral scored by a check fitted without its patient), as the card records;
- **before**: the same films through the model with no scope check (as the code was): nothing
  flagged, nothing refused; what it said about the laterals and the out-of-label films.

Groups: in-label frontal films of the test and validation splits; laterals (8, 7 patients, all
COVID-19 from ieee8023); out-of-label films (SARS 8, Streptococcus 4, ARDS 3, Tuberculosis 1,
unspecified Pneumonia 1 = 17) — by whether the model trained on them, and whether its labels
cover them (the task maps SARS to viral and Streptococcus to bacterial pneumonia); the 27 films
with no view recorded; brain MRI slices sent to the chest model and chest films sent to the MRI
model (another body part); the MRI test split (its in-scope share flagged).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
import warnings
from pathlib import Path

import numpy as np

OUT_OF_LABEL = ("SARS", "Streptococcus", "ARDS", "Tuberculosis", "Pneumonia")
# what the cxr task's synonyms make of them (imaging/task_definitions.py): SARS and
# Streptococcus are labels the model was taught (viral, bacterial pneumonia); "Pneumonia" is its
# parent label; ARDS resolves to nothing (left out of training); Tuberculosis is a task label the
# bundled model does not have (one image: too few to train)
COVERED_BY_LABELS = {"SARS": True, "Streptococcus": True, "Pneumonia": True}
MODELS = Path(__file__).resolve().parent.parent / "src" / "medai" / "assets" / "models"


def rate(flags: np.ndarray) -> dict:
    flags = np.asarray(flags, dtype=bool)
    return {
        "n": int(flags.size),
        "k": int(flags.sum()),
        "share": float(flags.mean()) if flags.size else None,
    }


def manifest_rows(path: Path) -> dict[str, dict]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return {str((path.parent / r["file"]).resolve()): r for r in csv.DictReader(fh)}


def features(predictor, pixels: list[np.ndarray], mirrored: bool = False):
    """Logits and penultimate features of decoded images (as the served model computes them)."""
    import torch

    from medai.imaging.networks import to_tensor

    logits, feats = [], []
    for i in range(0, len(pixels), 32):
        batch = [np.ascontiguousarray(p[:, ::-1]) if mirrored else p for p in pixels[i : i + 32]]
        x = torch.stack([to_tensor(p, predictor.cfg.image_size) for p in batch])
        lo, f = predictor.logits_and_features(x)
        logits.append(lo)
        feats.append(f)
    return np.concatenate(logits), np.concatenate(feats)


def auroc(neg: np.ndarray, pos: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if not len(neg) or not len(pos):
        return None
    return float(roc_auc_score(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cxr-data", type=Path, default=Path("../shared/data/chest_xray/manifest.csv"))
    ap.add_argument("--mri-data", type=Path, default=Path("../shared/data/brain_mri/manifest.csv"))
    ap.add_argument("--cxr-model", type=Path, default=MODELS / "cxr-default")
    ap.add_argument("--mri-model", type=Path, default=MODELS / "mri-default")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/imaging"))
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    from medai.core import model_dir
    from medai.imaging.datasets import load_dataset, patient_split
    from medai.imaging.io import load_image
    from medai.imaging.pipeline import split_groups
    from medai.imaging.views import cross_validated, manifest_views

    t0 = time.perf_counter()
    cxr = model_dir.load(args.cxr_model)
    mri = model_dir.load(args.mri_model)
    assert cxr.out_of_scope is not None and cxr.view_check is not None, "run fit-scope first"

    # --- chest films: every row of the manifest (ARDS included: the loader leaves it out)
    rows = manifest_rows(args.cxr_data)
    ds = load_dataset(args.cxr_data, "cxr")
    tr, va, te = patient_split(ds, seed=args.seed, groups=split_groups(ds))
    split = {}
    for name, idx in (("train", tr), ("validation", va), ("test", te)):
        for i in idx:
            split[str(Path(ds.records.path(i)).resolve())] = name
    views = manifest_views(args.cxr_data)
    paths = list(rows)
    pixels = [load_image(p).pixels for p in paths]
    logits, feats = features(cxr, pixels)
    _, mirrored = features(cxr, pixels, mirrored=True)
    label = np.array([rows[p]["label"] for p in paths])
    view = np.array([views[p][0] for p in paths])
    part = np.array([split.get(p, "not in any split") for p in paths])
    patient = [views[p][1] or f"image-{k}" for k, p in enumerate(paths)]
    lateral = view == "lateral"
    out_label = np.isin(label, OUT_OF_LABEL)
    in_label = ~out_label & ~lateral

    distance = cxr.gate.distance(feats)
    excl = [
        cxr.labels.index(lab)
        for lab in ("COVID-19", "Viral_Pneumonia", "Bacterial_Pneumonia", "No Finding")
    ]
    scores = {
        "feature distance (gate)": distance,
        "energy (-logsumexp of the logits)": -np.log(np.exp(logits).sum(1)),
        "1 - max probability (exclusive classes)": 1 - (1 / (1 + np.exp(-logits[:, excl]))).max(1),
    }
    val_in = in_label & (part == "validation")
    test_in = in_label & (part == "test")
    candidates = {}
    for name, s in scores.items():
        thr = float(np.quantile(s[val_in], 0.99))
        candidates[name] = {
            "threshold (99th pct of validation in-label)": thr,
            "validation in-label flagged": rate(s[val_in] > thr),
            "test in-label flagged": rate(s[test_in] > thr),
            "laterals flagged": rate(s[lateral] > thr),
            "laterals not trained on flagged": rate(s[lateral & (part != "train")] > thr),
            "out-of-label flagged": rate(s[out_label] > thr),
            "out-of-label not trained on flagged": rate(s[out_label & (part != "train")] > thr),
            "AUROC laterals vs test in-label": auroc(s[test_in], s[lateral]),
            "AUROC out-of-label vs test in-label": auroc(s[test_in], s[out_label]),
        }

    # the served view check's rates, cross-validated by patient (fit-scope's folds)
    known = view != "unknown"
    kf, kl = known & ~lateral, known & lateral
    fo, lo = cross_validated(
        feats[kf],
        feats[kl],
        [patient[i] for i in np.where(kf)[0]],
        [patient[i] for i in np.where(kl)[0]],
        mirrored=(mirrored[kf], mirrored[kl]),
    )
    cv_lateral = np.zeros(len(paths))
    cv_lateral[np.where(kf)[0]] = fo
    cv_lateral[np.where(kl)[0]] = lo
    served_p = cxr.view_check.lateral_probability(feats)
    # films with no view recorded: the served check (fitted without them) decides
    cv_lateral[~known] = served_p[~known]
    refused_view = cv_lateral >= cxr.view_check.threshold
    flagged_dist = distance > cxr.out_of_scope.threshold
    refused_gate = distance > cxr.gate.threshold
    refused = refused_view | refused_gate
    flagged = flagged_dist & ~refused
    out_of_scope = refused | flagged

    # before: the model as it was (no scope check): what it decided for each film
    before_cxr = _before(cxr, logits)

    def group(sel: np.ndarray) -> dict:
        return {
            "n": int(sel.sum()),
            "after": {
                "out of scope (flagged or refused)": rate(out_of_scope[sel]),
                "refused as lateral": rate(refused_view[sel]),
                "refused by the gate": rate(refused_gate[sel] & ~refused_view[sel]),
                "flagged unlike training (read)": rate(flagged[sel]),
            },
            "before": {
                "out of scope": rate(np.zeros(int(sel.sum()), bool)),
                "read with a finding present": rate(before_cxr["finding"][sel]),
                "read as no finding": rate(before_cxr["normal"][sel]),
            },
        }

    groups = {
        "in-label frontal films, test split (in scope)": group(test_in & (view != "unknown")),
        "in-label frontal films, validation split (threshold chosen here)": group(
            val_in & (view != "unknown")
        ),
        "in-label films with no view recorded": group(in_label & (view == "unknown")),
        "lateral films (all)": group(lateral),
        "lateral films the model did not train on": group(lateral & (part != "train")),
        "out-of-label films (all 17)": group(out_label),
        "out-of-label films the model did not train on": group(out_label & (part != "train")),
        "out-of-label films no model label covers (ARDS, Tuberculosis)": group(
            np.isin(label, ("ARDS", "Tuberculosis"))
        ),
    }
    per_film = [
        {
            "file": Path(paths[i]).name,
            "label": str(label[i]),
            "view": str(view[i]),
            "split": str(part[i]),
            "distance": round(float(distance[i]), 3),
            "lateral_probability_cv": round(float(cv_lateral[i]), 3),
            "after": "refused (lateral)"
            if refused_view[i]
            else "refused (gate)"
            if refused_gate[i]
            else "flagged"
            if flagged[i]
            else "in scope",
            "before": before_cxr["said"][i],
        }
        for i in np.where(out_label | lateral)[0]
    ]

    # --- another body part: brain MRI slices to the chest model, chest films to the MRI model
    mri_rows = manifest_rows(args.mri_data)
    mri_paths = list(mri_rows)
    mri_pixels = [load_image(p).pixels for p in mri_paths]
    _, f_mri_on_cxr = features(cxr, mri_pixels)
    d = cxr.gate.distance(f_mri_on_cxr)
    v = cxr.view_check.lateral_probability(f_mri_on_cxr) >= cxr.view_check.threshold
    other_body = {
        "brain MRI slices sent to the chest model": {
            "n": len(mri_paths),
            "after": {
                "out of scope (flagged or refused)": rate(
                    (d > cxr.out_of_scope.threshold) | (d > cxr.gate.threshold) | v
                ),
                "refused by the gate": rate(d > cxr.gate.threshold),
            },
            "before (gate only, as the code was)": {
                "refused by the gate": rate(d > cxr.gate.threshold)
            },
        }
    }
    _, f_cxr_on_mri = features(mri, pixels)
    d2 = mri.gate.distance(f_cxr_on_mri)
    other_body["chest films sent to the MRI model"] = {
        "n": len(paths),
        "after": {
            "out of scope (flagged or refused)": rate(
                (d2 > mri.out_of_scope.threshold) | (d2 > mri.gate.threshold)
            ),
            "refused by the gate": rate(d2 > mri.gate.threshold),
        },
        "before (gate only, as the code was)": {
            "refused by the gate": rate(d2 > mri.gate.threshold)
        },
    }
    mds = load_dataset(args.mri_data, "mri")
    _mtr, mva, mte = patient_split(mds, seed=args.seed, groups=split_groups(mds))
    test_paths = {str(Path(mds.records.path(i)).resolve()) for i in mte}
    val_paths = {str(Path(mds.records.path(i)).resolve()) for i in mva}
    _, f_mri = features(mri, mri_pixels)
    dm = mri.gate.distance(f_mri)
    sel_test = np.array([p in test_paths for p in mri_paths])
    sel_val = np.array([p in val_paths for p in mri_paths])
    mri_groups = {
        "MRI test split (in scope)": {
            "n": int(sel_test.sum()),
            "after": {"flagged unlike training": rate(dm[sel_test] > mri.out_of_scope.threshold)},
            "before": {"flagged": rate(np.zeros(int(sel_test.sum()), bool))},
        },
        "MRI validation split (threshold chosen here)": {
            "n": int(sel_val.sum()),
            "after": {"flagged unlike training": rate(dm[sel_val] > mri.out_of_scope.threshold)},
        },
    }

    result = {
        "benchmark": "imaging out of scope (benchmarks/out_of_scope_benchmark.py)",
        "models": {
            "cxr": cxr.identity.model_dump(mode="json"),
            "mri": mri.identity.model_dump(mode="json"),
        },
        "runtime": {"cxr": cxr.runtime, "mri": mri.runtime},
        "data": {"cxr": str(args.cxr_data), "mri": str(args.mri_data), "seed": args.seed},
        "thresholds": {
            "cxr out-of-scope distance": cxr.out_of_scope.threshold,
            "cxr gate refusal distance": cxr.gate.threshold,
            "cxr view check (P lateral)": cxr.view_check.threshold,
            "mri out-of-scope distance": mri.out_of_scope.threshold,
            "mri gate refusal distance": mri.gate.threshold,
        },
        "candidates_on_validation": candidates,
        "cxr_groups": groups,
        "view_check_cross_validated": {
            "laterals caught": rate(lo >= cxr.view_check.threshold),
            "frontals wrongly called lateral": rate(fo >= cxr.view_check.threshold),
            "max frontal score": float(fo.max()),
            "min lateral score": float(lo.min()),
            "films with no view called lateral by the served check": rate(
                served_p[~known] >= cxr.view_check.threshold
            ),
        },
        "other_body_part": other_body,
        "mri": mri_groups,
        "per_film_laterals_and_out_of_label": per_film,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "out_of_scope.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {k: result[k] for k in ("thresholds", "cxr_groups", "view_check_cross_validated")},
            indent=1,
        )
    )


def _before(predictor, logits: np.ndarray) -> dict:
    """What the model decided for each film with no scope check: a finding present, or none."""
    probs = predictor._activate(logits)
    finding, normal, said = [], [], []
    for row in probs:
        d = predictor.decide(row)
        present = list(d.stated)
        finding.append(d.state == "abnormal")
        normal.append(d.state == "normal")
        said.append(
            f"{d.state}: {', '.join(present) or '-'}" + (f" ({max(row):.3f})" if present else "")
        )
    return {"finding": np.array(finding), "normal": np.array(normal), "said": said}


if __name__ == "__main__":
    main()
