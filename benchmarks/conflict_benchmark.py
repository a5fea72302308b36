"""Conflicts only where there is doubt (issue 67, item 6): before and after, in one run.

    python benchmarks/conflict_benchmark.py --data ../shared/data/chest_xray/manifest.csv \
        --out docs/benchmarks/imaging/conflict.json

The bundled ``cxr-default`` scores the validation and test splits of the split it was trained
on (seed 13, patients and near-identical thumbnails kept on one side; the paediatric Kermany
films and the adult COVID-era films split alike). Each film is then decided twice, with the
same thresholds:

- **before**: the operating points without ``normal_lead`` (a normal label passing beside a
  passing finding is always an undecided conflict), and every undecided label asked of the
  signer (the server's rule before: state ``indeterminate``);
- **after**: the present ``operating_points.json`` (``normal_lead`` chosen on validation for
  the cost ``imaging.operating.decision_cost``), and only ``imaging.decision.questions`` asked.

Per split: no-finding films read undecided or conflict (and read as a finding), films whose
true finding the decision states absent (must not rise), Var / Yok questions per study, and the
cost at C = 3, 10, 30 with the lead each C would choose on validation. Also the per-label
threshold search for the same cost (``search_thresholds``): on validation in-sample, out of
fold (5 folds of validation), and applied to test for the record only (never used to choose).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from medai.core import model_dir
from medai.imaging.datasets import load_dataset, patient_split
from medai.imaging.decision import decide_array, questions
from medai.imaging.labels import space
from medai.imaging.operating import (
    MISS_COST,
    choose_normal_lead,
    decision_cost,
    load_policy,
)
from medai.imaging.pipeline import _subset, predict_streamed, split_groups

BUNDLED = Path(__file__).resolve().parents[1] / "src/medai/assets/models/cxr-default"
PAEDIATRIC = "kermany_test_via_waliatushar"
MIN_GAIN = 2.0


def films(task, labels, targets, probs, sources, policy, asked_before: bool) -> dict:
    """The item's three numbers for one policy on one split."""
    j = labels.index(task.normal)
    others = [k for k, lab in enumerate(labels) if lab != task.normal]
    out = {
        "no_finding_films": 0,
        "no_finding_undecided_or_conflict": 0,
        "no_finding_read_as_finding": 0,
        "no_finding_undecided_adult": 0,
        "no_finding_undecided_paediatric": 0,
        "finding_films": 0,
        "findings_missed": 0,
        "finding_films_undecided": 0,
        "questions": [],
    }
    for i, d in enumerate(decide_array(task, labels, probs, policy)):
        asked = (
            [r.label for r in d.labels if r.state == "indeterminate"]
            if asked_before
            else questions(d.labels)
        )
        out["questions"].append(len(asked))
        truth = [labels[k] for k in others if targets[i, k] == 1]
        if targets[i, j] == 1 and not truth:
            out["no_finding_films"] += 1
            if d.state == "indeterminate" or d.conflict:
                out["no_finding_undecided_or_conflict"] += 1
                key = "paediatric" if sources[i] == PAEDIATRIC else "adult"
                out[f"no_finding_undecided_{key}"] += 1
            elif d.state == "abnormal":
                out["no_finding_read_as_finding"] += 1
        if truth:
            out["finding_films"] += 1
            if d.state == "indeterminate":
                out["finding_films_undecided"] += 1
            elif any(d.state_of(lab) == "absent" for lab in truth):
                out["findings_missed"] += 1
    q = np.array(out.pop("questions"))
    out["questions_per_study"] = float(q.mean())
    out["questions_total"] = int(q.sum())
    out["studies_asked"] = int((q > 0).sum())
    out["questions_max"] = int(q.max()) if len(q) else 0
    return out


