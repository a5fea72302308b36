"""Patient names compared the way a Turkish hospital writes them: a PACS or RIS that upper- or
lower-cases ``Şahin^Gülşen`` (the Turkish way, İ/i and I/ı, or the ASCII way, I/i) names the same
person, and a name that differs in any other letter is still another name. Examples, then two
properties (hypothesis): case changes never conflict, genuinely different names always do."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from medai.platform.dicom.identity import disagreements, fold_name


def differ(a: str, b: str) -> bool:
    return disagreements({"patient_name": a}, {"patient_name": b}) == ["PatientName"]


def test_turkish_capitals_name_the_same_person():
    assert not differ("ŞAHİN^GÜLŞEN", "şahin^gülşen")
    assert not differ("ŞAHİN^GÜLŞEN", "Şahin^Gülşen^^")
    assert not differ("IŞIK^İLKAY", "ışık^ilkay")  # Turkish: I is ı, İ is i
    assert not differ("AYDIN^ÇAĞRI", "aydın^çağrı")  # lower-cased the Turkish way
    assert not differ("AYDIN^ÇAĞRI", "aydin^çağri")  # ... or the ASCII way
    assert not differ("ŞAHİN^GÜLŞEN", "şahi\u0307n^gülşen")  # Python's lower() of İ
    assert not differ("S\u0327AHI\u0307N^GU\u0308LS\u0327EN", "şahin^gülşen")  # decomposed


def test_other_letters_still_make_another_name():
    assert differ("ISIK^AYSE", "ışık^ayşe")  # s is not ş: a fallback spelling is not folded
    assert differ("ŞAHİN^GÜLŞEN", "SAHIN^GULSEN")
    assert differ("ŞAHİN^GÜLŞEN", "ŞAHİN^GÜLŞAN")
    assert differ("ÖZTÜRK^AYŞE", "OZTURK^AYSE")
    assert differ("ŞAHİN^GÜLŞEN", "GÜLŞEN^ŞAHİN")  # components keep their places
    assert differ("ŞAHİN", "")


def test_the_fold_is_for_comparing_only():
    assert fold_name("ŞAHİN") == fold_name("şahin") == fold_name("şahi\u0307n")
    assert fold_name("IŞIK") == fold_name("ışık") == fold_name("işik")


# --- properties ------------------------------------------------------------------------------

LOWER = "abcçdefgğhıijklmnoöprsştuüvyz"
UPPER = "ABCÇDEFGĞHIİJKLMNOÖPRSŞTUÜVYZ"
_TR_UPPER = dict(zip(LOWER, UPPER, strict=True))
_TR_LOWER = dict(zip(UPPER, LOWER, strict=True))
# every way software changes a letter's case: Turkish rules, Python's (ASCII i/I, İ → i̇),
# or left alone; the letter's decomposed form too (a system that writes NFD)
CASINGS = (
    lambda c: _TR_UPPER.get(c, c),
    lambda c: _TR_LOWER.get(c, c),
    str.upper,
    str.lower,
    lambda c: c,
    lambda c: unicodedata.normalize("NFD", c),
)
letter = st.sampled_from(LOWER + UPPER)
component = st.text(letter, min_size=1, max_size=12)
names = st.lists(component, min_size=1, max_size=3).map("^".join)


def _class(c: str) -> str:
    """The letter a character is, case aside, and all four i's one letter (the oracle: written
    independently of ``fold_name``)."""
    low = _TR_LOWER.get(c, c)
    return "i" if low in "ıi" else low


def _recase(name: str, choices: list[int]) -> str:
    return "".join(
        CASINGS[choices[i % len(choices)]](c) if c != "^" else c for i, c in enumerate(name)
    )


@settings(max_examples=300, deadline=None)
@given(names, st.lists(st.integers(0, len(CASINGS) - 1), min_size=1, max_size=40))
def test_case_changes_of_a_turkish_name_never_conflict(name, choices):
    assert not differ(name, _recase(name, choices))
    assert not differ(_recase(name, choices), name.upper())


@settings(max_examples=300, deadline=None)
@given(
    names,
    st.integers(0, 10_000),
    letter,
    st.lists(st.integers(0, len(CASINGS) - 1), min_size=1, max_size=40),
)
def test_a_name_with_another_letter_still_conflicts(name, where, replacement, choices):
    positions = [i for i, c in enumerate(name) if c != "^"]
    at = positions[where % len(positions)]
    if _class(name[at]) == _class(replacement):
        replacement = "x" if _class(name[at]) != "x" else "q"
    other = name[:at] + replacement + name[at + 1 :]
    assert differ(name, _recase(other, choices))
