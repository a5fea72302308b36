"""Third reading of the real posts, injuries, head, eye, cauda equina and belly (helper 1):
a word of an emergency used in another sense ("çok", a vaccine "vuruldu", lead in a blood test,
"3 metreden belli", "uçurum var", a plug pulled out), a feeling likened to a deformity, an
inborn or lasting deformity, a small, healing or sun burn, a numb glans in a question about
sex, an MRI's "kaudal", weak legs worked up as ALS, "ani" that times standing up, a blackout
with dizziness. Each look-alike is paired with the emergency in the same words, told as now,
sudden or with a danger sign, that must still fire. The texts are written for the test."""

from __future__ import annotations

import pytest

from conftest import fired_flags


@pytest.mark.parametrize(
    "text,flag",
    [
        # accidents: "çok" is no injury, a vaccine "vuruldu" and lead ("kurşun") are no shooting
        (
            "Annemin üçüncü aşısı vuruldu ama kaşıntıları hâlâ çok fazla, başka tedavi var mı",
            "major_trauma_burns",
        ),
        (
            "Tahlilde kurşun değerim yüksek çıktı, balık çok yiyorum, sebebi bu mu",
            "major_trauma_burns",
        ),
        (
            "İki hafta önce ufak bir kaza geçirdim, sonrasında çok stresli bir dönem yaşadım",
            "major_trauma_burns",
        ),
        # heights: a distance, a floor or an idiom without a fall
        ("Yüzümdeki leke 2 metreden bile belli oluyor, hangi krem iyi gelir", "major_trauma_burns"),
        (
            "Tahlil sonucumla normal değerler arasında uçurum var, yanlışlık olabilir mi",
            "major_trauma_burns",
        ),
        ("Üst kattan gelen gürültü yüzünden uyuyamıyorum", "major_trauma_burns"),
        # electricity: a plug named, no current
        (
            "Prizden fişi çekerken çıkan sesten sonra kulağımda bir titreme oluyor",
            "major_trauma_burns",
        ),
        # deformity: a feeling likened to it, an inborn or lasting one
        (
            "Ayak parmağımda ağrı var, damarlarım yerinden çıkacakmış gibi zonkluyor",
            "major_trauma_burns",
        ),
        ("Menisküs yırtığım var, yürürken bacağım sallanıyor gibi oluyor", "major_trauma_burns"),
        (
            "Doğuştan kalça çıkığım var, sol bacağım biraz kısa, ameliyat gerekir mi",
            "major_trauma_burns",
        ),
        (
            "Çocuk felci sekeli yüzünden sağ bacağım kısa kaldı, tedavisi var mı",
            "major_trauma_burns",
        ),
        ("Burnumdaki kıkırdak kemiğim kırık, doktor acelesi yok dedi", "major_trauma_burns"),
        # burns: small, healing, a sunburn, a burning pain, "şu an kan toplandı"
        (
            "Kolumda küçük bir yanık var, su topladı, yanık kremi sürsem geçer mi",
            "major_trauma_burns",
        ),
        (
            "Geçen ay güneş yanığım oldu, omuzlarım su topladı, şimdi soyuluyor",
            "major_trauma_burns",
        ),
        ("Oğlumun eli altı ay önce yanmıştı, yarası kapandı, iz kalır mı", "major_trauma_burns"),
        ("Kollarım ve bacaklarım yanarak sızlıyor, tamamen halsizim", "major_trauma_burns"),
        (
            "Göz kapağımdaki şişliğe sirke sürdüm, şuan kan toplandı, büyük görünüyor",
            "major_trauma_burns",
        ),
        (
            "Doktorun verdiği kremi sürdüğüm yerler yandı ve derim soyulmaya başladı",
            "major_trauma_burns",
        ),
        # a severity word on itching or hair loss
        (
            "Oğlumun aşırı derecede kaşıntısı var, ateşi çıktı, karın ağrısı da oluyor",
            "acute_abdomen",
        ),
        ("Saçlarım aşırı dökülüyor, kaşıyınca bazen kanama ve yara oluyor", "major_trauma_burns"),
        # head: getting out of bed, sleep, a known epilepsy
        ("Her sabah yorgun şekilde yataktan kalkıyorum, sürekli baş ağrısı oluyor", "head_injury"),
        ("Uyku sersemi başım yastıktan düşmüş, kalkınca başım döndü", "head_injury"),
        (
            "Kızım epilepsi tanısı aldı, depakin kullanıyor, geceleri bayılıp düştüğü oluyor",
            "head_injury",
        ),
        # eye: "ani" that times standing up, a blackout with dizziness
        ("Ani kalkmalarda etrafım bulanıklaşıyor, gözlerim kararıyor", "eye_emergency"),
        ("Tansiyonum düşünce baş dönmesi ve göz kararması oluyor, ağrısı da var", "eye_emergency"),
        ("Başdönmesi ve göz kararması şikayetim devam ediyor, başım da ağrıyor", "eye_emergency"),
        # cauda equina: sexual sensitivity, an MRI's direction, ALS, penicillin
        ("Mastürbasyon sonrası penis başında uyuşma oluyor, kalıcı olur mu", "cauda_equina"),
        ("MR raporunda sinir köküne kaudalden temas var yazıyor, belim ağrıyor", "cauda_equina"),
        (
            "Annemin bel ağrısı ve bacaklarında güç kaybı var, EMG sonrası ALS şüphesi dendi",
            "cauda_equina",
        ),
        ("Penisilin iğnesi oldum, bugün kendimi kötü hissetmiyorum", "cauda_equina"),
    ],
)
def test_a_look_alike_does_not_raise_the_flag(rules_engine, text, flag):
    assert flag not in fired_flags(rules_engine, text)


