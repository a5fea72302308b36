"""English signs of the eight presentations the ninth revision left to the classifier (tenth
revision): a threat to someone else, cauda equina, a blocked bladder, a pregnancy emergency, an
eye emergency, a diabetic emergency, a head injury with a danger sign and sepsis. Written from
PRESENTATIONS.md; each urgent wording beside a look-alike in the same words that must stay quiet
(an idiom, a denied sign, a minor complaint of the same body part)."""

from __future__ import annotations

import pytest

from conftest import fired_flags


@pytest.mark.parametrize("text,flag", [
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
])
def test_more_english_signs_fire(rules_engine, text, flag):
    assert flag in fired_flags(rules_engine, text)


@pytest.mark.parametrize("text", [
    "my back is killing me",
    "my mum will kill me if i fail",
    "i want to kill myself",  # suicidal, not harm to others
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
])
def test_more_english_look_alikes_stay_quiet(rules_engine, text):
    if "kill myself" in text:
        assert fired_flags(rules_engine, text) == {"suicidal"}
    else:
        assert not fired_flags(rules_engine, text)
