"""Third reading of the real posts (helper 3: chest pain, breathing, allergy, sepsis). Each pattern
is a look-alike that must not raise the flag and the same words told as an emergency that must.
Texts are written for the test (paraphrases, no post text); run against a candidate folder with
MEDAI_TEST_RED_FLAG_RULES until it is merged into the bundle."""

from __future__ import annotations

import pytest

from conftest import fired_flags

LOOK_ALIKES = [
    # a burning chest alone is heartburn (`burning` is no longer a plain pressure word)
    ("Midem yanıyor, göğsümde de yanma var, reflü olabilir mi?", "acute_coronary"),
    (
        "Boğaz ağrım, halsizliğim ve göğüste yanma şikayetim var, antibiyotik işe yaramadı.",
        "acute_coronary",
    ),
    # bare verbs of effort are no breathlessness in the chest rules (`breath_short`)
    (
        "Sol omzumda ağrı var, kolumu kaldırırken zorlanıyorum, fizik tedavi işe yarar mı?",
        "acute_coronary",
    ),
    (
        "Sol tarafıma yatınca koluma doğru ağrı oluyor, sağa dönünce ses kesiliyor.",
        "acute_coronary",
    ),
    # shingles on the chest and arm is a skin complaint
    (
        "Annemin sol kolunda ve göğsünde zona çıktı, yaralar kurudu ama sancısı sürüyor.",
        "acute_coronary",
    ),
    # a heart or general work-up told as clean, in the spellings patients use
    ("Göğsümde sıkışma oluyor, kardiyolojik bir problem yok, başka ne olabilir?", "acute_coronary"),
    ("Dedemin göğsü sıkışıyor, hastaneye götürdük bişe yok dedi.", "acute_coronary"),
    # an injection given as the allergy treatment is not what caused the reaction
    ("Yüzüm kabarıp kızardı, doktor alerji deyip iğne yaptı, kaç günde geçer?", "anaphylaxis"),
    ("Dudaklarımda şişlik oluyor, doktor kortizonlu iğne verdi, neden tekrarlıyor?", "anaphylaxis"),
    (
        "Kulağımdaki çınlama için iğne tedavisi gördüm, şimdi konuşmakta biraz zorlanıyorum.",
        "anaphylaxis",
    ),
    # a globus feeling, a sore throat being treated
    (
        "Boğazımda sanki hapı yutamamışım gibi bir his var, ilaç alıyorum, ne olabilir?",
        "anaphylaxis",
    ),
    ("Boğazımda tahriş var, antibiyotik kullanıyorum, yutkunmakta zorlanıyorum.", "anaphylaxis"),
    (
        "Boynumda lenfadenit var dediler, antibiyotik kullandım, yutma güçlüğü yaşıyorum.",
        "anaphylaxis",
    ),
    # avoiding food is not food going the wrong way
    ("Oğlum yemekten kaçıyor, iştahı hiç yok, vitamin verebilir miyim?", "respiratory_distress"),
    (
        "Kızım hap içemiyor, boğulma dürtüsüyle öğürüyor, ilacı toz yapabilir miyim?",
        "respiratory_distress",
    ),
    # a nasal bone or the shape of the nose
    (
        "Burun kemiği eğilmesi için ameliyat önerdiler. Nefes alamıyorum, başka çözüm var mı?",
        "respiratory_distress",
    ),
    # dry, purplish lips of a skin disease
    ("Liken tanısı kondu, dudaklarımda kuruma ve morumsu renk oluyor.", "respiratory_distress"),
    # a hand tremor is no chills; cooling one's own burning feet is no cold limbs
    ("Ellerimde titreme var, bazen bayılıyordum, nörolojik mi?", "sepsis"),
    ("Ayak tabanlarım ateş gibi yanıyor, ayaklarımı soğuk suya koyuyorum.", "sepsis"),
]

