"""Red flags: concept rules (any order, relatives' voice, no Turkish letters), negation, timing,
the embedding detector on the real e5 model, rule-file validation and concurrency."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.paths import ROOT, TESTS
from medai.triage.red_flags import LEVELS, RuleFileError, build_engine, load_rules
from medai.triage.red_flags.schema import DATA_DIR

PRESENTATIONS = ROOT / "data" / "red_flags" / "PRESENTATIONS.md"


@pytest.fixture(scope="module")
def full_engine():
    return build_engine()


@pytest.mark.parametrize(
    "text,flag",
    [
        ("Göğsümde baskı ve nefes darlığı var", "acute_coronary"),
        ("gogus agrisi var sol koluma vuruyor", "acute_coronary"),
        ("babamın göğsü sıkışıyor soğuk soğuk terliyor", "acute_coronary"),
        ("Babamın yüzünde kayma oldu, konuşması bozuldu", "stroke"),
        ("annemin agzi aniden bir tarafa kaydi", "stroke"),
        ("eşimin sağ kolu ve bacağı birden tutmuyor", "stroke"),
        ("babamin konusmasi anlasilmiyor dili dolasiyor", "stroke"),
        ("Son günlerde intihar etmeyi düşünüyorum", "suicidal"),
        ("artık yaşamak istemiyorum", "suicidal"),
        ("sabah kan kustum", "heavy_bleeding"),
        ("kakası zift gibi simsiyah", "heavy_bleeding"),
        ("Dün iki kez bayıldım", "altered_consciousness"),
        ("Hayatımın en şiddetli baş ağrısı başladı", "thunderclap_headache"),
        ("Fıstık yedim, boğazım şişti nefes alamıyorum", "anaphylaxis"),
        ("oğlum çamaşır suyu içmiş", "poisoning_overdose"),
        ("bir kutu ilaç içtim", "poisoning_overdose"),
        ("2 aylık bebeğimin ateşi 38.5", "infant_child"),
        ("ateşim var ve ensem kaskatı", "meningism"),
        ("gözüme çamaşır suyu sıçradı", "eye_emergency"),
        ("30 haftalık hamileyim kanamam başladı", "pregnancy_emergency"),
        ("elektrik çarptı", "major_trauma_burns"),
        ("belim ağrıyor ve idrarımı tutamıyorum", "cauda_equina"),
        ("sabahtan beri hiç idrar yapamıyorum karnım şişti", "urinary_retention"),
        ("kocam karımı öldüreceğim diye bağırıyor", "harm_to_others"),
        ("oğlum kasılıyor gözleri kaydı", "seizure"),
    ],
)
def test_red_flags_fire(rules_engine, text, flag):
    report = rules_engine.check(text)
    assert flag in {f.id for f in report.flags}, [f.id for f in report.flags]


@pytest.mark.parametrize(
    "text",
    [
        "Kulağımda çınlama var",
        "3 yıldır sivilce var",
        "baş ağrım var",
        "dizimde ağrı var",
        "Stresten kaynaklı yüzden kaynaklı sivilce",
        "göğüs ağrım yok, nefes darlığım da yok",
        "bebeğimin ateşi yok, iyi besleniyor",
        "kan tahlili yaptırmak istiyorum",
        "burnumdan nefes alamıyorum geceleri",
        "boynum tutuldu yastıktan",
        "kalp krizi geçirmekten korkuyorum, testlerim normal",
    ],
)
def test_ordinary_complaints_do_not_fire(rules_engine, text):
    assert rules_engine.check(text).flags == []


@pytest.mark.parametrize(
    "text",
    [
        "3 gündür başım ağrıyor ama hayatımın en kötüsü değil, aniden de başlamadı",  # denied degree
        "internette kalp krizinin çeneye vurabileceğini okudum, çenem diş sıkmaktan ağrıyor",
        "bebeğim beşikte boğulur mu diye korkuyorum",  # an aorist asked with "mi"
        "oğlum 3 yaşında, ateşlenince havale geçirecek diye çok korkuyorum",  # a feared future
        "epilepsi nöbeti geçiren birine ne yapılır",  # an impersonal question about anyone
        "göğsümde ağrı yok, sadece sol kolumda kas ağrısı var",  # the chest is denied with the pain
        "arı soktu, kolum şişti ama dudak dil şişmedi",  # body parts before a denied sign
        "babam kan kusmuyor, sadece midesi şişiyor",
        "3 yaşındaki kızım öfke nöbetleri geçiriyor, yere atıp bağırıyor",  # a tantrum
        "ilacın prospektüsünde intihar düşüncesi yan etkisi yazıyor",
        # an event dated months ago sets its rule in the past, even with a present after-effect
        "4 ay önce kafa travması geçirdim, hala ara ara hafif baş ağrısı oluyor ama azalıyor",
        "3 ay önce trafik kazası geçirdim, şimdi derin nefes alınca hafif sızı var",
        "geçen ay şekeri düştüğü için bayılmıştı, şimdi şekerleri 120-150 arası",  # a substance
        "gözüme kimyasal sıçrarsa ne yapmalıyım, iş güvenliği sunumu hazırlıyorum",  # conditional
        "hamileyken bebek hareketleri azalırsa ne zaman endişelenmeliyim",
        "hamileyim 16 hafta, ara ara azıcık burun kanaması oluyor",  # not the womb
        "2 yaşındaki kızım hiç sebze yemiyor sadece makarna",  # picky, not "not feeding"
        "gözüme şampuan kaçtı, yıkadım, yanma geçti",
        "çaydanlık devrildi elimin üstüne, avuç içi büyüklüğünde kızarıklık var",
        "bebeğimin bir gözü sürekli sulanıyor çapak yapıyor",  # eye discharge, not welding slag
        "bir arkadaşım 35 yaşında felç geçirdi, ben de aynı yaştayım. riskim var mı?",
        "kızım 16 yaşında, sınıf arkadaşı kendine zarar vermiş, kızımın böyle bir düşüncesi yok",
        "kızım sehpaya başını çarptı, alnında şişlik var, şimdi oyun oynuyor, konuşması normal",
        "eşim çok moralsiz ama kendine zarar vereceğini düşünmüyorum, nasıl destek olurum",
        "kızım düştü, bileği ağrıyor ama oynatabiliyor, kırık gibi durmuyor",  # does not look like
        "oğlum diş macunu yemiş, ilaç ya da kimyasal bir şey yutmadı, şimdi oynuyor",
        "annem warfarin kullanıyor, diş eti biraz kanadı, hemen durdu",  # a small bleed, stopped
        "sol göz kapağım seğiriyor, bir haftadır geçmiyor",  # an eyelid twitch, not a seizure
        "30 haftalık hamileyim, karnım ara ara sertleşiyor sonra gevşiyor, ağrı kanama yok",
        "zehirlenme danışma hattının numarası kaç, evde küçük çocuk var",
        "kızım gece ağrıdan uyanmıyor, sadece sabahları karnı ağrıyor",  # sleeps through
        "oğlum çok hareketli, sürekli düşüp kalkıyor, morlukların nereden olduğunu biliyoruz",
        # a leaflet or a book says it, nothing happens
        "broşürde döküntü çıkınca bardak testi yapılır yazıyordu, nasıl yapılıyor",
        "kitapta ensesi sertleşen ateşli çocuk hemen hastaneye götürülmeli yazıyor, bilgi olsun diye",
        "kakam siyah ama demir ilacı kullanıyorum, karın ağrım yok",  # iron darkens stool
        "koşunca biraz nefesim kesiliyor, dinlenince geçiyor",  # on exertion, alone
        "başım ağrıyor, ensem tutulmadı, ışık gözümü rahatsız etmiyor, ateşim 37.5",
        "babam 2 yıl önce kalp krizi geçirdi stent takıldı şu an çok iyi, spor yapabilir mi",
        "sivilce ilacını yüzüme göre düşük dozda kullandım, kızarıklık kaldı",  # a low dose
        "yüz felci sonrası çekilen MR raporum ne anlama geliyor",
        "bebeğim 2 aylık, aşıdan sonra kolu şişti. ateşi 37.2, emiyor, uyanık",  # a normal reading
        "dün ağır koliler taşıdım, bugün göğsüm bastırınca ağrıyor, kola yayılma yok",  # not "kol"
    ],
)
def test_reader_patterns_do_not_fire(rules_engine, text):
    assert rules_engine.check(text).flags == [], [f.id for f in rules_engine.check(text).flags]


@pytest.mark.parametrize(
    "text,flag",
    [
        ("babam annemi dövüyor öldürecek diye korkuyoruz şu an", "harm_to_others"),  # fear of now
        ("şu an oğlum nöbet geçiriyor ne yapılır", "seizure"),  # no generic person: a plea
        ("babam bayıldı ne yapılmalı", "altered_consciousness"),
        ("göğsümde yanma değil sanki ezilme gibi bir ağrı var, boynuma çıkıyor", "acute_coronary"),
        ("sol eli buz gibi ve hissetmiyor, ağzı kaydı", "stroke"),  # "hissetmiyor" is the sign
        ("babam kan kusmuş, şimdi çok halsiz", "heavy_bleeding"),
        ("hayatımın en kötü baş ağrısı birden başladı", "thunderclap_headache"),
        ("oğlum 5 dakikadır nöbet geçiriyor", "seizure"),
        # a pluperfect is narrative, not a date: the danger sign now still fires
        ("annem mutfakta düşmüştü başını çarpmıştı, şimdi kusuyor ve çok uykulu", "head_injury"),
        ("2 yıl önce felç geçirdi, şimdi yine konuşamıyor, ağzı kaydı", "stroke"),
        ("hamileyim 10 hafta, burnum kanıyor ve alttan da kanama var", "pregnancy_emergency"),
        ("bebeğim 2 aylık hiç yemiyor sürekli uyuyor", "infant_child"),
        ("gözüme çamaşır suyu kaçtı yanıyor", "eye_emergency"),
        ("kaynak yaparken gözüme çapak kaçtı batıyor", "eye_emergency"),
        ("komşumuz yere yığıldı, nefes almıyor. benim bir şeyim yok", "respiratory_distress"),
        ("arkadaşım bayıldı, bende bir şey yok ama o uyanmıyor", "altered_consciousness"),
        ("annem bugün çok tuhaf, beni tanımıyor, sabah normaldi", "altered_consciousness"),
        ("babamın konuşması normal değil, ağzı kaydı", "stroke"),
        ("babam coumadin kullanıyor, dişeti kanaması 1 saattir durmuyor", "heavy_bleeding"),
        ("babam kan sulandırıcı kullanıyor, düştü başını çarptı, kusuyor", "head_injury"),
        ("sara hastası oğlum kasılıyor, 10 dakikadır geçmiyor", "seizure"),
        ("oğlum ilaç yuttu, kutuda 10 hap eksik", "poisoning_overdose"),
        ("bebeğim 2 aylık, bugün hiç mama içmedi, sürekli uyuyor", "infant_child"),  # not a denial
        ("kolu eğri duruyor, kırık gibi duruyor, çok ağrıyor", "major_trauma_burns"),
        ("babam ilaçlarını biriktirmiş, hepsini içmeyi düşünüyor", "suicidal"),
        ("karnı tahta gibi sert, dokundurmuyor, kusuyor", "acute_abdomen"),
        ("annem nerede olduğunu bilmiyor, bizi tanımıyor", "altered_consciousness"),
        (
            "babam aniden konuşamıyor, yüzü kaydı, kan sulandırıcı kullanıyor, burnu da kanadı durdu",
            "stroke",
        ),
        ("internette intihar yöntemlerine bakıyor, ilaçlarını biriktiriyor", "suicidal"),
        ("demir ilacı kullanıyorum, bugün kan kustum", "heavy_bleeding"),
        ("merdiven çıkınca nefes alamıyor, dudakları morardı", "respiratory_distress"),
        ("2 yıl önce felç geçirdi, şu an iyi değil, konuşamıyor", "stroke"),
        ("ışık gözümü çok rahatsız ediyor, ensem kaskatı, ateşim 39", "meningism"),
        ("annemin yüzünün bir tarafı düşük duruyor, konuşması bozuldu", "stroke"),
        ("babamın ağzı bir yana çekildi, kolunu kaldıramıyor", "stroke"),
        ("bebeğim 2 aylık, ateşi 38.2", "infant_child"),
        ("ateşi 37-38 arası, ensesi kaskatı, başı çok ağrıyor", "meningism"),  # 38 is a fever
        ("bebeğim 3 haftalık, ateşi 36'nın altında, elleri buz gibi", "infant_child"),  # too low
        ("bebegim 2 aylik atesi 37,5 ama cok uyuyor uyandiramiyorum", "infant_child"),
    ],
)
def test_near_misses_of_reader_patterns_still_fire(rules_engine, text, flag):
    assert flag in {f.id for f in rules_engine.check(text).flags}


@pytest.mark.parametrize(
    "text,denied,kept",
    [
        ("dedem düştü ama başını vurmadı", "basini", None),
        ("kızım ilaç yutmadı", "ilac", None),
        ("oğlum ilaç yutamadı boğazında kaldı", None, "ilac"),  # could not: the sign, no denial
        ("bebeğim mama içmedi", None, "mama"),  # not feeding is a sign
        ("kırık gibi durmuyor", "kirik", None),
        ("kanama durmuyor", None, "kanama"),  # goes on: the sign
    ],
)
def test_denials_by_event_verbs_and_looks(text, denied, kept):
    from medai.triage.red_flags.rules import negated_tokens
    from medai.triage.red_flags.tokens import tokenize

    tokens = tokenize(text)
    out = {tokens[i].form for i in negated_tokens(tokens, set())}
    assert denied is None or denied in out
    assert kept is None or kept not in out


MUST_FIRE = TESTS / "data" / "red_flags_must_fire.tsv"


def _must_fire() -> list[tuple[str, str]]:
    lines = MUST_FIRE.read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t", 1)) for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("flag,text", _must_fire())
def test_reviewed_emergencies_next_to_denials_and_look_alikes_still_fire(rules_engine, flag, text):
    assert flag in {f.id for f in rules_engine.check(text).flags}


def test_a_decimal_breaks_neither_sentence_nor_clause():
    from medai.triage.red_flags.tokens import tokenize

    tokens = tokenize("ateşi 38.5, 37,2 derece. Yarın")
    assert [t.form for t in tokens] == ["atesi", "38", "5", "37", "2", "derece", "yarin"]
    assert [t.sentence for t in tokens] == [0, 0, 0, 0, 0, 0, 1]
    assert tokens[3].clause == tokens[4].clause != tokens[2].clause  # "," between 5 and 37


def test_digits_glued_to_a_word_are_read_as_two_words():
    """Patients type "12yıl önce", "3gündür", "38derece": the date or the temperature counts as
    if typed with a space."""
    from medai.triage.red_flags.tokens import tokenize

    assert [t.form for t in tokenize("12yıl önce 3gündür 38derece")] == [
        "12",
        "yil",
        "once",
        "3",
        "gundur",
        "38",
        "derece",
    ]


def test_a_noun_ending_in_ti_does_not_stop_a_denial():
    """ "bulantı" is not a past-tense verb (-tı follows only voiceless consonants)."""
    from medai.triage.red_flags.rules import negated_tokens
    from medai.triage.red_flags.tokens import tokenize

    assert negated_tokens(tokenize("bulantı kusma yok"), set()) >= {0, 1}


@pytest.mark.parametrize(
    "text",
    [
        "çocuğa deterjan değerse ilk ne yapılır",  # an aorist conditional: "if it ever happens"
        "nöbet ile bayılma arasındaki fark nedir",  # asking about the signs
        "antidepresanların intihar düşüncesi yaptığını okudum, bende öyle bir şey yok",
        "kurşun zehirlenmesi belirtileri nelerdir",
        "Kan kusmadım, sadece midem yanıyor",  # "kusma-dı-m": the -ma is the negation
        "kolumda kırmızı noktalar var, bardakla bastırınca kayboluyor",  # a rash that fades
        "oğlumun epilepsisi var, iki yıldır ilaçla nöbet olmadı",  # the disease, no seizure now
        "göğsümün sağında bastırınca acıyan bir ağrı var, spordan sonra başladı",  # tenderness
        "5 yıl önce kalp krizi geçirdi şimdi iyi, rehabilitasyon soruyoruz",  # şimdi opens a clause
    ],
)
def test_questions_hypotheticals_and_denials_do_not_fire(rules_engine, text):
    assert rules_engine.check(text).flags == [], [f.id for f in rules_engine.check(text).flags]


@pytest.mark.parametrize(
    "text,flag",
    [
        ("başıma böyle bir ağrı hiç girmedi, birden başladı, kusuyorum", "thunderclap_headache"),
        ("kalp krizi belirtileri var, göğsüm sıkışıyor", "acute_coronary"),  # present, not a topic
        ("30 haftalık gebeyim, bebeğin kıpırdadığını hissetmiyorum", "pregnancy_emergency"),
        ("kemoterapi alıyorum, ateşim 38.5", "sepsis"),
        ("kızımın nefesi aseton gibi kokuyor, kusuyor", "diabetic_emergency"),
        ("yüzü ve dudakları şişti, yutkunamıyor", "anaphylaxis"),
    ],
)
def test_structural_cases_still_fire(rules_engine, text, flag):
    assert flag in {f.id for f in rules_engine.check(text).flags}


def test_negation_does_not_hide_a_second_sign(rules_engine):
    report = rules_engine.check("göğüs ağrım yok ama nefes alamıyorum")
    assert "respiratory_distress" in {f.id for f in report.flags}


def test_distant_past_is_a_note_not_an_emergency(rules_engine):
    past = rules_engine.check("3 yıl önce felç geçirdim, şimdi fizik tedavi görüyorum")
    assert past.flags == [] and [h.id for h in past.history] == ["stroke"]
    again = rules_engine.check("3 yıl önce felç geçirdi, bugün yine ağzı kaydı")
    assert "stroke" in {f.id for f in again.flags}


def test_fired_flag_reports_level_advice_and_evidence(rules_engine):
    report = rules_engine.check("GÖĞÜS AĞRISI ve NEFES DARLIĞI, sol koluma vuruyor")
    flag = report.flags[0]
    assert flag.level in LEVELS and report.level == flag.level
    assert flag.advice_tr and flag.advice_en and flag.name_en and flag.name_tr
    assert flag.detectors == ["rules"]
    assert all(e.detector == "rules" and e.text and e.concepts for e in flag.evidence)
    assert all(m in "GÖĞÜS AĞRISI ve NEFES DARLIĞI, sol koluma vuruyor" for m in flag.matched)


def test_flags_sorted_most_urgent_first(rules_engine):
    report = rules_engine.check("hamileyim kanamam var ve bayıldım")
    levels = [LEVELS.index(f.level) for f in report.flags]
    assert levels == sorted(levels) and len(levels) >= 2


def test_every_presentation_has_a_flag_and_exemplars():
    ruleset = load_rules()
    ids = {
        line.split("|")[1].strip()
        for line in PRESENTATIONS.read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| id")
    }
    assert ids <= set(ruleset.flag_by_id)
    assert all(len(ruleset.exemplars.get(i, ())) >= 5 for i in ids)


def _copy_rules(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in ("concepts.yaml", "flags.yaml", "exemplars.yaml"):
        shutil.copy(DATA_DIR / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize(
    "edit,message",
    [
        (
            lambda d: d["flags"][0]["rules"][0].update({"all": ["no_such_concept"]}),
            "unknown concept 'no_such_concept'",
        ),
        (lambda d: d["flags"][0].update({"level": "soon"}), "valid: call_112"),
        (lambda d: d["flags"][0]["rules"][0].update({"window": 0}), "window must be"),
        (lambda d: d["flags"][0].update({"rules": []}), "missing rules"),
        (
            lambda d: d["flags"][0]["rules"][0].update({"not_inside": ["nope"]}),
            "unknown concept 'nope' in not_inside",
        ),
        (lambda d: d["flags"][0]["rules"][0].update({"unles": ["chest"]}), "valid: all, window"),
    ],
)
def test_bad_flag_file_is_a_clear_error(tmp_path, edit, message):
    d = _copy_rules(tmp_path)
    data = yaml.safe_load((d / "flags.yaml").read_text())
    edit(data)
    (d / "flags.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(RuleFileError, match=message):
        load_rules(d)


@pytest.mark.parametrize(
    "form,message", [("", "empty form"), ("a*", "shorter than 3"), ("göğ?üs", "letters or digits")]
)
def test_bad_concept_form_is_a_clear_error(tmp_path, form, message):
    d = _copy_rules(tmp_path)
    data = yaml.safe_load((d / "concepts.yaml").read_text())
    data["concepts"]["chest"]["forms"].append(form)
    (d / "concepts.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(RuleFileError, match=message):
        load_rules(d)


def test_normal_reading_is_validated_as_a_concept_key(tmp_path):
    d = _copy_rules(tmp_path)
    data = yaml.safe_load((d / "concepts.yaml").read_text())
    data["concepts"]["chest"]["normal_readings"] = True  # misspelt
    (d / "concepts.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(
        RuleFileError, match="valid: kind, forms, exclude, negatable, except_in, normal_reading"
    ):
        load_rules(d)


def test_a_flag_that_is_not_a_boolean_is_a_clear_error(tmp_path):
    d = _copy_rules(tmp_path)
    data = yaml.safe_load((d / "concepts.yaml").read_text())
    data["concepts"]["fever"]["normal_reading"] = "false"  # a string is truthy
    (d / "concepts.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(RuleFileError, match="normal_reading must be true or false"):
        load_rules(d)


def test_a_phrase_in_exclude_is_a_clear_error_not_a_silent_no_op(tmp_path):
    d = _copy_rules(tmp_path)
    data = yaml.safe_load((d / "concepts.yaml").read_text())
    data["concepts"]["chest"]["exclude"] = ["göğüs kafesi"]
    (d / "concepts.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(RuleFileError, match=r"one word start.*except_in"):
        load_rules(d)


def test_exemplars_for_an_unknown_flag_are_an_error(tmp_path):
    d = _copy_rules(tmp_path)
    data = yaml.safe_load((d / "exemplars.yaml").read_text())
    data["urgent"]["not_a_flag"] = ["bir cümle"]
    (d / "exemplars.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(RuleFileError, match="unknown flag id"):
        load_rules(d)


@pytest.mark.slow  # embeds the whole exemplar bank with e5 (~30 s)
def test_embedding_detector_catches_what_no_rule_covers(tmp_path):
    """A hospital's own exemplar, worded so that no concept rule matches it, fires through the
    real e5 model, names the exemplar and its similarity; the cache follows file edits."""
    d = _copy_rules(tmp_path)
    data = yaml.safe_load((d / "exemplars.yaml").read_text())
    sentence = "Dedemiz mavi bir renge büründü, kıpırdamadan yatıyor"
    data["urgent"]["altered_consciousness"].append(sentence)
    (d / "exemplars.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    engine = build_engine(d)
    assert (d / "exemplars.e5.npz").is_file()
    report = engine.check(sentence)
    flag = {f.id: f for f in report.flags}["altered_consciousness"]
    assert "embedding" in flag.detectors
    ev = next(e for e in flag.evidence if e.detector == "embedding")
    assert ev.exemplar == sentence and ev.similarity > 0.99


def test_concurrent_checks_equal_serial(full_engine):
    texts = [
        "babamın yüzü kaydı konuşamıyor",
        "sivilcelerim için krem",
        "kan kustum",
        "bebeğim uyanmıyor ateşi var",
        "dizim ağrıyor",
        "göğsüm sıkışıyor terliyorum",
    ] * 6
    serial = [full_engine.check(t).to_dict() for t in texts]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda t: full_engine.check(t).to_dict(), texts))
    assert concurrent == serial


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_well_formed_report(text):
    report = build_engine_cached().check(text)
    assert all(f.level in LEVELS and f.evidence for f in report.flags)


_CACHED = {}


def build_engine_cached():
    if "e" not in _CACHED:
        _CACHED["e"] = build_engine(embeddings=False)  # with the bundled classifier
    return _CACHED["e"]


def test_stale_exemplar_cache_is_rebuilt_elsewhere_never_in_place(tmp_path):
    """A shipped cache that no longer matches the exemplars is left alone; the fresh vectors go
    to the writable cache (the user's cache folder for the bundled rules)."""
    import numpy as np

    from medai.core.embeddings import shared_e5
    from medai.triage.red_flags import RedFlagEngine

    d = _copy_rules(tmp_path / "rules")
    data = yaml.safe_load((d / "exemplars.yaml").read_text())
    data["urgent"] = {k: v[:1] for k, v in data["urgent"].items()}
    data["ordinary"] = data["ordinary"][:2]
    (d / "exemplars.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    shipped = d / "exemplars.e5.npz"
    np.savez_compressed(shipped, vectors=np.zeros((3, 384), np.float16), digest=np.array("old"))
    before = shipped.read_bytes()
    user_cache = tmp_path / "cache" / "exemplars.e5.npz"
    engine = RedFlagEngine(
        load_rules(d), encoder=shared_e5(), cache_file=shipped, write_file=user_cache
    )
    assert shipped.read_bytes() == before and user_cache.is_file()
    again = RedFlagEngine(
        load_rules(d), encoder=shared_e5(), cache_file=shipped, write_file=user_cache
    )
    assert np.allclose(again.knn.urgent, engine.knn.urgent, atol=1e-3)


# Issue 23 §4: a kiosk gets two-word complaints. A fever, a headache, nausea or an earache alone
# is not an emergency; the same words with a discriminator still are (served engine, every
# detector on).
@pytest.mark.parametrize(
    "text",
    [
        "Ateşim var",
        "Ateş, öksürük",
        "Başım ağrıyor",
        "Midem bulanıyor",
        "Kulağım ağrıyor ve ateşim var",
        "I have a fever",
        # longer than the short threshold's eight words, in English: held to the threshold its only
        # validated English texts earned (the kiosk screen once sent this one to 112)
        "I have had itchy red patches on my arms for two weeks",
    ],
)
def test_short_everyday_complaints_do_not_call_112(full_engine, text):
    assert full_engine.check(text).flags == []


@pytest.mark.parametrize(
    "text,flag",
    [
        ("ateşim var ensem tutuldu", "meningism"),
        ("2 aylık bebeğimin ateşi var", "infant_child"),
        ("hayatımın en kötü baş ağrısı", "thunderclap_headache"),
        ("başım aniden patlar gibi ağrıdı", "thunderclap_headache"),
        ("nefes alamıyorum", "respiratory_distress"),
        ("crushing chest pain spreading to my left arm", "acute_coronary"),
        (
            "crushing chest pain spreading to my left arm and I am sweating a lot right now",
            "acute_coronary",
        ),
    ],
)
def test_short_complaints_with_a_discriminator_still_fire(full_engine, text, flag):
    assert flag in {f.id for f in full_engine.check(text).flags}


@pytest.mark.parametrize(
    "text",
    [
        "I have had a fever and a cough for two days",
        "my wife fainted and is not waking up",
        "Ich habe Fieber",
        "у меня болит голова",
        "عندي صداع",
    ],
)
def test_the_rules_read_other_languages_without_crashing(rules_engine, text):
    report = rules_engine.check(text)
    assert isinstance(report.flags, list) and report.rules_version
