"""The concept detector: lexicon concepts found in the tokens, combined by rules in any order.

A concept hit is dropped when it is clearly negated ("göğüs ağrım yok", "bayılmadım") and marked
*past* when its clause sets it clearly in the distant past ("3 yıl önce felç geçirdim") with no
word bringing it back to now ("şimdi", "yine", "hâlâ"). A rule fires when every one of its concept
groups has a hit inside one sentence and one token window, whatever the order; a rule whose hits
are all past only adds a note for staff. Unclear timing always counts as now. How a clause
speaks of its signs is read in ``reading.py``; when they happen, in ``timing.py``.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

from medai.triage.red_flags.reading import (
    DEGREE_KINDS,
    asked_tokens,
    denied_degree,
    denied_sites,
    hearsay_tokens,
    negated_suffix,
    negated_tokens,
    negation_walks,
    normal_readings,
    quiet_tokens,
    topic_tokens,
)
from medai.triage.red_flags.schema import Concept, RuleSet, TokenPattern
from medai.triage.red_flags.timing import token_times
from medai.triage.red_flags.tokens import MATCHERS, Token
from medai.triage.red_flags.words import current

__all__ = [
    "ConceptMatcher",
    "Hit",
    "RuleMatch",
    "evaluate",
    "negated_tokens",
    "quiet_tokens",
    "token_times",
]


@dataclass(frozen=True)
class Hit:
    concept: str
    first: int  # token indices, inclusive
    last: int
    time: str  # "past" (distant, resolved) | "present" (a now-word or present tense) | "unclear"
    kind: str = "sign"  # the concept's kind: who/context/onset hits do not decide the timing
    dated: bool = False  # past by a date ("3 ay önce", "çocukken"), not by a pluperfect alone


@dataclass(frozen=True)
class RuleMatch:
    flag_id: str
    rule: int
    hits: tuple[Hit, ...]
    past: bool


class ConceptMatcher:
    """Finds every lexicon concept in a token list; forms are indexed by their first letters."""

    def __init__(
        self,
        concepts: dict[str, Concept],
        matcher: str = "suffix",
        negation: bool = True,
        timing: bool = True,
    ) -> None:
        if matcher not in MATCHERS:
            raise ValueError(f"unknown matcher {matcher!r}; valid: {', '.join(MATCHERS)}")
        self.concepts, self.match = concepts, MATCHERS[matcher]
        self.negation, self.timing = negation, timing  # switches for the benchmark
        self._index: dict[str, list[tuple[Concept, tuple[TokenPattern, ...]]]] = defaultdict(list)
        for concept in concepts.values():
            for form in concept.forms:
                self._index[self._key(form[0].stem)].append((concept, form))

    @staticmethod
    def _key(stem: str) -> str:
        return stem[:3]

    def _token_matches(self, pattern: TokenPattern, token: str) -> bool:
        if pattern.mode == "exact":
            return token == pattern.stem
        if pattern.mode == "prefix":
            return token.startswith(pattern.stem)
        return self.match(pattern.stem, token)

    def _candidates(self, token: str):
        yield from self._index.get(token[:3], ())
        for n in (1, 2):  # stems shorter than the key
            if len(token) >= n:
                yield from self._index.get(token[:n], ())

    def _match_form(self, tokens: list[Token], i: int, form) -> int | None:
        """Index of the last token when ``form`` starts at token ``i`` (one gap word allowed)."""
        pos, no_gap = i, current().no_gap
        for k, pattern in enumerate(form):
            if k == 0:
                if not self._token_matches(pattern, tokens[i].form):
                    return None
                continue
            for nxt in (pos + 1, pos + 2):
                if nxt >= len(tokens) or (nxt == pos + 2 and tokens[pos + 1].form in no_gap):
                    return None
                if tokens[nxt].sentence == tokens[i].sentence and self._token_matches(
                    pattern, tokens[nxt].form
                ):
                    pos = nxt
                    break
            else:
                return None
        return pos

    def find(self, tokens: list[Token], times: list[str] | None = None) -> list[Hit]:
        """Concept hits; ``times`` (from ``token_times``) when the caller already has them."""
        raw: dict[tuple[str, int], tuple[Concept, int, TokenPattern]] = {}
        for i, tok in enumerate(tokens):
            for concept, form in self._candidates(tok.form):
                if (concept.id, i) in raw or any(tok.form.startswith(x) for x in concept.exclude):
                    continue
                last = self._match_form(tokens, i, form)
                if last is not None:
                    raw[(concept.id, i)] = (concept, last, form[-1])
        covered = {j for (_, i), (_, last, _) in raw.items() for j in range(i, last + 1)}
        self_negated = {
            last for (_, last, pattern) in raw.values() if negated_suffix(tokens[last], pattern)
        }
        negated, topical, degree_denied, sites, normal = set(), set(), set(), set(), set()
        if self.negation:
            walks = negation_walks(tokens, covered - self_negated)  # once: two readers use it
            negated = negated_tokens(tokens, covered - self_negated, walks)
            topical = topic_tokens(tokens) | asked_tokens(tokens) | hearsay_tokens(tokens)
            degree_denied = denied_degree(tokens)
            sites = denied_sites(raw, tokens, walks)
            normal = normal_readings(tokens)
        spans = defaultdict(list)
        for (cid, i), (_, last, _) in raw.items():
            spans[cid].append((i, last))
        if not self.timing:
            times = ["unclear"] * len(tokens)
        elif times is None:
            times = token_times(tokens)
        dated = token_times(tokens, pluperfect=False) if self.timing else times
        hits = []
        for (cid, i), (concept, last, pattern) in raw.items():
            if any(
                a <= i and last <= b for other in concept.except_in for a, b in spans.get(other, ())
            ):
                continue
            if (
                concept.negatable
                and self.negation
                and (last in negated or negated_suffix(tokens[last], pattern))
            ):
                continue
            if last in topical or (concept.kind in DEGREE_KINDS and last in degree_denied):
                continue  # every kind: "kalp krizinin çeneye vurduğunu okudum", "ani değil"
            if last in sites and (concept.kind == "body_part" or concept.negatable):
                continue
            if concept.normal_reading and last in normal:
                continue  # "ateşi 37.2"
            hits.append(Hit(cid, i, last, times[last], concept.kind, dated[last] == "past"))
        return sorted(hits, key=lambda h: (h.first, h.concept))


def evaluate(ruleset: RuleSet, tokens: list[Token], hits: list[Hit]) -> list[RuleMatch]:
    """The best match (present before past, then the tightest) of each flag that fires."""
    by_concept: dict[str, list[Hit]] = defaultdict(list)
    for h in hits:
        by_concept[h.concept].append(h)
    out = []
    for flag in ruleset.flags:
        best: RuleMatch | None = None
        for r, rule in enumerate(flag.rules):
            inside = [(h.first, h.last) for c in rule.not_inside for h in by_concept.get(c, ())]
            options = [
                [
                    h
                    for c in group
                    for h in by_concept.get(c, ())
                    if not any(a <= h.first and h.last <= b for a, b in inside)
                ]
                for group in rule.groups
            ]
            if not all(options):
                continue
            if any(by_concept.get(c) for c in rule.unless_anywhere):
                continue  # e.g. a known, treated epilepsy told anywhere in the text
            blockers = [h for c in rule.unless for h in by_concept.get(c, ())]
            found = _best_combination(options, tokens, rule.window, rule.scope, blockers)
            if found is None:
                continue
            match = RuleMatch(flag.id, r, found, _is_past(found))
            if best is None or (best.past and not match.past):
                best = match
            if not best.past:
                break
        if best is not None:
            out.append(best)
    return out


_CONTEXT_KINDS = {"person", "context", "onset", "time", "severity", "substance", "body_part"}


def _is_past(hits) -> bool:
    """Past when a hit sits in the distant past and none is brought back to now."""
    signs = [h for h in hits if h.kind not in _CONTEXT_KINDS] or list(hits)
    if any(h.kind == "event" and h.dated for h in hits):
        return True
    return any(h.time == "past" for h in signs) and not any(h.time == "present" for h in signs)


def _best_combination(
    options: list[list[Hit]], tokens: list[Token], window: int, scope: str, blockers: list[Hit]
) -> tuple[Hit, ...] | None:
    best, best_key = None, None
    for combo in itertools.islice(itertools.product(*options), 5000):
        if len({h.first for h in combo}) < len(combo):
            continue
        lo, hi = min(h.first for h in combo), max(h.last for h in combo)
        if hi - lo + 1 > window + sum(h.last - h.first for h in combo):
            continue
        if scope == "sentence" and tokens[lo].sentence != tokens[hi].sentence:
            continue
        if any(
            tokens[b.first].sentence == tokens[lo].sentence and lo - 8 <= b.first <= hi + 8
            for b in blockers
        ):
            continue
        key = (_is_past(combo), hi - lo)
        if best_key is None or key < best_key:
            best, best_key = combo, key
    return tuple(sorted(best, key=lambda h: h.first)) if best else None
