"""Red flags: three detectors, any of which raises the flag.

1. Rules over a lexicon of Turkish clinical concepts (``rules.py``): exact, explainable, cheap.
2. Nearest urgent exemplars in the e5 sentence-embedding space (``exemplars.py``): catches
   wordings no rule foresaw.
3. A linear classifier learned from written urgent and ordinary complaints
   (``classifier.py``): generalises over the phrasings of many authors at once.

The engine is immutable after construction and shared by every request (thread-safe: the e5
encoder serialises its own calls). Flags run before and independently of the department model
and are never hidden by it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from medai.triage.language import detect_language
from medai.triage.red_flags.classifier import ClassifierHit, RedFlagClassifier, features
from medai.triage.red_flags.everyday import everyday_only
from medai.triage.red_flags.exemplars import ExemplarDetector, KnnHit, KnnSettings, chunk_tokens
from medai.triage.red_flags.identity import (
    CACHE_NAME,
    CLASSIFIER_DIR,
    ENGINE_NAME,
    EngineSealError,
    encoder_identity,
    sealed_for,
    verify_sealed,
)
from medai.triage.red_flags.identity import identity as engine_identity
from medai.triage.red_flags.rules import (
    ConceptMatcher,
    RuleMatch,
    evaluate,
    quiet_tokens,
    token_times,
)
from medai.triage.red_flags.schema import DATA_DIR, LEVELS, RuleSet, load_rules
from medai.triage.red_flags.tokens import Token, span, tokenize
from medai.triage.red_flags.words import using

log = logging.getLogger(__name__)
DETECTORS = ("rules", "embedding", "classifier")


@dataclass
class Evidence:
    detector: str  # "rules" | "embedding" | "classifier"
    text: str  # the matched span (rules), the chunk embedded, or the words that weighed most
    concepts: list[str] = field(default_factory=list)
    exemplar: str | None = None
    similarity: float | None = None
    score: float | None = None  # the classifier's urgent probability (1 - P(not urgent))


@dataclass
class FiredFlag:
    id: str
    name_tr: str
    name_en: str
    level: str  # call_112 | emergency_department_now | urgent_same_day
    advice_tr: str
    advice_en: str
    detectors: list[str]
    evidence: list[Evidence]
    matched: list[str]  # the text spans that matched, for a quick look


@dataclass
class HistoryNote:
    """A red-flag sign set clearly in the distant past: a note for staff, not an emergency."""

    id: str
    name_tr: str
    name_en: str
    evidence: list[str]


@dataclass
class RedFlagReport:
    flags: list[FiredFlag]
    history: list[HistoryNote]
    level: str | None
    rules_version: str
    detectors: list[str]
    classifier: dict[str, str] = field(default_factory=dict)  # name, version, content hash
    engine: dict[str, str] = field(default_factory=dict)  # the engine's identity (all files)

    @property
    def urgent(self) -> bool:
        return bool(self.flags)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Analysis:
    """Every detector's raw output for one text (the benchmark chooses thresholds on it)."""

    tokens: list[Token]
    matches: list[RuleMatch]
    knn: list[KnnHit]
    classifier: ClassifierHit | None
    everyday: bool = False  # only everyday words: the learned detectors do not decide


