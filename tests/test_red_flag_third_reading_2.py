"""Third reading of the real posts (stroke, seizure, thunderclap headache, meningism): a cramp
told with the noun "kasılma(lar)" and a weak course word ("devam ediyor", "tekrar", "uzun") is a
muscle complaint, not a seizure; the same noun with a seizure that does not stop, lasts minutes,
leaves the person unconscious or happens to a child still raises the flag, and so does a seizure
told with its verb ("kasıldı", "kasılıyor"). Kept because it also cut seizure firings on real
posts nobody read; the texts are written for the test."""

from __future__ import annotations

import pytest

from conftest import fired_flags


@pytest.mark.parametrize(
    "text,flag",
    [
        ("Sol baldırımda kasılma var, iki aydır devam ediyor, magnezyum işe yarar mı", "seizure"),
        (
            "Ellerimde kasılmalar oluyor, tekrar yaşamaktan korkuyorum, hangi tahlili yaptırayım",
            "seizure",
        ),
        ("Boynumun sağ tarafında kasılma devam ediyor, özellikle akşamları artıyor", "seizure"),
        (
            "Ameliyattan sonra ayaklarımda sürekli kasılmalar var, uzun bir yazı oldu kusura bakmayın",
            "seizure",
        ),
    ],
)
def test_a_cramp_told_with_the_noun_and_a_course_word_is_not_a_seizure(rules_engine, text, flag):
    assert flag not in fired_flags(rules_engine, text)


@pytest.mark.parametrize(
    "text,flag",
    [
        # the same noun with a danger sign of the seizure
        ("Babamda kasılmalar başladı, 10 dakikadır devam ediyor, durmuyor", "seizure"),
        ("Eşimin kasılmaları geçmiyor, hâlâ kendine gelmedi", "seizure"),
        ("Annemde kasılmalar oldu, bilinci yok, tekrar başladı", "seizure"),
        ("Oğlumda kasılma oldu, tekrar başladı, ne yapalım", "seizure"),
        ("Kasılmalar arka arkaya geliyor, arada ayılmıyor", "seizure"),
        # the noun told as starting again or lasting now (spasm_began)
        ("Babamda kasılmalar oldu, yine başladı", "seizure"),
        ("Annemin kasılmaları tekrar başladı", "seizure"),
        ("Eşimde kasılmalar oldu, çok uzun sürdü", "seizure"),
        # told with the verb, not the noun
        ("Eşim birden kasıldı, tekrar kasılıyor, gözleri kaydı", "seizure"),
        ("Kardeşim yere düştü kasılıyor, devam ediyor", "seizure"),
        ("Babam nöbet geçiriyor, tekrar başladı", "seizure"),
        ("kasilmalar 5 dakikadir devam ediyor durmuyor", "seizure"),
    ],
)
def test_the_same_noun_with_a_seizure_danger_sign_still_fires(rules_engine, text, flag):
    assert flag in fired_flags(rules_engine, text)
