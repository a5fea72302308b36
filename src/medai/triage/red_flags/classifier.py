"""The third detector: a linear classifier learned from written urgent and ordinary complaints.

The rules know the phrasings their authors foresaw, and the 4-bit e5 neighbours see only one
short window. Every blind test set showed the same gap: about one urgent text in ten worded in a
way neither foresaw. This detector learns from every written complaint at once (urgent texts of
22 presentations against ordinary ones, hard negatives included) over features that generalise
across spellings and suffixes:

- character 2–5-grams of the words that are neither denied nor in the distant past (the same
  negation and timing reader as the rules, so "göğüs ağrım yok" does not look like chest pain);
- word 1–2-grams, with denied and past words marked ``~`` (they stay evidence, of the other side);
- the lexicon concepts the rules found (``c:<concept>`` now, ``p:<concept>`` in the past), so a
  combination no rule names can still count;
- how long the complaint is (``#len:<bucket>``). Every n-gram of a two-word complaint weighs
  far more after normalisation than in a long one, so "ateşim var" looked more urgent than a
  paragraph about a fever; with short everyday complaints among the negatives, the length
  marker lets the model learn that a short text needs stronger signs (docs/benchmarks/
  red_flags.md).

It is a multinomial logistic regression over "none" and the 22 flags: the urgent score is
``1 - P(none)`` and the flag it names is the most probable presentation. Weights live in a sealed
model directory (config, safetensors, vocabulary, a card with the content hash); ``train`` fits
it, and ``learn.train_with_choice`` chooses its threshold on out-of-author scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from medai.triage.red_flags.rules import Hit, negated_tokens, quiet_tokens
from medai.triage.red_flags.tokens import Token

NONE = "none"
CONFIG_FILE = "config.json"
TASK = "red_flag_classifier"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocabulary.json"
FEATURE_KINDS = ("char", "word")
MAX_EVIDENCE_WORDS = 3


@dataclass(frozen=True)
class ClassifierHit:
    flag_id: str  # the most probable presentation
    score: float  # 1 - P(none)
    evidence: tuple[int, ...]  # tokens that weighed most towards the flag (only when it fires)
    threshold: float = 0.5  # the one that applies to this text (short texts have their own)


@dataclass(frozen=True)
class Features:
    """What the classifier reads of one complaint (built from the rule engine's own analysis)."""

    active: str  # words neither denied nor past, space-joined (character n-grams)
    words: str  # every word, denied/past ones marked "~", then the concept markers
    token_forms: tuple[str, ...]
    quiet: tuple[bool, ...]


def features(
    tokens: list[Token], times: list[str], hits: list[Hit], quiet: list[bool] | None = None
) -> Features:
    """``quiet``: ``quiet_tokens(tokens, times)`` when the caller already has it."""
    if quiet is None:
        quiet = quiet_tokens(tokens, times)
    covered = {j for h in hits for j in range(h.first, h.last + 1)}
    denied = negated_tokens(tokens, covered)
    quiet = [q or i in denied for i, q in enumerate(quiet)]
    forms = [t.form for t in tokens]
    active = " ".join(f for f, q in zip(forms, quiet, strict=True) if not q)
    marked = [("~" + f if q else f) for f, q in zip(forms, quiet, strict=True)]
    concepts = sorted({("p:" if h.time == "past" else "c:") + h.concept for h in hits})
    return Features(
        active,
        " ".join([*marked, *concepts, length_marker(len(tokens))]),
        tuple(forms),
        tuple(quiet),
    )


LENGTH_BUCKETS = ((1, "1"), (2, "2"), (3, "3"), (5, "4-5"), (8, "6-8"), (15, "9-15"))


def length_marker(n_tokens: int) -> str:
    """The length bucket of a complaint, as a word feature (a classifier trained before it
    existed never learned the token and ignores it)."""
    return "#len:" + next((name for top, name in LENGTH_BUCKETS if n_tokens <= top), "16+")


def _char_vectorizer(**kw):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(2, 5),
        lowercase=False,
        sublinear_tf=True,
        dtype=np.float32,
        **kw,
    )


def _word_vectorizer(**kw):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        analyzer="word",
        ngram_range=(1, 2),
        lowercase=False,
        token_pattern=r"\S+",
        sublinear_tf=True,
        dtype=np.float32,
        **kw,
    )