class RedFlagEngine:
    def __init__(
        self,
        ruleset: RuleSet,
        matcher: str = "suffix",
        encoder=None,
        knn: KnnSettings | None = None,
        cache_file: Path | None = None,
        negation: bool = True,
        timing: bool = True,
        write_file: Path | None = None,
        classifier: RedFlagClassifier | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.concepts = ConceptMatcher(ruleset.concepts, matcher, negation, timing)
        knn = knn or KnnSettings(**ruleset.knn)
        self.knn = (
            ExemplarDetector(ruleset, encoder, knn, cache_file, write_file) if encoder else None
        )
        self.classifier = classifier
        # name, version, content hash (``identity``); set by build_engine over its files
        self.identity = {
            "name": ENGINE_NAME,
            "version": "unsealed",
            "content_hash": "",
            "rules_version": ruleset.digest[:12],
        }

    @property
    def detectors(self) -> list[str]:
        on = {"rules": True, "embedding": bool(self.knn), "classifier": bool(self.classifier)}
        return [d for d in DETECTORS if on[d]]

    def analyse(self, text: str) -> Analysis:
        """Raw detector output (the benchmark tunes thresholds on it), read with this engine's
        word lists."""
        with using(self.ruleset.words):
            return self._analyse(text)

    def _analyse(self, text: str) -> Analysis:
        tokens = tokenize(text)
        times = token_times(tokens)  # once: every detector uses it
        hits = self.concepts.find(tokens, times)
        matches = evaluate(self.ruleset, tokens, hits)
        quiet = quiet_tokens(tokens, times) if tokens and (self.classifier or self.knn) else []
        scored = (
            self.classifier.score(features(tokens, times, hits, quiet))
            if self.classifier and tokens
            else None
        )
        if (
            scored is not None
            and self.classifier.short_tokens is not None
            and scored.threshold < self.classifier.short_threshold
            and detect_language(text).language != "tr"
        ):
            # its only validated non-Turkish texts are short ones (dev16): a longer English
            # complaint is held to that threshold, not to the one of long Turkish texts
            scored = replace(
                scored,
                threshold=self.classifier.short_threshold,
                evidence=(
                    scored.evidence if scored.score >= self.classifier.short_threshold else ()
                ),
            )
        knn_hits: list[KnnHit] = []
        if self.knn and tokens:
            if not self.concepts.negation:
                quiet = [False] * len(tokens)
            chunks = [c for c in chunk_tokens(tokens) if not any(quiet[c.first : c.last + 1])]
            salience = [sum(1 for h in hits if c.first <= h.first <= c.last) for c in chunks]
            knn_hits = self.knn.detect(text, tokens, self.knn.select(chunks, salience))
        return Analysis(tokens, matches, knn_hits, scored, everyday_only(tokens))

    def check(self, text: str) -> RedFlagReport:
        return self.decide(text, self.analyse(text))

    def decide(self, text: str, a: Analysis, everyday_guard: bool = True) -> RedFlagReport:
        """The report on ``text`` from its analysis ``a``. On a short complaint of everyday
        words only the rules decide (everyday.py); ``everyday_guard=False`` is the engine before
        the guard, for its benchmark."""
        learned_decide = not (everyday_guard and a.everyday)
        passing = [h for h in a.knn if learned_decide and self.knn and self.knn.fires(h)]
        # e5-small puts every urgent exemplar close together: only the nearest flag is named
        knn_fired = {h.flag_id: h for h in sorted(passing, key=lambda h: -h.similarity)[:1]}
        learned = (
            a.classifier
            if learned_decide and a.classifier and self.classifier.fires(a.classifier)
            else None
        )
        return self.report(text, a.tokens, a.matches, knn_fired, learned)

    def report(
        self,
        text: str,
        tokens: list[Token],
        matches: list[RuleMatch],
        knn_fired: dict[str, KnnHit],
        learned: ClassifierHit | None = None,
    ) -> RedFlagReport:
        present = {m.flag_id: m for m in matches if not m.past}
        flags, history = [], []
        for flag in self.ruleset.flags:
            evidence: list[Evidence] = []
            if flag.id in present:
                m = present[flag.id]
                evidence += [
                    Evidence("rules", span(text, tokens, h.first, h.last), [h.concept])
                    for h in m.hits
                ]
            if flag.id in knn_fired:
                h = knn_fired[flag.id]
                chunk = span(text, tokens, h.chunk.first, h.chunk.last)
                evidence.append(
                    Evidence(
                        "embedding", chunk, exemplar=h.exemplar, similarity=round(h.similarity, 4)
                    )
                )
            if learned and learned.flag_id == flag.id:
                words = " … ".join(span(text, tokens, i, i) for i in learned.evidence) or span(
                    text, tokens, 0, min(len(tokens), 12) - 1
                )
                evidence.append(Evidence("classifier", words, score=round(learned.score, 4)))
            if evidence:
                detectors = [d for d in DETECTORS if any(e.detector == d for e in evidence)]
                flags.append(
                    FiredFlag(
                        flag.id,
                        flag.name_tr,
                        flag.name_en,
                        flag.level,
                        flag.advice_tr,
                        flag.advice_en,
                        detectors,
                        evidence,
                        [e.text for e in evidence],
                    )
                )
                continue
            past = [m for m in matches if m.flag_id == flag.id and m.past]
            if past:
                history.append(
                    HistoryNote(
                        flag.id,
                        flag.name_tr,
                        flag.name_en,
                        [span(text, tokens, h.first, h.last) for h in past[0].hits],
                    )
                )
        flags.sort(key=lambda f: LEVELS.index(f.level))
        return RedFlagReport(
            flags,
            history,
            flags[0].level if flags else None,
            self.identity["rules_version"],
            self.detectors,
            dict(self.classifier.identity) if self.classifier else {},
            dict(self.identity),
        )


def classifier_dir(rules_dir: Path | None = None) -> Path | None:
    """The folder of the classifier in ``rules_dir``/classifier, else the bundled one."""
    for folder in ([Path(rules_dir) / CLASSIFIER_DIR] if rules_dir else []) + [
        DATA_DIR / CLASSIFIER_DIR
    ]:
        if (folder / "model_card.json").is_file():
            return folder
    return None


def load_classifier(rules_dir: Path | None = None) -> RedFlagClassifier | None:
    """The classifier in ``rules_dir``/classifier, else the bundled one (None if neither)."""
    folder = classifier_dir(rules_dir)
    return RedFlagClassifier.load(folder) if folder is not None else None


def build_engine(
    rules_dir: Path | None = None,
    embeddings: bool = True,
    matcher: str = "suffix",
    classifier: bool = True,
    require_sealed: bool = False,
    cache_dir: Path | None = None,
    e5_micro_batch: int = 1,
) -> RedFlagEngine:
    """An engine over the folder ``rules_dir`` (default: the bundled, sealed engine), with the
    e5 detector and the learned classifier on. A sealed folder is verified first (an altered
    file never loads); ``require_sealed`` refuses a folder that was never sealed (what the
    server and the CLI serve: ``default_engine``). A sealed folder's stale exemplar cache is
    rebuilt under ``cache_dir``/red_flags (MEDAI_CACHE_DIR, passed by the caller; default: the
    temporary folder), never in the folder; ``e5_micro_batch``: MEDAI_E5_MICRO_BATCH."""
    folder = Path(rules_dir) if rules_dir else DATA_DIR
    if not folder.is_dir():
        raise EngineSealError(
            f"{folder}: no such folder (MEDAI_RED_FLAG_RULES names a sealed "
            "red-flag engine folder; unset it for the bundled engine)"
        )
    if verify_sealed(folder) is None and require_sealed:  # an altered file: nothing loads
        raise EngineSealError(
            f"{folder}: not a sealed red-flag engine (no model_card.json); "
            f"check it, then seal it: medai triage seal-red-flags {folder}"
        )
    ruleset = load_rules(rules_dir)
    learned = load_classifier(rules_dir) if classifier else None
    encoder, cache, write = None, None, None
    if embeddings:
        from medai.core.embeddings import shared_e5

        encoder = shared_e5(e5_micro_batch)
        cache = folder / CACHE_NAME
        # a sealed folder is never written to: a stale cache is rebuilt in the user's cache
        write = (
            _user_cache(cache_dir) / "red_flags" / CACHE_NAME
            if sealed_for(folder) is not None
            else cache
        )
    # the classifier's threshold was chosen together with an embedding operating point
    knn = KnnSettings(**{**ruleset.knn, **learned.knn}) if learned and learned.knn else None
    engine = RedFlagEngine(
        ruleset, matcher, encoder, knn=knn, cache_file=cache, write_file=write, classifier=learned
    )
    engine.identity = engine_identity(
        folder,
        classifier_dir(rules_dir) if learned else None,
        {
            "matcher": matcher,
            "detectors": engine.detectors,
            "encoder": encoder_identity() if embeddings else None,
        },
    )
    return engine


def load_engine(directory: Path, card=None, **options) -> RedFlagEngine:
    """The registry's loader of task ``red_flags``: a sealed engine folder."""
    return build_engine(Path(directory), require_sealed=True, **options)


def _user_cache(cache_dir: Path | None) -> Path:
    import tempfile

    return Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "medai-cache"


def cache_embeddings(engine: RedFlagEngine, cache_dir: Path | None = None) -> RedFlagEngine:
    """Give ``engine``'s e5 detector a disk cache of window embeddings under
    ``cache_dir``/red_flags (MEDAI_CACHE_DIR, passed by the caller) for training and
    benchmarks, which embed the same written texts again and again; never the server, which
    stores no complaint."""
    if engine.knn:
        from medai.core.embeddings import E5Encoder

        engine.knn.encoder = E5Encoder(cache_dir=_user_cache(cache_dir) / "red_flags")
    return engine


@dataclass(frozen=True)
class EngineOptions:
    """How the served engine is built. The faces read these from the settings
    (``services.triage.red_flag_options``: MEDAI_RED_FLAG_RULES, MEDAI_RED_FLAG_EMBEDDINGS,
    MEDAI_RED_FLAG_CLASSIFIER, MEDAI_CACHE_DIR, MEDAI_E5_MICRO_BATCH) and pass them down;
    the defaults are the bundled engine with every detector on."""

    rules_dir: Path | None = None
    embeddings: bool = True
    classifier: bool = True
    cache_dir: Path | None = None
    e5_micro_batch: int = 1


_DEFAULT: dict[EngineOptions, RedFlagEngine] = {}
_LOCK = threading.Lock()


def default_engine(options: EngineOptions | None = None) -> RedFlagEngine:
    """The process-wide engine of ``options`` (built once per distinct options): the sealed
    engine folder ``rules_dir`` or the bundled one (a folder never sealed is refused);
    ``embeddings=False`` turns the embedding detector off and ``classifier=False`` the learned
    classifier (the result then says the engine did not run as sealed)."""
    options = options or EngineOptions()
    with _LOCK:
        if options not in _DEFAULT:
            _DEFAULT[options] = build_engine(
                Path(options.rules_dir) if options.rules_dir else None,
                options.embeddings,
                classifier=options.classifier,
                require_sealed=True,
                cache_dir=options.cache_dir,
                e5_micro_batch=options.e5_micro_batch,
            )
        return _DEFAULT[options]


def check(text: str) -> list[FiredFlag]:
    """The flags ``text`` raises with the default engine (most urgent first)."""
    return default_engine().check(text).flags
