"""When a sign happens: per token, "past" (a clause set in the distant past), "present" (a
word or tense of now) or "unclear" (which always counts as now)."""

from __future__ import annotations

from medai.triage.red_flags.tokens import Token
from medai.triage.red_flags.words import current


def token_times(tokens: list[Token], pluperfect: bool = True) -> list[str]:
    """Per token: "past" in a clause set in the distant past ("3 yıl önce", "çocukken", "bir
    ara", "2015'te", a pluperfect verb "geçirmiştim") and in the clauses after it in the same
    sentence, until a word or tense brings it back to now; "present" in a clause with such a word
    ("şimdi", "bugün", "yine", "hâlâ", a present-tense verb); else "unclear"."""
    w = current()
    past, present, well, tense = set(), set(), set(), set()
    for i, tok in enumerate(tokens):
        f = tok.form
        nxt = tokens[i + 1].form if i + 1 < len(tokens) else ""
        if _dates(tokens, i, pluperfect):
            past.add(tok.clause)
        elif _fine_now(tokens, i):
            well.add(tok.clause)  # "2 yıl önce kalp krizi geçirdi şu an çok iyi"
        elif (
            f in w.present_words
            or (f, nxt) in w.recent_phrases
            or (f in w.this_words and nxt in w.this_times)
        ):
            present.add(tok.clause)
        elif w.present_verb.search(f) and len(f) > 4:
            tense.add(tok.clause)
    # a present tense alone does not bring back a clause that has gone on for months or years
    # ("3 yıldır nefes alamıyorum" is chronic); a now-word does ("3 yıldır var, bugün arttı")
    chronic = {t.clause for t in tokens if t.form in w.long_for}
    present |= tense - chronic
    out, state, clause, sentence = [], "unclear", -1, -1
    for tok in tokens:
        if tok.clause != clause:
            carried = (
                "past"
                if tok.sentence == sentence and state == "past" and clause not in well
                else "unclear"
            )
            clause, sentence = tok.clause, tok.sentence
            # "well now" keeps a clause dated in itself in the past, and is a now for the rest:
            # "bir ara bayıldı, şu an iyi ama ağzı kaymış" fires
            state = (
                "present"
                if clause in present or (clause in well and clause not in past)
                else "past"
                if clause in past
                else carried
            )
        out.append(state)
    return out


def _fine_now(tokens: list[Token], i: int) -> bool:
    """A now-word that says the person is well now ("şimdi iyi", "şu an gayet iyi"): it does not
    bring an event dated in the past back to now. "şimdi iyi değil" and "iyi görünüyor ama"
    still do."""
    w = current()
    f = tokens[i].form
    if i + 1 < len(tokens) and (f, tokens[i + 1].form) in w.now_phrases:
        i += 1
    elif f not in w.well_now_words:
        return False
    ahead = [t.form for t in tokens[i + 1 : i + 4] if t.clause == tokens[i].clause]
    k = next((n for n, word in enumerate(ahead) if word in w.well_words), None)
    return (
        k is not None
        and all(word in w.well_intensifiers for word in ahead[:k])
        and (k + 1 >= len(ahead) or ahead[k + 1] not in w.not_well)
    )


def _then(tokens: list[Token], i: int) -> bool:
    """ "sonra" later in the sentence of token ``i``: a pluperfect before it tells a recent
    sequence ("ateşi 37.5 olmuştu sonra 38.6 oldu"), not the distant past."""
    then = current().then_words
    return any(t.form in then for t in tokens[i + 1 :] if t.sentence == tokens[i].sentence)


def _dates(tokens: list[Token], i: int, pluperfect: bool) -> bool:
    """Token ``i`` sets its clause in the distant past: "3 yıl önce", "geçen sene", "çocukken",
    "2015'te", "5 yıldır", "bir ara", "o zaman", or (with ``pluperfect``) "geçirmiştim" unless
    "sonra" follows it (``_then``)."""
    w = current()
    f = tokens[i].form
    nxt = tokens[i + 1].form if i + 1 < len(tokens) else ""
    return bool(
        f in w.past_words
        or f in w.long_for
        or (pluperfect and w.pluperfect.search(f) and not _then(tokens, i))
        or (w.year.fullmatch(f) and i + 1 < len(tokens))
        or (f in w.past_units and any(t.form in w.past_after for t in tokens[i + 1 : i + 3]))
        or (f == "gecen" and nxt[:3] in w.last_units)
        or (f, nxt) in w.past_phrases
    )
