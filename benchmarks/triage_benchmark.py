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

from medai.core.baselines import verdict
from medai.core.metrics import classification_report, latency_summary
from medai.core.model_dir import ModelCard
from medai.triage import classifiers as families
from medai.triage import departments
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

        from medai.triage.classifiers.tfidf import build_features

        self.labels = sorted(set(labels))
        self.pipe = make_pipeline(build_features(max_features=None), LinearSVC(C=0.5))
        self.pipe.fit(list(texts), [self.labels.index(x) for x in labels])

    def predict_proba(self, texts):
        # one-hot of the decision: the baseline has no probabilities (top-2 from the margins)
        scores = self.pipe.decision_function(list(texts))
        e = np.exp(scores - scores.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)


def macro_f1_ci(
    y: np.ndarray,
    pred: np.ndarray,
    base: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Percentile-bootstrap 95 % CI of macro-F1 (resampling complaints) and, with ``base``
    (another model's predictions on the same complaints), of the paired difference. Labels
    are department names and macro-F1 runs over the departments of the gold labels, so a model
    that knows more departments is compared on the same ones."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(seed)
    gold = sorted(set(y.tolist()))

    def f1(yy, pp):
        return f1_score(
            yy,
            pp,
            labels=gold,
            average="macro",
            zero_division=0,
        )

    vals, diffs = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        vals.append(f1(y[idx], pred[idx]))
        if base is not None:
            diffs.append(vals[-1] - f1(y[idx], base[idx]))
    out = {"ci95": [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))]}
    if base is not None:
        out["vs_baseline"] = {
            "mean_difference": float(np.mean(diffs)),
            "ci95": [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))],
        }
    return out


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
    tr, va, te = (data.subset(parts.train), data.subset(parts.validation), data.subset(parts.test))
    extra_train, extra_test = None, None
    if args.extra and Path(args.extra).is_file():
        from sklearn.model_selection import train_test_split

        extra = load_complaints(args.extra)
        idx_tr, idx_te = train_test_split(
            np.arange(len(extra)), test_size=0.3, random_state=0, stratify=extra.labels
        )
        extra_train, extra_test = extra.subset(idx_tr), extra.subset(idx_te)
    results: dict = {
        "data": data.report.to_dict(),
        "split": parts.to_dict(),
        "machine": {"cpu_count": __import__("os").cpu_count(), "python": platform.python_version()},
        "models": {},
    }
    from medai.settings import get_settings

    cache = {"cache_dir": get_settings().storage.cache_dir}  # e5 embeddings of the encoder families
    candidates = [("baseline_tfidf_svm", PlainSvmBaseline, False)] + [
        (
            name,
            lambda name=name: families.create(name, **(cache if "encoder" in name else {})),
            False,
        )
        for name in args.models
    ]
    if extra_train is not None:
        # the extended variant beside the same baseline trained on the same rows
        candidates.insert(1, (EXTENDED_BASELINE, PlainSvmBaseline, True))
        candidates.append((EXTENDED, lambda: families.create("tfidf"), True))
    preds: dict[str, tuple] = {}
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
        # the model is chosen on validation: its confusions are read there, not on test
        val_rep = classification_report(y_val, val_p, labels, departments.display_names(labels))
        write_outputs(val_rep, Path(args.out) / name / "validation")
        if hasattr(model, "_encoder"):
            from medai.core.embeddings import E5Encoder

            model._encoder = E5Encoder(cache_dir=None)  # speed without the embedding cache
        t0 = time.perf_counter()
        proba = model.predict_proba(te.texts)
        batch_s = time.perf_counter() - t0
        rep = classification_report(y_te, proba, labels, departments.display_names(labels))
        card = ModelCard(
            task="triage",
            model_type=name,
            labels=labels,
            thresholds={"min_confidence": abstain["min_confidence"]},
        )
        predictor = TriagePredictor(model, card)
        latency = measure_latency(predictor, te.texts, args.latency_n)
        answered = proba.max(1) >= abstain["min_confidence"]
        names = np.array(labels, dtype=object)
        preds[name] = (
            np.array(te.labels, dtype=object),
            names[proba.argmax(1)],
            np.array(va.labels, dtype=object),
            names[val_p.argmax(1)],
        )
        y_te_n, pred_te_n, y_val_n, pred_val_n = preds[name]
        base = preds.get(EXTENDED_BASELINE if use_extra else "baseline_tfidf_svm")
        default = preds.get("tfidf")
        row = {
            "validation": {
                "macro_f1": val_rep["macro_f1"],
                "accuracy": val_rep["accuracy"],
                "ece": val_rep["ece"],
                "ci95_macro_f1": macro_f1_ci(
                    y_val_n, pred_val_n, base[3] if base and name not in BASELINES else None
                ),
            },
            # a heavier family replaces the default only if it wins on validation, paired
            "validation_vs_tfidf": macro_f1_ci(y_val_n, pred_val_n, default[3])["vs_baseline"]
            if default is not None and name != "tfidf"
            else None,
            "test_ci95_macro_f1": macro_f1_ci(
                y_te_n, pred_te_n, base[1] if base and name not in BASELINES else None
            ),
            "macro_f1": rep["macro_f1"],
            "accuracy": rep["accuracy"],
            "weighted_f1": rep["weighted_f1"],
            "top2_accuracy": rep["top2_accuracy"],
            "ece": rep["ece"],
            "per_class_f1": {k: v["f1"] for k, v in rep["per_class"].items()},
            "fit_seconds": fit_s,
            "latency_single": latency,
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
                "n": len(pick),
                "abstained": float((~answered).mean()),
                "right_department": float(
                    np.mean([p == g for p, g in zip(pred, gold, strict=True)])
                ),
                "answered_wrong": float(
                    np.mean([a and p != g for a, p, g in zip(answered, pred, gold, strict=True)])
                ),
            }
        results["models"][name] = row
        write_outputs(rep, Path(args.out) / name)
        print(
            json.dumps({k: row[k] for k in ("macro_f1", "accuracy", "top2_accuracy")}),
            f"p50={latency['p50_ms']:.1f}ms",
            flush=True,
        )
    return results


