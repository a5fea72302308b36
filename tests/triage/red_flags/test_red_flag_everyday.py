"""The everyday guard (red_flags/everyday.py): a short complaint made only of everyday symptoms —
a fever, a headache, nausea, vomiting, an earache, alone or a few together — raises no flag,
whatever the learned detectors score; one discriminator (a stiff neck, a baby, a sudden or
worst-ever onset, blood, breathlessness, a high number) and the engine decides as before."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.builders import fired_flags
from medai.triage.red_flags import build_engine
from medai.triage.red_flags.classifier import ClassifierHit

EVERYDAY = [
    "Ateşim var",
    "Ateş, öksürük",
    "Başım ağrıyor",
    "Midem bulanıyor",
    "Kusuyorum",
    "Kulağım ağrıyor ve ateşim var",
    "atesim var kusuyorum",
    "Ateşim var, karnım ağrıyor",
    "Çok kusuyorum",
    "Kusuyorum, karnım ağrıyor",
    "ishal ve kusma",
    "Başım dönüyor, kusuyorum",
    "Ateşim 38.5, titriyorum",
    "Boğazım ağrıyor ateşim var",
    "Midem yanıyor, kusuyorum",
    "Karnım ağrıyor titriyorum",
    "3 gündür ateşim var",
    "basim agriyo midem bulaniyo",
    "Ateşim var, başım dönüyor",
    "bel ağrısı",
    "Dişim ağrıyor",
    "Burnum akıyor hapşırıyorum",
    "halsizim ateşim var",
    "Kulağım ağrıyor",
    "Grip oldum",
    "I have a fever",
    "fever and vomiting",
    "headache and sore throat",
    "stomach ache and diarrhoea",
    "feel sick",
    "earache",
    # the English idiom of an everyday pain and a red eye (the classifier flagged all three)
    "my head is killing me",
    "my knee is killing me",
    "my eye is red",
    # a neck that hurts beside a fever (a sore throat's glands): the classifier called
    # meningism, call 112; a stiff neck is the discriminator, not a sore one
    "Ateşim var ve boynum ağrıyor",
    "ateşim var boğazım ve boynum ağrıyor",
    "Ateşim var ve ensem ağrıyor",
    "I have a fever and my neck hurts",
]

DISCRIMINATED = [  # the same everyday words beside what makes them urgent
    ("Ateşim var ve ensem tutuldu, başımı eğemiyorum", "meningism"),
    ("2 aylık bebeğimin ateşi var", "infant_child"),
    ("Hayatımın en kötü baş ağrısı", "thunderclap_headache"),
    ("Kan kusuyorum", "heavy_bleeding"),
    ("Başımı çarptım, kusuyorum", "head_injury"),
    ("fever and stiff neck", "meningism"),
    ("Ateşim var, boynumu öne eğemiyorum", "meningism"),
    ("ateşim 39 boynum tutuldu", "meningism"),
    ("ateşim var boynum kaskatı", "meningism"),
    ("sudden pain in my eye, red, cant see", "eye_emergency"),
]


@pytest.fixture(scope="module")
def engine():
    return build_engine()


@pytest.mark.parametrize("text", EVERYDAY)
def test_everyday_complaints_raise_no_flag(engine, text):
    a = engine.analyse(text)
    assert a.everyday, text
    assert not engine.decide(text, a).flags, text


@pytest.mark.parametrize("text,flag", DISCRIMINATED)
def test_a_discriminator_takes_the_guard_off(engine, text, flag):
    assert not engine.analyse(text).everyday
    assert flag in fired_flags(engine, text)


@pytest.mark.parametrize(
    "text",
    [
        "Ateşim 41",
        "ateşim var bebeğim",
        "başım aniden ağrıdı",
        "fever and stiff neck",
        "Ateşim var ve nefes alamıyorum",
        "göğsüm ağrıyor",
        "Çocuğum çok halsiz, ateşi var",
        "Annemin ateşi var, halsiz",
        "my son has a fever",
        "Ateşim var, kusuyorum, başım ağrıyor, boğazım ağrıyor, öksürüyorum, halsizim",
    ],
)  # over the guard's length: the engine decides
def test_not_everyday(engine, text):
    assert not engine.analyse(text).everyday


def test_the_guard_is_what_silences_the_learned_detectors(engine):
    """With a classifier hit far over its threshold, an everyday complaint still raises no flag;
    the same hit on a complaint with a discriminator does (and so does it with the guard off)."""
    loud = ClassifierHit("acute_abdomen", 0.99, (), 0.45)
    for text, everyday in (("Kusuyorum", True), ("Kusuyorum, karnım taş gibi", False)):
        a = engine.analyse(text)
        a = type(a)(a.tokens, a.matches, a.knn, loud, a.everyday)
        assert a.everyday is everyday
        assert bool(engine.decide(text, a).flags) is not everyday
        assert engine.decide(text, a, everyday_guard=False).flags


PHRASES = [
    "ateşim var",
    "başım ağrıyor",
    "midem bulanıyor",
    "kusuyorum",
    "öksürüyorum",
    "boğazım ağrıyor",
    "kulağım ağrıyor",
    "karnım ağrıyor",
    "ishalim var",
    "halsizim",
    "burnum akıyor",
    "titriyorum",
    "başım dönüyor",
    "fever",
    "cough",
    "sore throat",
]
JOINS = [", ", " ve ", " ", ". ", " and "]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.sampled_from(PHRASES), min_size=1, max_size=3, unique=True),
    st.sampled_from(JOINS),
    st.booleans(),
)
def test_any_few_everyday_symptoms_raise_no_flag(engine, phrases, join, folded):
    text = join.join(phrases)
    if folded:
        text = text.translate(str.maketrans("çğıöşü", "cgiosu"))
    if len(text.split()) <= 8:
        a = engine.analyse(text)
        assert a.everyday and not engine.decide(text, a).flags, text
