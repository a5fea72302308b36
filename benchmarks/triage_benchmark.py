"""Triage benchmark: quality and speed of every model family, in one run, on one split.

    python benchmarks/triage_benchmark.py --data ../shared/data/triage/complaints.csv \
        --out docs/benchmarks/triage [--extra ../shared/data/triage/llm_cleaned_NOT_RAW/...csv]

Compares, on the same near-duplicate-grouped stratified split that ``medai triage train`` uses:
the strongest simple baseline (word+char TF-IDF + LinearSVC, no class weights, no calibration),
the ``tfidf`` default, ``encoder`` (frozen e5-small + head) and ``tfidf+encoder``. Reports
macro-F1, accuracy, top-2 accuracy, ECE on the held-out test split, single-text latency (p50/p95
over the full predict path: validation, model, red flags; embedding cache off) and batch
throughput. With ``--extra`` it also reports how often each model abstains on complaints from
departments it was never trained on (out-of-scope safety).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from medai.core.metrics import classification_report, latency_summary
from medai.core.registry import ModelCard
from medai.triage import departments
from medai.triage import models as families
from medai.triage.data import load_complaints, split
from medai.triage.evaluate import write_outputs
from medai.triage.predict import TriagePredictor, choose_min_confidence


class PlainSvmBaseline:
    """TF-IDF (word 1–2 + char 2–5) + LinearSVC(C=0.5): the usual strong simple baseline."""

    model_type = "baseline_tfidf_svm"

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.history: list[dict] = []

    def fit(self, texts, labels, _val_texts, _val_labels):
        from sklearn.pipeline import make_pipeline
        from sklearn.svm import LinearSVC

        from medai.triage.models.tfidf import build_features

        self.labels = sorted(set(labels))
        self.pipe = make_pipeline(build_features(max_features=None), LinearSVC(C=0.5))
        self.pipe.fit(list(texts), [self.labels.index(x) for x in labels])

    def predict_proba(self, texts):
        # one-hot of the decision: the baseline has no probabilities (top-2 from the margins)
        scores = self.pipe.decision_function(list(texts))
        e = np.exp(scores - scores.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)


def measure_latency(predictor: TriagePredictor, texts: list[str], n: int) -> dict:
    for t in texts[:5]:  # warm-up
        predictor.predict(t)
    times = []
    for t in texts[:n]:
        t0 = time.perf_counter()
        predictor.predict(t)
        times.append(time.perf_counter() - t0)
    return latency_summary(times)


def run(args: argparse.Namespace) -> dict:
    data = load_complaints(args.data)
    parts = split(data)
    tr, va, te = (data.subset(parts.train), data.subset(parts.validation),
                  data.subset(parts.test))
    extra_train, extra_test = None, None
    if args.extra and Path(args.extra).is_file():
        from sklearn.model_selection import train_test_split

        extra = load_complaints(args.extra)
        idx_tr, idx_te = train_test_split(np.arange(len(extra)), test_size=0.3, random_state=0,
                                          stratify=extra.labels)
        extra_train, extra_test = extra.subset(idx_tr), extra.subset(idx_te)
    results: dict = {"data": data.report.to_dict(), "split": parts.to_dict(),
                     "machine": {"cpu_count": __import__("os").cpu_count(),
                                 "python": platform.python_version()}, "models": {}}
    candidates = [("baseline_tfidf_svm", PlainSvmBaseline, False)] + [
        (name, lambda name=name: families.create(name), False) for name in args.models]
    if extra_train is not None:
        candidates.append(("tfidf + weak extra departments", lambda: families.create("tfidf"),
                           True))
    for name, make, use_extra in candidates:
        print(f"== {name}", flush=True)
        model = make()
        t0 = time.perf_counter()
        train_texts, train_labels = tr.texts, tr.labels
        if use_extra:
            train_texts = train_texts + extra_train.texts
            train_labels = train_labels + extra_train.labels
        model.fit(train_texts, train_labels, va.texts, va.labels)
        fit_s = time.perf_counter() - t0
        labels = model.labels
        y_val = np.array([labels.index(x) for x in va.labels])
        y_te = np.array([labels.index(x) for x in te.labels])
        val_p = model.predict_proba(va.texts)
        abstain = choose_min_confidence(val_p, y_val)
        if hasattr(model, "_encoder"):
            from medai.core.embeddings import E5Encoder

            model._encoder = E5Encoder(cache_dir=None)  # speed without the embedding cache
        t0 = time.perf_counter()
        proba = model.predict_proba(te.texts)
        batch_s = time.perf_counter() - t0
        rep = classification_report(y_te, proba, labels, departments.display_names(labels))
        card = ModelCard(task="triage", model_type=name, labels=labels,
                         thresholds={"min_confidence": abstain["min_confidence"]})
        predictor = TriagePredictor(model, card)
        latency = measure_latency(predictor, te.texts, args.latency_n)
        answered = proba.max(1) >= abstain["min_confidence"]
        row = {
            "macro_f1": rep["macro_f1"], "accuracy": rep["accuracy"],
            "weighted_f1": rep["weighted_f1"], "top2_accuracy": rep["top2_accuracy"],
            "ece": rep["ece"], "per_class_f1": {k: v["f1"] for k, v in rep["per_class"].items()},
            "fit_seconds": fit_s, "latency_single": latency,
            "batch_texts_per_second": len(te.texts) / batch_s,
            "abstain_threshold": abstain["min_confidence"],
            "test_coverage": float(answered.mean()),
            "test_accuracy_when_answered": float((proba.argmax(1) == y_te)[answered].mean()),
        }
        if extra_test is not None:
            real = set(tr.labels)
            pick = [i for i, lab in enumerate(extra_test.labels) if lab not in real]
            p_out = model.predict_proba([extra_test.texts[i] for i in pick])
            gold = [extra_test.labels[i] for i in pick]
            pred = [labels[j] for j in p_out.argmax(1)]
            answered = p_out.max(1) >= abstain["min_confidence"]
            row["out_of_scope"] = {
                "n": len(pick), "abstained": float((~answered).mean()),
                "right_department": float(np.mean([p == g for p, g in zip(pred, gold,
                                                                          strict=True)])),
                "answered_wrong": float(np.mean([a and p != g for a, p, g in
                                                 zip(answered, pred, gold, strict=True)]))}
        results["models"][name] = row
        write_outputs(rep, Path(args.out) / name)
        print(json.dumps({k: row[k] for k in ("macro_f1", "accuracy", "top2_accuracy")}),
              f"p50={latency['p50_ms']:.1f}ms", flush=True)
    return results


def markdown(results: dict) -> str:
    lines = ["| model | macro-F1 | accuracy | top-2 acc | ECE | p50 ms | p95 ms | batch texts/s "
             "| abstain thr. | coverage (acc. answered) | other depts: abstained / right dept / "
             "answered wrong |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["models"].items():
        oos = r.get("out_of_scope")
        oos_text = (f"{oos['abstained']:.2f} / {oos['right_department']:.2f} / "
                    f"{oos['answered_wrong']:.2f} (n={oos['n']})" if oos else "–")
        lines.append(
            f"| {name} | {r['macro_f1']:.4f} | {r['accuracy']:.4f} | {r['top2_accuracy']:.4f} "
            f"| {r['ece']:.4f} | {r['latency_single']['p50_ms']:.1f} "
            f"| {r['latency_single']['p95_ms']:.1f} | {r['batch_texts_per_second']:.0f} "
            f"| {r['abstain_threshold']:.2f} | {r['test_coverage']:.3f} "
            f"({r['test_accuracy_when_answered']:.3f}) "
            f"| {oos_text} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="docs/benchmarks/triage")
    ap.add_argument("--extra", default=None, help="CSV of other departments (out-of-scope)")
    ap.add_argument("--models", nargs="+", default=["tfidf", "encoder", "tfidf+encoder"])
    ap.add_argument("--latency-n", type=int, default=200)
    args = ap.parse_args()
    if not Path(args.data).is_file():
        raise SystemExit(f"skip: {args.data} not found")
    results = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    table = markdown(results)
    (out / "results.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
