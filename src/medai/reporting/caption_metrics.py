"""Caption metrics with the ImageCLEFmedical caption preprocessing.

Preprocessing (as in the ImageCLEFmedical caption task's evaluation): lowercase, numbers →
"number", punctuation removed, whitespace collapsed. Then BLEU-1..4 (corpus level, NLTK),
ROUGE-1/ROUGE-L F (Google's ``rouge-score``), METEOR (NLTK: exact and Porter-stem matches; its
WordNet synonym stage is skipped because the WordNet corpus cannot be downloaded offline, so
scores are slightly below the Java METEOR's) and CIDEr-D (as in pycocoevalcap: TF-IDF n-gram
vectors over the references, n = 1..4, Gaussian length penalty σ = 6, clipping, ×10).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def preprocess(text: str) -> str:
    text = _NUMBER.sub(" number ", str(text).lower())
    return " ".join(text.translate(_PUNCT).split())


def _tokens(text: str) -> list[str]:
    return preprocess(text).split()


class _NoWordNet:
    """Stands in for NLTK's WordNet reader: no synonyms (the corpus is not available offline)."""

    def synsets(self, *_args, **_kwargs) -> list:
        return []


def bleu(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    hyps = [_tokens(c) for c in candidates]
    refs = [[_tokens(r) for r in rs] for rs in references]
    smooth = SmoothingFunction().method1
    out = {}
    for n in range(1, 5):
        weights = tuple([1.0 / n] * n)
        out[f"bleu_{n}"] = float(corpus_bleu(refs, hyps, weights=weights,
                                             smoothing_function=smooth))
    return out


def rouge(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=False)
    r1, rl = [], []
    for cand, refs in zip(candidates, references, strict=True):
        # best reference per candidate, as multi-reference ROUGE is usually reported
        scores = [scorer.score(preprocess(ref), preprocess(cand)) for ref in refs]
        r1.append(max(s["rouge1"].fmeasure for s in scores))
        rl.append(max(s["rougeL"].fmeasure for s in scores))
    return {"rouge_1": _mean(r1), "rouge_l": _mean(rl)}


def meteor(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    from nltk.translate.meteor_score import meteor_score

    wn = _NoWordNet()
    return _mean([meteor_score([_tokens(r) for r in refs], _tokens(cand), wordnet=wn)
                  for cand, refs in zip(candidates, references, strict=True)])


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def cider_d(candidates: Sequence[str], references: Sequence[Sequence[str]],
            sigma: float = 6.0) -> float:
    """CIDEr-D over the corpus (document frequencies from the references)."""
    cands = [_tokens(c) for c in candidates]
    refs = [[_tokens(r) for r in rs] for rs in _ref_lists(references)]
    if not cands:
        return 0.0
    df: Counter = Counter()
    for rs in refs:
        df.update({g for r in rs for n in range(1, 5) for g in _ngrams(r, n)})
    log_n = math.log(float(len(refs)))

    def vec(tokens: list[str], n: int) -> tuple[dict, float]:
        counts = _ngrams(tokens, n)
        v = {g: tf * (log_n - math.log(max(1.0, df[g]))) for g, tf in counts.items()}
        return v, math.sqrt(sum(x * x for x in v.values()))

    scores = []
    for cand, rs in zip(cands, refs, strict=True):
        total = 0.0
        for n in range(1, 5):
            vc, nc = vec(cand, n)
            sims = []
            for r in rs:
                vr, nr = vec(r, n)
                dot = sum(min(vc[g], vr[g]) * vr[g] for g in vc if g in vr)
                sim = dot / (nc * nr) if nc and nr else 0.0
                sims.append(sim * math.exp(-((len(cand) - len(r)) ** 2) / (2 * sigma ** 2)))
            total += sum(sims) / max(1, len(rs))
        scores.append(total / 4 * 10.0)
    return _mean(scores)


def caption_scores(candidates: Sequence[str], references: Sequence[Sequence[str] | str]
                   ) -> dict[str, float | int]:
    """All caption metrics; ``references``: one string or a list of strings per candidate."""
    refs = _ref_lists(references)
    if len(candidates) != len(refs):
        raise ValueError(f"{len(candidates)} candidates but {len(refs)} reference sets")
    if not candidates:
        raise ValueError("no captions to score")
    out: dict[str, float | int] = {"n": len(candidates)}
    out.update(bleu(candidates, refs))
    out.update(rouge(candidates, refs))
    out["meteor"] = meteor(candidates, refs)
    out["cider"] = cider_d(candidates, refs)
    return out


def bertscore(candidates: Sequence[str], references: Sequence[str], model_dir: str,
              batch_size: int = 16) -> dict[str, float]:
    """BERTScore (greedy cosine matching of contextual token embeddings, no IDF, no baseline
    rescaling) with a local Hugging Face encoder directory — nothing is downloaded."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()

    def embed(texts: Sequence[str]) -> list[torch.Tensor]:
        out = []
        for i in range(0, len(texts), batch_size):
            enc = tok(list(texts[i:i + batch_size]), return_tensors="pt", padding=True,
                      truncation=True, max_length=256, return_special_tokens_mask=True)
            special = enc.pop("special_tokens_mask").bool()
            with torch.no_grad():
                hidden = model(**enc).last_hidden_state
            for h, m, s in zip(hidden, enc["attention_mask"].bool(), special, strict=True):
                keep = m & ~s
                out.append(torch.nn.functional.normalize(h[keep if keep.any() else m], dim=-1))
        return out

    ps, rs, fs = [], [], []
    for c, r in zip(embed(candidates), embed(references), strict=True):
        sim = c @ r.T
        p, rec = float(sim.max(1).values.mean()), float(sim.max(0).values.mean())
        ps.append(p)
        rs.append(rec)
        fs.append(2 * p * rec / (p + rec) if p + rec > 0 else 0.0)
    return {"bertscore_p": _mean(ps), "bertscore_r": _mean(rs), "bertscore_f1": _mean(fs)}


def _ref_lists(references: Sequence[Sequence[str] | str]) -> list[list[str]]:
    return [[r] if isinstance(r, str) else list(r) for r in references]


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else 0.0
