"""Third reading of real forum posts, helper 4 (consciousness, poisoning, children, pregnancy,
bleeding, harm to others, self-harm, diabetes): look-alikes that must not raise the flag, each
beside an emergency in the same words that must still raise it. The texts are written for the
test (no post text); kept only where the change also cut firings on posts nobody read."""

from __future__ import annotations

import pytest

from conftest import fired_flags


@pytest.mark.parametrize(
    "text,flag",
    [
        # a patient still lying in intensive, palliative or ward care
        (
            "Babam iki haftadır yoğun bakımda yatıyor, bilinci hâlâ kapalı, doktorlar umut vermiyor",
            "altered_consciousness",
        ),
        (
            "Dedem palyatif serviste, bilinçsiz yatıyor, beslenme tüpü takılı, ne yapabiliriz",
            "altered_consciousness",
        ),
        # faints told as coming and going, or what happens during the known faints
        (
            "Annem arasıra sinirlenince ağlayıp bayılıyor, kalp tetkikleri temiz",
            "altered_consciousness",
        ),
        ("Teyzem 10 senedir bayılıyor, tahlilleri hep temiz çıkıyor", "altered_consciousness"),
        (
            "Bayılma sırasında etrafı duyuyormuş ama konuşamıyormuş, neden olur",
            "altered_consciousness",
        ),
        # words of unconsciousness used in another sense
        (
            "Soruma cevap vermişsiniz, teşekkür ederim, bir şey daha soracaktım",
            "altered_consciousness",
        ),
        (
            "İki aylık oğlum seslere tepki vermiyor, işitme testi gerekir mi",
            "altered_consciousness",
        ),
        (
            "Burnumdaki damarları yakarken bayıltılıyor muyum, yoksa lokal mi yapılıyor",
            "altered_consciousness",
        ),
        (
            "Boğazımdaki gıcık kendinden geçsin diye bekliyorum, antibiyotik istemiyorum",
            "altered_consciousness",
        ),
        ("Arada yere yığılma hissi ve halsizlik oluyor, kansızlığım var", "altered_consciousness"),
        (
            "Kızım uykusu gelince kulağını omzuna yaslayıp gözlerini kapatmasına dikkat ettim",
            "altered_consciousness",
        ),
        (
            "Bacaklarımda seğirme var, özellikle hareketsiz yatarken artıyor",
            "altered_consciousness",
        ),
        ("Kuzenim kazadan sonra komadan çıktı, şimdi bir kulağı duymuyor", "altered_consciousness"),
        (
            "Sağ gözüm istemsiz oynuyor, sanki gözüm dönüyor, yanımdakiler bir şey görmüyor",
            "altered_consciousness",
        ),
        ("Ben uyku halindeyken yatarak emzirdim, bebeğimde kulak iltihabı olur mu", "infant_child"),
        (
            "İki doktor farklı şeyler söyleyince insanın kafası karışıyor, ne yapmalıyım",
            "altered_consciousness",
        ),
        # poisoning: an acid that is a skin-care product, a measure that is no amount, a vaccine
        # dose, a medicine the writer took, a poisoning already in hospital
        ("Hyaluronik asit serumu aldım, evde alerji testi nasıl yapılır", "poisoning_overdose"),
        ("Yüzüme yüzde 20 C vitamini serumu aldım, biraz kızardı", "poisoning_overdose"),
        ("Sivilce için günde 20 mg ilaç aldım, dudaklarım kurudu", "poisoning_overdose"),
        (
            "Yarın ikinci doz grip aşımı olacağım, antibiyotik içiyorum, sorun olur mu",
            "poisoning_overdose",
        ),
        (
            "Bebeğimi emziriyorum, alerji için bir hap içtim, bebeğe zararı olur mu",
            "poisoning_overdose",
        ),
        (
            "Mantar zehirlenmesi şüphesiyle dahiliye servisinde yatıyorum, serum veriliyor",
            "poisoning_overdose",
        ),
        # pregnancy: women in general, a water or sac that is no amniotic fluid, a blood test,
        # skin pigment, a pregnancy told as a past period
        (
            "Emzirdiğim için hamileler için olan ağrı kesiciyi içiyorum, şiddetli baş ağrım geçmiyor",
            "pregnancy_emergency",
        ),
        ("20 haftalık hamileyim, her sabah meyve suyu içmem zararlı mı", "pregnancy_emergency"),
        ("Hamileyim, safra kesesi taşım var, ne yemeliyim", "pregnancy_emergency"),
        ("7 aylık hamileyim, grip sonrası kulağımdan sarı su akıyor", "pregnancy_emergency"),
        (
            "Hamileyim, geçen ay kanımda enfeksiyon çıktı, antibiyotik verildi",
            "pregnancy_emergency",
        ),
        ("Hamileyim, yanaklarım güneşten lekelendi, hangi krem kullanılır", "pregnancy_emergency"),
        (
            "Bir yıl önce doğum yaptım, hamileliğim döneminde kilo aldım, boynumda şiddetli ağrı var",
            "pregnancy_emergency",
        ),
        # harm to others, self-harm, sugar, bleeding: words in another sense
        ("Doktor her gün şampuanla yıkarsak cildine zarar vereceğimizi söyledi", "harm_to_others"),
        ("Doktorum ilaç işe yaramazsa riniti yakacağını söyledi", "harm_to_others"),
        ("Bu kaşıntı hastalığı öldürecek beni, hiçbir krem işe yaramıyor", "harm_to_others"),
        ("İlaca her ay ara vererek kendime zarar mı veriyorum", "suicidal"),
        ("Annem sık sık bayılıyor, kardiyoloji tetkikleri temiz", "altered_consciousness"),
        (
            "Şeker hastasıyım, ilacımı sabah aç karnına alıyorum, ağrılarım yüzde 50 azaldı",
            "diabetic_emergency",
        ),
        ("Doppler raporunda kan akımı düşük denmiş, coraspin kullanıyorum", "heavy_bleeding"),
    ],
)
def test_a_look_alike_does_not_raise_the_flag(rules_engine, text, flag):
    assert flag not in fired_flags(rules_engine, text)


