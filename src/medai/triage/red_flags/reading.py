"""How a clause speaks of the signs in it: denied ("göğüs ağrım yok"), asked or read about
("… nedir", "… okudum"), feared or supposed ("boğulur mu", "sıçrarsa"), someone else's past
("arkadaşı … bulunmuş, kızımda yok"), or said to be normal. The concept matcher drops such hits.
"""

from __future__ import annotations

from collections import defaultdict

from medai.triage.red_flags.schema import TokenPattern
from medai.triage.red_flags.tokens import Token, if_ever, negated_rest
from medai.triage.red_flags.words import current

DEGREE_KINDS = ("onset", "severity")
"""Concept kinds a "değil" or "başlamadı" right after denies ("ani değil")."""


def negated_suffix(token: Token, pattern: TokenPattern) -> bool:
    rest = token.form[len(pattern.stem) :] if pattern.mode != "exact" else ""
    if rest and pattern.stem.endswith(("ma", "me")):
        rest = pattern.stem[-2:] + rest  # "kan kusma*" on "kusmadım": -ma- is the negation
    return bool(rest) and negated_rest(rest)


def denied_degree(tokens: list[Token]) -> set[int]:
    """The two tokens before "değil" or "başlamadı"/"olmadı": an onset or severity word there is
    denied ("ani değil", "hayatımın en kötüsü değil", "ani başlamadı"), whatever the concept's
    ``negatable``."""
    w = current()
    return {
        k
        for j, t in enumerate(tokens)
        if t.form.startswith(w.not_so) or w.not_started.match(t.form)
        for k in (j - 1, j - 2)
        if k >= 0 and tokens[k].clause == t.clause
    }


def asked_tokens(tokens: list[Token]) -> set[int]:
    """A sign asked about or feared as a possibility: the aorist verb before "mi" ("havale
    geçirir mi", "boğulur mu", "kanama olur mu diye korkuyorum") or a future verb feared
    ("havale geçirecek diye korkuyorum"), and the word before it when the verb is light."""
    w = current()
    out: set[int] = set()
    for j in range(1, len(tokens)):
        feared = (
            tokens[j].form == "diye"
            and w.future.search(tokens[j - 1].form)
            and any(t.form.startswith(w.fear) for t in tokens[j + 1 : j + 4])
            and not _now(tokens, j)
        )
        if feared or (tokens[j].form in w.question and w.aorist.search(tokens[j - 1].form)):
            out.add(j - 1)
            if j >= 2 and tokens[j - 1].form.startswith(w.light_verbs):
                out.add(j - 2)
        if if_ever(tokens[j].form[2:]):  # the conditional may be the sign: "… sıçrarsa"
            out.add(j)
            if tokens[j].form.startswith(w.light_verbs):
                out.add(j - 1)
    return out


def _now(tokens: list[Token], j: int) -> bool:
    """Something happens now in the sentence of token ``j`` besides the fear itself ("babam
    annemi dövüyor, öldürecek diye korkuyoruz"): a now-word or a present verb before ``j``."""
    w = current()
    sentence = [(k, t) for k, t in enumerate(tokens) if t.sentence == tokens[j].sentence]
    return any(
        t.form in w.present_words
        or (k < j and w.present_verb.search(t.form) and not t.form.startswith(w.fear))
        for k, t in sentence
    )


def _asks(token: Token) -> bool:
    """An asking word ("… okudum", "… nedir") or an "if it ever" verb ("… sıçrarsa")."""
    return token.form in current().asking_words or if_ever(token.form[2:])


def topic_tokens(tokens: list[Token]) -> set[int]:
    """Clauses that ask about a sign or read about it rather than report it: the tokens before an
    asking word, an "if it ever" verb or an impersonal question about anyone, in its clause
    (``asked_tokens`` has the conditional verb itself), and a whole clause citing a leaflet, a
    book or the news (``DOCUMENT_WORDS``)."""
    w = current()
    out: set[int] = set()
    for j, tok in enumerate(tokens):
        if _asks(tok) or (tok.form in w.impersonal_questions and _generic_clause(tokens, j)):
            out |= {k for k in range(j) if tokens[k].clause == tok.clause}
        elif (tok.form in w.document_words or tok.form.startswith(w.document_stems)) and any(
            t.clause == tok.clause and t.form.startswith(w.reporting) for t in tokens
        ):
            out |= {k for k, t in enumerate(tokens) if t.clause == tok.clause}
    return out


def hearsay_tokens(tokens: list[Token]) -> set[int]:
    """Clauses telling what happened to a friend or a neighbour ("arkadaşı intihar girişiminde
    bulunmuş", "iş arkadaşım kalp krizi geçirdi") when a later clause says the writer's own
    person is fine or asks about their own risk ("bende bir şey yok", "kızımda böyle bir
    düşünce yok", "riskim var mı"): the worry is about the writer, the event is someone else's
    past. A friend's emergency told in the present ("arkadaşım yere yığıldı, uyanmıyor") or
    with no such sentence still fires."""
    w = current()
    fine_from = next(
        (
            k
            for k, t in enumerate(tokens)
            if t.form in w.self_words
            and any(u.form in w.self_denied for u in tokens[k:] if u.sentence == t.sentence)
        ),
        None,
    )
    if fine_from is None:
        return set()
    clauses = defaultdict(list)
    for k, t in enumerate(tokens[:fine_from]):
        clauses[t.clause].append(k)
    clauses.pop(tokens[fine_from].clause, None)
    out: set[int] = set()
    for ks in clauses.values():
        forms = [tokens[k].form for k in ks]
        if (
            any(f.startswith(w.others) for f in forms)
            and any(w.reported.search(f) for f in forms)
            and not any(f in w.present_words or w.present_verb.search(f) for f in forms)
        ):
            out |= set(ks)
    return out


