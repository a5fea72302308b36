"""Can a reader of *when* and *whose*, learned from real posts labelled for it, tell the rules'
urgent firings from the rest? A probe on the 440 posts the served engine fires on in the
training half and the validation quarter of the real posts (never the report quarter), each read
by one of four helper reviewers who saw the post and PRESENTATIONS.md only, never the rules or
which flag fired: urgent / unsure / not urgent, when the sign is (now, recent, past, chronic,
hypothetical, no sign) and whose (docs/benchmarks/red_flags/when_labels_2026-11-26.jsonl: ids,
verdicts and short reasons, no patient text).

Per feature set (the classifier's scores on the post, a window and the sentence of each rule hit;
the reader's times of the hits; e5 embeddings of the hit sentences, windows and the whole post;
character n-grams) a logistic regression is scored by 10-fold cross-validation (5 seeds): its
AUROC against "urgent or unsure", and the share of firings a gate could silence while silencing
no urgent post and at most 0, 2 or 5 urgent-or-unsure ones. Aggregates only.

    python benchmarks/red_flag_when_probe.py --complaints ../shared/data/triage/complaints.csv \\
        --out docs/benchmarks/red_flags/when_probe_2026-11-26.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

LABELS = (
    Path(__file__).resolve().parents[1]
    / "docs"
    / "benchmarks"
    / "red_flags"
    / "when_labels_2026-11-26.jsonl"
)
CURRENT = ("now", "recent")


def post_features(engine, text: str) -> dict:
    """What a gate could read of one firing post (the rules' hits of the flags that fired)."""
    from medai.triage.red_flags.tokens import span

    a = engine.analyse(text)
    toks = a.tokens
    fired = {f.id for f in engine.decide(text, a).flags if "rules" in f.detectors}
    hits = [h for m in a.matches if not m.past and m.flag_id in fired for h in m.hits]

    def sentence(h):
        idx = [
            i
            for i, t in enumerate(toks)
            if t.sentence in (toks[h.first].sentence, toks[h.last].sentence)
        ]
        return idx[0], idx[-1]

    def window(h, k=10):
        return max(0, h.first - k), min(len(toks) - 1, h.last + k)

    sents = [span(text, toks, *b) for b in sorted({sentence(h) for h in hits})]
    wins = [span(text, toks, *b) for b in sorted({window(h) for h in hits})]

    def best(parts):
        return max((engine.analyse(p).classifier.score for p in parts), default=0.0)

    return {
        "n": len(toks),
        "whole": a.classifier.score,
        "window": best(wins),
        "sentence": best(sents),
        "present": sum(h.time == "present" for h in hits),
        "unclear": sum(h.time == "unclear" for h in hits),
        "hits": len(hits),
        "sents": sents,
        "wins": wins,
    }


def scalars(f: dict) -> list[float]:
    return [
        np.log(f["whole"] + 1e-4),
        np.log(f["window"] + 1e-4),
        np.log(f["sentence"] + 1e-4),
        float(f["present"] > 0),
        float(f["unclear"] > 0),
        np.log(f["n"]),
        f["hits"],
    ]


def gate_shares(p: np.ndarray, verdict: np.ndarray) -> dict:
    """Share of firings silenced below the highest threshold that silences no urgent post and
    at most k urgent-or-unsure ones."""
    urgent = np.sort(p[verdict == "urgent"])
    either = np.sort(p[verdict != "not_urgent"])
    out = {}
    for k in (0, 2, 5):
        t = min(either[k], urgent[0]) if len(either) > k and len(urgent) else 0.0
        out[f"silenced_share_at_{k}_urgent_or_unsure"] = round(float(np.mean(p < t)), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--complaints", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from medai.core.embeddings import E5Encoder
    from medai.settings import get_settings
    from medai.triage.red_flags import build_engine, learn

    labels = {j["id"]: j for j in map(json.loads, LABELS.read_text().splitlines())}
    texts = dict(learn.read_real_posts(Path(args.complaints)))
    ids = sorted(i for i in labels if i in texts)
    assert all(learn.real_part(i) != "report" for i in ids), "a report-quarter post"
    engine = build_engine(embeddings=False)
    feats = [post_features(engine, texts[i]) for i in ids]
    encoder = E5Encoder(cache_dir=get_settings().storage.cache_dir / "red_flags")

    def mean_embedding(key):
        flat = [t for f in feats for t in f[key]]
        vecs = dict(zip(flat, encoder.encode(flat), strict=True))
        return np.array(
            [
                np.mean([vecs[t] for t in f[key]], axis=0)
                if f[key]
                else np.zeros(encoder.dim, np.float32)
                for f in feats
            ]
        )

    X = {
        "scores and times": np.array([scalars(f) for f in feats]),
        "e5 hit sentences": mean_embedding("sents"),
        "e5 hit windows": mean_embedding("wins"),
        "e5 whole post": encoder.encode([texts[i] for i in ids]),
    }
    X["e5 sentences + scores"] = np.hstack([X["e5 hit sentences"], X["scores and times"]])
    chars = [" ".join(f["sents"]).lower() for f in feats]
    verdict = np.array([labels[i]["verdict"] for i in ids])
    targets = {
        "when: now or recent": np.array([labels[i]["when"] in CURRENT for i in ids]),
        "urgent or unsure": verdict != "not_urgent",
    }
    rows = []
    for target, y in targets.items():
        for name, data in [*X.items(), ("char n-grams of hit sentences", chars)]:
            dense = name != "char n-grams of hit sentences"
            ps = []
            for seed in range(5):
                model = (
                    make_pipeline(
                        StandardScaler(),
                        LogisticRegression(
                            C=1.0 if name == "scores and times" else 0.01,
                            max_iter=5000,
                            class_weight="balanced",
                        ),
                    )
                    if dense
                    else make_pipeline(
                        TfidfVectorizer(
                            analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2
                        ),
                        LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced"),
                    )
                )
                ps.append(
                    cross_val_predict(
                        model,
                        data,
                        y,
                        method="predict_proba",
                        cv=StratifiedKFold(10, shuffle=True, random_state=seed),
                    )[:, 1]
                )
            p = np.mean(ps, axis=0)
            rows.append(
                {
                    "target": target,
                    "features": name,
                    "auroc_urgent_or_unsure": round(
                        float(roc_auc_score(verdict != "not_urgent", p)), 4
                    ),
                    "auroc_target": round(float(roc_auc_score(y, p)), 4),
                    **gate_shares(p, verdict),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    counts = {v: int((verdict == v).sum()) for v in ("urgent", "unsure", "not_urgent")}
    Path(args.out).write_text(
        json.dumps({"posts": len(ids), "verdicts": counts, "rows": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