@pytest.mark.parametrize(
    "text,flag",
    [
        # accidents
        ("Az önce trafik kazası geçirdik, eşim çok kanıyor ve kıpırdamıyor", "major_trauma_burns"),
        ("Oğlum vuruldu, karnından kan geliyor", "major_trauma_burns"),
        # heights with a fall
        ("Oğlum 2. kattan düştü, yerde yatıyor", "major_trauma_burns"),
        ("Babam uçurumdan aşağı yuvarlandı, sesine cevap vermiyor", "major_trauma_burns"),
        ("Komşumuz 3 metreden düştü, kalkamıyor", "major_trauma_burns"),
        ("Kardeşim pencereden atladı", "major_trauma_burns"),
        # electricity
        ("Prizden çarpıldım, elim uyuşuk ve kararmış", "major_trauma_burns"),
        ("Kızım prize parmağını soktu, ağlıyor", "major_trauma_burns"),
        # deformity told as now or seen
        (
            "Doğuştan kalça çıkığı vardı, az önce merdivenden düştü, kalçası yerinden çıktı",
            "major_trauma_burns",
        ),
        ("Annem düştü, bacağı ters dönmüş, kemiği çıkmış", "major_trauma_burns"),
        ("Kolum yerinden çıktı, omzumun şekli bozuk", "major_trauma_burns"),
        # burns told as now, or by scalding
        ("Bugün bebeğimin eli yandı, su topladı, iz kalır mı", "major_trauma_burns"),
        (
            "Küçük bir yanık sandık ama kızımın üstüne kaynar çay döküldü, göğsü su topladı",
            "major_trauma_burns",
        ),
        ("Güneşte uyuyakalmış, şu an bütün sırtı yanmış ve su toplamış", "major_trauma_burns"),
        # severe pain and heavy bleeding
        ("Karnımda aşırı şiddetli ağrı var, ateşim 39, kustum", "acute_abdomen"),
        ("Elimde derin bir yara var, aşırı kanama oluyor, durmuyor", "major_trauma_burns"),
        # head
        ("Kızım yataktan düştü, başını çarptı, uyku hali var", "head_injury"),
        ("Epilepsi hastası oğlum az önce düştü, bayıldı, kusuyor", "head_injury"),
        ("Babam merdivenden düştü, kafasını çarptı, şiddetli kusuyor", "head_injury"),
        # eye
        ("Az önce aniden sol gözüm karardı, hiç göremiyorum, başım da dönüyor", "eye_emergency"),
        ("Birden sağ gözümde perde indi, göremiyorum", "eye_emergency"),
        # cauda equina
        (
            "Mastürbasyonla ilgisi yok, bugün birden makatım ve penisim uyuştu, belim çok ağrıyor",
            "cauda_equina",
        ),
        ("Makatımda his yok, idrarımı tutamıyorum, belim ağrıyor", "cauda_equina"),
        (
            "EMG çektirmiştim ama bugün birden iki bacağım da tutmuyor, belim çok ağrıyor",
            "cauda_equina",
        ),
        ("Bel fıtığım var, iki bacağım da tutmuyor, idrarımı kaçırıyorum", "cauda_equina"),
    ],
)
def test_the_same_words_told_as_an_emergency_still_fire(rules_engine, text, flag):
    assert flag in fired_flags(rules_engine, text)