@pytest.mark.parametrize(
    "text,flag",
    [
        # care told as over, or a change told as now: the twins fire
        (
            "Babam iki haftadır yoğun bakımda yatıyordu, taburcu olduk. Bugün evde bayıldı",
            "altered_consciousness",
        ),
        ("Annem hastanede yatıyor, az önce birden bayıldı, hemşire yok", "altered_consciousness"),
        ("Dedem serviste yatıyor, bu sabahtan beri kimseyi tanımıyor", "altered_consciousness"),
        (
            "Annem ara sıra bayılır ama bu sabah bayıldı ve hâlâ kendine gelmedi",
            "altered_consciousness",
        ),
        ("Teyzem 10 senedir şeker hastası, az önce bayıldı", "altered_consciousness"),
        ("Annem bayıldı, bayıldığında başını çarptı, hâlâ ayılmadı", "altered_consciousness"),
        # the same words as a sign
        ("Babam yere düştü, seslendik cevap vermiyor", "altered_consciousness"),
        ("İki aylık oğlum bugün çok uyuşuk, seslenince tepki vermiyor", "altered_consciousness"),
        ("Ameliyattan çıktı, annem bayıldı, uyandıramıyoruz", "altered_consciousness"),
        ("Annem mutfakta kendinden geçti, yere yığıldı", "altered_consciousness"),
        ("Bebeğimin gözleri kapanıyor, uyandıramıyoruz", "altered_consciousness"),
        ("Dedem yatağında hareketsiz yatıyor, seslenince tepki vermiyor", "altered_consciousness"),
        ("Kuzenim kazadan sonra komada, uyanmıyor", "altered_consciousness"),
        (
            "Tuvalete kalkınca gözüm karardı, duvara tutunarak yere yığıldım",
            "altered_consciousness",
        ),
        ("Bebeğim uyku halinde, emmiyor, çok uyuşuk", "infant_child"),
        ("Babam saçmalıyor, kafası karışık, kimseyi tanımıyor", "altered_consciousness"),
        # poisoning told as happening
        ("Yanlışlıkla kireç sökücü asit içtim, boğazım yanıyor", "poisoning_overdose"),
        ("Annem 20 tane tansiyon hapı içti", "poisoning_overdose"),
        ("Kardeşim 30 tane uyku hapı aldı, uyanmıyor", "poisoning_overdose"),
        ("Kardeşim ilaçlarından doz aşımı yaşadı, kusuyor", "poisoning_overdose"),
        ("Bebeğim yerde bulduğu hapı yuttu", "poisoning_overdose"),
        ("Oğlum benim ilacımı içti, ben de sonra aldım elinden", "poisoning_overdose"),
        ("Babam hastanede yatıyor, bugün annem mantardan zehirlendi", "poisoning_overdose"),
        # pregnancy signs in the same words
        ("Hamileyim, çok şiddetli baş ağrım var ve gözlerim bulanıklaştı", "pregnancy_emergency"),
        ("32 haftalık hamileyim, suyum geldi", "pregnancy_emergency"),
        ("Hamileyim, altımdan su geliyor", "pregnancy_emergency"),
        ("Hamileyim, kesem patladı galiba", "pregnancy_emergency"),
        ("Hamileyim, kanamam başladı", "pregnancy_emergency"),
        ("Hamileyim, bu sabah lekelenme başladı", "pregnancy_emergency"),
        ("8 haftalık hamileyim, karnımda çok şiddetli ağrı var", "pregnancy_emergency"),
        # harm to others, self-harm, sugar, bleeding told as such
        ("Bebeğime zarar vereceğim, elimde bıçak var", "harm_to_others"),
        ("Kocam evi yakacağını söyledi, elinde benzin var", "harm_to_others"),
        ("Kendime zarar veriyorum, kollarımı kesiyorum", "suicidal"),
        ("Kendime zarar verir miyim diye çok korkuyorum", "suicidal"),
        # hostile review of the third reading: the same contexts beside an emergency now
        # another person's or an ended hospital stay (in_care_stay is local; at home or discharged)
        ("Kızım hastanede yatıyor, evde kocam yere yığıldı, uyanmıyor", "altered_consciousness"),
        ("Eşim hastanede yatıyor. Oğlum bayıldı, ayılmıyor", "altered_consciousness"),
        (
            "Babam 3 gündür yoğun bakımdaydı, dün taburcu ettiler, evde uyandıramıyoruz",
            "altered_consciousness",
        ),
        (
            "Annem palyatif serviste yatıyordu, taburcu olduk, eve geldik, kimseyi tanımıyor",
            "altered_consciousness",
        ),
        (
            "Dedem hastanede yatıyor, babaannem evde kendinde değil, saçmalıyor",
            "altered_consciousness",
        ),
        ("Teyzem serviste yatıyor, evde amcam soba gazından zehirlendi", "poisoning_overdose"),
        ("Kardeşim hastanede yatıyor. Annem kömür sobasından zehirlendi", "poisoning_overdose"),
        # an adult who does not answer a voice; a faint told with "bayılınca", "geçerek"
        ("Babaannem yerde yatıyor, seslere tepki vermiyor", "altered_consciousness"),
        (
            "Amcam koltukta oturuyor, sese tepki vermiyor gözleri boş bakıyor",
            "altered_consciousness",
        ),
        ("Annem yemek yaparken bayılınca başını tezgaha çarptı", "altered_consciousness"),
        ("Babam kendinden geçerek yere yığıldı", "altered_consciousness"),
        # one occasion, or another complaint told as frequent
        ("Annem yalnız olduğu zaman bayıldı", "altered_consciousness"),
        ("Dedem sık sık unutuyor, yerde bayılmış bulduk", "altered_consciousness"),
        # a thought of self-harm told as a question to oneself
        ("Kendime zarar versem mi diye düşünüyorum", "suicidal"),
        ("Hepsini yutsam mı, kendime zarar mı versem", "suicidal"),
        # a supply in days swallowed, a caustic cleaner
        ("Babam 30 günlük ilaçlarını bir kerede içti", "poisoning_overdose"),
        ("Kızım 20 günlük uyku haplarını içmiş", "poisoning_overdose"),
        ("Oğlum pas sökücü içti, kusuyor", "poisoning_overdose"),
        ("Kızım asitli tuvalet temizleyicisini içti", "poisoning_overdose"),
        ("Şekerim 50 ye düştü, titriyorum, terliyorum", "diabetic_emergency"),
        ("Coraspin kullanıyorum, burnum kanıyor durmuyor", "heavy_bleeding"),
    ],
)
def test_the_same_words_as_an_emergency_still_raise_the_flag(rules_engine, text, flag):
    assert flag in fired_flags(rules_engine, text)
