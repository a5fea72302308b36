"""How a clause speaks of the signs in it: denied ("göğüs ağrım yok"), asked or read about
("… nedir", "… okudum"), feared or supposed ("boğulur mu", "sıçrarsa"), someone else's past
("arkadaşı … bulunmuş, kızımda yok"), or said to be normal. The concept matcher drops such hits.
"""

from __future__ import annotations

import re
from collections import defaultdict

from medai.triage.red_flags.schema import TokenPattern
from medai.triage.red_flags.timing import PRESENT_VERB, PRESENT_WORDS
from medai.triage.red_flags.tokens import IF_EVER, Token, negated_rest

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
_EVENT_DENIAL_ROOTS = ("deg", "kac", "sicra", "carp", "vur", "yut")
_EVENT_DENIED = re.compile(r"m[ae](?:d[iu]|m[iu]s)(?:m|n|k|niz|nuz|lar|ler|t[iu]r)?$")
"""Events denied in the past tense ("gözüme kimyasal kaçmadı", "değmedi", "başını vurmadı",
"ilaç yutmadı"); their present tense is often the sign ("çenesi göğsüne değmiyor"), and so is
"could not" ("yutamadı": ``_CANNOT``). Only a finite past verb: "yutup yutmadığını bilmiyoruz"
is not sure. Not "içmedi": "bebek bugün mama içmedi" is a sign."""
_THINK_DENIED = re.compile(r"^dusunm(?:[iu]yor|[ae]d[iu])")
_WILL_OTHER = re.compile(r"(?:acag|eceg|acaklar|ecekler)[iu]n[iu]$")
""""kendine zarar vereceğini düşünmüyorum": the writer does not think someone else will do it.
Only after a third-person future ("-eceğini"), and only over that phrase (``SHORT_REACH``):
"kendimi öldürmekten başka çıkış yolu düşünmüyorum" and "intihar etmeyi düşünmüyorum artık
kararımı verdim" are the plan itself."""
SHORT_REACH = 2
_SEEMS = re.compile(r"^(?:durmuyor|gorunmuyor|gozukmuyor)")
""""kırık gibi durmuyor", "kanama gibi görünmüyor": after "gibi", it does not look like the
sign ("durmuyor" alone is a sign that goes on: "kanama durmuyor")."""
_BOTHERS_NOT = ("etmiyor", "etmedi", "etmez")
""""ışık gözümü rahatsız etmiyor": the light does not bother. Not "etmiyor" alone: "hareket
etmiyor" is a sign."""
DOCUMENT_STEMS = ("prospektus", "brosur")
DOCUMENT_WORDS = frozenset({"kitapta", "gazetede", "makalede", "haberde", "haberlerde",
                            "televizyonda", "dizide"})
_REPORTING = ("yaziyor", "yazil", "yazmis", "yazar", "anlatil", "anlatiy", "anlattil", "diyor",
              "deniyor", "soylen", "soyluyor", "bahsed", "bahsetti")
"""A clause that cites a leaflet, a book or the news with a verb of saying tells what it says
("prospektüste intihar düşüncesi yapabilir yazıyor", "televizyonda inme belirtilerini
anlattılar"), not what happens ("televizyonda maç izlerken yere yığıldı" is a report; so is
"prospektüsteki dozun 5 katı içmiş"). Not "internette": searching for suicide methods there is
itself a sign."""
_FINITE_VERB = re.compile(r"(?:yor|yorum|yoruz|yorsun|yorlar|di|du|dim|dum|dik|duk|mis|mus"
                          r"|misim|acak|ecek|ecegim|acagim|(?<=[pctkfhs])(?:ti|tu|tim|tum))$")
"""A finite verb ends a negation's reach. The past tense is -tı only after a voiceless consonant:
"bulantı", "çarpıntı", "hırıltı" are nouns ("bulantı kusma yok" denies both)."""


def negated_suffix(token: Token, pattern: TokenPattern) -> bool:
    rest = token.form[len(pattern.stem):] if pattern.mode != "exact" else ""
    if rest and pattern.stem.endswith(("ma", "me")):
        rest = pattern.stem[-2:] + rest  # "kan kusma*" on "kusmadım": -ma- is the negation
    return bool(rest) and negated_rest(rest)


DEGREE_KINDS = ("onset", "severity")
_ABSENT = frozenset({"yok", "yoktu", "yoktur", "yokdu", "yokmus", "olmadi", "olmuyor",
                     "olmamis", "olmamistir", "gorulmedi", "gozlenmedi"})
"""Words that say a sign is absent. Not "değil" ("göğsümde yanma değil, ezilme var" keeps the
chest) nor a verb of feeling ("sol elimi hissetmiyorum" is the sign)."""
_AND_WORDS = frozenset({"ve", "ya", "da", "de", "veya", "yada", "ile"})
_DEGIL = ("degil",)


_NOT_STARTED = re.compile(r"^(?:basla|gel)m[ae](?:d|y|z|m[iu]s)")
"""Not "olmadı": "hiç böyle olmadı" says the pain is new."""


def denied_degree(tokens: list[Token]) -> set[int]:
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
        if IF_EVER.search(tokens[j].form[2:]):  # the conditional may be the sign: "… sıçrarsa"
            out.add(j)
            if tokens[j].form.startswith(_LIGHT_VERBS):
                out.add(j - 1)
    return out