class RedFlagClassifier:
    """Immutable after construction: safe to share between threads."""

    def __init__(
        self,
        labels: list[str],
        vectorizers: dict,
        coef: np.ndarray,
        intercept: np.ndarray,
        threshold: float,
        params: dict,
        knn: dict | None = None,
    ) -> None:
        self.labels, self.vectorizers = list(labels), vectorizers
        # C order: safetensors writes the raw buffer (a Fortran-ordered coef_ came back transposed)
        self.coef = np.ascontiguousarray(coef, dtype=np.float32)
        # the transpose laid out for sparse × dense: a strided view costs scipy a full copy of
        # the weights on every call (2.9 ms of a complaint's 8 ms here), with the same result
        self._coef_t = np.ascontiguousarray(self.coef.T)
        self.intercept = np.ascontiguousarray(intercept, dtype=np.float32)
        self.threshold, self.params = float(threshold), dict(params)
        # complaints of at most ``short_tokens`` words have a threshold of their own, chosen on
        # short texts out of author (learn.train_with_choice); None: one threshold for all
        self.short_tokens = self.params.get("short_tokens")
        self.short_threshold = float(self.params.get("short_threshold", self.threshold))
        # the embedding detector's threshold/margin chosen together with this threshold
        self.knn = dict(knn or {})
        self.identity: dict[str, str] = {}  # name, version, content hash (set by load)
        self._none = self.labels.index(NONE)
        self._char_analyzer = vectorizers["char"].build_analyzer()

    # -- inference -------------------------------------------------------------------------
    def matrix(self, feats: list[Features]):
        blocks = [
            self.vectorizers["char"].transform([f.active for f in feats]),
            self.vectorizers["word"].transform([f.words for f in feats]),
        ]
        return sparse.hstack(blocks, format="csr")

    def probabilities(self, feats: list[Features]) -> np.ndarray:
        logits = np.asarray(self.matrix(feats) @ self._coef_t) + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def threshold_for(self, n_tokens: int) -> float:
        """A short complaint carries less evidence than a paragraph: its own threshold."""
        short = self.short_tokens is not None and n_tokens <= self.short_tokens
        return self.short_threshold if short else self.threshold

    def score(self, feats: Features) -> ClassifierHit:
        p = self.probabilities([feats])[0]
        urgent = 1.0 - float(p[self._none])
        order = [k for k in np.argsort(-p) if k != self._none]
        k = int(order[0])
        threshold = self.threshold_for(len(feats.token_forms))
        evidence = self._evidence(feats, k) if urgent >= threshold else ()
        return ClassifierHit(self.labels[k], urgent, evidence, threshold)

    def fires(self, hit: ClassifierHit) -> bool:
        return hit.score >= hit.threshold

    def _evidence(self, feats: Features, k: int) -> tuple[int, ...]:
        """The active words whose character n-grams pushed most towards flag ``k``."""
        char = self.vectorizers["char"]
        vocab = char.vocabulary_
        n_char = len(vocab)
        toward = self.coef[k, :n_char] - self.coef[self._none, :n_char]
        weights = []
        for i, (form, quiet) in enumerate(zip(feats.token_forms, feats.quiet, strict=True)):
            if quiet:
                continue
            grams = {g for g in self._char_analyzer(form) if g in vocab}
            w = sum(float(toward[vocab[g]] * char.idf_[vocab[g]]) for g in grams)
            weights.append((w / max(1, len(grams)) ** 0.5, i))
        best = sorted(weights, reverse=True)[:MAX_EVIDENCE_WORDS]
        return tuple(sorted(i for w, i in best if w > 0))

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path, card_fields: dict) -> None:
        from safetensors.numpy import save_file

        from medai.core.model_dir import ModelCard, save_card

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {"coef": self.coef, "intercept": self.intercept}
        vocab = {}
        for kind in FEATURE_KINDS:
            vec = self.vectorizers[kind]
            terms = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
            vocab[kind] = terms
            tensors[f"idf_{kind}"] = np.ascontiguousarray(vec.idf_, dtype=np.float32)
        save_file(tensors, str(directory / WEIGHTS_FILE))
        (directory / VOCAB_FILE).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        params = {k: v for k, v in self.params.items() if k != "short_threshold"}
        config = {"labels": self.labels, "params": params}
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
        save_card(
            directory,
            ModelCard(
                task=TASK,
                model_type="linear_classifier",
                labels=self.labels,
                thresholds=self.thresholds(),
                params=params,
                **card_fields,
            ),
        )

    def thresholds(self) -> dict[str, float]:
        """The operating point, as the card holds it: the urgent threshold, the one of short
        complaints, and the embedding detector's similarity and margin chosen with them."""
        out = {"urgent": self.threshold, "urgent_short": self.short_threshold}
        if self.knn:
            out |= {
                "embedding_similarity": self.knn["threshold"],
                "embedding_margin": self.knn["margin"],
            }
        return out

    @classmethod
    def load(cls, directory: Path) -> RedFlagClassifier:
        from safetensors.numpy import load_file

        from medai.core.model_dir import read_card, verify

        directory = Path(directory)
        card = read_card(directory)
        digest = verify(directory, card)  # altered weights never load
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        vocab = json.loads((directory / VOCAB_FILE).read_text(encoding="utf-8"))
        tensors = load_file(str(directory / WEIGHTS_FILE))
        vectorizers = {}
        for kind, make in (("char", _char_vectorizer), ("word", _word_vectorizer)):
            vec = make(vocabulary={t: i for i, t in enumerate(vocab[kind])})
            vec.idf_ = tensors[f"idf_{kind}"].astype(np.float64)
            vectorizers[kind] = vec
        threshold, params, knn = _operating_point(card.thresholds, config)
        model = cls(
            config["labels"],
            vectorizers,
            tensors["coef"],
            tensors["intercept"],
            threshold,
            params,
            knn,
        )
        model.identity = {
            "name": card.name or directory.name,
            "version": card.version or card.created_at,
            "content_hash": digest,
        }
        return model


