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

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SENTENCE_BREAK = re.compile(r"[.!?;…\n]")
_CLAUSE_BREAK = re.compile(r"[,:()\-–—/]")
CLAUSE_WORDS = frozenset({"ama", "fakat", "ancak", "lakin", "ise", "yalniz", "sadece", "halbuki",
                          "simdi", "suan", "artik"})
"""Words that open a new clause: negation and timing do not reach across them ("3 yıl önce felç
geçirdim şimdi fizik tedavi görüyorum" is two clauses even without a comma)."""


@dataclass(frozen=True)
class Token:
    form: str  # casefolded, ASCII-folded
    start: int  # character span in the normalised text
    end: int
    sentence: int
    clause: int


def _harmony(m: re.Match[str]) -> str:
    vowels = [c for c in m.string[:m.start()] if c in "aeiou"]
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


_GOVERNS_INFINITIVE = ("dusun", "iste", "isti", "sev", "birak", "dene", "unut", "ogren", "basar",
                       "tercih", "plan", "hayal", "kabul", "redd", "bekle", "kork", "dile")
"""Verbs taking an "-mayı" infinitive ("ölmeyi düşünüyorum"): before them "-meyi" is not the
colloquial present tense ("gelmeyi" = "gelmiyor")."""


def tokenize(text: str) -> list[Token]:
    """Word tokens with their sentence and clause numbers (punctuation decides both)."""
    tokens: list[Token] = []
    sentence = clause = 0
    prev_end = 0
    words = list(_WORD.finditer(text))
    for k, m in enumerate(words):
        gap = text[prev_end:m.start()]
        nxt = fold_plain(words[k + 1].group()) if k + 1 < len(words) else ""
        form = fold_plain(m.group()) if nxt.startswith(_GOVERNS_INFINITIVE) else fold(m.group())
        if tokens and gap in {".", ","} and tokens[-1].form.isdigit() and form.isdigit():
            pass  # a decimal ("ateşi 38.5", "37,2 derece") breaks neither sentence nor clause
        elif tokens and _SENTENCE_BREAK.search(gap):
            sentence += 1
            clause += 1
        elif tokens and (_CLAUSE_BREAK.search(gap) or form in CLAUSE_WORDS):
            clause += 1
        tokens.append(Token(form, m.start(), m.end(), sentence, clause))
        prev_end = m.end()
    return tokens


def span(text: str, tokens: list[Token], first: int, last: int) -> str:
    """The text from token ``first`` to token ``last`` inclusive (evidence shown to staff)."""
    return text[tokens[first].start:tokens[last].end]


# --- suffix grammar (folded forms: ı→i, ü→u, ö→o, ş→s, ç→c, ğ→g) --------------------------------
_MORPHEMES = sorted({
    # nominal: plural, case, possession, copula, derivation that keeps the meaning
    "lar", "ler", "i", "u", "a", "e", "yi", "yu", "ya", "ye", "si", "su", "nin", "nun", "in", "un",
    "da", "de", "ta", "te", "dan", "den", "tan", "ten", "nda", "nde", "ndan", "nden", "na", "ne",
    "ni", "nu", "la", "le", "yla", "yle", "ki", "li", "lu", "lik", "luk", "siz", "suz", "ca",
    "ce", "cik", "cuk", "im", "um", "m", "imiz", "umuz", "miz", "muz", "iniz", "unuz", "niz",
    "nuz", "n", "dir", "dur", "tir", "tur", "di", "du", "ti", "tu", "ydi", "ydu", "mis", "mus",
    "ymis", "ymus", "sa", "se", "ysa", "yse", "ken", "yken", "dik", "duk", "tik", "tuk",
    # verbal: tense, mood, person, voice, converbs
    "iyor", "uyor", "yor", "acak", "ecek", "yacak", "yecek", "ir", "ur", "ar", "er", "maz",
    "mez", "mi", "mu", "ma", "me", "mak", "mek", "ip", "up", "yip", "yup", "ince", "unca",
    "yince", "yunca", "abil", "ebil", "yabil", "yebil", "il", "ul", "is", "us", "sin", "sun",
    "siniz", "sunuz", "iz", "uz", "k", "yim", "yum", "lim", "dim", "dum", "tim", "tum", "din",
    "dun", "tin", "tun", "diniz", "dunuz", "an", "en", "yan", "yen",
    "arak", "erek", "yarak", "yerek", "casina", "cesine",
}, key=len, reverse=True)
_SUFFIX_CHAIN = re.compile(f"(?:{'|'.join(_MORPHEMES)})*")
MAX_SUFFIX_CHARS = 12


@lru_cache(maxsize=65536)
def is_suffix_chain(rest: str) -> bool:
    """True when ``rest`` can be read as Turkish inflectional suffixes (or is empty)."""
    return len(rest) <= MAX_SUFFIX_CHARS and _SUFFIX_CHAIN.fullmatch(rest) is not None


_NEGATED_VERB = re.compile(
    r"^(?:[a-z]{0,3}?)y?(?:m[ae]d[iu]|m[iu]yor|m[ae]z|m[ae]m[iu]s|m[ae]yacak)")


IF_EVER = re.compile(r"[aeiu]rs[ae](?:m|n|k|niz|lar)?$")
"""An aorist conditional: "if it ever happens" ("havale geçirirse ne yapmalıyım")."""


def negated_rest(rest: str) -> bool:
    """The suffixes after a stem carry a clear negation (-madı, -mıyor, -maz, -mamış) or an
    "if it ever happens" (-ırsa: "havale geçirirse ne yapmalıyım")."""
    return _NEGATED_VERB.match(rest) is not None or IF_EVER.search(rest) is not None


@lru_cache(maxsize=1)
def _snowball():
    import snowballstemmer

    return snowballstemmer.stemmer("turkish")


@lru_cache(maxsize=65536)
def snowball_stem(folded: str) -> str:
    return _snowball().stemWord(folded)


def _match_suffix(stem: str, token: str) -> bool:
    return token.startswith(stem) and is_suffix_chain(token[len(stem):])


def _match_snowball(stem: str, token: str) -> bool:
    return token == stem or (len(token) > 3 and snowball_stem(token) == snowball_stem(stem))


def _match_exact(stem: str, token: str) -> bool:
    return token == stem


MATCHERS: dict[str, Callable[[str, str], bool]] = {
    "suffix": _match_suffix, "snowball": _match_snowball, "exact": _match_exact,
}
"""How an inflectable lexicon stem matches a token; prefix (``stem*``) forms match any ending."""