def _now(tokens: list[Token], j: int) -> bool:
    """Something happens now in the sentence of token ``j`` besides the fear itself ("babam
    annemi dövüyor, öldürecek diye korkuyoruz"): a now-word or a present verb before ``j``."""
    sentence = [(k, t) for k, t in enumerate(tokens) if t.sentence == tokens[j].sentence]
    return any(t.form in PRESENT_WORDS or (k < j and PRESENT_VERB.search(t.form)
                                            and not t.form.startswith(_FEAR))
               for k, t in sentence)


def _asks(token: Token) -> bool:
    """An asking word ("… okudum", "… nedir") or an "if it ever" verb ("… sıçrarsa")."""
    return token.form in ASKING_WORDS or IF_EVER.search(token.form[2:]) is not None


def topic_tokens(tokens: list[Token]) -> set[int]:
    """Clauses that ask about a sign or read about it rather than report it: the tokens before an
    asking word, an "if it ever" verb or an impersonal question about anyone, in its clause
    (``asked_tokens`` has the conditional verb itself), and a whole clause citing a leaflet, a
    book or the news (``DOCUMENT_WORDS``)."""
    out: set[int] = set()
    for j, tok in enumerate(tokens):
        if _asks(tok) or (tok.form in IMPERSONAL_QUESTIONS and _generic_clause(tokens, j)):
            out |= {k for k in range(j) if tokens[k].clause == tok.clause}
        elif (tok.form in DOCUMENT_WORDS or tok.form.startswith(DOCUMENT_STEMS)) and any(
                t.clause == tok.clause and t.form.startswith(_REPORTING) for t in tokens):
            out |= {k for k, t in enumerate(tokens) if t.clause == tok.clause}
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
                and not any(f in PRESENT_WORDS or PRESENT_VERB.search(f) for f in forms)):
            out |= set(ks)
    return out


def _generic_clause(tokens: list[Token], j: int) -> bool:
    return any(t.form in GENERIC_WORDS for t in tokens[:j] if t.clause == tokens[j].clause)


def negated_tokens(tokens: list[Token], covered: set[int],
                   walks: list[tuple[int, set[int]]] | None = None) -> set[int]:
    """Tokens a negator reaches (``negation_walks``, unless the caller has them) and the topic
    clauses (``topic_tokens``)."""
    out: set[int] = topic_tokens(tokens)
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
        if _asks(tok):
            continue  # topic_tokens has the clause
        about = tok.form in ABOUT_WORDS and not (
            j + 1 < len(tokens) and tokens[j + 1].form.startswith(_ABOUT_PRESENT)
            and not tokens[j + 1].form.endswith(("mi", "mu"))  # "riski var mı" asks
            and (j + 2 >= len(tokens) or tokens[j + 2].form not in _QUESTION))
        fine = (tok.form in _FINE and j not in covered
                and (j + 1 >= len(tokens) or tokens[j + 1].form not in _NOT_FINE))
        short = j > 0 and ((tokens[j - 1].form == "gibi" and _SEEMS.match(tok.form)) or (
            tokens[j - 1].form == "rahatsiz" and tok.form.startswith(_BOTHERS_NOT)) or (
            _THINK_DENIED.match(tok.form) and _WILL_OTHER.search(tokens[j - 1].form)))
        if not (about or fine or short or tok.form in NEGATORS
                or (j not in covered and _generic_negator(tok.form))):
            continue
        reached: set[int] = set()
        reach = SHORT_REACH if short else NEGATION_REACH
        for k in range(j - 1, max(-1, j - 1 - reach), -1):
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


def denied_sites(raw, tokens: list[Token], walks) -> set[int]:
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
        if negated_suffix(tokens[last], pattern):
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
    root = next((r for r in _EVENT_DENIAL_ROOTS if form.startswith(r)), None)
    if root and _EVENT_DENIED.match(form[len(root):]) and not _CANNOT.search(form):
        return True
    return (_NEGATED_VERB.search(form[2:]) is not None and not _CANNOT.search(form)
            and form.startswith(_DENIAL_ROOTS) and not form.startswith(_PERSIST_ROOTS))


_NORMAL_READING = frozenset({"36", "37"})
_FEVERISH = range(38, 43)
_BOUND = ("alt", "ust", "uzer", "gec", "fazla", "asag", "yukar", "civar", "kadar", "dus",
          "cik", "yuksel", "art")


def normal_readings(tokens: list[Token]) -> set[int]:
    """Words right before a measured temperature under 38 °C: 36 or 37 with its decimals or
    "derece" ("ateşi 37.2", "ateşim 36,8"), with no reading of 38 or more in the next tokens
    ("ateşi 37-38 arası" is a fever) and no bound or change after it ("36'nın altında" is too
    low, "37.9 üstünde", "37'yi geçti", "37.5 civarı ama yanıyor", "hiç düşmüyor")."""
    out: set[int] = set()
    for j, tok in enumerate(tokens):
        if tok.form not in _NORMAL_READING or j == 0:
            continue
        nxt = tokens[j + 1] if j + 1 < len(tokens) else None
        decimal = nxt is not None and nxt.form.isdigit() and nxt.clause == tok.clause
        if not (decimal or nxt is None or nxt.form == "derece" or nxt.clause != tok.clause):
            continue  # "37'yi", "36'nın altında": a suffix or a word bounds it
        after = [t.form for t in tokens[j + 1:j + 6] if t.sentence == tok.sentence]
        if any(f.isdigit() and int(f) in _FEVERISH for f in after if len(f) <= 2) or any(
                f.startswith(_BOUND) for f in after[int(decimal):4]):
            continue
        if tokens[j - 1].sentence == tok.sentence:
            out.add(j - 1)
    return out
