"""Fixed figures of speech that carry an emergency's words (twelfth revision, read from the
idiom development sets dev24 and dev25): each idiom beside the literal sign in the same words,
which must still fire. Rules alone.

A reader of "X'e bayılmak" (to love X: a faint verb after a dative) was written and withdrawn:
a hostile review found 79 of 124 real faints it silenced, because a symptom list ("kusma
bayılma"), a place fallen onto ("masaya bayıldı"), a person ("anne bayıldı"), "bir anlığına"
or "pat diye" end like a dative. Those faints are kept here so no later reader silences them."""

from __future__ import annotations

import pytest

from helpers.builders import fired_flags


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
