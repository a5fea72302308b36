"""Report-drafting benchmark, in one run:

1. IU X-ray reports (real reports with MeSH labels): each report's own labels are given to the
   drafter; the draft is compared with the reference report (findings + impression) by the
   rule-based finding extractor (clinical finding F1, CheXbert-style: positive mentions per
   label) and by ROUGE-L / BLEU. Baseline: label-conditioned retrieval — the reference text of
   a *training* report with the same label set (the most frequent such text), a strong simple
   baseline in report generation. The extractor itself is also checked against the MeSH labels.
2. Retrieval captioners on the shared caption pairs (held-out caption groups) beside the best
   constant caption, the nearest neighbour's caption and the oracle ceiling
   (``caption_select``), on one split and over repeated caption-group splits.

    python benchmarks/report_benchmark.py \
        --iu ../shared/data/knowledge/iu_xray_reports/iu_reports.csv \
        --pairs ../shared/data/captions/ieee8023_pairs/pairs.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from medai.reporting.captioning.caption_metrics import bleu, rouge
from medai.reporting.draft import Finding, draft_report
from medai.reporting.findings import mesh_labels, positive_labels
from medai.reporting.knowledge import builtin_chunks
from medai.reporting.retrieve import HybridRetriever

# labels the IU MeSH headings can express and the extractor can read
EVAL_LABELS = [
    "Cardiomegaly",
    "Effusion",
    "Atelectasis",
    "Lung Opacity",
    "Nodule",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Pneumothorax",
    "Fracture",
    "Hernia",
    "Infiltration",
    "Pneumonia",
    "Mass",
    "Fibrosis",
    "No Finding",
]
# what a chest X-ray model assesses besides the positives: stated as negatives in the draft
ASSESSED = ["Pneumothorax", "Effusion", "Consolidation", "Edema", "Cardiomegaly"]


def reference_text(row: dict) -> str:
    parts = [row.get("findings") or "", row.get("impression") or ""]
    return " ".join(p for p in parts if p and p != "None.").strip()


def label_f1(gold: list[set[str]], pred: list[set[str]]) -> dict:
    per = {}
    tp_all = fp_all = fn_all = 0
    for lab in EVAL_LABELS:
        tp = sum(lab in g and lab in p for g, p in zip(gold, pred, strict=True))
        fp = sum(lab not in g and lab in p for g, p in zip(gold, pred, strict=True))
        fn = sum(lab in g and lab not in p for g, p in zip(gold, pred, strict=True))
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
        support = tp + fn
        f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else None
        per[lab] = {"support": support, "f1": f1}
    macro = [v["f1"] for v in per.values() if v["support"] >= 10 and v["f1"] is not None]
    micro = 2 * tp_all / (2 * tp_all + fp_all + fn_all) if tp_all + fp_all + fn_all else None
    return {
        "micro_f1": micro,
        "macro_f1": float(np.mean(macro)) if macro else None,
        "per_label": per,
    }


def iu_benchmark(path: Path, seed: int = 13) -> dict:
    rows = [r for r in csv.DictReader(path.open(encoding="utf-8")) if reference_text(r)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    n_test = len(rows) // 4
    test = [rows[i] for i in order[:n_test]]
    train = [rows[i] for i in order[n_test:]]
    refs = [reference_text(r) for r in test]
    mesh = [mesh_labels(r["mesh_major"]) for r in test]
    ref_found = [positive_labels(t) for t in refs]
    out: dict = {"n_reports": len(rows), "n_test": len(test), "split": "random 75/25, seed 13"}
    out["extractor_vs_mesh"] = label_f1(mesh, ref_found)

    retriever = HybridRetriever(builtin_chunks(), use_embeddings=False)
    drafts, t0 = [], time.perf_counter()
    for labels in tqdm(mesh, desc="drafting"):
        positives = [lab for lab in labels if lab != "No Finding"]
        findings = [Finding(lab, True) for lab in labels] + [
            Finding(lab, False) for lab in ASSESSED if lab not in positives
        ]
        d = draft_report(findings, retriever)
        drafts.append(d["sections"]["findings"] + " " + d["sections"]["impression"])
    out["draft_ms_per_report"] = 1000 * (time.perf_counter() - t0) / max(1, len(mesh))

    by_labels: dict[frozenset, Counter] = defaultdict(Counter)
    for r in train:
        by_labels[frozenset(mesh_labels(r["mesh_major"]))][reference_text(r)] += 1
    normal = by_labels[frozenset({"No Finding"})].most_common(1)[0][0]
    retrieved = []
    for labels in mesh:
        pool = by_labels.get(frozenset(labels))
        retrieved.append(pool.most_common(1)[0][0] if pool else normal)

    systems = {
        "template drafter (medai)": drafts,
        "baseline: label-conditioned report retrieval": retrieved,
        "baseline: always the commonest normal report": [normal] * len(refs),
    }
    out["systems"] = {}
    for name, texts in systems.items():
        found = [positive_labels(t) for t in texts]
        out["systems"][name] = {
            "finding_f1_vs_reference_extraction": label_f1(ref_found, found),
            "finding_f1_vs_mesh": label_f1(mesh, found),
            **bleu(texts, [[r] for r in refs]),
            **rouge(texts, [[r] for r in refs]),
        }
    out["examples"] = [
        {"labels": sorted(m), "reference": r, "draft": d}
        for m, r, d in list(zip(mesh, refs, drafts, strict=True))[:5]
    ]
    return out


def caption_benchmark(pairs: Path) -> dict:
    """The captioners beside their baselines (best constant caption, nearest neighbour's
    caption, oracle ceiling) on the same caption-group split, in one run; the earlier
    word-vote consensus (k=5) is the code before the expected-overlap selection. Each also
    gets the nested repeated-split comparison that decides its card's verdict."""
    from medai.core.model_dir import bundled_models_dir
    from medai.reporting.pipeline import build_captioner

    cxr = str(bundled_models_dir() / "cxr-default")
    runs = {
        "expected-overlap, EfficientNet-Lite0 (bundled)": {},
        "expected-overlap, cxr-default features": {"embedder": cxr},
        "before: word-vote consensus, k=5": {"selection": "consensus", "k": 5},
    }
    results = {}
    for name, options in runs.items():
        m = build_captioner(pairs, None, **options)
        m.pop("examples", None)
        results[name] = m
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iu", type=Path, required=True)
    ap.add_argument("--pairs", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/reporting"))
    args = ap.parse_args()
    result = {"iu_xray": iu_benchmark(args.iu)}
    if args.pairs:
        result["captions"] = caption_benchmark(args.pairs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    for name, s in result["iu_xray"]["systems"].items():
        f = s["finding_f1_vs_reference_extraction"]
        print(
            f"{name}: finding micro-F1 {f['micro_f1']:.3f} macro-F1 {f['macro_f1']:.3f} "
            f"ROUGE-L {s['rouge_l']:.3f} BLEU-4 {s['bleu_4']:.3f}"
        )
    e = result["iu_xray"]["extractor_vs_mesh"]
    print(f"extractor vs MeSH: micro-F1 {e['micro_f1']:.3f} macro-F1 {e['macro_f1']:.3f}")
    for name, m in result.get("captions", {}).items():
        print(
            f"{name}: n={m['n']} BLEU-1 {m['bleu_1']:.3f} BLEU-4 {m['bleu_4']:.3f} "
            f"ROUGE-L {m['rouge_l']:.3f} METEOR {m['meteor']:.3f} CIDEr {m['cider']:.3f}"
        )
        base = m["baselines"]
        for row, values in base["table"].items():
            print(f"    {row}: ROUGE-L {values['rouge_l']}")
        for key, paired in base.get("paired", {}).items():
            print(
                f"    {key}: {paired['mean_difference']:+.4f} (95 % CI {paired['ci95']}), "
                f"splits won {paired['splits_won']:.0%}"
            )
        print(f"    → {m['verdict']}")


if __name__ == "__main__":
    main()
