"""The reader's word lists and suffix patterns, loaded from ``reader.yaml`` and validated.

They decide how every rule reads a clause (negation, timing, questions, hearsay, measured
readings), so they are data a hospital reviews like the lexicon, not code: an engine reads the
``reader.yaml`` of its folder (a copy of the bundled one to start from). ``ENTRIES`` is the one
table of what the file must hold; an unknown or missing entry, a word that is not written folded
(lowercase, ı→i, ş→s …), a pattern that does not compile or matches an empty word is a
``RuleFileError`` naming the entry. The grammar that is code (the colloquial present-tense
spellings of ``tokens._DIALECT``, how the lists combine) stays in Python.

The reading functions look the lists up in the engine's ``ReaderWords`` through ``current()``:
``RedFlagEngine.analyse`` sets it with ``using(...)`` for the duration of one analysis (a
context variable: safe across threads), and the bundled lists serve elsewhere.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from medai.core.errors import MedaiError
from medai.core.text import ascii_fold, turkish_lower

READER_FILE = "reader.yaml"
DATA_DIR = Path(__file__).parent / "data"  # the bundled engine folder (schema.DATA_DIR)

# name → (kind, what it does). kinds: words (a set of whole folded words), prefixes (word
# starts), pattern (a regular expression over folded words), number, phrases (word pairs)
ENTRIES: dict[str, tuple[str, str]] = {
    # -- tokens: sentences, clauses and the suffix grammar --------------------------------------
    "sentence_break": ("pattern", "characters between two words that end a sentence"),
    "clause_break": ("pattern", "characters between two words that end a clause"),
    "clause_words": (
        "words",
        "words that open a new clause: negation and timing do not reach across them",
    ),
    "governs_infinitive": (
        "prefixes",
        "verbs taking an -mayı infinitive: before them '-meyi' is not the colloquial present tense",
    ),
    "morphemes": ("words", "the Turkish suffixes an inflectable stem may carry"),
    "max_suffix_chars": ("number", "the longest suffix chain read as inflection"),
    "negated_suffix": ("pattern", "suffixes after a stem that negate it (-madı, -mıyor, -maz)"),
    "if_ever": ("pattern", "an aorist conditional ('if it ever happens': -ırsa)"),
    # -- timing ----------------------------------------------------------------------------------
    "present_verb": ("pattern", "a present-tense verb ending"),
    "present_words": ("words", "words of now that bring a clause back to the present"),
    "recent_phrases": ("phrases", "two words saying 'a moment ago'"),
    "this_words": ("words", "'this'/'that' before a time word ('şu an', 'bu sabah')"),
    "this_times": ("words", "time words after this_words that mean now"),
    "past_units": ("words", "units of a distant date ('3 yıl', '2 hafta') …"),
    "past_after": ("words", "… followed within two words by one of these ('önce')"),
    "past_words": ("words", "words that set a clause in the distant past ('çocukken')"),
    "past_phrases": ("phrases", "two words that set a clause in the distant past ('bir ara')"),
    "last_units": ("words", "first three letters of the word after 'geçen' that date the past"),
    "pluperfect": ("pattern", "a pluperfect verb: narrative past (not its negative)"),
    "year": ("pattern", "a year written in digits"),
    "long_for": ("words", "'for months/years': a chronic state, not something new"),
    "then_words": ("words", "'then' later in the sentence: a pluperfect before it is recent"),
    "earlier_phrases": ("phrases", "'daha önce': a date in the past for its clause …"),
    "never_words": ("words", "… unless one is in its clause ('daha önce hiç böyle')"),
    "history_nouns": ("prefixes", "nouns of a history ('öyküsü'): their phrase is past"),
    "history_words": ("words", "whole words of a history ('geçmişi', 'geçirilmiş')"),
    "history_ahead": ("pattern", "history words that tell the words after them ('öyküsünde')"),
    "history_heads": ("prefixes", "'geçirmiş' before these is a participle ('geçirmiş hasta')"),
    "history_participles": ("words", "participles read with history_heads ('geçirmiş')"),
    "history_reach": ("number", "how many words of its clause a history word reaches"),
    "history_now": ("prefixes", "a history told with these is the present illness ('akut')"),
    "history_presenting": (
        "prefixes",
        "after a history noun: the complaint the patient comes with ('ile başvuran')",
    ),
    "now_phrases": ("phrases", "two-word now ('şu an') before a 'well' word"),
    "well_now_words": (
        "words",
        "now-words that, followed by a well word, keep a dated event in the past",
    ),
    "well_words": ("words", "the person is well ('iyi', 'normal')"),
    "well_intensifiers": ("words", "words allowed between a now-word and a well word"),
    "not_well": ("words", "words after a well word that take it back ('değil', 'ama')"),
    # -- reading: negation -------------------------------------------------------------------------
    "negators": ("words", "words that deny what comes just before them ('yok', 'değil')"),
    "negation_reach": ("number", "how many words back a negator reaches"),
    "negation_blockers": ("words", "words a negation does not reach across ('var', 'ama')"),
    "negated_verb": ("pattern", "a negated verb ending"),
    "cannot": ("pattern", "'could not' (-ama-): the sign itself, never a denial"),
    "denial_roots": (
        "prefixes",
        "verbs whose negation denies what precedes them ('kullanmıyorum')",
    ),
    "persist_roots": ("prefixes", "verbs whose negation says the symptom goes on ('geçmiyor')"),
    "event_denial_roots": ("prefixes", "events denied only in the past tense ('kaçmadı')"),
    "event_denied": ("pattern", "the past-tense negation after an event_denial_roots verb"),
    "think_denied": ("pattern", "'I do not think' (only after a third-person future)"),
    "will_other": ("pattern", "a third-person future ('vereceğini')"),
    "short_reach": ("number", "how far the short denials reach"),
    "seems_not": ("pattern", "after 'gibi': it does not look like the sign"),
    "bothers_not": ("prefixes", "after 'rahatsız': it does not bother"),
    "finite_verb": ("pattern", "a finite verb: ends a negation's reach"),
    "absent": ("words", "words saying a sign is absent (deny a body part just before it)"),
    "and_words": ("words", "'and'/'or' between denied body parts"),
    "not_so": ("prefixes", "'değil': denies an onset or severity word just before it"),
    "not_started": ("pattern", "'did not start/come': denies an onset word just before it"),
    "fine_words": ("words", "a sign said to be normal is denied ('konuşması normal')"),
    "not_fine": ("words", "words after fine_words that take it back ('normal değil')"),
    # -- reading: questions, topics, hearsay -------------------------------------------------------
    "asking_words": ("words", "words that make their clause a question about a sign"),
    "impersonal_questions": ("words", "impersonal passive questions ('ne yapılır')"),
    "generic_words": (
        "words",
        "a generic person or 'how' that makes an impersonal question general",
    ),
    "about_words": ("words", "'sign of', 'risk of': the words before are a topic"),
    "about_present": ("prefixes", "the next word says the sign is present ('var')"),
    "question": ("words", "question particles"),
    "aorist": ("pattern", "an aorist verb (before 'mi': a sign asked as a possibility)"),
    "light_verbs": ("prefixes", "light verbs: the word before them is the sign"),
    "future": ("pattern", "a future verb (feared with 'diye korkuyorum')"),
    "fear": ("prefixes", "verbs of fear"),
    "document_stems": ("prefixes", "a leaflet or brochure"),
    "document_words": ("words", "a book, the news, television"),
    "reporting": ("prefixes", "verbs of saying: with a document, the clause tells what it says"),
    "others": ("prefixes", "a friend, a neighbour, a relative of the writer"),
    "self_words": ("words", "the writer's own person ('bende', 'kızımda')"),
    "self_fine": ("words", "besides negators, words saying the writer's own person is fine"),
    "reported": ("pattern", "a past tense telling what happened to someone else"),
    # -- reading: measured temperatures ------------------------------------------------------------
    "normal_reading": ("words", "temperatures (whole degrees) that are not a fever"),
    "fever_from": ("number", "the lowest whole degree that is a fever"),
    "fever_to": ("number", "the highest whole degree read as a temperature"),
    "bound": ("prefixes", "a bound or a change after a reading ('altında', 'geçti')"),
    # -- the everyday guard (everyday.py) --------------------------------------------------------
    "everyday_max_words": (
        "number",
        "the longest complaint (in words) the everyday guard applies to",
    ),
    "everyday_max_degree": ("number", "the highest number an everyday complaint may hold"),
    "everyday_stems": ("words", "stems of everyday symptoms, read with the suffix grammar"),
    "everyday_words": ("words", "whole words of everyday complaints"),
}
KINDS = ("words", "prefixes", "pattern", "number", "phrases")


class ReaderFileError(MedaiError, ValueError):
    """reader.yaml cannot be used as written (RuleFileError subclasses it)."""

    code = "invalid"


class RuleFileError(ReaderFileError):
    """A red-flag data file that cannot be used as written."""


@dataclass(frozen=True, eq=False)
class ReaderWords:
    """The validated lists of one reader.yaml: ``words.negators`` etc. (see ``ENTRIES``)."""

    values: dict[str, Any]
    digest: str

    def __post_init__(self) -> None:
        # plain attributes: the readers look them up per token, a __getattr__ costs 25 %
        for name, value in self.values.items():
            object.__setattr__(self, name, value)

    @cached_property
    def suffix_chain(self) -> re.Pattern[str]:
        morphemes = sorted(self.values["morphemes"], key=len, reverse=True)
        return re.compile(f"(?:{'|'.join(map(re.escape, morphemes))})*")

    @cached_property
    def no_gap(self) -> frozenset[str]:
        """Words a multi-word form may not skip."""
        return self.negators | self.negation_blockers | self.asking_words

    @cached_property
    def self_denied(self) -> frozenset[str]:
        return self.negators | self.self_fine

    @cached_property
    def _chains(self) -> dict[str, bool]:
        return {}

    def is_suffix_chain(self, rest: str) -> bool:
        """True when ``rest`` can be read as Turkish inflectional suffixes (or is empty)."""
        known = self._chains.get(rest)
        if known is None:
            known = (
                len(rest) <= self.max_suffix_chars and self.suffix_chain.fullmatch(rest) is not None
            )
            if len(self._chains) < 65536:
                self._chains[rest] = known
        return known


def _fail(path: Path, entry: str, why: str) -> ReaderFileError:
    return RuleFileError(f"{path.name}: {entry}: {why}")


def _folded(word: str) -> bool:
    return bool(word) and ascii_fold(turkish_lower(word)) == word and " " not in word


def _value(path: Path, name: str, kind: str, raw: Any) -> Any:
    if kind == "number":
        if not isinstance(raw, int) or isinstance(raw, bool) or not 0 < raw <= 100:
            raise _fail(path, name, f"must be a whole number from 1 to 100, not {raw!r}")
        return raw
    if kind == "pattern":
        if not isinstance(raw, str) or not raw:
            raise _fail(path, name, "must be a non-empty regular expression")
        try:
            compiled = re.compile(raw)
        except re.error as exc:
            raise _fail(path, name, f"is not a regular expression ({exc})") from None
        if compiled.fullmatch(""):
            raise _fail(path, name, "matches an empty word: it would match everywhere")
        return compiled
    if not isinstance(raw, list) or not raw:
        raise _fail(path, name, f"must be a non-empty list ({kind})")
    if kind == "phrases":
        if not all(
            isinstance(p, list)
            and len(p) == 2
            and all(isinstance(w, str) and _folded(w) for w in p)
            for p in raw
        ):
            raise _fail(path, name, "each phrase is a pair of folded words, e.g. [bir, ara]")
        return frozenset(tuple(p) for p in raw)
    bad = [w for w in raw if not isinstance(w, str) or not _folded(w)]
    if bad:
        raise _fail(
            path,
            name,
            f"{bad[:5]} are not folded single words (write 'gecirmedim', "
            "not 'geçirmedim'; lowercase, no spaces)",
        )
    if len(set(raw)) != len(raw):
        dup = sorted({w for w in raw if raw.count(w) > 1})
        raise _fail(path, name, f"lists {dup[:5]} twice")
    return frozenset(raw) if kind == "words" else tuple(raw)


def load_reader(directory: Path | None = None) -> ReaderWords:
    """The reader.yaml of ``directory`` (default: the bundled one), validated."""
    import hashlib

    path = Path(directory or DATA_DIR) / READER_FILE
    if not path.is_file():
        bundled_file = DATA_DIR / READER_FILE
        raise _fail(
            path,
            "file",
            f"missing in {path.parent} (copy the bundled {bundled_file} there and edit it)",
        )
    data = path.read_bytes()
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _fail(path, "file", f"not readable YAML ({exc})") from None
    if (
        not isinstance(raw, dict)
        or raw.get("version") != 1
        or not isinstance(raw.get("words"), dict)
    ):
        raise _fail(path, "file", "needs 'version: 1' and a 'words:' mapping")
    given = raw["words"]
    unknown = sorted(set(given) - set(ENTRIES))
    if unknown:
        raise _fail(path, unknown[0], f"unknown entry; valid: {', '.join(ENTRIES)}")
    missing = [n for n in ENTRIES if n not in given]
    if missing:
        raise _fail(path, missing[0], f"missing (every entry of {READER_FILE} is required)")
    values = {n: _value(path, n, kind, given[n]) for n, (kind, _) in ENTRIES.items()}
    if values["fever_from"] > values["fever_to"]:
        raise _fail(path, "fever_from", "is above fever_to")
    return ReaderWords(values, hashlib.sha256(data).hexdigest())


_BUNDLED: list[ReaderWords] = []
_CURRENT: contextvars.ContextVar[ReaderWords | None] = contextvars.ContextVar(
    "medai_reader_words", default=None
)


def bundled() -> ReaderWords:
    if not _BUNDLED:
        _BUNDLED.append(load_reader())
    return _BUNDLED[0]


def current() -> ReaderWords:
    """The word lists of the engine reading now (``using``), else the bundled ones."""
    return _CURRENT.get() or bundled()


@contextlib.contextmanager
def using(words: ReaderWords) -> Iterator[ReaderWords]:
    token = _CURRENT.set(words)
    try:
        yield words
    finally:
        _CURRENT.reset(token)
