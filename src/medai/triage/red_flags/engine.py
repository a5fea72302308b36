"""Red flags: two independent detectors, either of which raises the flag.

1. Rules over a lexicon of Turkish clinical concepts (``rules.py``): exact, explainable, cheap.
2. Nearest urgent exemplars in the e5 sentence-embedding space (``exemplars.py``): catches
   wordings no rule foresaw.

The engine is immutable after construction and shared by every request (thread-safe: the e5
encoder serialises its own calls). Flags run before and independently of the department model
and are never hidden by it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medai.triage.red_flags.exemplars import ExemplarDetector, KnnHit, KnnSettings, chunk_tokens
from medai.triage.red_flags.rules import (
    ConceptMatcher,
    RuleMatch,
    evaluate,
    quiet_tokens,
    token_times,
)
from medai.triage.red_flags.schema import DATA_DIR, LEVELS, RuleSet, load_rules
from medai.triage.red_flags.tokens import Token, span, tokenize

log = logging.getLogger(__name__)
DETECTORS = ("rules", "embedding")
CACHE_NAME = "exemplars.e5.npz"


@dataclass
class Evidence:
    detector: str  # "rules" | "embedding"
    text: str  # the matched span (rules) or the chunk that was embedded
    concepts: list[str] = field(default_factory=list)
    exemplar: str | None = None
    similarity: float | None = None


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

    @property
    def urgent(self) -> bool:
        return bool(self.flags)

    def to_dict(self) -> dict:
        return asdict(self)


class RedFlagEngine:
    def __init__(self, ruleset: RuleSet, matcher: str = "suffix", encoder=None,
                 knn: KnnSettings | None = None, cache_file: Path | None = None,
                 negation: bool = True, timing: bool = True,
                 write_file: Path | None = None) -> None:
        self.ruleset = ruleset
        self.concepts = ConceptMatcher(ruleset.concepts, matcher, negation, timing)
        knn = knn or KnnSettings(**ruleset.knn)
        self.knn = (ExemplarDetector(ruleset, encoder, knn, cache_file, write_file) if encoder
                    else None)

    @property
    def detectors(self) -> list[str]:
        return ["rules", "embedding"] if self.knn else ["rules"]

    def analyse(self, text: str) -> tuple[list[Token], list[RuleMatch], list[KnnHit]]:
        """Raw detector output (the benchmark tunes thresholds on it)."""
        tokens = tokenize(text)
        times = token_times(tokens)  # once: both the rules and the embedding windows use it
        hits = self.concepts.find(tokens, times)
        matches = evaluate(self.ruleset, tokens, hits)
        knn_hits: list[KnnHit] = []
        if self.knn and tokens:
            quiet = (quiet_tokens(tokens, times) if self.concepts.negation
                     else [False] * len(tokens))
            chunks = [c for c in chunk_tokens(tokens)
                      if not any(quiet[c.first:c.last + 1])]
            salience = [sum(1 for h in hits if c.first <= h.first <= c.last) for c in chunks]
            knn_hits = self.knn.detect(text, tokens, self.knn.select(chunks, salience))
        return tokens, matches, knn_hits

    def check(self, text: str) -> RedFlagReport:
        tokens, matches, knn_hits = self.analyse(text)
        passing = [h for h in knn_hits if self.knn and self.knn.fires(h)]
        # e5-small puts every urgent exemplar close together: only the nearest flag is named
        knn_fired = {h.flag_id: h for h in sorted(passing, key=lambda h: -h.similarity)[:1]}
        return self.report(text, tokens, matches, knn_fired)

    def report(self, text: str, tokens: list[Token], matches: list[RuleMatch],
               knn_fired: dict[str, KnnHit]) -> RedFlagReport:
        present = {m.flag_id: m for m in matches if not m.past}
        flags, history = [], []
        for flag in self.ruleset.flags:
            evidence: list[Evidence] = []
            if flag.id in present:
                m = present[flag.id]
                evidence += [Evidence("rules", span(text, tokens, h.first, h.last), [h.concept])
                             for h in m.hits]
            if flag.id in knn_fired:
                h = knn_fired[flag.id]
                chunk = span(text, tokens, h.chunk.first, h.chunk.last)
                evidence.append(Evidence("embedding", chunk, exemplar=h.exemplar,
                                         similarity=round(h.similarity, 4)))
            if evidence:
                detectors = [d for d in DETECTORS if any(e.detector == d for e in evidence)]
                flags.append(FiredFlag(flag.id, flag.name_tr, flag.name_en, flag.level,
                                       flag.advice_tr, flag.advice_en, detectors, evidence,
                                       [e.text for e in evidence]))
                continue
            past = [m for m in matches if m.flag_id == flag.id and m.past]
            if past:
                history.append(HistoryNote(flag.id, flag.name_tr, flag.name_en, [
                    span(text, tokens, h.first, h.last) for h in past[0].hits]))
        flags.sort(key=lambda f: LEVELS.index(f.level))
        return RedFlagReport(flags, history, flags[0].level if flags else None,
                             self.ruleset.digest[:12], self.detectors)


def build_engine(rules_dir: Path | None = None, embeddings: bool = True,
                 matcher: str = "suffix") -> RedFlagEngine:
    """An engine over ``rules_dir`` (default: the bundled files), with the e5 detector on."""
    ruleset = load_rules(rules_dir)
    encoder, cache, write = None, None, None
    if embeddings:
        from medai.core.embeddings import shared_e5
        from medai.settings import get_settings

        encoder = shared_e5()
        bundled = rules_dir is None or Path(rules_dir).resolve() == DATA_DIR.resolve()
        cache = DATA_DIR / CACHE_NAME if bundled else Path(rules_dir) / CACHE_NAME
        # the bundled cache is shipped; a stale one is rebuilt in the user's cache, not the package
        write = get_settings().cache_dir / "red_flags" / CACHE_NAME if bundled else cache
    return RedFlagEngine(ruleset, matcher, encoder, cache_file=cache, write_file=write)


_DEFAULT: dict[tuple, RedFlagEngine] = {}
_LOCK = threading.Lock()


def default_engine() -> RedFlagEngine:
    """The process-wide engine: rules from ``MEDAI_RED_FLAG_RULES`` (a folder) or the bundled
    files; ``MEDAI_RED_FLAG_EMBEDDINGS=false`` turns the embedding detector off."""
    from medai.settings import get_settings

    settings = get_settings()
    rules_dir, embeddings = settings.red_flag_rules, settings.red_flag_embeddings
    key = (str(rules_dir), embeddings)
    with _LOCK:
        if key not in _DEFAULT:
            _DEFAULT[key] = build_engine(Path(rules_dir) if rules_dir else None, embeddings)
        return _DEFAULT[key]


def check(text: str) -> list[FiredFlag]:
    """The flags ``text`` raises with the default engine (most urgent first)."""
    return default_engine().check(text).flags
