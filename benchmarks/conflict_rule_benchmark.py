"""What a chest X-ray film becomes when the model marks it normal *and* diseased.

The bundled ``cxr-default`` scores its validation and test images (the seed-13 patient split it
was trained on); each is then decided three ways with the same thresholds:

- ``margin``: the rule before issue 46 — whichever of the normal label and the finding passes
  by the larger log-odds margin wins, the other is silently dropped;
- ``indeterminate``: the conflict is undecided between them (what validation chose);
- ``finding``: the finding is stated, with the conflict flag.

Per split: macro-F1 of the decided labels, how many films are conflicts / undecided, and the
exact 4-class answer (No Finding, COVID-19, bacterial, viral) on the answered films and on all
films (an undecided film counts as not answered), with 95 % bootstrap intervals.

    python benchmarks/conflict_rule_benchmark.py --data ../shared/data/chest_xray/manifest.csv \
        --out docs/benchmarks/imaging/conflict_rule.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from medai.core import model_dir
from medai.imaging.datasets import load_dataset, patient_split
from medai.imaging.decision import _margin, decide_array
from medai.imaging.labels import space
from medai.imaging.operating import _macro_f1, decided_matrix, load_policy
from medai.imaging.pipeline import _subset, score, split_groups

LEAVES = ("No Finding", "COVID-19", "Bacterial_Pneumonia", "Viral_Pneumonia")
BUNDLED = Path(__file__).resolve().parents[1] / "src/medai/assets/models/cxr-default"


def _margin_rule(task, labels, probs, policy) -> list[set[str] | None]:
    """The pre-issue-46 answer: the conflict settled by the larger margin."""
    out = []
    for row, d in zip(probs, decide_array(task, labels, probs, policy), strict=True):
        if not d.conflict:
            out.append(set(d.positives))
            continue
        p = dict(zip(labels, map(float, row), strict=True))
        m = {lab: _margin(p[lab], policy.thresholds[lab]) for lab in d.conflict}
        if m[task.normal] >= max(v for k, v in m.items() if k != task.normal):
            out.append({task.normal})
        else:
            found = decide_array(
                task,
                labels,
                probs[[len(out)]],
                policy.model_copy(update={"normal_conflict": "finding"}),
            )[0]
            out.append(set(found.positives))
    return out


def _ci(values: np.ndarray, rng: np.random.Generator, n: int = 2000) -> list[float | None]:
    if not len(values):
        return [None, None]
    boots = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(n)]
    return [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]


def evaluate(task, labels, targets, probs, policy, rule: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    if rule == "margin":
        answers = _margin_rule(task, labels, probs, policy)
        conflicts = sum(bool(d.conflict) for d in decide_array(task, labels, probs, policy))
    else:
        pol = policy.model_copy(update={"normal_conflict": rule})
        ds = decide_array(task, labels, probs, pol)
        answers = [None if d.state == "indeterminate" else set(d.positives) for d in ds]
        conflicts = sum(bool(d.conflict) for d in ds)
    decided = np.zeros_like(targets)
    for i, a in enumerate(answers):
        for lab in a or ():
            decided[i, labels.index(lab)] = 1
    truth = [
        {lab for lab in LEAVES if targets[i, labels.index(lab)] == 1} for i in range(len(targets))
    ]
    right = np.array(
        [
            a is not None and {x for x in a if x in LEAVES} == t
            for a, t in zip(answers, truth, strict=True)
        ],
        dtype=float,
    )
    answered = np.array([a is not None for a in answers])
    return {
        "n": len(targets),
        "conflicts": conflicts,
        "undecided": int((~answered).sum()),
        "macro_f1": _macro_f1(targets, decided),
        "answered_exact": float(right[answered].mean()) if answered.any() else None,
        "answered_exact_ci95": _ci(right[answered], rng),
        "overall_exact": float(right.mean()),
        "overall_exact_ci95": _ci(right, rng),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=BUNDLED)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    predictor = model_dir.load(args.model)
    labels = list(predictor.labels)
    task = space(predictor.cfg.task)
    policy = load_policy(args.model, model_dir.read_card(args.model), labels)
    ds = load_dataset(args.data, predictor.cfg.task)
    _, va, te = patient_split(ds, seed=args.seed, groups=split_groups(ds))
    out = {"model": str(args.model), "chosen": policy.normal_conflict, "splits": {}}
    for name, idx in (("validation", va), ("test", te)):
        _, targets, probs = score(predictor, _subset(ds, idx), n_boot=0)
        out["splits"][name] = {
            rule: evaluate(task, labels, targets, probs, policy, rule)
            for rule in ("margin", "indeterminate", "finding")
        }
        assert decided_matrix(task, labels, probs, policy).shape == targets.shape
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