def markdown(results: dict) -> str:
    lines = [
        "| model | validation macro-F1 (vs baseline, 95 % CI) | test macro-F1 [95 % CI] "
        "| accuracy | top-2 acc | ECE | p50 ms | p95 ms | batch texts/s "
        "| abstain thr. | coverage (acc. answered) | other depts: abstained / right dept / "
        "answered wrong |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["models"].items():
        oos = r.get("out_of_scope")
        oos_text = (
            f"{oos['abstained']:.2f} / {oos['right_department']:.2f} / "
            f"{oos['answered_wrong']:.2f} (n={oos['n']})"
            if oos
            else "–"
        )
        val = r["validation"]
        vs = val["ci95_macro_f1"].get("vs_baseline")
        vs_text = (
            f" ({vs['mean_difference']:+.4f}, [{vs['ci95'][0]:+.4f}, {vs['ci95'][1]:+.4f}])"
            if vs
            else ""
        )
        lo, hi = r["test_ci95_macro_f1"]["ci95"]
        lines.append(
            f"| {name} | {val['macro_f1']:.4f}{vs_text} | {r['macro_f1']:.4f} "
            f"[{lo:.3f}, {hi:.3f}] | {r['accuracy']:.4f} | {r['top2_accuracy']:.4f} "
            f"| {r['ece']:.4f} | {r['latency_single']['p50_ms']:.1f} "
            f"| {r['latency_single']['p95_ms']:.1f} | {r['batch_texts_per_second']:.0f} "
            f"| {r['abstain_threshold']:.2f} | {r['test_coverage']:.3f} "
            f"({r['test_accuracy_when_answered']:.3f}) "
            f"| {oos_text} |"
        )
    return "\n".join(lines)


KEPT_BECAUSE_TRIAGE = (
    "The baseline is this model without class weights and without calibration. Where their "
    "macro-F1 ties, only this model's probabilities are calibrated (ECE about 0.02 against "
    "0.24), which the abstention threshold and the out-of-scope referral rely on."
)


EXTENDED = "tfidf + weak extra departments"
EXTENDED_BASELINE = "baseline_tfidf_svm + weak extra departments"
BASELINES = ("baseline_tfidf_svm", EXTENDED_BASELINE)


def record_card(results: dict, data: str, directory: Path, extended: bool = False) -> None:
    """The bundled family (tfidf) beside the TF-IDF + linear SVM baseline, on validation (where
    a model is chosen) and test, written into the card of a model trained on this split.
    ``extended``: the variant trained with the weak extra departments, beside the baseline
    trained on the same rows (both scored on the real departments' complaints)."""
    from medai.core.baselines import compare
    from medai.core.model_dir import record_in_card

    rows = results["models"]
    model_row, base_row = (
        (EXTENDED, EXTENDED_BASELINE) if extended else ("tfidf", "baseline_tfidf_svm")
    )
    if model_row not in rows or base_row not in rows:
        return
    model_name = (
        "tfidf + weak extra departments (bundled triage-extended's recipe; 70 % of the extra rows)"
        if extended
        else "tfidf (bundled family)"
    )
    tried = () if extended else ("encoder", "tfidf+encoder")
    on = {"validation": "validation split", "test": "held-out test split"}
    tables = {}
    for part in ("validation", "test"):
        systems = {}
        for n in (model_row, base_row, *tried):
            if n not in rows:
                continue
            label = (
                model_name
                if n == model_row
                else "baseline: TF-IDF + linear SVM" + (", same extra rows" if extended else "")
                if n == base_row
                else f"also tried: {n}"
            )
            systems[label] = rows[n]["validation"] if part == "validation" else rows[n]
        base_label = next(k for k in systems if k.startswith("baseline"))
        ci = (
            rows[model_row]["validation"]["ci95_macro_f1"]
            if part == "validation"
            else rows[model_row]["test_ci95_macro_f1"]
        ).get("vs_baseline")
        tables[part] = compare(
            model_name,
            {k: v for k, v in systems.items() if not k.startswith("also tried")},
            "macro_f1",
            on=f"{on[part]} of {Path(data).name}",
            also=("accuracy", "ece"),
            paired={base_label: ci["ci95"]} if ci else None,
            # the extended variant is not a default: nothing to justify
            kept_because=None if extended else KEPT_BECAUSE_TRIAGE,
        )
        tables[part]["also_tried"] = {
            k: {"macro_f1": round(v["macro_f1"], 4)}
            for k, v in systems.items()
            if k.startswith("also tried")
        }
    entry = tables["validation"]
    entry["test"] = tables["test"]
    if extended and rows[model_row].get("out_of_scope"):
        # what the extra departments are for: complaints of departments with no real text
        entry["extra_departments"] = {
            n: rows[n].get("out_of_scope") for n in (model_row, base_row, "tfidf") if n in rows
        }
    record_in_card(directory, entry)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="docs/benchmarks/triage")
    ap.add_argument("--extra", default=None, help="CSV of other departments (out-of-scope)")
    ap.add_argument("--models", nargs="+", default=["tfidf", "encoder", "tfidf+encoder"])
    ap.add_argument("--latency-n", type=int, default=200)
    ap.add_argument(
        "--update-card",
        type=Path,
        default=None,
        help="a tfidf model directory trained on this split (the bundled "
        "triage-default): write the tfidf-vs-baselines comparison into its card",
    )
    ap.add_argument(
        "--update-extended-card",
        type=Path,
        default=None,
        help="the bundled triage-extended directory (needs --extra): write the "
        "extended variant-vs-baseline comparison into its card",
    )
    args = ap.parse_args()
    if not Path(args.data).is_file():
        raise SystemExit(f"skip: {args.data} not found")
    results = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    if args.update_card is not None:
        record_card(results, args.data, args.update_card)
        card = json.loads((args.update_card / "model_card.json").read_text())
        print(f"card: {verdict(card['baselines'])}")
    if args.update_extended_card is not None:
        record_card(results, args.data, args.update_extended_card, extended=True)
        card = json.loads((args.update_extended_card / "model_card.json").read_text())
        print(f"extended card: {verdict(card['baselines'])}")
    table = markdown(results)
    (out / "results.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
