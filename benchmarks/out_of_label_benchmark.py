"""Out-of-label chest films: how many the bundled model's scope check flags, what the served
drafts say of them, and what the best detector we can fit on this data would reach — in one run.

    python benchmarks/out_of_label_benchmark.py --data ../shared/data/chest_xray/manifest.csv \
        [--out docs/benchmarks/imaging]

Every film of the manifest whose label is not one of the bundled model's labels (SARS,
Streptococcus, ARDS, Tuberculosis, unspecified "Pneumonia"; the manifest has no cardiomegaly or
Pneumocystis film) is read by ``cxr-default`` as served (ONNX Runtime):

- **served check** (``imaging.scope``: the gate's feature distance above the 99th percentile of
  the validation split's in-label frontal films): the share of each out-of-label group flagged,
  and the share of in-label frontal films (test and validation split) wrongly flagged;
- **candidates** fitted on the training split's in-label frontal films, each thresholded the
  same way (99th percentile of validation in-label): class-conditional Mahalanobis distance
  (Lee et al. 2018, shared Ledoit-Wolf covariance on 32 principal components), the cosine
  distance to the 5th nearest training film (Sun et al. 2022), the logits' energy and
  1 − the largest probability of the exclusive classes. For each: AUROC out-of-label (never
  trained on) vs test in-label, and what it costs to catch every film no label covers (ARDS,
  Tuberculosis): the share of in-label test films flagged at the highest threshold that does;
- **drafts**: each out-of-label film drafted (Turkish and English, the template) through
  ``reporting.drafter.Drafter`` — impressions asserting a diagnosis ("ile uyumlu",
  "consistent with"), naming one while flagged out of scope, or advising a test or treatment
  (``reporting.safety.advice_in``, on the sections and the passages they cite). "Before" is
  the same films drafted by an older tree (``--drafts-only`` under its ``src``), checked here
  by the same rules: ``make benchmark-out-of-label`` does both in one run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from out_of_scope_benchmark import (
    MODELS,
    OUT_OF_LABEL,
    auroc,
    features,
    manifest_rows,
    rate,
)

NEVER_TAUGHT = ("ARDS", "Tuberculosis")  # no label of the bundled model covers them
EXCLUSIVE = ("COVID-19", "Viral_Pneumonia", "Bacterial_Pneumonia", "No Finding")
ASSERTS = re.compile(r"ile uyumlu|consistent with|compatible with", re.I)


def _mahalanobis(train: np.ndarray, classes: np.ndarray, k: int = 32):
    """Class-conditional Mahalanobis distance with one shared covariance, in the training
    features' first ``k`` principal components: the smallest over the classes."""
    from sklearn.covariance import LedoitWolf
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(k, len(train) - 1), random_state=0).fit(train)
    z = pca.transform(train)
    means = {c: z[classes == c].mean(0) for c in np.unique(classes)}
    centred = np.concatenate([z[classes == c] - m for c, m in means.items()])
    precision = LedoitWolf().fit(centred).precision_

    def score(feats: np.ndarray) -> np.ndarray:
        q = pca.transform(feats)
        d = [np.einsum("ij,jk,ik->i", q - m, precision, q - m) for m in means.values()]
        return np.sqrt(np.min(d, axis=0))

    return score


def _knn(train: np.ndarray, k: int = 5):
    """Cosine distance to the ``k``-th nearest training film (features L2-normalised)."""
    bank = train / np.linalg.norm(train, axis=1, keepdims=True)

    def score(feats: np.ndarray) -> np.ndarray:
        q = feats / np.linalg.norm(feats, axis=1, keepdims=True)
        sims = np.sort(q @ bank.T, axis=1)[:, ::-1]
        return 1.0 - sims[:, k - 1]

    return score


def _cost_to_catch(s: np.ndarray, target: np.ndarray, in_label: np.ndarray) -> dict:
    """The highest threshold that flags every ``target`` film, and the share of in-label films
    it then flags."""
    thr = float(s[target].min())
    return {"threshold": thr, "in-label test flagged": rate(s[in_label] >= thr)}


