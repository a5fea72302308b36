"""Fixed figures of speech that carry an emergency's words (twelfth revision, read from the
idiom development sets dev24 and dev25): each idiom beside the literal sign in the same words,
which must still fire. Rules alone; the classifier learned the idiom sets as negatives."""

from __future__ import annotations

import pytest

from conftest import fired_flags


@pytest.mark.parametrize("text", [
    "bu kiralar bize kan kusturuyor valla",  # torments us
    "internet felç oldu e-nabıza giremiyorum",  # the internet is down
    "trafik felç, randevuya geç kalacağım",
    "iki gecedir nöbetteyim, yorgunluktan kafam durdu",  # on a duty shift
    "nöbetçi eczane nerede, başım ağrıyor",
    "kedi düştü sandım yüreğim ağzıma geldi, kedi iyiymiş",  # a fright
    "gasping for a cuppa, is there a machine",  # thirsty
])
def test_an_idiom_is_no_sign(rules_engine, text):
    assert not fired_flags(rules_engine, text) - {"major_trauma_burns"}


@pytest.mark.parametrize("text,flag", [
    ("babam kan kustu", "heavy_bleeding"),
    ("annem kan kusuyor", "heavy_bleeding"),
    ("babam felç oldu sol tarafı tutmuyor", "stroke"),
    ("oğlum nöbet geçiriyor durmuyor", "seizure"),
    ("nöbette dilini ısırdı hala kasılıyor", "seizure"),
    ("babamın ağzı kaydı konuşamıyor", "stroke"),
    ("gasping, lips blue", "respiratory_distress"),
    ("gasping for air", "respiratory_distress"),
])
def test_the_literal_sign_still_fires(rules_engine, text, flag):
    assert flag in fired_flags(rules_engine, text)
