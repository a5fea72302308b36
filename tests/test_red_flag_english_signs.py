"""English signs read by the rules (ninth revision): written from PRESENTATIONS.md before any
English development text was read; each urgent wording beside a look-alike in the same words that
must stay quiet (denied, over, a blocked nose, a teenager who will not get up for school)."""

from __future__ import annotations

import pytest

from conftest import fired_flags


@pytest.mark.parametrize("text,flag", [
    ("my dads face is drooping on one side", "stroke"),
    ("mum slurred speech suddenly", "stroke"),
    ("cant lift my arm, left side weak", "stroke"),
    ("i think my husband is having a stroke", "stroke"),
    ("worst headache of my life", "thunderclap_headache"),
    ("sudden severe headache like being hit", "thunderclap_headache"),
    ("fever and stiff neck", "meningism"),
    ("rash doesnt fade with glass test", "meningism"),
    ("having a seizure now", "seizure"),
    ("my son is fitting and wont stop", "seizure"),
    ("cant breathe", "respiratory_distress"),
    ("lips turning blue", "respiratory_distress"),
    ("chest pain going down my left arm", "acute_coronary"),
    ("crushing chest pain and sweating", "acute_coronary"),
    ("vomiting blood", "heavy_bleeding"),
    ("black tarry stool", "heavy_bleeding"),
    ("cut wont stop bleeding", "heavy_bleeding"),
    ("my grandad is unconscious", "altered_consciousness"),
    ("wife collapsed and not responding", "altered_consciousness"),
    ("i want to kill myself", "suicidal"),
    ("throat swelling after peanuts", "anaphylaxis"),
    ("toddler swallowed a button battery", "poisoning_overdose"),
    ("she took too many pills", "poisoning_overdose"),
    ("bone sticking out of his leg", "major_trauma_burns"),
    ("fell from a ladder", "major_trauma_burns"),
    ("severe stomach pain and vomiting", "acute_abdomen"),
    ("sudden pain in testicle", "acute_abdomen"),
])
def test_english_signs_fire(rules_engine, text, flag):
    assert flag in fired_flags(rules_engine, text)


@pytest.mark.parametrize("text", [
    "stiff neck from my pillow, no fever",
    "chest pain only when i cough",
    "cant breathe through my nose, blocked",
    "choked on water earlier but fine now",
    "food poisoning i think, keeping fluids down",
    "teenager wont wake up for school",
    "had a seizure years ago, need a refill",
    "no chest pain, just a cough",
    "migraine like my usual ones",
    "my ball hurts after football",
    "fell off my bike, grazed knee",
    "Boğazım ağrıyor, ateşim var",
])
def test_english_look_alikes_stay_quiet(rules_engine, text):
    assert not fired_flags(rules_engine, text)
