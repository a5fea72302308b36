"""Brain MRI operating point, before vs after, on validation and test in one run.

    python benchmarks/mri_operating_point.py --data ../shared/data/brain_mri/manifest.csv \
        --out docs/benchmarks/imaging --update-card

On the split the bundled ``mri-default`` was trained with (seed 13, near-identical-thumbnail
groups kept whole), through the served decision (``imaging.decision``):

- the old policy (``--before-confidence`` / ``--before-margin``: min_confidence 0.90, margin
  0.00, the bundled point before the coverage target) and the model's present
  ``operating_points.json``: coverage, answered accuracy and accuracy (an undecided image counted
  wrong), each with a 95 % bootstrap interval over images, and the paired after − before
  difference; how often an undecided image's two named candidates hold its true class;
- what is reachable at all: for several abstention scores (top-1 probability, top-1 minus
  runner-up, both after temperature scaling fitted on validation, log-probability margin,
  negative entropy), the best answered accuracy at coverage >= 0.90 and the largest coverage at
  answered accuracy >= 0.95 with the threshold chosen *on that split itself* (an optimistic
  bound), with bootstrap intervals and the share of resamples where both can be met;
- grids: the selection rule of ``imaging.operating.choose_exclusive`` run on validation with
  the old grid, the present one and a 0.01 grid, and the chosen point applied to test; the
  same with validation resampled (the selection procedure's mean on test); and the old rule
  (least abstaining point at >= 95 %) on each grid.

``--update-card`` recomputes the card's test metrics under the present policy
(``reevaluate`` below) and writes this comparison into the card's ``metrics``
(``operating_point``), resealing it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

BEFORE = (0.9, 0.0)
TARGETS = {"coverage": 0.90, "answered_accuracy": 0.95}
GRIDS = {
    "old (0.1 steps)": ((0.0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), (0.0, 0.05, 0.1, 0.2, 0.3)),
    "0.01 steps": (
        tuple(np.round(np.arange(0.0, 1.0, 0.01), 2)),
        tuple(np.round(np.arange(0.0, 0.61, 0.02), 2)),
    ),
}


def outcomes(task, labels, probs, policy) -> tuple[np.ndarray, list]:
    """Each image's decided class index (-1 undecided) and its decision."""
    from medai.imaging.decision import decide_array

    decisions = decide_array(task, labels, probs, policy)
    pred = np.array([labels.index(d.positives[0]) if d.positives else -1 for d in decisions])
    return pred, decisions


def stats(pred: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    answered = pred >= 0
    right = pred == y
    return (
        float(answered.mean()),
        float(right[answered].mean()) if answered.any() else float("nan"),
        float(right.mean()),
    )


def ci(values: np.ndarray) -> list[float | None]:
    v = values[~np.isnan(values)]
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if len(v) else [None, None]


def compare(pred_before, pred_after, y, n_boot, seed) -> dict:
    rng = np.random.default_rng(seed)
    names = ("coverage", "answered_accuracy", "accuracy")
    b, a = stats(pred_before, y), stats(pred_after, y)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        boots.append((*stats(pred_before[i], y[i]), *stats(pred_after[i], y[i])))
    boots = np.array(boots)
    out = {"n": len(y)}
    for when, est, off in (("before", b, 0), ("after", a, 3)):
        out[when] = {name: est[k] for k, name in enumerate(names)}
        out[when].update({f"{name}_ci95": ci(boots[:, off + k]) for k, name in enumerate(names)})
        pred = pred_before if when == "before" else pred_after
        out[when]["answered"] = int((pred >= 0).sum())
        out[when]["answered_wrong"] = int(((pred >= 0) & (pred != y)).sum())
        out[when]["meets_both"] = bool(
            est[0] >= TARGETS["coverage"] and est[1] >= TARGETS["answered_accuracy"]
        )
    out["difference_after_minus_before"] = {
        name: {"estimate": a[k] - b[k], "ci95": ci(boots[:, 3 + k] - boots[:, k])}
        for k, name in enumerate(names)
    }
    return out


def abstention_scores(probs: np.ndarray, temperature: float) -> dict[str, np.ndarray]:
    logp = np.log(np.clip(probs, 1e-12, 1.0))
    lt = logp / temperature
    q = np.exp(lt - lt.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    s, sq, sl = np.sort(probs, 1), np.sort(q, 1), np.sort(logp, 1)
    return {
        "top-1 probability": s[:, -1],
        "top-1 minus runner-up": s[:, -1] - s[:, -2],
        "top-1 probability, temperature-scaled": sq[:, -1],
        "top-1 minus runner-up, temperature-scaled": sq[:, -1] - sq[:, -2],
        "log-probability margin": sl[:, -1] - sl[:, -2],
        "negative entropy, temperature-scaled": (q * np.log(np.clip(q, 1e-12, 1))).sum(1),
    }


def frontier(score: np.ndarray, right: np.ndarray) -> tuple[float, float]:
    """Thresholding ``score`` on the same images: the best answered accuracy at coverage >=
    0.90 and the largest coverage at answered accuracy >= 0.95."""
    best_acc, best_cov = float("nan"), 0.0
    for t in np.unique(score):
        answered = score >= t
        cov, acc = answered.mean(), right[answered].mean()
        if cov >= TARGETS["coverage"]:
            best_acc = acc if np.isnan(best_acc) else max(best_acc, acc)
        if acc >= TARGETS["answered_accuracy"]:
            best_cov = max(best_cov, cov)
    return float(best_acc), float(best_cov)


def reachability(probs, y, temperature, n_boot, seed) -> dict:
    right = probs.argmax(1) == y
    rng = np.random.default_rng(seed)
    idx = [rng.integers(0, len(y), len(y)) for _ in range(n_boot)]
    out = {}
    for name, s in abstention_scores(probs, temperature).items():
        acc, cov = frontier(s, right)
        boots = np.array([frontier(s[i], right[i]) for i in idx])
        out[name] = {
            "best_answered_accuracy_at_coverage_0.90": acc,
            "best_answered_accuracy_at_coverage_0.90_ci95": ci(boots[:, 0]),
            "max_coverage_at_answered_accuracy_0.95": cov,
            "max_coverage_at_answered_accuracy_0.95_ci95": ci(boots[:, 1]),
            "reachable": bool(cov >= TARGETS["coverage"]),
            "reachable_share_of_resamples": float((boots[:, 1] >= TARGETS["coverage"]).mean()),
        }
    return out


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    logp = np.log(np.clip(probs, 1e-12, 1.0))

    def nll(t):
        z = logp / t
        z = z - z.max(1, keepdims=True)
        return float(-(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1))).mean())

    grid = np.round(np.arange(0.25, 4.001, 0.05), 2)
    return float(grid[int(np.argmin([nll(t) for t in grid]))])


