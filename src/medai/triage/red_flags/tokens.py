"""Tokens, sentences and clauses of a complaint, and suffix-tolerant matching of Turkish stems.

Turkish glues suffixes to stems ("göğsümde", "bayıldı", "babamın"), and patients type with or
without Turkish letters, so every token is compared in its casefolded, ASCII-folded form
("gogsumde") and a lexicon stem matches a token when the rest of the token is a chain of Turkish
suffixes. Three strategies are kept behind one table (``MATCHERS``) because the benchmark compares
them: ``suffix`` (stem + a suffix grammar, the default), ``snowball`` (snowballstemmer's Turkish
stemmer on both sides) and ``exact`` (no stemming).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from medai.core.text import ascii_fold, turkish_lower
from medai.triage.red_flags.words import current

# digits and letters are separate words: "12yıl önce", "3gündür", "38derece" read as typed
# with a space
_WORD = re.compile(r"\d+|[^\W\d_]+", re.UNICODE)


@dataclass(frozen=True)
class Token:
    form: str  # casefolded, ASCII-folded
    start: int  # character span in the normalised text
    end: int
    sentence: int
    clause: int


def _harmony(m: re.Match[str]) -> str:
    vowels = [c for c in m.string[: m.start()] if c in "aeiou"]
    high = "u" if vowels and vowels[-1] in "ou" else "i"
    return f"m{high}yor" + {"m": "um", "z": "uz"}.get(m[1] or "", "")


_DIALECT = (  # eastern/colloquial present tense written as heard: "ağrıyi", "gelmeyi", "yatamiyim"
    (re.compile(r"m[ae]yi(m|z)?$"), _harmony),
    (re.compile(r"m[iu]yim$"), lambda m: "miyorum"),
    (re.compile(r"(?<=[iu])yi(m|z)?$"), lambda m: "yor" + {"m": "um", "z": "uz"}.get(m[1], "")),
    (re.compile(r"(?<=[iu])yo$"), lambda m: "yor"),  # "agriyo", "geliyo"
)


def fold_plain(word: str) -> str:
    """Casefolded and ASCII-folded: how lexicon forms are stored."""
    return ascii_fold(turkish_lower(word))


def fold(word: str) -> str:
    """Casefolded, ASCII-folded, with colloquial present-tense spellings made standard."""
    form = fold_plain(word)
    if len(form) > 4:
        for pattern, repl in _DIALECT:
            form = pattern.sub(repl, form)
    return form


def tokenize(text: str) -> list[Token]:
    """Word tokens with their sentence and clause numbers (punctuation and the reader's
    ``clause_words`` decide both); before a verb of ``governs_infinitive`` ("ölmeyi
    düşünüyorum") "-meyi" is not the colloquial present tense."""
    w = current()
    tokens: list[Token] = []
    sentence = clause = 0
    prev_end = 0
    words = list(_WORD.finditer(text))
    for k, m in enumerate(words):
        gap = text[prev_end : m.start()]
        nxt = fold_plain(words[k + 1].group()) if k + 1 < len(words) else ""
        form = fold_plain(m.group()) if nxt.startswith(w.governs_infinitive) else fold(m.group())
        if tokens and gap in {".", ","} and tokens[-1].form.isdigit() and form.isdigit():
            pass  # a decimal ("ateşi 38.5", "37,2 derece") breaks neither sentence nor clause
        elif tokens and w.sentence_break.search(gap):
            sentence += 1
            clause += 1
        elif tokens and (w.clause_break.search(gap) or form in w.clause_words):
            clause += 1
        tokens.append(Token(form, m.start(), m.end(), sentence, clause))
        prev_end = m.end()
    return tokens


def span(text: str, tokens: list[Token], first: int, last: int) -> str:
    """The text from token ``first`` to token ``last`` inclusive (evidence shown to staff)."""
    return text[tokens[first].start : tokens[last].end]


def is_suffix_chain(rest: str) -> bool:
    """True when ``rest`` can be read as Turkish inflectional suffixes (reader ``morphemes``)."""
    return current().is_suffix_chain(rest)


def if_ever(form: str) -> bool:
    """An aorist conditional: "if it ever happens" ("havale geçirirse ne yapmalıyım")."""
    return current().if_ever.search(form) is not None


def negated_rest(rest: str) -> bool:
    """The suffixes after a stem carry a clear negation (-madı, -mıyor, -maz, -mamış) or an
    "if it ever happens" (-ırsa: "havale geçirirse ne yapmalıyım")."""
    w = current()
    return w.negated_suffix.match(rest) is not None or w.if_ever.search(rest) is not None


@lru_cache(maxsize=1)
def _snowball():
    import snowballstemmer

    return snowballstemmer.stemmer("turkish")


@lru_cache(maxsize=65536)
def snowball_stem(folded: str) -> str:
    return _snowball().stemWord(folded)


def _match_suffix(stem: str, token: str) -> bool:
    return token.startswith(stem) and is_suffix_chain(token[len(stem) :])


def _match_snowball(stem: str, token: str) -> bool:
    return token == stem or (len(token) > 3 and snowball_stem(token) == snowball_stem(stem))


def _match_exact(stem: str, token: str) -> bool:
    return token == stem


MATCHERS: dict[str, Callable[[str, str], bool]] = {
    "suffix": _match_suffix,
    "snowball": _match_snowball,
    "exact": _match_exact,
}
"""How an inflectable lexicon stem matches a token; prefix (``stem*``) forms match any ending."""