def search_thresholds(task, labels, targets, probs, policy, miss_cost=MISS_COST, grid_n=25):
    """Per-label thresholds moved to the validation quantile of least ``decision_cost`` while a
    move saves at least ``MIN_GAIN`` (greedy, one label at a time)."""
    base = decision_cost(task, labels, targets, probs, policy, miss_cost)["cost"]
    while True:
        best = None
        for j, lab in enumerate(labels):
            grid = np.unique(np.round(np.quantile(probs[:, j], np.linspace(0.02, 0.98, grid_n)), 4))
            for t in grid:
                trial = policy.model_copy(
                    update={"thresholds": {**policy.thresholds, lab: float(t)}}
                )
                c = decision_cost(task, labels, targets, probs, trial, miss_cost)["cost"]
                if best is None or c < best[0]:
                    best = (c, trial)
        if best is None or base - best[0] < MIN_GAIN:
            return policy
        base, policy = best


def threshold_search(task, labels, val, test, policy, folds: int = 5, seed: int = 0) -> dict:
    """Does searching thresholds for the cost generalise? In-sample and out of fold on
    validation (each fold's search applied to the films it did not see), then test."""
    (vt, vp), (tt, tp) = val, test
    searched = search_thresholds(task, labels, vt, vp, policy)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(vp))
    kept_oof = searched_oof = 0.0
    for k in range(folds):
        hold = order[k::folds]
        fit = np.setdiff1d(order, hold)
        s = search_thresholds(task, labels, vt[fit], vp[fit], policy)
        kept_oof += decision_cost(task, labels, vt[hold], vp[hold], policy)["cost"]
        searched_oof += decision_cost(task, labels, vt[hold], vp[hold], s)["cost"]
    return {
        "searched_thresholds": searched.thresholds,
        "validation_in_sample": {
            "kept": decision_cost(task, labels, vt, vp, policy),
            "searched": decision_cost(task, labels, vt, vp, searched),
        },
        "validation_out_of_fold_cost": {"kept": kept_oof, "searched": searched_oof},
        "test_for_the_record": {
            "kept": decision_cost(task, labels, tt, tp, policy),
            "searched": decision_cost(task, labels, tt, tp, searched),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=BUNDLED)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    t0 = time.time()
    predictor = model_dir.load(args.model)
    labels = list(predictor.labels)
    task = space(predictor.cfg.task)
    after = load_policy(args.model, model_dir.read_card(args.model), labels)
    before = after.model_copy(update={"normal_lead": None})
    ds = load_dataset(args.data, predictor.cfg.task)
    _, va, te = patient_split(ds, seed=args.seed, groups=split_groups(ds))
    scored = {}
    for name, idx in (("validation", va), ("test", te)):
        sub = _subset(ds, idx)
        probs, _, keep, _ = predict_streamed(predictor, sub)
        cols = [sub.labels.index(lab) for lab in labels]
        scored[name] = (
            sub.targets()[keep][:, cols],
            probs,
            [sub.records.source(i) for i in keep],
        )
    out: dict = {
        "model": predictor.identity.name,
        "content_hash": predictor.identity.content_hash,
        "data": str(args.data),
        "split": f"seed {args.seed}, patient / thumbnail groups (imaging.datasets.patient_split)",
        "normal_lead": after.normal_lead,
        "thresholds": after.thresholds,
        "miss_cost": MISS_COST,
        "splits": {},
    }
    for name, (targets, probs, sources) in scored.items():
        out["splits"][name] = {
            "n": len(probs),
            "before": films(task, labels, targets, probs, sources, before, asked_before=True),
            "after": films(task, labels, targets, probs, sources, after, asked_before=False),
            "cost_before": decision_cost(task, labels, targets, probs, before),
            "cost_after": decision_cost(task, labels, targets, probs, after),
        }
    vt, vp, _ = scored["validation"]
    tt, tp, _ = scored["test"]
    out["lead_by_miss_cost"] = {}
    for c in (3.0, 10.0, 30.0):
        chosen, table = choose_normal_lead(task, labels, vt, vp, before, miss_cost=c)
        out["lead_by_miss_cost"][str(c)] = {
            "normal_lead": chosen.normal_lead,
            "validation_table": table.get("normal_lead_table"),
            "test": decision_cost(task, labels, tt, tp, chosen, miss_cost=c),
        }
    out["threshold_search"] = threshold_search(task, labels, (vt, vp), (tt, tp), before)
    out["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(out, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
