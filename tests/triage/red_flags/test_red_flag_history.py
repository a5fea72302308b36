"""A history is not an acute sign, a denial is not a sign, and a new episode told beside a
history still is (issue 67 §7). "hemiparezi öyküsü" in a radiology request raised the stroke
flag and ranked the study urgent; the reader now reads a phrase told as a history (a history
noun, "geçirilmiş", "daha önce", "inme geçirmiş hasta") as past, unless it is told as the
present illness ("… öyküsü ile başvuran", "akut", "2 saat önce", an injury's mechanism).
The texts are written for the tests (no post text)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.builders import fired_flags
from medai.triage.red_flags import build_engine
from medai.triage.red_flags.timing import history_tokens
from medai.triage.red_flags.tokens import tokenize

# signs of a stroke as a request or a patient writes them, as nouns (a history noun heads a
# noun phrase: a finite verb, "sol tarafı tutmuyor", is told, not named); each fires alone
STROKE_SIGNS = [
    "sol hemiparezi",
    "sağ hemiparezi",
    "sağ hemipleji",
    "sol kolda güçsüzlük",
]
HISTORY_AFTER = ["öyküsü", "öyküsü var", "öyküsü mevcut", "hikayesi", "öykülü hasta", "geçmişi"]
HISTORY_BEFORE = ["Özgeçmişinde", "Öyküsünde", "Anamnezinde", "Geçirilmiş"]
TAILS = ["", ", kontrol BT", ", kontrol MR", ", takip"]

HISTORIES = [
    "Sol hemiparezi öyküsü, kontrol BT",
    "hemiparezi öyküsü",
    "Sağ hemipleji öyküsü olan hasta, kontrol",
    "Özgeçmişinde sol hemiparezi mevcut",
    "öyküsünde sağ tarafta güçsüzlük var",
    "Geçirilmiş SVO, sol hemiparezi sekeli",
    "Daha önce inme geçirmiş, sol hemiparezi",
    "inme geçirmiş hastada kontrol",
    "babam daha önce inme geçirmiş, şimdi iyi",
    "intihar girişimi öyküsü",
    "annem yıllar önce felç geçirdi",
    "2 yıl önce inme geçirdim",
    "eskiden bayılma nöbetlerim olurdu",
]

DENIALS = [
    "Sol hemiparezi yok",
    "sol hemiparezi saptanmadı",
    "nörolojik defisit yok, sol hemiparezi izlenmedi",
    "bilinç kaybı olmamış",
    "sol kolda güçsüzlük olmadı",
    "konuşma bozukluğu değil",
    "göğüs ağrısı yok",
    "nöbet geçirmedi",
    "yüzde kayma yok",
    "hasta göğüs ağrısı tarif etmiyor",
    "sağ tarafında kuvvet kaybı gözlenmedi",
]

# acute signs told beside a history, or a history told as the present illness
ACUTE = [
    ("2 yıl önce inme geçirdim, şimdi yine sağ kolum tutmuyor", "stroke"),
    ("SVO öyküsü, yeni gelişen sağ hemiparezi", "stroke"),
    ("Sol hemiparezi öyküsü ile başvuran hasta", "stroke"),
    ("sol hemiparezi öyküsü olan hastada bugün başlayan konuşma bozukluğu", None),
    ("2 saat önce başlayan sol hemiparezi", "stroke"),
    ("özgeçmişinde SVO mevcut, bugün başlayan sol kol güçsüzlüğü", "stroke"),
    ("babam daha önce felç geçirdi, bugün yine sol tarafı tutmuyor", "stroke"),
    ("babam felç geçirmiş, konuşamıyor", "stroke"),
    ("akut inme şüphesi, sol hemiparezi", "stroke"),
    ("kafa travması öyküsü, baş ağrısı", "head_injury"),
    ("Düşme öyküsü sonrası kusma, bilinç bulanıklığı", "altered_consciousness"),
    ("daha önce hiç böyle baş ağrısı olmadı, hayatımın en kötü baş ağrısı", "thunderclap_headache"),
    ("arkadasim bayildi kollari cirpinmaya basladi hic boyle olmamisti daha once", None),
    ("Bayılma öyküsü yoktu ama bu sabah birden bayıldı ve hâlâ kendine gelmedi", None),
]


@pytest.fixture(scope="module")
def engine():
    """The served engine, all three detectors: a history must quiet the learned ones too."""
    return build_engine()


@pytest.mark.parametrize("text", HISTORIES)
def test_a_history_raises_no_flag(engine, text):
    assert fired_flags(engine, text) == set()


@pytest.mark.parametrize("text", DENIALS)
def test_a_denied_sign_raises_no_flag(engine, text):
    assert fired_flags(engine, text) == set()


@pytest.mark.parametrize(("text", "flag"), ACUTE)
def test_an_acute_sign_beside_a_history_still_fires(engine, text, flag):
    fired = fired_flags(engine, text)
    assert fired and (flag is None or flag in fired), fired


@pytest.mark.parametrize("sign", STROKE_SIGNS)
def test_each_sign_fires_alone(rules_engine, sign):
    assert "stroke" in fired_flags(rules_engine, sign)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sign=st.sampled_from(STROKE_SIGNS),
    noun=st.sampled_from(HISTORY_AFTER),
    tail=st.sampled_from(TAILS),
)
def test_a_sign_before_a_history_noun_is_history(rules_engine, sign, noun, tail):
    text = f"{sign} {noun}{tail}"
    assert "stroke" not in fired_flags(rules_engine, text), text
    assert "stroke" in {m.id for m in rules_engine.check(text).history}, text


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sign=st.sampled_from(STROKE_SIGNS),
    word=st.sampled_from(HISTORY_BEFORE),
    now=st.sampled_from(["bugün", "şu an", "1 saat önce", "aniden", "yine"]),
)
def test_a_history_does_not_silence_a_sign_told_now_beside_it(rules_engine, sign, word, now):
    """The history in one clause, the same sign told as now in the next: it fires."""
    assert "stroke" not in fired_flags(rules_engine, f"{word} {sign}")
    assert "stroke" in fired_flags(rules_engine, f"{word} SVO, {now} {sign}")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sign=st.sampled_from(STROKE_SIGNS),
    denial=st.sampled_from(["yok", "olmadı", "saptanmadı", "izlenmedi", "yoktu"]),
)
def test_a_denied_sign_is_no_sign(rules_engine, sign, denial):
    assert "stroke" not in fired_flags(rules_engine, f"{sign} {denial}")


def test_the_history_reaches_its_phrase_only():
    """Only the words of the phrase the history noun heads, within its clause: the new sign
    after "olan hastada ani" and a clause after a comma are not history."""
    tokens = tokenize("SVO öyküsü olan hastada ani sağ hemiparezi, sol kolda güçsüzlük")
    told = {tokens[i].form for i in history_tokens(tokens)}
    assert told == {"svo"}
    tokens = tokenize("Özgeçmişinde HT, sol hemiparezi")
    assert {tokens[i].form for i in history_tokens(tokens)} == {"ht"}


def test_geçirmiş_is_a_history_only_as_a_participle():
    """ "inme geçirmiş hasta" is a person with a past stroke; "babam felç geçirmiş" is the
    verb, and may be minutes old."""
    assert history_tokens(tokenize("inme geçirmiş hastada kontrol"))
    assert not history_tokens(tokenize("babam felç geçirmiş"))
