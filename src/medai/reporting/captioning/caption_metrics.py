"""Caption metrics, each result naming the caption normalisation it was computed with.

Why a name: ImageCLEFmedical's text preprocessing and the one medai reported with before differ
in small ways that move every n-gram score, so a number without its normalisation cannot be
compared with anything. ``NORMALISATIONS`` is the one table of them:

``imageclef2025`` — exactly what the ImageCLEFmedical Caption 2025 evaluation does to a caption
before scoring: lowercase; every run of digits → ``number`` with no space added (``3.5`` →
``numbernumber``, ``T2`` → ``tnumber``); then the ASCII punctuation (``string.punctuation``)
deleted, not replaced by a space (``X-ray`` → ``xray``); whitespace left as it is. Source: the
organisers' evaluator, github.com/taubsity/clef-caption-evaluation,
``caption_prediction/evaluator.py`` (``preprocess_caption``, final version May 2025), written
by T. M. G. Pakull, an author of the overview (H. Damm et al., "Overview of ImageCLEFmedical
2025 – Medical Concept Detection and Interpretable Caption Generation", CEUR-WS Vol-4038, paper
170). The function is unchanged from the 2023 evaluator that repository started from and in the
2026 one (taubsity/clef-caption-evaluation-2026).

``medai-v1`` — what medai reported with before (the benchmark tables in docs/benchmarks.md and
the bundled caption-retrieval card): lowercase, a number with its decimals → `` number ``,
punctuation → a space, whitespace collapsed. It stays selectable, so those numbers can be
reproduced, and it remains the retrieval captioner's own word matching
(``caption_select.tokens``).

How ImageCLEFmedical 2025 scored captions (the evaluator above), per image and then averaged;
a pair whose captions are both empty scores 1 on each metric:

- **relevance** (the primary score) = mean of BERTScore F1 (``microsoft/deberta-xlarge-mnli``
  through ``bert_score``, idf weights from the normalised test references), ROUGE-1 F (Google's
  ``rouge-score`` tokenizer, no stemming, normalised captions) and image–caption similarity
  (MedImageInsight: 2.5 · max(cos, 0) of the image and the raw caption);
- **factuality** (the secondary score) = mean of UMLS concept F1 (MedCAT with a UMLS model pack,
  concepts of the MEDCON semantic types, raw captions) and AlignScore (AlignScore-base on
  roberta-large, ``nli_sp``, the reference as context and the caption as claim, raw captions);
- BLEURT (BLEURT-20-D12, normalised captions) is reported beside them.

Computed here: ROUGE-1 exactly so (``rouge_1`` under ``imageclef2025``), and BERTScore with a
local encoder when one is given (the 2025 normalisation and idf weighting, but not the official
checkpoint or its layer 40, so comparable within medai only). Not computed, and said so in every
2025 result (``NOT_COMPUTED_2025``): the official BERTScore, BLEURT, image–caption similarity,
UMLS concept F1 and AlignScore — their checkpoints (and, for MedCAT, a UMLS licence) are not
available offline — and therefore neither relevance nor factuality.

Beside them, as before and on the chosen normalisation's whitespace tokens: BLEU-1..4 (corpus
level, NLTK), ROUGE-L F, METEOR (NLTK: exact and Porter-stem matches; its WordNet synonym stage
is skipped because the WordNet corpus cannot be downloaded offline, so scores are slightly below
the Java METEOR's) and CIDEr-D (as in pycocoevalcap: TF-IDF n-gram vectors over the references,
n = 1..4, Gaussian length penalty σ = 6, clipping, ×10). ImageCLEFmedical no longer reports
these; they keep comparisons with earlier runs possible.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})
_DIGITS = re.compile(r"\d+")
_DELETE_PUNCT = str.maketrans("", "", string.punctuation)


def imageclef2025(text: str) -> str:
    """The ImageCLEFmedical Caption 2025 evaluator's ``preprocess_caption``, step for step."""
    return _DIGITS.sub("number", str(text).lower()).translate(_DELETE_PUNCT)


def medai_v1(text: str) -> str:
    """medai's earlier normalisation (numbers and punctuation become separate words)."""
    text = _NUMBER.sub(" number ", str(text).lower())
    return " ".join(text.translate(_PUNCT).split())


NORMALISATIONS: dict[str, Callable[[str], str]] = {
    "imageclef2025": imageclef2025,
    "medai-v1": medai_v1,
}
IMAGECLEF_2025 = "imageclef2025"
MEDAI_V1 = "medai-v1"

