"""The rules read a baby's danger signs in English (issue 23 §4: a complaint not in Turkish
still has its red flags checked). Before 2026-11-25 the rules read no English and an English
baby's fever rested on the classifier alone, which missed some on a blind set. Each look-alike
sits beside the emergency in the same words."""

from __future__ import annotations

import pytest

from conftest import fired_flags

MUST_FIRE = [
    "my 7 week old is hot, 38.4",
    "newborn burning up since lunch",
    "baby 9 weeks high temp",
    "Sir my baby 1 month having fever",
    "baby so floppy today",
    "my son 2 yo lethargic and grey",
    "can't wake my baby properly",
    "infant won't wake for feeds",
    "baby wont feed all day",
    "toddler grunting, ribs sucking in",
    "no wet nappy since last night",
    "babys soft spot sunken",
]

MUST_NOT_FIRE = [
    "my 7 month old is a bit hot, teething",
    "fever for 2 weeks, tired",
    "hay fever, itchy eyes",
    "baby 6 months runny nose",
    "my son has a limp after football",
    "my son wont wake up for school",
    "my daughter is not responding to my texts",
    "newborn check up and weight",
    "baby 10 weeks for vaccines, well",
    "kid hot and grumpy after the park",
    "son günlerde ateşim var ve halsizim",  # Turkish "son" is "last", not a son
]


@pytest.mark.parametrize("text", MUST_FIRE)
def test_an_english_baby_in_danger_fires(rules_engine, text):
    assert "infant_child" in fired_flags(rules_engine, text)


@pytest.mark.parametrize("text", MUST_NOT_FIRE)
def test_an_english_look_alike_does_not(rules_engine, text):
    assert "infant_child" not in fired_flags(rules_engine, text)
