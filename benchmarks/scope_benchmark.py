"""Out-of-scope benchmark: how often the served triage model confidently misroutes complaints of
departments it never learned, and what the gate costs on its own departments.

    python benchmarks/scope_benchmark.py --data ../shared/data/triage/complaints.csv \
        --other ../shared/data/triage/llm_cleaned_NOT_RAW/doktorsitesi_llm_cleaned_questions.csv \
        [--model triage-default] [--out docs/benchmarks/scope]

Scores, in one run, the model with its gate, the same model without it (the code before the
gate), and the strongest simple baseline — a higher abstain threshold — on: the real held-out test
split of its departments; the held-out 30% of the other-department file (never seen by the gate);
and the team-written ordinary complaints of data/red_flags/, grouped by department
(written independently of the gate; a check against learning a writing style).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from medai.core import model_dir
from medai.core.metrics import classification_report
from medai.triage import departments
from medai.triage.data import load_complaints, split
from medai.triage.train import out_of_scope_split

IN_SCOPE_WRITTEN = {
    "dermatology": "dermatology",
    "ent": "ent",
    "neurology": "neurology",
    "physical_therapy": "physical_medicine_rehabilitation",
}


def evaluate(predictor, in_texts, in_labels, out_texts, gate: bool, min_conf: float) -> dict:
    labels = predictor.labels
    p_in, p_out = predictor.predict_proba(in_texts), predictor.predict_proba(out_texts)
    use_gate = gate and predictor.scope is not None
    o_in = predictor.scope.p_other(in_texts) if use_gate else np.zeros(len(in_texts))
    o_out = predictor.scope.p_other(out_texts) if use_gate else np.zeros(len(out_texts))
    thr = predictor.scope.threshold if use_gate else 1.1
    ans_in = (p_in.max(1) >= min_conf) & (o_in < thr)
    ans_out = (p_out.max(1) >= min_conf) & (o_out < thr)
    y = np.array([labels.index(x) for x in in_labels])
    names = departments.display_names(labels)
    rep = classification_report(y, p_in, labels, names)
    answered = (
        classification_report(y[ans_in], p_in[ans_in], labels, names) if ans_in.any() else None
    )
    return {
        "in_scope": {
            "n": len(in_texts),
            "macro_f1_all": rep["macro_f1"],
            "coverage": float(ans_in.mean()),
            "macro_f1_answered": answered["macro_f1"] if answered else None,
            "accuracy_answered": answered["accuracy"] if answered else None,
        },
        "other_departments": {
            "n": len(out_texts),
            "confidently_misrouted": float(ans_out.mean()),
            "referred_or_abstained": float(1 - ans_out.mean()),
        },
    }


def written_ordinary() -> tuple[list[str], list[str], list[str]]:
    base = Path(__file__).resolve().parents[1] / "data" / "red_flags"
    rows = [
        json.loads(line)
        for f in sorted(base.glob("*/*_ordinary.jsonl"))
        for line in f.read_text().splitlines()
        if line
    ]
    ins = [r for r in rows if r.get("department") in IN_SCOPE_WRITTEN]
    outs = [r["text"] for r in rows if r.get("department") not in IN_SCOPE_WRITTEN]
    return [r["text"] for r in ins], [IN_SCOPE_WRITTEN[r["department"]] for r in ins], outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--other", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default="docs/benchmarks/scope")
    args = ap.parse_args()
    if not Path(args.data).is_file() or not Path(args.other).is_file():
        raise SystemExit("skip: shared data not found")
    from medai.services.model_handles import model_folder

    predictor = model_dir.load(model_folder(args.model, "triage"))  # --model, MEDAI_MODELS
    card = predictor.card
    seed = next((d.get("split_seed", 13) for d in card.data if "split" in d), 13)
    data = load_complaints(args.data)
    test = data.subset(split(data, seed=seed).test)
    _train, held = out_of_scope_split(Path(args.other))
    other = [
        t for t, lab in zip(held.texts, held.labels, strict=True) if lab not in predictor.labels
    ]
    w_in, w_in_labels, w_out = written_ordinary()
    base = predictor.min_confidence
    variants = {"gate (served)": (True, base), "no gate (before)": (False, base)}
    for m in (0.7, 0.8, 0.9):
        variants[f"no gate, abstain below {m}"] = (False, m)
    results = {
        "model": card.name,
        "gate_threshold": getattr(predictor.scope, "threshold", None),
        "variants": {},
    }
    for name, (gate, m) in variants.items():
        results["variants"][name] = {
            "shared": evaluate(predictor, test.texts, test.labels, other, gate, m),
            "team_written": evaluate(predictor, w_in, w_in_labels, w_out, gate, m),
        }
        print(name, json.dumps(results["variants"][name]["shared"]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
