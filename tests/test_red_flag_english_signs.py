"""English signs read by the rules: 13 presentations in the ninth revision, written from
PRESENTATIONS.md before any English development text was read, and the other eight (a threat to
someone else, cauda equina, a blocked bladder, pregnancy, eye, diabetic, head injury, sepsis) in
the tenth; each urgent wording beside a look-alike in the same words that must stay quiet
(denied, over, a blocked nose, a teenager who will not get up for school, an idiom, a minor
complaint of the same body part)."""

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
    # tenth revision: the eight presentations the ninth left to the classifier
    ("my brother says he will kill dad", "harm_to_others"),
    ("husband threatening to stab me", "harm_to_others"),
    ("i am going to kill my neighbour tonight", "harm_to_others"),
    ("bad back and numb between my legs", "cauda_equina"),
    ("sciatica and now cant control my bladder", "cauda_equina"),
    ("back pain, wet myself without knowing", "cauda_equina"),
    ("cant pee since last night, bladder bursting", "urinary_retention"),
    ("dad unable to pass urine 10 hours", "urinary_retention"),
    ("32 weeks pregnant and bleeding", "pregnancy_emergency"),
    ("pregnant, baby not moving since morning", "pregnancy_emergency"),
    ("pregnant bad headache and blurry vision", "pregnancy_emergency"),
    ("bleach splashed in my eye", "eye_emergency"),
    ("bit of metal in my eye from grinding", "eye_emergency"),
    ("sudden eye pain and cant see", "eye_emergency"),
    ("diabetic and shaking, sweating, confused", "diabetic_emergency"),
    ("type 1 sugar very high and vomiting", "diabetic_emergency"),
    ("fell and hit his head, now vomiting", "head_injury"),
    ("grandma banged her head, on blood thinners", "head_injury"),
    ("fever and skin mottled", "sepsis"),
    ("on chemo and have a fever", "sepsis"),
    ("on chemo, high temp and shivering", "sepsis"),
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
    # tenth revision
    "my back is killing me",
    "my mum will kill me if i fail",
    "back pain after gardening",
    "cant pee properly, it burns",
    "pregnant and my gums are bleeding",
    "pregnant with morning sickness",
    "eyelash in my eye",
    "eye itchy and red",
    "diabetic, need my insulin prescription",
    "shaky if i skip breakfast, not diabetic",
    "toddler bumped his head, playing normally",
    "bumped head, no vomiting",
    "fever and cough for two days",
    # vomiting is not a fever: a patient on chemotherapy who is sick is not sepsis by the rules
    "on chemo and vomiting",
    "chemo, feeling sick and vomiting",
])
def test_english_look_alikes_stay_quiet(rules_engine, text):
    assert not fired_flags(rules_engine, text)


def test_a_threat_to_oneself_is_not_a_threat_to_others(rules_engine):
    assert fired_flags(rules_engine, "i want to kill myself") == {"suicidal"}
