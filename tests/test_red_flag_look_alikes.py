"""Look-alikes found where the rules fired on real forum questions (the validation quarter of
the real posts, 2026-11-24), each beside an emergency with the same words that must still fire.
The texts are written for the test, not copied from the posts."""

from __future__ import annotations

import shutil

import pytest
import yaml

from conftest import fired_flags
from medai.triage.red_flags import RuleFileError, load_rules
from medai.triage.red_flags.schema import DATA_DIR


@pytest.mark.parametrize(
    "text,flag",
    [
        # a known, treated epilepsy told in another sentence: one seizure that is over
        (
            "Eşim epilepsi hastası, depakin kullanıyor. Dün akşam bir nöbet geçirdi, şimdi iyi, "
            "dozu artırmalı mıyız?",
            "seizure",
        ),
        # a saturation that has not fallen; a room that feels stuffy
        (
            "Covid sonrası hafif öksürüğüm var, satürasyonum 96 97 arası, normal mi?",
            "respiratory_distress",
        ),
        ("Genital bölgede havasız kalan kıvrımlarda pul pul döküntü var", "respiratory_distress"),
        # hoarseness
        (
            "Sesim bir yıldır kısılıyor ve konuşmakta zorlanıyorum, ses tellerime bakıldı",
            "respiratory_distress",
        ),
        # a purple skin patch or a bruise is not cyanosis
        ("Bebeğin sırtında doğuştan mor leke var, geçer mi", "respiratory_distress"),
        # polio and vocal-cord palsy are not a stroke
        ("Çocuk felci geçirmiş bir hastaya botoks uygulanabilir mi", "stroke"),
        ("Doktor ses tellerim felç olmuş dedi, başka hastaneye gideceğim", "stroke"),
        # hair falling out, fluid in the ear, a burst eardrum: the words of a burn
        (
            "Kardeşimin saçları çok kötü döküldü, bozuk para gibi açıklıklar var",
            "major_trauma_burns",
        ),
        ("Altı yaşındaki çocuğuma kulakta su toplaması teşhisi kondu", "major_trauma_burns"),
        # weeks of a pregnancy or a treatment are not a baby's age
        (
            "8 haftalık gebeyim, dünden beri ateşim var ve burnum tıkalı, test yaptırmalı mıyım",
            "infant_child",
        ),
        # a trace of blood in saliva
        (
            "Sabahları tükürüğümde hafif pembemsi kan oluyor, iki kere tükürünce geçiyor",
            "heavy_bleeding",
        ),
        # "I overlooked it", "hardly visible": the word eye, not an eye
        ("Kolumda gözle zor görülür şekilde iğne ucu kadar kırmızı noktalar var", "eye_emergency"),
        # a sore throat on antibiotics that hurts to swallow is the infection
        ("Bademcik iltihabım var, antibiyotik kullanıyorum ama hâlâ yutkunamıyorum", "anaphylaxis"),
    ],
)
def test_look_alikes_from_real_questions_do_not_fire(rules_engine, text, flag):
    assert flag not in fired_flags(rules_engine, text)


@pytest.mark.parametrize(
    "text,flag",
    [
        (
            "Eşim epilepsi hastası, Depakin kullanıyor. Bugün iki nöbet geçirdi, arada hiç kendine "
            "gelmedi, şimdi üçüncüsü başladı.",
            "seizure",
        ),
        ("Eşim epilepsi hastası. Nöbeti 10 dakikadır devam ediyor, durmuyor", "seizure"),
        ("Babam KOAH hastası, satürasyonu 84'e düştü, nefes alamıyor", "respiratory_distress"),
        ("Annem nefes alamıyor, dudakları morardı", "respiratory_distress"),
        ("Babamın yüzü bir tarafa kaydı, konuşamıyor, sol kolunu kaldıramıyor", "stroke"),
        ("Mutfakta kızgın yağ döküldü, oğlumun yüzü ve boynu yandı", "major_trauma_burns"),
        ("2 aylık bebeğimin ateşi 38.5, emmiyor", "infant_child"),
        ("Öksürünce ağız dolusu kan geliyor, durmuyor", "heavy_bleeding"),
        ("Gözüme çamaşır suyu sıçradı, yanıyor, göremiyorum", "eye_emergency"),
        ("Antibiyotik içtim, dudaklarım ve dilim şişti, nefes alamıyorum", "anaphylaxis"),
        (
            "Kızımın kollarında kırmızı-mor lekeler çıktı, ateşi 39, bardakla bastırınca geçmiyor",
            "meningism",
        ),
    ],
)
def test_the_same_words_in_an_emergency_still_fire(rules_engine, text, flag):
    assert flag in fired_flags(rules_engine, text)


