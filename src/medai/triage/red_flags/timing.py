"""When a sign happens: per token, "past" (a clause set in the distant past), "present" (a
word or tense of now) or "unclear" (which always counts as now)."""

from __future__ import annotations

import re

from medai.triage.red_flags.tokens import Token

PRESENT_VERB = re.compile(r"yor(?:um|uz|sun|sunuz|lar|mus)?$")
_PAST_UNITS = {"yil", "yillar", "sene", "seneler", "ay", "aylar", "yilda", "senede", "hafta",
               "haftalar"}
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
PRESENT_WORDS = {"simdi", "suan", "hala", "halen", "bugun", "demin", "yine", "tekrar",
                  "yeniden", "suanda", "dun", "bugunden", "hemen", "gece", "sabah"}




def token_times(tokens: list[Token], pluperfect: bool = True) -> list[str]:
    """Per token: "past" in a clause set in the distant past ("3 yıl önce", "çocukken", "bir
    ara", "2015'te", a pluperfect verb "geçirmiştim") and in the clauses after it in the same
    sentence, until a word or tense brings it back to now; "present" in a clause with such a word
    ("şimdi", "bugün", "yine", "hâlâ", a present-tense verb); else "unclear"."""
    past, present, well, tense = set(), set(), set(), set()
    for i, tok in enumerate(tokens):
        f = tok.form
        nxt = tokens[i + 1].form if i + 1 < len(tokens) else ""
        if _dates(tokens, i, pluperfect):
            past.add(tok.clause)
        elif _fine_now(tokens, i):
            well.add(tok.clause)  # "2 yıl önce kalp krizi geçirdi şu an çok iyi"
        elif f in PRESENT_WORDS or (f == "biraz" and nxt in {"once", "evvel"}) or (
                f in {"su", "bu"} and nxt in {
                "an", "anda", "sabah", "aksam", "gece", "gun", "sira", "aralar"}):
            present.add(tok.clause)
        elif PRESENT_VERB.search(f) and len(f) > 4:
            tense.add(tok.clause)
    # a present tense alone does not bring back a clause that has gone on for months or years
    # ("3 yıldır nefes alamıyorum" is chronic); a now-word does ("3 yıldır var, bugün arttı")
    chronic = {t.clause for t in tokens if t.form in _LONG_FOR}
    present |= tense - chronic
    out, state, clause, sentence = [], "unclear", -1, -1
    for tok in tokens:
        if tok.clause != clause:
            carried = ("past" if tok.sentence == sentence and state == "past"
                       and clause not in well else "unclear")
            clause, sentence = tok.clause, tok.sentence
            # "well now" keeps a clause dated in itself in the past, and is a now for the rest:
            # "bir ara bayıldı, şu an iyi ama ağzı kaymış" fires
            state = ("present" if clause in present or (clause in well and clause not in past)
                     else "past" if clause in past else carried)
        out.append(state)
    return out


_WELL = frozenset({"iyi", "iyiyim", "iyiyiz", "iyidir", "iyiler", "normal", "saglikli",
                   "sorunsuz"})
_NOT_WELL = frozenset({"degil", "degildi", "mi", "mu", "gorunuyor", "gibi", "hissetmiyor",
                       "hissetmiyorum", "ama", "fakat"})


def _fine_now(tokens: list[Token], i: int) -> bool:
    """A now-word that says the person is well now ("şimdi iyi", "şu an gayet iyi"): it does not
    bring an event dated in the past back to now. "şimdi iyi değil" and "iyi görünüyor ama"
    still do."""
    f = tokens[i].form
    if f == "su" and i + 1 < len(tokens) and tokens[i + 1].form in {"an", "anda"}:
        i += 1
    elif f not in {"simdi", "suan", "suanda", "halen", "hala", "bugun"}:
        return False
    ahead = [t.form for t in tokens[i + 1:i + 4] if t.clause == tokens[i].clause]
    k = next((n for n, w in enumerate(ahead) if w in _WELL), None)
    return k is not None and all(w in {"cok", "gayet", "daha", "tamamen", "hamdolsun",
                                       "sukur"} for w in ahead[:k]) and (
        k + 1 >= len(ahead) or ahead[k + 1] not in _NOT_WELL)


_THEN = frozenset({"sonra", "ardindan", "derken", "sonrasinda"})


def _then(tokens: list[Token], i: int) -> bool:
    """"sonra" later in the sentence of token ``i``: a pluperfect before it tells a recent
    sequence ("ateşi 37.5 olmuştu sonra 38.6 oldu"), not the distant past."""
    return any(t.form in _THEN for t in tokens[i + 1:] if t.sentence == tokens[i].sentence)


def _dates(tokens: list[Token], i: int, pluperfect: bool) -> bool:
    """Token ``i`` sets its clause in the distant past: "3 yıl önce", "geçen sene", "çocukken",
    "2015'te", "5 yıldır", "bir ara", "o zaman", or (with ``pluperfect``) "geçirmiştim" unless
    "sonra" follows it (``_then``)."""
    f = tokens[i].form
    nxt = tokens[i + 1].form if i + 1 < len(tokens) else ""
    return bool(
        f in _PAST_WORDS or f in _LONG_FOR
        or (pluperfect and _PLUPERFECT.search(f) and not _then(tokens, i))
        or (_YEAR.fullmatch(f) and i + 1 < len(tokens))
        or (f in _PAST_UNITS and any(t.form in _PAST_AFTER for t in tokens[i + 1:i + 3]))
        or (f == "gecen" and nxt[:3] in {"yil", "sen", "ay", "ayl", "yaz", "kis", "bah", "son"})
        or (f == "bir" and nxt == "ara") or (f == "o" and nxt in {"zaman", "zamanlar", "donem"}))