def _generic_clause(tokens: list[Token], j: int) -> bool:
    generic = current().generic_words
    return any(t.form in generic for t in tokens[:j] if t.clause == tokens[j].clause)


def negated_tokens(
    tokens: list[Token], covered: set[int], walks: list[tuple[int, set[int]]] | None = None
) -> set[int]:
    """Tokens a negator reaches (``negation_walks``, unless the caller has them) and the topic
    clauses (``topic_tokens``)."""
    out: set[int] = topic_tokens(tokens)
    for _, reached in negation_walks(tokens, covered) if walks is None else walks:
        out |= reached
    return out


def negation_walks(tokens: list[Token], covered: set[int]) -> list[tuple[int, set[int]]]:
    """Per negator, the tokens it reaches: walking back from "yok", "değil" or a negated verb
    that is not itself a concept ("kullanmıyorum"), up to a finite verb, a contrast word or 6
    tokens."""
    w = current()
    particles = tuple(sorted(w.question))
    walks = []
    for j, tok in enumerate(tokens):
        if _asks(tok):
            continue  # topic_tokens has the clause
        about = tok.form in w.about_words and not (
            j + 1 < len(tokens)
            and tokens[j + 1].form.startswith(w.about_present)
            and not tokens[j + 1].form.endswith(particles)  # "riski var mı" asks
            and (j + 2 >= len(tokens) or tokens[j + 2].form not in w.question)
        )
        fine = (
            tok.form in w.fine_words
            and j not in covered
            and (j + 1 >= len(tokens) or tokens[j + 1].form not in w.not_fine)
        )
        short = j > 0 and (
            (tokens[j - 1].form == "gibi" and w.seems_not.match(tok.form))
            or (tokens[j - 1].form == "rahatsiz" and tok.form.startswith(w.bothers_not))
            or (w.think_denied.match(tok.form) and w.will_other.search(tokens[j - 1].form))
        )
        if not (
            about
            or fine
            or short
            or tok.form in w.negators
            or (j not in covered and _generic_negator(tok.form))
        ):
            continue
        reached: set[int] = set()
        reach = w.short_reach if short else w.negation_reach
        for k in range(j - 1, max(-1, j - 1 - reach), -1):
            f = tokens[k].form
            if tokens[k].sentence != tok.sentence or f in w.negation_blockers:
                break
            finite = w.finite_verb.search(f) and not w.negated_verb.search(f[2:])
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
    w = current()
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
        elif any(
            last in reached and j - last <= 2 and tokens[j].form in w.absent for j, reached in walks
        ):
            denied.append(i)
    for i in denied:
        k = i - 1
        while (
            k >= 0
            and tokens[k].clause == tokens[i].clause
            and (k in parts or tokens[k].form in w.and_words)
        ):
            out.add(k)
            k -= 1
    return out


def quiet_tokens(tokens: list[Token], times: list[str]) -> list[bool]:
    """Tokens that deny or set things in the past: a chunk holding one is not embedded (the
    embedding detector cannot tell "göğüs ağrım yok" from "göğüs ağrım var")."""
    w = current()
    return [
        t.form in w.negators or t.form in w.asking_words or times[i] == "past"
        for i, t in enumerate(tokens)
    ]


def _generic_negator(form: str) -> bool:
    w = current()
    root = next((r for r in w.event_denial_roots if form.startswith(r)), None)
    if root and w.event_denied.match(form[len(root) :]) and not w.cannot.search(form):
        return True
    return (
        w.negated_verb.search(form[2:]) is not None
        and not w.cannot.search(form)
        and form.startswith(w.denial_roots)
        and not form.startswith(w.persist_roots)
    )


def normal_readings(tokens: list[Token]) -> set[int]:
    """Words right before a measured temperature under 38 °C: 36 or 37 with its decimals or
    "derece" ("ateşi 37.2", "ateşim 36,8"), with no reading of 38 or more in the next tokens
    ("ateşi 37-38 arası" is a fever) and no bound or change after it ("36'nın altında" is too
    low, "37.9 üstünde", "37'yi geçti", "37.5 civarı ama yanıyor", "hiç düşmüyor")."""
    w = current()
    feverish = range(w.fever_from, w.fever_to + 1)
    out: set[int] = set()
    for j, tok in enumerate(tokens):
        if tok.form not in w.normal_reading or j == 0:
            continue
        nxt = tokens[j + 1] if j + 1 < len(tokens) else None
        decimal = nxt is not None and nxt.form.isdigit() and nxt.clause == tok.clause
        if not (decimal or nxt is None or nxt.form == "derece" or nxt.clause != tok.clause):
            continue  # "37'yi", "36'nın altında": a suffix or a word bounds it
        after = [t.form for t in tokens[j + 1 : j + 6] if t.sentence == tok.sentence]
        if any(f.isdigit() and int(f) in feverish for f in after if len(f) <= 2) or any(
            f.startswith(w.bound) for f in after[int(decimal) : 4]
        ):
            continue
        if tokens[j - 1].sentence == tok.sentence:
            out.add(j - 1)
    return out