def test_unless_anywhere_names_a_known_concept(tmp_path):
    for name in ("concepts.yaml", "flags.yaml", "exemplars.yaml"):
        shutil.copy(DATA_DIR / name, tmp_path / name)
    data = yaml.safe_load((tmp_path / "flags.yaml").read_text())
    data["flags"][0]["rules"][0]["unless_anywhere"] = ["nope"]
    (tmp_path / "flags.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(RuleFileError, match="unknown concept 'nope' in unless_anywhere"):
        load_rules(tmp_path)
    data["flags"][0]["rules"][0].pop("unless_anywhere")
    data["flags"][0]["rules"][0]["unless_everywhere"] = ["chest"]
    (tmp_path / "flags.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(RuleFileError, match="unless_anywhere"):
        load_rules(tmp_path)


@pytest.mark.parametrize(
    "text,flags",
    [
        # the writer is the object: self-harm, not intent to harm others (found at the kiosk)
        ("kendimi öldürmek istiyorum", {"suicidal"}),
        ("Artık dayanamıyorum kendime zarar vermek istiyorum", {"suicidal"}),
        ("kendimi oldurmeyi dusunuyorum", {"suicidal"}),
        # someone else is the object, alone or beside the writer: both flags stay
        ("Kocamı öldürmek istiyorum, elime bıçak aldım", {"harm_to_others"}),
        ("Önce onu öldürüp sonra kendimi de öldürmek istiyorum", {"harm_to_others", "suicidal"}),
        (
            "Bebeğime zarar vereceğim diye korkuyorum, kendimi öldürmek istiyorum",
            {"harm_to_others", "suicidal"},
        ),
    ],
)
def test_self_harm_is_not_read_as_harm_to_others(rules_engine, text, flags):
    assert fired_flags(rules_engine, text) & {"suicidal", "harm_to_others"} == flags


@pytest.mark.parametrize(
    "text,flag",
    [
        # a cast or a splint on: a fracture set and treated, not an injury to call 112 for
        ("kırık kolumun alçısı ne zaman çıkacak", "major_trauma_burns"),
        ("bileğim kırılmıştı alçıya aldılar, kaşınıyor ne yapayım", "major_trauma_burns"),
        ("parmağım kırık, atel taktılar", "major_trauma_burns"),
        # a finger caught in a door
        ("parmağım kapıya sıkıştı şişti", "major_trauma_burns"),
        ("oğlumun parmağı kapıya sıkıştı, şişti", "major_trauma_burns"),
    ],
)
def test_a_treated_fracture_or_a_jammed_finger_is_no_major_trauma(rules_engine, text, flag):
    """From a short department set written for the tryout of 2026-11-26 (development)."""
    assert flag not in fired_flags(rules_engine, text)


@pytest.mark.parametrize(
    "text",
    [
        "düştü kolu kırıldı şekli bozuk",  # a deformed limb, told now
        "kolu kırıldı kemik dışarı çıktı",  # an open fracture (its own rule: a cast does not mute)
        "alçılı kolundan kemik dışarı çıktı",
        "elini kapıya sıkıştırdı parmağı koptu",  # an amputated finger ('parmağı' was no limb)
        "trafik kazası geçirdi arabada sıkıştı",
    ],
)
def test_the_same_words_in_an_injury_still_fire(rules_engine, text):
    assert "major_trauma_burns" in fired_flags(rules_engine, text)