def old_rule(probs: np.ndarray, y: np.ndarray, conf, margin) -> tuple[float, float]:
    """The rule before the coverage target: the least abstaining point at >= 95 % answered
    validation accuracy; when no point reaches it, the most accurate one (as that rule did)."""
    srt = np.sort(probs, 1)
    right = probs.argmax(1) == y
    rows, every = [], []
    for c in conf:
        for m in margin:
            ans = (srt[:, -1] >= c) & (srt[:, -1] - srt[:, -2] >= m)
            if not ans.any():
                continue
            every.append((c, m, float(right[ans].mean()), float(ans.mean())))
            if right[ans].mean() >= TARGETS["answered_accuracy"]:
                rows.append((c, m, ans.mean()))
    if rows:
        c, m, _ = max(rows, key=lambda r: (r[2], -r[0], -r[1]))
    else:
        c, m, _, _ = max(every, key=lambda r: (r[2], r[3]))
    return float(c), float(m)


def grid_rows(task, labels, val, test, n_boot: int = 300) -> dict:
    """The present selection rule on validation with other grids, applied to test; the same
    after resampling validation (``n_boot`` times: how the *procedure* does on test); and the
    old rule on each grid."""
    from medai.imaging import operating
    from medai.imaging.decision import OperatingPolicy

    keep = operating.CONFIDENCE_GRID, operating.MARGIN_GRID
    grids = {"present (0.05 steps)": keep, **GRIDS}
    rng = np.random.default_rng(2)
    resamples = [rng.integers(0, len(val[1]), len(val[1])) for _ in range(n_boot)]
    eye = np.eye(len(labels))

    def split_stats(policy) -> dict:
        return {
            f"{split}_{k}": v
            for split, (p, y) in (("validation", val), ("test", test))
            for k, v in zip(
                ("coverage", "answered_accuracy", "accuracy"),
                stats(outcomes(task, labels, p, policy)[0], y),
                strict=True,
            )
        }

    out = {}
    try:
        for name, (conf, margin) in grids.items():
            operating.CONFIDENCE_GRID, operating.MARGIN_GRID = conf, margin
            policy, rep = operating.choose_exclusive(task, labels, eye[val[1]], val[0], n_boot=0)
            boot = []
            for i in resamples:
                pol, _ = operating.choose_exclusive(
                    task, labels, eye[val[1][i]], val[0][i], n_boot=0
                )
                boot.append(stats(outcomes(task, labels, test[0], pol)[0], test[1]))
            boot = np.array(boot)
            c, m = old_rule(*val, conf, margin)
            old = OperatingPolicy(
                thresholds={lab: c for lab in labels}, min_confidence=c, min_margin=m
            )
            out[name] = {
                "min_confidence": policy.min_confidence,
                "min_margin": policy.min_margin,
                "met": rep["met"],
                **split_stats(policy),
                "procedure_test_mean": dict(
                    zip(
                        ("coverage", "answered_accuracy", "accuracy"),
                        np.nanmean(boot, axis=0).tolist(),
                        strict=True,
                    )
                ),
                "procedure_test_coverage_below_0.90": float(
                    (boot[:, 0] < TARGETS["coverage"]).mean()
                ),
                "old_rule": {"min_confidence": c, "min_margin": m, **split_stats(old)},
            }
    finally:
        operating.CONFIDENCE_GRID, operating.MARGIN_GRID = keep
    return out


