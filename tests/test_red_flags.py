import pytest

from medai.triage.red_flags import check


@pytest.mark.parametrize("text,flag", [
    ("Göğsümde baskı ve nefes darlığı var", "chest_pain_breathless"),
    ("gogus agrisi var sol koluma vuruyor", "chest_pain_radiating"),
    ("Babamın yüzünde kayma oldu, konuşması bozuldu", "stroke_signs"),
    ("bir tarafımda güçsüzlük var", "stroke_signs"),
    ("Son günlerde intihar etmeyi düşünüyorum", "suicidal_thoughts"),
    ("artık yaşamak istemiyorum", "suicidal_thoughts"),
    ("Adet döneminde çok fazla kanama oluyor, durmuyor", "heavy_bleeding"),
    ("sabah kan kustum", "heavy_bleeding"),
    ("Dün iki kez bayıldım", "loss_of_consciousness"),
    ("Hayatımın en şiddetli baş ağrısı başladı", "thunderclap_headache"),
    ("Fıstık yedim, boğazım şişti nefes alamıyorum", "anaphylaxis"),
    ("bir kutu ilaç içtim", "poisoning_overdose"),
])
def test_red_flags_fire(text, flag):
    assert flag in {f.id for f in check(text)}


@pytest.mark.parametrize("text", [
    "Kulağımda çınlama var", "3 yıldır sivilce var", "baş ağrım var", "dizimde ağrı var",
    "Sağ beyin tarafında ağrı", "Stresten kaynaklı yüzden kaynaklı sivilce",
])
def test_ordinary_complaints_do_not_fire(text):
    assert check(text) == []


def test_fired_flag_reports_matched_phrases():
    (flag,) = check("GÖĞÜS AĞRISI ve NEFES DARLIĞI")
    assert flag.matched and all(isinstance(m, str) for m in flag.matched)