def draft_texts(paths, predictor) -> list[dict]:
    """Each film drafted in both languages as served (template drafter): its sections and the
    text of the passages it cites. Checked by ``check_drafts``: run under an older tree
    (``--drafts-only``), this is the "before"."""
    from medai.imaging.io import load_image
    from medai.reporting.drafter import Drafter

    drafter = Drafter(embeddings=False)
    out = []
    for path in paths:
        image = load_image(path)
        row = {"file": Path(path).name}
        for lang in ("tr", "en"):
            d = drafter.draft(image, task="cxr", lang=lang, imaging_predictor=predictor)
            row[lang] = {
                "sections": d.sections.model_dump(),
                "citations": [c.text for c in d.citations],
            }
        out.append(row)
    return out


def check_drafts(drafts: list[dict]) -> dict:
    """How many drafts assert a diagnosis in the impression, name one while the film is
    flagged out of scope, or advise a test or treatment (sections or cited passages)."""
    from medai.reporting.findings import named_labels
    from medai.reporting.safety import advice_in

    counts = {"asserts a diagnosis": 0, "names a diagnosis while out of scope": 0, "advice": 0}
    examples: dict[str, str] = {}
    for row in drafts:
        for lang in ("tr", "en"):
            s, cited = row[lang]["sections"], row[lang]["citations"]
            oos = s["findings"].startswith(("Kapsam dışı", "Out of scope"))
            advice = advice_in(" ".join(s.values())) + [a for c in cited for a in advice_in(c)]
            hits = {
                "asserts a diagnosis": bool(ASSERTS.search(s["impression"])),
                "names a diagnosis while out of scope": oos
                and bool(named_labels(s["impression"]) - {"No Finding"}),
                "advice": bool(advice),
            }
            for k, v in hits.items():
                counts[k] += v
                if v and k not in examples:
                    examples[k] = (advice[0] if k == "advice" else s["impression"])[:200]
    n = 2 * len(drafts)
    return {**{k: rate_k(v, n) for k, v in counts.items()}, "examples": examples}