def candidates_hold_truth(decisions, y, labels) -> dict:
    undecided = [(d, t) for d, t in zip(decisions, y, strict=True) if d.state == "indeterminate"]
    return {
        "undecided": len(undecided),
        "named_two_candidates": sum(len(d.candidates) == 2 for d, _ in undecided),
        "truth_among_candidates": sum(labels[t] in d.candidates for d, t in undecided),
    }


def reevaluate(out: Path, data: Path, seed: int = 13, history: list | None = None) -> dict:
    """Recompute a model directory's held-out test metrics (same split as training) and
    rewrite its metrics.json, plots and card metrics, e.g. after a metric definition changed."""
    from medai.core import model_dir
    from medai.core.model_dir import read_card, save_card
    from medai.imaging.datasets import load_dataset, patient_split
    from medai.imaging.evaluate import write_metrics, write_plots
    from medai.imaging.pipeline import _subset, card_metrics, score, split_groups

    predictor = model_dir.load(out)
    ds = load_dataset(data, predictor.cfg.task)
    _, _, te = patient_split(ds, seed=seed, groups=split_groups(ds))
    metrics, targets, probs = score(predictor, _subset(ds, te))
    card = read_card(out)
    card.metrics.update(card_metrics(metrics))
    save_card(out, card)
    write_metrics(metrics, out / "evaluation")
    write_plots(metrics, targets, probs, predictor.labels, out / "evaluation", history or [])
    return metrics


def main() -> None:
    from medai.core import model_dir
    from medai.core.model_dir import read_card, save_card
    from medai.imaging.datasets import load_dataset, patient_split
    from medai.imaging.decision import OperatingPolicy
    from medai.imaging.labels import space
    from medai.imaging.pipeline import _subset, readable, split_groups

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=model_dir.bundled_models_dir() / "mri-default")
    ap.add_argument(
        "--seed",
        type=int,
        default=13,
        help="the split seed the model was trained with (its card's training command)",
    )
    ap.add_argument("--before-confidence", type=float, default=BEFORE[0])
    ap.add_argument("--before-margin", type=float, default=BEFORE[1])
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--update-card", action="store_true")
    args = ap.parse_args()

    start = time.time()
    predictor = model_dir.load(args.model)
    labels = list(predictor.labels)
    task = space(predictor.cfg.task)
    ds = load_dataset(args.data, predictor.cfg.task)
    _, va, te = patient_split(ds, seed=args.seed, groups=split_groups(ds))
    cols = [ds.labels.index(lab) for lab in labels]
    arrays = {}
    for split, idx in (("validation", va), ("test", te)):
        sub = _subset(ds, idx)
        pixels, keep, errors = readable(sub)
        if errors:
            raise SystemExit(f"unreadable images in the {split} split: {errors}")
        probs, _ = predictor.proba_and_features(pixels)
        arrays[split] = (probs, np.nan_to_num(sub.targets()[keep][:, cols]).argmax(1))

    before = OperatingPolicy(
        thresholds={lab: args.before_confidence for lab in labels},
        min_confidence=args.before_confidence,
        min_margin=args.before_margin,
    )
    after = predictor.policy
    temperature = fit_temperature(*arrays["validation"])
    result = {
        "model": str(args.model),
        "content_hash": read_card(args.model).content_hash,
        "data": str(args.data),
        "seed": args.seed,
        "targets": TARGETS,
        "before_policy": {"min_confidence": before.min_confidence, "min_margin": before.min_margin},
        "after_policy": {"min_confidence": after.min_confidence, "min_margin": after.min_margin},
        "n_boot": args.n_boot,
        "temperature_fitted_on_validation": temperature,
        "splits": {},
        "reachable": {},
    }
    for split, (probs, y) in arrays.items():
        pb, _ = outcomes(task, labels, probs, before)
        pa, decisions = outcomes(task, labels, probs, after)
        result["splits"][split] = {
            **compare(pb, pa, y, args.n_boot, seed=0),
            "top1_accuracy": float((probs.argmax(1) == y).mean()),
            "candidates_after": candidates_hold_truth(decisions, y, labels),
        }
        result["reachable"][split] = reachability(
            probs, y, temperature, min(args.n_boot, 1000), seed=1
        )
    result["grids"] = grid_rows(task, labels, arrays["validation"], arrays["test"])
    result["seconds"] = round(time.time() - start, 1)

    if args.update_card:
        reevaluate(args.model, args.data, seed=args.seed)
        card = read_card(args.model)
        card.metrics["operating_point"] = {
            "command": "python benchmarks/mri_operating_point.py --data "
            f"{args.data} --out {args.out} --update-card",
            "targets": TARGETS,
            "before_policy": result["before_policy"],
            "after_policy": result["after_policy"],
            **{
                split: {
                    k: result["splits"][split][k]
                    for k in ("n", "before", "after", "difference_after_minus_before")
                }
                for split in result["splits"]
            },
        }
        save_card(args.model, card)
        result["card_updated"] = str(args.model / "model_card.json")
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "mri_operating_point.json").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
