"""The concept detector: lexicon concepts found in the tokens, combined by rules in any order.

A concept hit is dropped when it is clearly negated ("göğüs ağrım yok", "bayılmadım") and marked
*past* when its clause sets it clearly in the distant past ("3 yıl önce felç geçirdim") with no
word bringing it back to now ("şimdi", "yine", "hâlâ"). A rule fires when every one of its concept
groups has a hit inside one sentence and one token window, whatever the order; a rule whose hits
are all past only adds a note for staff. Unclear timing always counts as now.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from dataclasses import dataclass

from medai.triage.red_flags.schema import Concept, RuleSet, TokenPattern
from medai.triage.red_flags.tokens import IF_EVER, MATCHERS, Token, negated_rest

NEGATORS = frozenset({
    "yok", "yoktu", "yoktur", "yokdu", "yokmus", "degil", "degildi", "degildir", "degilim",
    "olmadi", "olmuyor", "olmaz", "olmamis", "olmamistir", "olmadan", "hissetmiyorum",
    "hissetmedim", "hissetmiyor", "hissetmedi", "yasamadim", "yasamadi", "yasamiyorum",
    "gecirmedim", "gecirmedi", "gormedim", "gormedik", "gorulmedi", "gozlenmedi", "yasanmadi",
    "olmasin", "olmamali",
})
"""Words that deny what comes just before them ("göğüs ağrım yok")."""
ASKING_WORDS = frozenset({
    "nedir", "nelerdir", "arasindaki", "farki", "bahsetti", "bahsediyor", "okudum", "okumustum",
    "kalitsal", "kalitsalmi", "kalitimsal",
})
"""Words that make their clause a question about a sign, not a report of one ("bayılma ile sara
nöbeti arasındaki fark nedir", "intihar düşüncesini artırdığını okudum")."""
IMPERSONAL_QUESTIONS = frozenset({"yapilir", "anlasilir", "yaklasilir", "yaklasilmali",
                                  "davranilir", "davranilmali", "yapilmali", "anlasilmali",
                                  "yapiliyor", "anlasiliyor", "yapilmalidir"})
GENERIC_WORDS = ("nasil", "birine", "birisine", "kisiye", "kisilere", "insana", "insanlara")
"""An impersonal passive question with a generic person or "how" asks what one does in general
("nöbet geçiren birine ne yapılır", "havale nasıl anlaşılır"); without one it may be a plea
about a person in front of the writer ("babam bayıldı ne yapılmalı"), which still fires."""
ABOUT_WORDS = frozenset({"belirtisi", "belirtileri", "belirtilerini", "belirtilerinden",
                         "belirtisimi", "tehlikesi", "tehlikesine", "riski", "riskini",
                         "etkisi", "etkileri"})
""""zehirlenme belirtisi mi", "boğulma tehlikesi olan yiyecekler": the sign is the topic, unless
the next word says it is present ("kalp krizi belirtileri var", "… belirtisi gösteriyor")."""
_ABOUT_PRESENT = ("var", "goster", "basl", "oldu", "yasi", "hissed", "hisset")
NEGATION_REACH = 6
NEGATION_BLOCKERS = frozenset({"var", "vardi", "ama", "fakat", "ancak", "oldu", "basladi",
                               "sadece", "yalniz", "lakin", "ise"})
_NEGATED_VERB = re.compile(r"m[iu]yor|m[ae]d[iu]|m[ae]m[iu]s|m[ae]z(?:$|d|l|s)")
_CANNOT = re.compile(r"[ae]m(?:[iu]yor|[ae]d[iu]|[ae]z|[ae]m[iu]s)")
_DENIAL_ROOTS = ("kullan", "hisset", "hissed", "yasa", "gor", "ol", "gecir", "cek", "rastla",
                 "duy", "farket", "fark")
"""Negated verbs that deny what precedes them ("kan sulandırıcı kullanmıyorum"). Other negated
verbs are often the sign itself ("dokundurtmuyor", "cevap vermiyor") and deny nothing."""
_PERSIST_ROOTS = ("gec", "dur", "din", "kesil", "azal", "git", "dus", "bit", "son", "hafifle",
                  "iyiles", "rahatla", "cekil", "sus", "tut", "gel", "cik", "kalk", "uyan")
"""Negated verbs that mean the symptom goes on ("geçmiyor", "durmadı") or is itself a sign."""
_EVENT_DENIAL_ROOTS = ("deg", "kac", "sicra", "carp")
_EVENT_DENIED = re.compile(r"m[ae]d[iu]")
"""Events denied in the past tense ("gözüme kimyasal kaçmadı", "değmedi"); their present tense
is often the sign ("çenesi göğsüne değmiyor")."""
_FINITE_VERB = re.compile(r"(?:yor|yorum|yoruz|yorsun|yorlar|di|du|dim|dum|dik|duk|mis|mus"
                          r"|misim|acak|ecek|ecegim|acagim|(?<=[pctkfhs])(?:ti|tu|tim|tum))$")
"""A finite verb ends a negation's reach. The past tense is -tı only after a voiceless consonant:
"bulantı", "çarpıntı", "hırıltı" are nouns ("bulantı kusma yok" denies both)."""
_PRESENT_VERB = re.compile(r"yor(?:um|uz|sun|sunuz|lar|mus)?$")
_NO_GAP = NEGATORS | NEGATION_BLOCKERS | ASKING_WORDS
_PAST_UNITS = {"yil", "yillar", "sene", "seneler", "ay", "aylar", "yilda", "senede"}
_PAST_AFTER = {"once", "evvel", "oncesi", "onceydi", "oncesinde", "evveldi"}
_PAST_WORDS = {"cocuklugumda", "cocuklugunda", "gencligimde", "gencliginde", "ergenlikte",
               "ergenligimde", "ergenliginde", "bebekligimde", "bebekliginde", "kucuklugumde",
               "kucuklugunde", "cocukken", "eskiden", "gencken", "kucukken", "bebekken",
               "yasindayken",
               "gecmiste", "yillarca", "yillar", "zamaninda", "zamanlar", "askerdeyken",
               "universitedeyken", "lisedeyken", "okuldayken", "ogrenciyken", "hamileyken",
               "yasindaydim", "yasindaydi", "yasindaykan"}
_PLUPERFECT = re.compile(r"(?<!m[ae])m[iu]st[iu](?:m|k|n|niz|lar)?$|d[iu]yd[iu]")
"""Pluperfect ("geçirmiştim"): narrative past. Not its negative ("hiç böyle olmamıştı"), which
patients use to say that something is new."""
_YEAR = re.compile(r"(?:19[5-9]\d|20[0-2]\d)$")
_LONG_FOR = frozenset({"aydir", "yildir", "senedir", "aylardir", "yillardir", "senelerdir"})
"""A clause that has gone on for months or years ("1 aydır kekeliyor", "5 yıldır bel fıtığım
var") tells of a chronic state, not of something new."""
_PRESENT_WORDS = {"simdi", "suan", "hala", "halen", "bugun", "demin", "yine", "tekrar",
                  "yeniden", "suanda", "dun", "bugunden", "hemen", "gece", "sabah"}


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

    def __init__(self, concepts: dict[str, Concept], matcher: str = "suffix",
                 negation: bool = True, timing: bool = True) -> None:
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
        pos = i
        for k, pattern in enumerate(form):
            if k == 0:
                if not self._token_matches(pattern, tokens[i].form):
                    return None
                continue
            for nxt in (pos + 1, pos + 2):
                if nxt >= len(tokens) or (nxt == pos + 2 and tokens[pos + 1].form in _NO_GAP):
                    return None
                if (tokens[nxt].sentence == tokens[i].sentence
                        and self._token_matches(pattern, tokens[nxt].form)):
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
                if (concept.id, i) in raw or any(tok.form.startswith(x)
                                                 for x in concept.exclude):
                    continue
                last = self._match_form(tokens, i, form)
                if last is not None:
                    raw[(concept.id, i)] = (concept, last, form[-1])
        covered = {j for (_, i), (_, last, _) in raw.items() for j in range(i, last + 1)}
        self_negated = {last for (_, last, pattern) in raw.values()
                        if _negated_suffix(tokens[last], pattern)}
        negated, topical, denied_degree, sites = set(), set(), set(), set()
        if self.negation:
            walks = negation_walks(tokens, covered - self_negated)  # once: two readers use it
            negated = negated_tokens(tokens, covered - self_negated, walks)
            topical = topic_tokens(tokens, covered) | asked_tokens(tokens) | hearsay_tokens(tokens)
            denied_degree = _denied_degree(tokens)
            sites = _denied_sites(raw, tokens, walks)
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
            if any(a <= i and last <= b
                   for other in concept.except_in for a, b in spans.get(other, ())):
                continue
            if concept.negatable and self.negation and (
                    last in negated or _negated_suffix(tokens[last], pattern)):
                continue
            if last in topical or (concept.kind in _DEGREE_KINDS and last in denied_degree):
                continue  # every kind: "kalp krizinin çeneye vurduğunu okudum", "ani değil"
            if last in sites and (concept.kind == "body_part" or concept.negatable):
                continue
            hits.append(Hit(cid, i, last, times[last], concept.kind, dated[last] == "past"))
        return sorted(hits, key=lambda h: (h.first, h.concept))


def _negated_suffix(token: Token, pattern: TokenPattern) -> bool:
    rest = token.form[len(pattern.stem):] if pattern.mode != "exact" else ""
    if rest and pattern.stem.endswith(("ma", "me")):
        rest = pattern.stem[-2:] + rest  # "kan kusma*" on "kusmadım": -ma- is the negation
    return bool(rest) and negated_rest(rest)


_DEGREE_KINDS = ("onset", "severity")
_ABSENT = frozenset({"yok", "yoktu", "yoktur", "yokdu", "yokmus", "olmadi", "olmuyor",
                     "olmamis", "olmamistir", "gorulmedi", "gozlenmedi"})
"""Words that say a sign is absent. Not "değil" ("göğsümde yanma değil, ezilme var" keeps the
chest) nor a verb of feeling ("sol elimi hissetmiyorum" is the sign)."""
_AND_WORDS = frozenset({"ve", "ya", "da", "de", "veya", "yada", "ile"})
_DEGIL = ("degil",)


_NOT_STARTED = re.compile(r"^(?:basla|gel)m[ae](?:d|y|z|m[iu]s)")
"""Not "olmadı": "hiç böyle olmadı" says the pain is new."""


def _denied_degree(tokens: list[Token]) -> set[int]:
    """The two tokens before "değil" or "başlamadı"/"olmadı": an onset or severity word there is
    denied ("ani değil", "hayatımın en kötüsü değil", "ani başlamadı"), whatever the concept's
    ``negatable``."""
    return {k for j, t in enumerate(tokens)
            if t.form.startswith(_DEGIL) or _NOT_STARTED.match(t.form)
            for k in (j - 1, j - 2) if k >= 0 and tokens[k].clause == t.clause}


_AORIST = re.compile(r"(?<!yo)(?<!bil)(?<!m[ae]z)[aeiu]r$")
_LIGHT_VERBS = ("ol", "gecir", "ver", "yap", "gir", "at", "kal", "cik")
_QUESTION = frozenset({"mi", "mu"})


_FUTURE = re.compile(r"(?:acak|ecek)$")
_FEAR = ("kork", "endise", "kayg", "kuruntu", "tedirgin", "evham")


def asked_tokens(tokens: list[Token]) -> set[int]:
    """A sign asked about or feared as a possibility: the aorist verb before "mi" ("havale
    geçirir mi", "boğulur mu", "kanama olur mu diye korkuyorum") or a future verb feared
    ("havale geçirecek diye korkuyorum"), and the word before it when the verb is light."""
    out: set[int] = set()
    for j in range(1, len(tokens)):
        feared = (tokens[j].form == "diye" and _FUTURE.search(tokens[j - 1].form) and any(
            t.form.startswith(_FEAR) for t in tokens[j + 1:j + 4]) and not _now(tokens, j))
        if feared or (tokens[j].form in _QUESTION and _AORIST.search(tokens[j - 1].form)):
            out.add(j - 1)
            if j >= 2 and tokens[j - 1].form.startswith(_LIGHT_VERBS):
                out.add(j - 2)
        if IF_EVER.search(tokens[j].form[2:]):  # "gözüme kimyasal sıçrarsa ne yapmalıyım"
            out.add(j)
            if tokens[j].form.startswith(_LIGHT_VERBS):
                out.add(j - 1)
    return out


def _now(tokens: list[Token], j: int) -> bool:
    """Something happens now in the sentence of token ``j`` besides the fear itself ("babam
    annemi dövüyor, öldürecek diye korkuyoruz"): a now-word or a present verb before ``j``."""
    sentence = [(k, t) for k, t in enumerate(tokens) if t.sentence == tokens[j].sentence]
    return any(t.form in _PRESENT_WORDS or (k < j and _PRESENT_VERB.search(t.form)
                                            and not t.form.startswith(_FEAR))
               for k, t in sentence)


def topic_tokens(tokens: list[Token], covered: set[int]) -> set[int]:
    """Clauses that ask about a sign or read about it rather than report it: the tokens before an
    asking word ("… okudum", "… nedir") or a non-concept "if it ever" verb, in its clause."""
    out: set[int] = set()
    for j, tok in enumerate(tokens):
        if tok.form in ASKING_WORDS or IF_EVER.search(tok.form[2:]) or (
                tok.form in IMPERSONAL_QUESTIONS and _generic_clause(tokens, j)):
            out |= {k for k in range(j) if tokens[k].clause == tok.clause}
    return out


_OTHERS = ("arkadas", "komsu", "tanidi", "akrabam", "meslektas")
_SELF_WORDS = frozenset({"bende", "bizde", "benim", "bizim", "kendimde", "kendisinde",
                         "kizimda", "oglumda", "cocugumda", "bebegimde", "kizimin", "oglumun",
                         "sikayetim", "sikayetimiz", "riskim", "riskimiz"})
_SELF_DENIED = NEGATORS | {"olmadigini", "olmadigi", "riskim", "riskimiz", "risk", "riski",
                           "iyi", "saglikli"}
_REPORTED = re.compile(r"(?:d[iu]|t[iu]|m[iu]s|m[iu]st[iu])(?:lar)?$")


def hearsay_tokens(tokens: list[Token]) -> set[int]:
    """Clauses telling what happened to a friend or a neighbour ("arkadaşı intihar girişiminde
    bulunmuş", "iş arkadaşım kalp krizi geçirdi") when a later clause says the writer's own
    person is fine or asks about their own risk ("bende bir şey yok", "kızımda böyle bir
    düşünce yok", "riskim var mı"): the worry is about the writer, the event is someone else's
    past. A friend's emergency told in the present ("arkadaşım yere yığıldı, uyanmıyor") or
    with no such sentence still fires."""
    fine_from = next((k for k, t in enumerate(tokens) if t.form in _SELF_WORDS and any(
        u.form in _SELF_DENIED for u in tokens[k:] if u.sentence == t.sentence)), None)
    if fine_from is None:
        return set()
    clauses = defaultdict(list)
    for k, t in enumerate(tokens[:fine_from]):
        clauses[t.clause].append(k)
    clauses.pop(tokens[fine_from].clause, None)
    out: set[int] = set()
    for ks in clauses.values():
        forms = [tokens[k].form for k in ks]
        if (any(f.startswith(_OTHERS) for f in forms)
                and any(_REPORTED.search(f) for f in forms)
                and not any(f in _PRESENT_WORDS or _PRESENT_VERB.search(f) for f in forms)):
            out |= set(ks)
    return out


def _generic_clause(tokens: list[Token], j: int) -> bool:
    return any(t.form in GENERIC_WORDS for t in tokens[:j] if t.clause == tokens[j].clause)


def negated_tokens(tokens: list[Token], covered: set[int],
                   walks: list[tuple[int, set[int]]] | None = None) -> set[int]:
    """Tokens a negator reaches (``negation_walks``, unless the caller has them) and the topic
    clauses (``topic_tokens``)."""
    out: set[int] = topic_tokens(tokens, covered)
    for _, reached in negation_walks(tokens, covered) if walks is None else walks:
        out |= reached
    return out


_FINE = frozenset({"normal"})
_NOT_FINE = frozenset({"degil", "degildi", "degilmis", "mi", "mu", "gibi", "disi", "olmayan",
                       "olmadigi", "ustu", "alti", "ama", "fakat"})
"""A sign said to be normal is denied ("konuşması normal", "görmem normal"), unless the next
word takes that back ("normal değil", "normal mi")."""


def negation_walks(tokens: list[Token], covered: set[int]) -> list[tuple[int, set[int]]]:
    """Per negator, the tokens it reaches: walking back from "yok", "değil" or a negated verb
    that is not itself a concept ("kullanmıyorum"), up to a finite verb, a contrast word or 6
    tokens."""
    walks = []
    for j, tok in enumerate(tokens):
        if tok.form in ASKING_WORDS or IF_EVER.search(tok.form[2:]):
            continue  # topic_tokens has the clause
        about = tok.form in ABOUT_WORDS and not (
            j + 1 < len(tokens) and tokens[j + 1].form.startswith(_ABOUT_PRESENT)
            and not tokens[j + 1].form.endswith(("mi", "mu"))  # "riski var mı" asks
            and (j + 2 >= len(tokens) or tokens[j + 2].form not in _QUESTION))
        fine = (tok.form in _FINE and j not in covered
                and (j + 1 >= len(tokens) or tokens[j + 1].form not in _NOT_FINE))
        if not (about or fine or tok.form in NEGATORS
                or (j not in covered and _generic_negator(tok.form))):
            continue
        reached: set[int] = set()
        for k in range(j - 1, max(-1, j - 1 - NEGATION_REACH), -1):
            f = tokens[k].form
            if tokens[k].sentence != tok.sentence or f in NEGATION_BLOCKERS:
                break
            finite = _FINITE_VERB.search(f) and not _NEGATED_VERB.search(f[2:])
            if finite and k < j - 1:  # a verb right before the negator is what it denies
                break
            reached.add(k)
            if finite:
                break
        walks.append((j, reached))
    return walks


def _denied_sites(raw, tokens: list[Token], walks) -> set[int]:
    """Words denied with a sign: those inside a sign whose own suffix negates it ("kan
    tükürmedim"), and the body parts just before a denied sign, whether its suffix denies it
    ("göğsüm sıkışmıyor", "dudak dil şişmedi") or a "yok" or negated verb right after it does
    ("göğsümde ağrı yok"; ``_ABSENT``)."""
    parts = {last for c, last, _ in raw.values() if c.kind == "body_part"}
    out: set[int] = set()
    denied = []
    for (_, i), (concept, last, pattern) in raw.items():
        if not concept.negatable:
            continue
        if _negated_suffix(tokens[last], pattern):
            if last > i:  # the words before its last ("kan" of "kan tükürmedim")
                out |= set(range(i, last))
            denied.append(i)
        elif any(last in reached and j - last <= 2 and tokens[j].form in _ABSENT
                 for j, reached in walks):
            denied.append(i)
    for i in denied:
        k = i - 1
        while k >= 0 and tokens[k].clause == tokens[i].clause and (
                k in parts or tokens[k].form in _AND_WORDS):
            out.add(k)
            k -= 1
    return out


def quiet_tokens(tokens: list[Token], times: list[str]) -> list[bool]:
    """Tokens that deny or set things in the past: a chunk holding one is not embedded (the
    embedding detector cannot tell "göğüs ağrım yok" from "göğüs ağrım var")."""
    return [t.form in NEGATORS or t.form in ASKING_WORDS or times[i] == "past"
            for i, t in enumerate(tokens)]


def _generic_negator(form: str) -> bool:
    if form.startswith(_EVENT_DENIAL_ROOTS) and _EVENT_DENIED.search(form[3:]):
        return True
    return (_NEGATED_VERB.search(form[2:]) is not None and not _CANNOT.search(form)
            and form.startswith(_DENIAL_ROOTS) and not form.startswith(_PERSIST_ROOTS))


def token_times(tokens: list[Token], pluperfect: bool = True) -> list[str]:
    """Per token: "past" in a clause set in the distant past ("3 yıl önce", "çocukken", "bir
    ara", "2015'te", a pluperfect verb "geçirmiştim") and in the clauses after it in the same
    sentence, until a word or tense brings it back to now; "present" in a clause with such a word
    ("şimdi", "bugün", "yine", "hâlâ", a present-tense verb); else "unclear"."""
    past, present = set(), set()
    for i, tok in enumerate(tokens):
        f = tok.form
        nxt = tokens[i + 1].form if i + 1 < len(tokens) else ""
        if (f in _PAST_WORDS or f in _LONG_FOR or (pluperfect and _PLUPERFECT.search(f)) or (_YEAR.fullmatch(f) and i + 1 < len(
                tokens)) or (f in _PAST_UNITS and any(t.form in _PAST_AFTER
                                                       for t in tokens[i + 1:i + 3]))
                or (f == "gecen" and nxt[:3] in {"yil", "sen", "ay", "ayl", "yaz", "kis",
                                                 "bah", "son"})
                or (f == "bir" and nxt == "ara") or (f == "o" and nxt in {"zaman", "zamanlar",
                                                                          "donem"})):
            past.add(tok.clause)
        elif f in _PRESENT_WORDS or (f == "biraz" and nxt in {"once", "evvel"}) or (
                f in {"su", "bu"} and nxt in {
                "an", "anda", "sabah", "aksam", "gece", "gun", "sira", "aralar"}) or (
                _PRESENT_VERB.search(f) and len(f) > 4):
            present.add(tok.clause)
    out, state, clause, sentence = [], "unclear", -1, -1
    for tok in tokens:
        if tok.clause != clause:
            carried = state if tok.sentence == sentence and state == "past" else "unclear"
            clause, sentence = tok.clause, tok.sentence
            state = ("present" if clause in present else "past" if clause in past
                     else carried)
        out.append(state)
    return out


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
            options = [[h for c in group for h in by_concept.get(c, ())
                        if not any(a <= h.first and h.last <= b for a, b in inside)]
                       for group in rule.groups]
            if not all(options):
                continue
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


def _best_combination(options: list[list[Hit]], tokens: list[Token], window: int,
                      scope: str, blockers: list[Hit]) -> tuple[Hit, ...] | None:
    best, best_key = None, None
    for combo in itertools.islice(itertools.product(*options), 5000):
        if len({h.first for h in combo}) < len(combo):
            continue
        lo, hi = min(h.first for h in combo), max(h.last for h in combo)
        if hi - lo + 1 > window + sum(h.last - h.first for h in combo):
            continue
        if scope == "sentence" and tokens[lo].sentence != tokens[hi].sentence:
            continue
        if any(tokens[b.first].sentence == tokens[lo].sentence and lo - 8 <= b.first <= hi + 8
               for b in blockers):
            continue
        key = (_is_past(combo), hi - lo)
        if best_key is None or key < best_key:
            best, best_key = combo, key
    return tuple(sorted(best, key=lambda h: h.first)) if best else None