NOT_COMPUTED_2025: dict[str, str] = {
    "relevance": "the 2025 primary score, the mean of the official BERTScore, ROUGE-1 and "
    "image-caption similarity: two of its three parts are not computed here",
    "factuality": "the 2025 secondary score, the mean of UMLS concept F1 and AlignScore: "
    "neither is computed here",
    "bertscore": "the official one uses microsoft/deberta-xlarge-mnli (layer 40), not available "
    "offline; bertscore_f1, when present, comes from the local encoder given",
    "image_caption_similarity": "needs the MedImageInsight model, not available offline",
    "bleurt": "needs the BLEURT-20-D12 checkpoint, not available offline",
    "umls_concept_f1": "needs MedCAT with a UMLS model pack (a UMLS licence), not available "
    "offline",
    "alignscore": "needs the AlignScore-base checkpoint and roberta-large, not available offline",
}


def normalise(text: str, normalisation: str = MEDAI_V1) -> str:
    return _normaliser(normalisation)(text)


def _normaliser(name: str) -> Callable[[str], str]:
    try:
        return NORMALISATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown caption normalisation {name!r}: one of {', '.join(NORMALISATIONS)}"
        ) from None


def preprocess(text: str) -> str:
    """``medai-v1``: the retrieval captioner's word matching (``caption_select``)."""
    return medai_v1(text)


def _tokens(text: str, normalisation: str = MEDAI_V1) -> list[str]:
    return normalise(text, normalisation).split()


class _NoWordNet:
    """Stands in for NLTK's WordNet reader: no synonyms (the corpus is not available offline)."""

    def synsets(self, *_args, **_kwargs) -> list:
        return []


def bleu(
    candidates: Sequence[str], references: Sequence[Sequence[str]], normalisation: str = MEDAI_V1
) -> dict[str, float]:
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    hyps = [_tokens(c, normalisation) for c in candidates]
    refs = [[_tokens(r, normalisation) for r in rs] for rs in references]
    smooth = SmoothingFunction().method1
    out = {}
    for n in range(1, 5):
        weights = tuple([1.0 / n] * n)
        out[f"bleu_{n}"] = float(
            corpus_bleu(refs, hyps, weights=weights, smoothing_function=smooth)
        )
    return out


def rouge(
    candidates: Sequence[str], references: Sequence[Sequence[str]], normalisation: str = MEDAI_V1
) -> dict[str, float]:
    """ROUGE-1 and ROUGE-L F per candidate (its best reference), averaged. Under
    ``imageclef2025`` a pair whose captions are both empty scores 1, as the 2025 evaluator
    has it (``rouge-score``'s tokenizer on the normalised text, no stemming: its ROUGE-1)."""
    from rouge_score import rouge_scorer

    norm = _normaliser(normalisation)
    both_empty_is_one = normalisation == IMAGECLEF_2025
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=False)
    r1, rl = [], []
    for cand, refs in zip(candidates, references, strict=True):
        # best reference per candidate, as multi-reference ROUGE is usually reported
        scores = [scorer.score(norm(ref), norm(cand)) for ref in refs]
        pairs = [
            (1.0, 1.0)
            if both_empty_is_one and not ref and not cand
            else (sc["rouge1"].fmeasure, sc["rougeL"].fmeasure)
            for ref, sc in zip(refs, scores, strict=True)
        ]
        r1.append(max(x[0] for x in pairs))
        rl.append(max(x[1] for x in pairs))
    return {"rouge_1": _mean(r1), "rouge_l": _mean(rl)}


def meteor(
    candidates: Sequence[str], references: Sequence[Sequence[str]], normalisation: str = MEDAI_V1
) -> float:
    from nltk.translate.meteor_score import meteor_score

    wn = _NoWordNet()
    return _mean(
        [
            meteor_score(
                [_tokens(r, normalisation) for r in refs], _tokens(cand, normalisation), wordnet=wn
            )
            for cand, refs in zip(candidates, references, strict=True)
        ]
    )


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def cider_d(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    sigma: float = 6.0,
    normalisation: str = MEDAI_V1,
) -> float:
    """CIDEr-D over the corpus (document frequencies from the references)."""
    cands = [_tokens(c, normalisation) for c in candidates]
    refs = [[_tokens(r, normalisation) for r in rs] for rs in _ref_lists(references)]
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
                sims.append(sim * math.exp(-((len(cand) - len(r)) ** 2) / (2 * sigma**2)))
            total += sum(sims) / max(1, len(rs))
        scores.append(total / 4 * 10.0)
    return _mean(scores)