EMERGENCIES = [
    ("Şu an göğsümde yanma var, sol koluma vuruyor.", "acute_coronary"),
    ("Babamın göğsünde yanma var, midesi bulanıyor, ter içinde.", "acute_coronary"),
    ("Göğsümde yanma var, sırtıma yayılıyor.", "acute_coronary"),
    ("Sol kolumda ağrı var, göğsüm sıkışıyor, nefesim daralıyor.", "acute_coronary"),
    ("Göğsümde ağrı var ve nefes almakta zorlanıyorum.", "acute_coronary"),
    ("Şimdi göğsünü tutuyor, ağrı boynuna çıkıyor.", "acute_coronary"),
    (
        "Annemin sol kolunda zona çıkmıştı, şu an göğsü sıkışıyor, sol koluna vuruyor.",
        "acute_coronary",
    ),
    ("Kardiyolojik bir problem yok dediler ama şu an göğsüm çok sıkışıyor.", "acute_coronary"),
    ("Dün alerji iğnesi oldum ama şu an dudaklarım yine şişiyor.", "anaphylaxis"),
    ("Kortizon iğnesi yaptılar, dudaklarım şişti, nefes alamıyorum.", "anaphylaxis"),
    ("Penisilin iğnesi yapıldı, yüzüm şişti.", "anaphylaxis"),
    ("Ağrı kesici aldım, yarım saattir yutkunamıyorum, dilim şişti.", "anaphylaxis"),
    ("Çocuğum yemek yerken boğuldu, nefes alamıyor.", "respiratory_distress"),
    ("Burun kemiğim eğri. Bu sabah aniden nefes alamıyorum.", "respiratory_distress"),
    ("Bebeğimin dudakları morardı.", "respiratory_distress"),
    ("Ateşi 39, titreme nöbeti geçiriyor, bilinci bulanık.", "sepsis"),
    ("Ateşi 40, elleri ayakları buz gibi.", "sepsis"),
    (
        "İnsülinimi yaptım, yemek yemedim, şimdi ellerim titriyor, soğuk ter döküyorum, kafam "
        "karışık.",
        "sepsis",
    ),
    # fixes after the hostile review of the third reading (fixer 3)
    # a burning chest with shortness of breath, in the ways it is told
    ("Göğsümde yanma var, nefes almakta güçlük çekiyorum.", "acute_coronary"),
    ("Mide yanmam olur ama göğsümde bambaşka bir yanma var, soluyamıyorum.", "acute_coronary"),
    ("Göğüs kafesimde yanma ve nefes almak çok zor.", "acute_coronary"),
    ("Göğsüm ağrıyor, nefesim kısalıyor.", "acute_coronary"),
    ("Babamın göğsünde ağrı var, solunum güçlüğü çekiyor.", "acute_coronary"),
    # chest pressure with sweating is not cancelled by a skin complaint nearby
    (
        "Sağ kolumda zona var ama şimdi değil; göğsüm sıkışıyor, soğuk ter döküyorum.",
        "acute_coronary",
    ),
    ("Sol omzumda zona yaraları var, göğsüm sıkışıyor, terliyorum.", "acute_coronary"),
    # an allergy shot (immunotherapy) is a trigger, not a treatment
    ("Alerji iğnesi oldum, dudaklarım ve dilim şişti.", "anaphylaxis"),
    ("Oğluma alerji aşısı yapıldı, yüzü ve dudakları şişti.", "anaphylaxis"),
    ("Annem iğne tedavisi için aşı oldu, dili şişti.", "anaphylaxis"),
    # shaking told like a tremor beside an infection is chills
    ("Zatürre tedavisi görüyor, ellerinde titreme var, tansiyonu çok düştü.", "sepsis"),
    ("Böbrek iltihabı var, elinde titreme başladı, kimseyi tanımıyor.", "sepsis"),
]


@pytest.mark.parametrize("text,flag", LOOK_ALIKES)
def test_third_reading_look_alike_does_not_raise_the_flag(rules_engine, text, flag):
    assert flag not in fired_flags(rules_engine, text)


@pytest.mark.parametrize("text,flag", EMERGENCIES)
def test_third_reading_emergency_in_the_same_words_still_fires(rules_engine, text, flag):
    assert flag in fired_flags(rules_engine, text)