# Safety fixes after the hostile review of the third reading (fixer 1): each emergency below,
# told beside a context of the third reading, fires again. The texts are written for the test.
@pytest.mark.parametrize(
    "text,flag",
    [
        # a severity told on the bleed itself, beside "aşırı yorgun"
        ("Camla bacağımı kestim, yara kanıyor aşırı, aşırı yorgunum", "major_trauma_burns"),
        ("Kolumdaki derin kesik aşırı kanıyor yorgunluktan duramıyorum", "major_trauma_burns"),
        # one eye gone suddenly, beside standing up or dizziness; both eyes told as now
        ("Birden ayağa kalktım, sağ gözümün önüne perde indi, hâlâ göremiyorum", "eye_emergency"),
        ("Başım döndü ve birden sol gözüm hiç görmez oldu", "eye_emergency"),
        ("Tansiyonum düştü galiba, sağ gözüm durduk yere karardı, göremiyorum", "eye_emergency"),
        (
            "Ani kalkınca gözlerim kararır ama bu sefer 2 saattir hiçbir şey göremiyorum",
            "eye_emergency",
        ),
        # drowsiness after a blow, beside the writer's sleep
        (
            "Kızım başını dolaba çarptı, uyku sersemi gibi duruyor, dün gece de uyku düzeni bozuktu",
            "head_injury",
        ),
        (
            "Babam kafasını kapıya vurdu, uyku problemi zaten var ama şimdi uyanmak istemiyor",
            "head_injury",
        ),
        ("Oğlum salıncaktan başının üstüne düştü, gözleri kapanıyor", "head_injury"),
        # a plug with a shock, a collapse or a finger put in
        ("Oğlum prizlerle oynarken çarpıldı galiba, ağlıyor", "major_trauma_burns"),
        ("Eşim prizden cereyan aldı, kolu uyuştu", "major_trauma_burns"),
        ("Kızım prizin deliğine tokayı sokmuş, parmağı kararmış", "major_trauma_burns"),
        # heights with the other tenses and ways of falling
        ("Yeğenim ikinci kattan düşünce bayıldı", "major_trauma_burns"),
        ("Ustamız 6 metreden düşüyor, yerde kıpırdamıyor", "major_trauma_burns"),
        ("Oğlum pencereden düşeli bir saat oldu, çok uyuyor", "major_trauma_burns"),
        ("Amcam duvardan tepe taklak geldi, kalkamıyor", "major_trauma_burns"),
        ("İşçi iskele yerine 4 metreden kapaklandı", "major_trauma_burns"),
        # an accident with a grave state told without a wound
        ("Kaza yaptık, babam kötü durumda", "major_trauma_burns"),
        ("Motorla kaza geçirdi, rengi bembeyaz oldu", "major_trauma_burns"),
        ("Trafik kazası oldu, kardeşim gözlerini zor açıyor", "major_trauma_burns"),
        # new weak legs with back pain beside a neuropathy, a clean EMG, no ALS
        ("Polinöropati tanım var ama 4 gündür belim ağrıyor, bacaklarım tutmuyor", "cauda_equina"),
        (
            "EMG çektirdim, sonuç temiz, bu hafta belim ağrıyor ve bacaklarımı kaldıramıyorum",
            "cauda_equina",
        ),
        ("Annemin ALS tanısı yok, iki gündür beli ağrıyor, bacakları tutmuyor", "cauda_equina"),
        # a fall beside an inborn deformity
        ("Doğuştan kalça çıkığı olan teyzem düştü, bacağı ters döndü", "major_trauma_burns"),
    ],
)
def test_the_safety_fixes_fire_beside_a_context(rules_engine, text, flag):
    assert flag in fired_flags(rules_engine, text)


@pytest.mark.parametrize(
    "text,flag",
    [
        # a plug named without a shock; a look down, no fall
        ("Prizlerle oynamasın diye koruyucu kapak aldım, hangisi daha iyi", "major_trauma_burns"),
        ("Priz kapağı takmak çocuğu korur mu, yeni yürümeye başladı", "major_trauma_burns"),
        ("Pencereden aşağıya bakınca başım dönüyor, yükseklik korkum var", "major_trauma_burns"),
        # an accident without an injury
        ("Kaza geçirdim, çok korktum ama hiçbir yerim ağrımıyor", "major_trauma_burns"),
        # a deformity after a treated fall, or inborn without a fall
        (
            "Fizik tedavi görüyorum, iki ay önce düşüp kolum kırılmıştı, hâlâ biraz yamuk",
            "major_trauma_burns",
        ),
        ("Doğuştan bacaklarım çarpık, yürürken zorlanıyorum", "major_trauma_burns"),
        # both eyes darkening on standing up
        ("Hızlı kalkınca iki gözüm de kararıyor, birkaç saniyede geçiyor", "eye_emergency"),
        ("Ani kalkmalarda gözlerim kararıyor, başım dönüyor", "eye_emergency"),
        # a known neuropathy with years-old weak legs
        ("Diyabetik nöropatim var, yıllardır bacaklarım güçsüz, belim de ağrır", "cauda_equina"),
        # the writer's sleep, no blow
        ("Uyku sorunum var, başımı yastığa koyunca uykum kaçıyor", "head_injury"),
    ],
)
def test_the_safety_fixes_keep_the_look_alikes_quiet(rules_engine, text, flag):
    assert flag not in fired_flags(rules_engine, text)