def caption_scores(
    candidates: Sequence[str],
    references: Sequence[Sequence[str] | str],
    normalisation: str = MEDAI_V1,
) -> dict[str, Any]:
    """All caption metrics; ``references``: one string or a list of strings per candidate.
    The result names its ``normalisation``; a 2025 one also lists what of the 2025
    evaluation is ``not_computed`` and why."""
    _normaliser(normalisation)
    refs = _ref_lists(references)
    if len(candidates) != len(refs):
        raise ValueError(f"{len(candidates)} candidates but {len(refs)} reference sets")
    if not candidates:
        raise ValueError("no captions to score")
    out: dict[str, Any] = {"n": len(candidates), "normalisation": normalisation}
    out.update(bleu(candidates, refs, normalisation))
    out.update(rouge(candidates, refs, normalisation))
    out["meteor"] = meteor(candidates, refs, normalisation)
    out["cider"] = cider_d(candidates, refs, normalisation=normalisation)
    if normalisation == IMAGECLEF_2025:
        out["not_computed"] = dict(NOT_COMPUTED_2025)
    return out


def bertscore(
    candidates: Sequence[str],
    references: Sequence[str],
    model_dir: str,
    batch_size: int = 16,
    normalisation: str | None = None,
) -> dict[str, float]:
    """BERTScore (greedy cosine matching of contextual token embeddings, no baseline
    rescaling) with a local Hugging Face encoder directory — nothing is downloaded; the
    encoder's last layer. Without a normalisation (or ``medai-v1``): the raw captions, special
    tokens left out, every token weighing the same (medai's earlier BERTScore). With
    ``imageclef2025``: as the 2025 evaluator calls ``bert_score`` — normalised captions, idf
    weights from the references (log((M + 1) / (df + 1)) over the M references scored here,
    as the evaluator takes them over its whole test set; [CLS]/[SEP] weigh 0 but are still
    matched), and 1 for a pair whose captions are both empty."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    if normalisation is not None:
        _normaliser(normalisation)
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    official = normalisation == IMAGECLEF_2025
    cands = [imageclef2025(c) for c in candidates] if official else list(candidates)
    refs = [imageclef2025(r) for r in references] if official else list(references)
    max_length = 512 if official else 256

    def embed(texts: Sequence[str]) -> list[tuple[torch.Tensor, list[int]]]:
        out = []
        for i in range(0, len(texts), batch_size):
            enc = tok(
                list(texts[i : i + batch_size]),
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_length,
                return_special_tokens_mask=True,
            )
            special = enc.pop("special_tokens_mask").bool()
            with torch.no_grad():
                hidden = model(**enc).last_hidden_state
            for h, ids, m, s in zip(
                hidden, enc["input_ids"], enc["attention_mask"].bool(), special, strict=True
            ):
                keep = m if official else m & ~s
                keep = keep if keep.any() else m
                out.append((torch.nn.functional.normalize(h[keep], dim=-1), ids[keep].tolist()))
        return out

    if official:
        df: Counter = Counter()
        for ref in refs:
            df.update(set(tok(ref, truncation=True, max_length=max_length)["input_ids"]))
        zero = {tok.cls_token_id, tok.sep_token_id} - {None}
        m_docs = len(refs)

        def weight(i: int) -> float:
            return 0.0 if i in zero else math.log((m_docs + 1) / (df.get(i, 0) + 1))
    else:

        def weight(i: int) -> float:
            return 1.0

    ps, rs, fs = [], [], []
    for k, ((c, c_ids), (r, r_ids)) in enumerate(zip(embed(cands), embed(refs), strict=True)):
        if official and not candidates[k] and not references[k]:
            ps.append(1.0)
            rs.append(1.0)
            fs.append(1.0)
            continue
        sim = c @ r.T
        wc = torch.tensor([weight(i) for i in c_ids])
        wr = torch.tensor([weight(i) for i in r_ids])
        p = float((sim.max(1).values * wc).sum() / wc.sum()) if wc.sum() > 0 else 0.0
        rec = float((sim.max(0).values * wr).sum() / wr.sum()) if wr.sum() > 0 else 0.0
        ps.append(p)
        rs.append(rec)
        fs.append(2 * p * rec / (p + rec) if p + rec > 0 else 0.0)
    return {"bertscore_p": _mean(ps), "bertscore_r": _mean(rs), "bertscore_f1": _mean(fs)}


def _ref_lists(references: Sequence[Sequence[str] | str]) -> list[list[str]]:
    return [[r] if isinstance(r, str) else list(r) for r in references]


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else 0.0
