"""When a sign happens: per token, "past" (a clause set in the distant past, or a phrase told
as a history: "hemiparezi öyküsü", "geçirilmiş SVO"), "present" (a word or tense of now) or
"unclear" (which always counts as now)."""

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
    if pluperfect:  # a history tells no date: it makes a sign past, never an event "dated"
        for i in history_tokens(tokens):
            out[i] = "past"
    return out


def history_tokens(tokens: list[Token]) -> set[int]:
    """Tokens of a phrase told as a person's history: the words before a history noun of
    their clause ("sol hemiparezi öyküsü", "SVO öykülü hasta", "inme geçmişi"), the words after
    one in the locative or a past participle ("öyküsünde inme", "özgeçmişinde SVO",
    "geçirilmiş SVO"), and the words before "geçirmiş" used as a participle ("inme geçirmiş
    hasta"; "babam felç geçirmiş" is a verb and may be minutes old). A history told as the
    present illness is not one: "… öyküsü ile başvuran", "2 saat önce … öyküsü", "akut", a
    word of now ("bugün", "yine") within its reach. At most ``history_reach`` words, never
    across a clause or a finite verb: "SVO öyküsü olan hastada ani sağ hemiparezi" keeps the
    new weakness."""
    w = current()
    out: set[int] = set()
    for i, tok in enumerate(tokens):
        f = tok.form
        if f in w.history_participles:
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if nxt is None or nxt.clause != tok.clause or not nxt.form.startswith(w.history_heads):
                continue
            ahead = False
        elif f in w.history_words or f.startswith(w.history_nouns):
            ahead = bool(w.history_ahead.search(f))
        else:
            continue
        span = _history_reach(tokens, i, ahead)
        if span:
            out |= span
    return out


def _told_now(form: str) -> bool:
    w = current()
    return form in w.present_words or form.startswith(w.history_now)


def _history_reach(tokens: list[Token], i: int, ahead: bool) -> set[int]:
    """The words of history word ``i``'s phrase (``history_tokens``); empty when a word of
    now or of the present illness stands in its reach, or (a history noun after its words)
    a presenting verb in the three words after it ("hemiparezi öyküsü ile başvuran")."""
    w = current()
    clause, step = tokens[i].clause, (1 if ahead else -1)
    after = [t.form for t in tokens[i + 1 : i + 4] if t.clause == clause]
    if not ahead and any(form.startswith(w.history_presenting) for form in after):
        return set()
    span: set[int] = set()
    j = i + step
    while 0 <= j < len(tokens) and tokens[j].clause == clause and len(span) < w.history_reach:
        form = tokens[j].form
        if _told_now(form):
            return set()
        if w.finite_verb.search(form):
            break
        span.add(j)
        j += step
    return span


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
        or ((f, nxt) in w.earlier_phrases and not _never(tokens, i))
    )


def _never(tokens: list[Token], i: int) -> bool:
    """ "hiç", "böyle", "ilk" … in the clause of "daha önce", before or after it: "daha önce hiç
    böyle bir ağrı olmadı", "hiç böyle bir şey olmamıştı daha önce" say the sign is new."""
    never, clause = current().never_words, tokens[i].clause
    return any(t.form in never for t in tokens if t.clause == clause)