def rate_k(k: int, n: int) -> dict:
    return {"n": n, "k": int(k), "share": k / n if n else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/chest_xray/manifest.csv"))
    ap.add_argument("--model", type=Path, default=MODELS / "cxr-default")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/imaging"))
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument(
        "--drafts-only",
        type=Path,
        help="only draft the out-of-label films and write their text here (run under the tree "
        "before a change: its 'before')",
    )
    ap.add_argument("--before-drafts", type=Path, help="a --drafts-only file: checked as before")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if args.drafts_only is not None:
        from medai.core import model_dir

        rows = manifest_rows(args.data)
        paths = [p for p, r in rows.items() if r["label"] in OUT_OF_LABEL]
        texts = draft_texts(paths, model_dir.load(args.model))
        args.drafts_only.write_text(json.dumps(texts, ensure_ascii=False), "utf-8")
        return

    from medai.core import model_dir
    from medai.imaging.datasets import load_dataset, patient_split
    from medai.imaging.io import load_image
    from medai.imaging.pipeline import split_groups
    from medai.imaging.views import manifest_views

    t0 = time.perf_counter()
    cxr = model_dir.load(args.model)
    rows = manifest_rows(args.data)
    ds = load_dataset(args.data, "cxr")
    tr, va, te = patient_split(ds, seed=args.seed, groups=split_groups(ds))
    split = {}
    for name, idx in (("train", tr), ("validation", va), ("test", te)):
        for i in idx:
            split[str(Path(ds.records.path(i)).resolve())] = name
    views = manifest_views(args.data)
    paths = list(rows)
    logits, feats = features(cxr, [load_image(p).pixels for p in paths])
    label = np.array([rows[p]["label"] for p in paths])
    view = np.array([views[p][0] for p in paths])
    part = np.array([split.get(p, "not in any split") for p in paths])
    out_label = np.isin(label, OUT_OF_LABEL)
    frontal_in = ~out_label & (view != "lateral") & (view != "unknown")
    train_in, val_in, test_in = (frontal_in & (part == s) for s in ("train", "validation", "test"))
    never = np.isin(label, NEVER_TAUGHT)
    untrained = out_label & (part != "train")

    probs = cxr._activate(logits)
    decided = [cxr.decide(row) for row in probs]
    klass = np.array([max(EXCLUSIVE, key=lambda lab: p[cxr.labels.index(lab)]) for p in probs])
    excl = [cxr.labels.index(lab) for lab in EXCLUSIVE]
    scores = {
        "served: feature distance (gate), 99th pct of validation": cxr.gate.distance(feats),
        "class-conditional Mahalanobis (32 PCs, shared covariance)": _mahalanobis(
            feats[train_in], klass[train_in]
        )(feats),
        "kNN cosine distance (k=5, training films)": _knn(feats[train_in])(feats),
        "energy (-logsumexp of the logits)": -np.log(np.exp(logits).sum(1)),
        "1 - max probability (exclusive classes)": 1 - (1 / (1 + np.exp(-logits[:, excl]))).max(1),
    }
    detectors = {}
    for name, s in scores.items():
        thr = (
            float(cxr.out_of_scope.threshold)
            if name.startswith("served")
            else float(np.quantile(s[val_in], 0.99))
        )
        flagged = s > thr
        detectors[name] = {
            "threshold": thr,
            "in-label frontal, test split flagged (false flags)": rate(flagged[test_in]),
            "in-label frontal, validation split flagged": rate(flagged[val_in]),
            "out-of-label, all": rate(flagged[out_label]),
            **{f"out-of-label: {lab}": rate(flagged[label == lab]) for lab in OUT_OF_LABEL},
            "out-of-label never trained on": rate(flagged[untrained]),
            "no model label covers (ARDS, Tuberculosis)": rate(flagged[never]),
            "AUROC never-trained out-of-label vs test in-label": auroc(s[test_in], s[untrained]),
            "to catch every ARDS and Tuberculosis film": _cost_to_catch(s, never, test_in),
        }
    read_as = {
        lab: sorted(
            {", ".join(decided[i].stated) or decided[i].state for i in np.where(label == lab)[0]}
        )
        for lab in OUT_OF_LABEL
    }
    sources = {}
    for p, lab in zip(paths, label, strict=True):
        src = Path(p).name.split("_")[0]
        sources.setdefault(str(lab), {}).setdefault(src, 0)
        sources[str(lab)][src] += 1
    sel = np.where(out_label)[0]
    after = draft_texts([paths[i] for i in sel], cxr)
    drafts = {"after": check_drafts(after), "per_film_after": after}
    if args.before_drafts is not None:
        drafts["before"] = check_drafts(json.loads(args.before_drafts.read_text("utf-8")))
    result = {
        "benchmark": "out-of-label chest films (benchmarks/out_of_label_benchmark.py)",
        "model": cxr.identity.model_dump(mode="json"),
        "runtime": cxr.runtime,
        "data": {"manifest": str(args.data), "seed": args.seed, "films": len(paths)},
        "groups": {
            "out-of-label films": {lab: int((label == lab).sum()) for lab in OUT_OF_LABEL},
            "out-of-label films by split": {
                lab: {s: int(((label == lab) & (part == s)).sum()) for s in set(part)}
                for lab in OUT_OF_LABEL
            },
            "in-label frontal films: train, validation, test": [
                int(train_in.sum()),
                int(val_in.sum()),
                int(test_in.sum()),
            ],
        },
        "read by the model as": read_as,
        "sources by label (file prefix)": sources,
        "detectors": detectors,
        "drafts": drafts,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "out_of_label.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    summary = {k: result[k] for k in ("groups", "read by the model as", "detectors")}
    summary["drafts"] = {k: v for k, v in drafts.items() if k in ("before", "after")}
    print(json.dumps(summary, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
