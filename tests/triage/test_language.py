"""The complaint's language (tr | en | other): short texts and Turkish typed without its
letters, the cases the library detectors got wrong."""

import pytest

from medai.triage.language import LANGUAGES, detect_language


@pytest.mark.parametrize(
    "text",
    [
        "Ateşim var",
        "Ateş, öksürük",
        "Başım ağrıyor",
        "Midem bulanıyor",
        "Kulağım ağrıyor ve ateşim var",
        "basim agriyor",
        "atesim var",
        "kulagim agriyo",
        "2 aylık bebeğimin ateşi var",
        "nefes alamıyorum",
        "nefes alamiyorum",
        "oğlum",
        "Son zamanlarda",
        "İş yerinde düştüm",
        "is yerinde dustum",
        "check-up sonuçlarım geldi kolesterolüm 240",
        "MR çekildi, fıtık dediler",
        "hocam my son diye yazmışlar raporda, ne demek",  # English words inside Turkish
        "38.5",  # no evidence of any language: the product's language
    ],
)
def test_turkish_short_and_without_turkish_letters_is_turkish(text):
    assert detect_language(text).language == "tr"


@pytest.mark.parametrize(
    "text",
    [
        "I have a fever",
        "fever",
        "headache",
        "my head hurts",
        "I can't breathe",
        "crushing chest pain spreading to my left arm",
        "my son has a rash",
        "her face is drooping on one side",
        "cant pee since this morning",
    ],
)
def test_english_is_english(text):
    assert detect_language(text).language == "en"


@pytest.mark.parametrize(
    "text",
    [
        "Kopfschmerzen seit gestern",
        "Ich habe Fieber",
        "j'ai mal à la tête",
        "tengo dolor de cabeza",
        "no puedo respirar",
        "у меня болит голова",
        "عندي صداع",
        "سرم درد می کند",
        "Serê min diêşe",
        "Mənim başım ağrıyır",
        "Ik heb koorts",
    ],
)
def test_other_languages_are_other(text):
    assert detect_language(text).language == "other"


def test_the_guess_shows_its_evidence():
    guess = detect_language("başım çok ağrıyor")
    assert guess.language in LANGUAGES
    assert guess.scores["tr"] > guess.scores["en"] >= 0