def load_classifier_dir(directory: Path, card=None, **options) -> RedFlagClassifier:
    """The registry's loader of task ``red_flag_classifier``."""
    return RedFlagClassifier.load(directory)


def _operating_point(card: dict, config: dict) -> tuple[float, dict, dict | None]:
    """Thresholds from the card (sealed with the weights). A classifier saved before they moved
    there (2026-11-24) still has them in config.json."""
    params = dict(config.get("params", {}))
    if "urgent" not in card:
        return float(config["threshold"]), params, config.get("knn")
    params["short_threshold"] = float(card.get("urgent_short", card["urgent"]))
    knn = (
        {
            "threshold": float(card["embedding_similarity"]),
            "margin": float(card["embedding_margin"]),
        }
        if "embedding_similarity" in card
        else None
    )
    return float(card["urgent"]), params, knn


def train(
    feats: list[Features],
    labels: list[str],
    threshold: float = 0.5,
    knn: dict | None = None,
    c: float = 4.0,
    max_char: int = 60000,
    max_word: int = 30000,
    sample_weight: np.ndarray | None = None,
    seed: int = 0,
    vocabulary_rows: int | None = None,
) -> RedFlagClassifier:
    """Fit the vocabularies and a class-balanced multinomial logistic regression.
    ``vocabulary_rows``: only the first rows (the written texts) feed the vocabularies, so the
    saved vocabulary holds no n-gram of the real patient posts that follow them, and set the
    total weight, so adding those posts does not also weigh the written rows more."""
    from sklearn.linear_model import LogisticRegression

    vectorizers = {
        "char": _char_vectorizer(min_df=2, max_features=max_char),
        "word": _word_vectorizer(min_df=2, max_features=max_word),
    }
    vocab_feats = feats[:vocabulary_rows]
    vectorizers["char"].fit([f.active for f in vocab_feats])
    vectorizers["word"].fit([f.words for f in vocab_feats])
    classes = sorted(set(labels) - {NONE})
    all_labels = [NONE, *classes]
    y = np.array([all_labels.index(lab) for lab in labels])
    probe = RedFlagClassifier(
        all_labels,
        vectorizers,
        np.zeros((len(all_labels), 1)),
        np.zeros(len(all_labels)),
        threshold,
        {},
    )
    x = probe.matrix(feats)
    # urgent and ordinary weigh the same in all; the presentations share the urgent half, and
    # ``sample_weight`` shares each half out unevenly (real posts against written ordinary ones).
    # Each half weighs half the *written* rows: extra real rows must not also strengthen the
    # written ones (that would act like a larger C on them)
    weight = (
        np.ones(len(y))
        if sample_weight is None
        else np.asarray(sample_weight, dtype=np.float64).copy()
    )
    n_written = len(y) if vocabulary_rows is None else vocabulary_rows
    for half in (y == 0, y != 0):
        weight[half] *= 0.5 * n_written / max(weight[half].sum(), 1e-12)
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    model.fit(x, y, sample_weight=weight)
    params = {"c": c, "max_char": max_char, "max_word": max_word, "n_train": len(labels)}
    return RedFlagClassifier(
        all_labels, vectorizers, model.coef_, model.intercept_, threshold, params, knn
    )
