"""Fixed figures of speech that carry an emergency's words (twelfth revision, read from the
idiom development sets dev24 and dev25): each idiom beside the literal sign in the same words,
which must still fire. Rules alone.

A reader of "X'e bayılmak" (to love X: a faint verb after a dative) was written and withdrawn:
a hostile review found 79 of 124 real faints it silenced, because a symptom list ("kusma
bayılma"), a place fallen onto ("masaya bayıldı"), a person ("anne bayıldı"), "bir anlığına"
or "pat diye" end like a dative. Those faints are kept here so no later reader silences them."""

from __future__ import annotations

import pytest

from conftest import fired_flags

REAL_FAINTS = [
    "annem kusma bayılma var ne yapalım",
    "titreme bayılma başladı annemde",
    "babam ishal kusma bayılma ile geldi",
    "hastaneye bayılmış halde getirdik hemen bakın",
    "acil servise bayılarak geldi babam",
    "ambulansa bayılmış halde bindirdik",
    "babam pat diye bayıldı",
    "annem küt diye bayıldı yerde yatıyor",
    "oğlum birden bire bayıldı",
    "babam habire bayılıyor",
    "babam gine bayıldı",
    "babam iki dakka bayıldı",
    "esim bir anlığına bayıldı simdi kendine geldi ama bitkin",
    "az önce bir anlığına bayıldım",
    "babam kısa süreliğine bayıldı ne yapalım",
    "annem öksüre öksüre bayıldı",
    "titreye titreye bayıldı kızım",
    "babam terleye terleye bayıldı",
    "ayağa kalkarsa bayılıyor şimdi kalkamıyor",
    "biraz yürüse bayılıyor babam",
    "anne bayıldı yardım edin",
    "teyze bayıldı sokakta ambulans lazım",
    "nine bayıldı nefes alıyor mu bilmiyorum",
    "gebe bayıldı otobüste 7 aylık",
    "lohusa bayıldı doğumdan 2 gün sonra",
    "eşim Fatma bayıldı yardım edin",
    "babam zemine bayıldı kafası kanıyor",
    "şoför direksiyona bayıldı kaza yaptık",
    "babam masaya bayıldı kalkmıyor",
    "annem yatağa bayıldı",
    "eşim merdivene bayıldı kanıyor",
    "annem üzerime bayıldı",
    "kızım koluma bayıldı gözleri açılmıyor",
    "kapının önüne bayıldı babam",
    "annem yana bayıldı titriyor",
    "dedem arkaya bayıldı",
    "göğüs ağrısı terleme bayılma oldu babamda",
    "kasılma bayılma oldu oğlumda şimdi",
    "çocuk ağlaya ağlaya bayıldı nefes almıyor",
    "bebe bayıldı morardı",
]


@pytest.mark.parametrize(
    "text",
    [
        "bu kiralar bize kan kusturuyor valla",  # torments us
        "internet felç oldu e-nabıza giremiyorum",  # the internet is down
        "trafik felç, randevuya geç kalacağım",
        "iki gecedir nöbetteyim, yorgunluktan kafam durdu",  # on a duty shift
        "nöbetçi eczane nerede, başım ağrıyor",
        "kedi düştü sandım yüreğim ağzıma geldi, kedi iyiymiş",  # a fright
        "gasping for a cuppa, is there a machine",  # thirsty
    ],
)
def test_an_idiom_is_no_sign(rules_engine, text):
    assert not fired_flags(rules_engine, text) - {"major_trauma_burns"}


@pytest.mark.parametrize(
    "text,flag",
    [
        ("babam kan kustu", "heavy_bleeding"),
        ("annem kan kusuyor", "heavy_bleeding"),
        ("babam felç oldu sol tarafı tutmuyor", "stroke"),
        ("oğlum nöbet geçiriyor durmuyor", "seizure"),
        ("nöbette dilini ısırdı hala kasılıyor", "seizure"),
        ("babamın ağzı kaydı konuşamıyor", "stroke"),
        ("gasping, lips blue", "respiratory_distress"),
        ("gasping for air", "respiratory_distress"),
    ],
)
def test_the_literal_sign_still_fires(rules_engine, text, flag):
    assert flag in fired_flags(rules_engine, text)


@pytest.mark.parametrize("text", REAL_FAINTS)
def test_a_real_faint_that_ends_like_love_still_fires(rules_engine, text):
    """The hostile review's faints whose word before the faint verb ends like a dative."""
    assert "altered_consciousness" in fired_flags(rules_engine, text)
