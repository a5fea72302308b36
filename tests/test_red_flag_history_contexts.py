"""Known conditions, old events and finished work-ups in a forum question (an old stroke walking
with a cane, adenoids, a known epilepsy on its drugs, tests that came back clean, a bleed that
comes and goes for months) are not an emergency now; the same history beside a sign told as
now, today, sudden or worse still is. From the second reading of the real posts (2026-11-25),
kept only where it also cut firings on posts nobody read; the texts are written for the test."""

from __future__ import annotations

import pytest

from conftest import fired_flags


@pytest.mark.parametrize(
    "text,flag",
    [
        # stroke, eye, headache
        ("Bazen konuşurken kelimeleri karıştırıyorum, unutkanlık da var", "stroke"),
        ("Annemin iki senedir konuşması bozuk, kelimeleri karıştırıyor", "stroke"),
        ("Son zamanlarda sol elimde güçsüzlük başladı, neden olur", "stroke"),
        ("Ara ara birden gözlerim kararıyor, birkaç saniye sürüp geçiyor", "eye_emergency"),
        ("Baş dönmesi ve bulanık görme şikayetim var, dengesizlik oluyor", "stroke"),
        ("Çocuk felcinden dolayı sağ bacağım güçsüz, dizim ağrıyor", "stroke"),
        ("Annem felç geçirdi, bastonla yürüyor, sağ kolu güçsüz, ilaç önerir misiniz", "stroke"),
        (
            "Sağ elimin parmaklarında güçsüzlük ve karıncalanma var, bilgisayar kullanıyorum",
            "stroke",
        ),
        ("Burun tıkanıklığı söz konusu, bir boşluk hissi var kulaklarımda", "stroke"),
        ("Ayağa kalkınca kafam patlayacak gibi ağrıyor, sinüzitim var", "thunderclap_headache"),
        ("Zaman zaman şakaklarımda birden şiddetli baş ağrısı oluyor", "thunderclap_headache"),
        # breathing, allergy, children
        (
            "Rinoplasti oldum ama hala burnumun sağ tarafından tam nefes alamıyorum, normal mi?",
            "respiratory_distress",
        ),
        (
            "Deviasyon ameliyatı oldum. Yatınca hâlâ rahat nefes alamıyorum, sprey kullanıyorum.",
            "respiratory_distress",
        ),
        (
            "Annem yemek yerken zaman zaman lokmaların soluk borusuna kaçmasından korkuyor, nasıl "
            "önlenir?",
            "respiratory_distress",
        ),
        (
            "Boğazımda bir yumru var, boğulacakmış gibi oluyorum, yutkunma sorunum yok.",
            "respiratory_distress",
        ),
        ("Cildim kuru ve solgun, hangi kremi önerirsiniz?", "respiratory_distress"),
        (
            "Kızım 4 yaşında, geniz eti büyük, uyurken horluyor ve hırıltılı nefes alıyor, ameliyat "
            "şart mı?",
            "infant_child",
        ),
        (
            "Oğlumun bademcikleri büyük, geceleri nefes almakta zorlanıyor, hangi yaşta alınır?",
            "infant_child",
        ),
        ("Kızımın gözlerinde çok sulanma var, bir yaşında, ne önerirsiniz?", "infant_child"),
        ("3 aylık tedaviden sonra kaslarım hâlâ kasılı, ne yapmalıyım?", "infant_child"),
        (
            "Boynumda ceviz büyüklüğünde bir şişlik var, yutkunamıyorum gibi hissediyorum.",
            "anaphylaxis",
        ),
        ("Yediğim şeyler boğazıma takılıyor, yutkunamıyorum, endoskopi gerekir mi?", "anaphylaxis"),
        ("Antibiyotik kullanıyorum, bütün vücudum kırgın ve bademciklerim şiş.", "anaphylaxis"),
        # consciousness, seizures, injuries and burns
        (
            "Bir haftadır bacağımda elektrik çarpıyor gibi bir ağrı var, bel fıtığından olabilir mi",
            "major_trauma_burns",
        ),
        (
            "Yüzümün sağ tarafında elektrik çarpmasına benzer bir his oluyor, birkaç saniye sürüyor",
            "major_trauma_burns",
        ),
        ("Yeni kremden sonra yüzüm sanki yanmış gibi kızardı ve soyuluyor", "major_trauma_burns"),
        ("Ellerim haşlanmış gibi soyuluyor, doktor egzama dedi", "major_trauma_burns"),
        (
            "Çocukluğumda geçirdiğim menenjitten dolayı beyinde su toplaması var, ilaç kullanabilir "
            "miyim",
            "major_trauma_burns",
        ),
        (
            "Masadan bir şey alırken eğildim, boynumda kas sıkıştı, çok ağrıyor",
            "major_trauma_burns",
        ),
        ("Kuaförde saçımı açtılar, saçımın derisi çok yandı, hala kaşınıyor", "major_trauma_burns"),
        (
            "Kulağıma takılan tüp kendinden düştü, tekrar taktırmak gerekir mi",
            "altered_consciousness",
        ),
        ("Aylardır kaşıntım var, hiçbir tedaviye olumlu cevap vermiyorum", "altered_consciousness"),
        ("Eşimin horlamasına ben uyanmıyorum ama o uyuyamıyor", "altered_consciousness"),
        ("Başım dönüyor, ayağa kalkınca bayılacağım korkusu var", "altered_consciousness"),
        (
            "Başımın arkasında ağrı oluyor, bilincimi kaybedecekmiş gibi hissediyorum",
            "altered_consciousness",
        ),
        ("Kızımın bayılma öyküsü var, tilt testi yapılmalı mı", "altered_consciousness"),
        (
            "10 yıldır epilepsi hastasıyım, nöbetlerim kısa bilinç kaybı şeklinde oluyor, ilacımı "
            "değiştirebilir miyim",
            "altered_consciousness",
        ),
        (
            "10 yıldır epilepsi hastasıyım, nöbetlerim kısa bilinç kaybı şeklinde oluyor, ilacımı "
            "değiştirebilir miyim",
            "seizure",
        ),
        (
            "Eşim uzun yıllardır epilepsi hastası, depakin kullanıyor, tekrar hamile kalabilir "
            "miyiz",
            "seizure",
        ),
        (
            "Kızıma epilepsi tanısı kondu, çocuğumun nöbetleri uykuda oluyor, ilacı ne zaman "
            "bırakırız",
            "seizure",
        ),
        ("Yorgun olunca dengem sarsılıyor, vertigo olabilir mi", "seizure"),
        ("Oğlumun havale öyküsü vardı, konuşması gecikti, ne yapmalıyız", "seizure"),
        ("Trileptal kullanan kardeşimin nöbetleri tekrar sıklaştı, doz artırılır mı", "seizure"),
        # chest pain, bleeding, poisoning, pregnancy, meningism, retention
        ("Göğsümde ve sırtımda mantar çıkıyor, kahverengi yuvarlak lekeler", "acute_coronary"),
        ("Terleyince koltuk altımda yanma oluyor, göğsümde de kızarıklık var", "acute_coronary"),
        (
            "Göğsümde ağrı var koluma da vuruyor. Tahlillerim ve röntgenim temiz çıktı, ne olabilir",
            "acute_coronary",
        ),
        ("Kalbim yerinden çıkacak gibi çarpıyor sıkılınca, sonra geçiyor", "acute_coronary"),
        ("Boynum tutulunca ağrı kalbime vuruyor, doktor bir şey yok dedi", "acute_coronary"),
        (
            "Oğlumun burnu ara ara kanıyor, haftada iki kez oluyor ve hemen durmuyor",
            "heavy_bleeding",
        ),
        ("Bademcik iltihabım var, tükürükle biraz kan geldi", "heavy_bleeding"),
        (
            "Kızımın burun kanaması eskisinden daha fazla oluyor, kanamadan çok korkuyorum",
            "heavy_bleeding",
        ),
        ("Sivilcemi sıktım kanaması hala devam ediyor", "heavy_bleeding"),
        ("Bu hastalık için bir çok kez ilaç tedavisi aldım, fayda etmedi", "poisoning_overdose"),
        ("Eczaneden 300 lira bir kutu aldım, içiyorum ama kaşıntım geçmedi", "poisoning_overdose"),
        (
            "Tomografide maksiller sinüste mukus retansiyon kisti izlendi, başım ağrıyor",
            "urinary_retention",
        ),
        ("Ellerimde basınca kaybolan kırmızı benekler çıktı", "meningism"),
        (
            "Kardeşim haftalık kemoterapi alıyor, bacağındaki yaralar kanamalı",
            "pregnancy_emergency",
        ),
        ("16 haftalık hamileyim, sabahları burnumdan kan geliyor", "pregnancy_emergency"),
        (
            "Öksürük ve göğüs ağrısı için göğüs hastalıklarına gittim, boğazımda yanma var",
            "acute_coronary",
        ),
        ("Sinüzitim var, ara ara balgamımda kan oluyor", "heavy_bleeding"),
        ("2 yıldır hemoroidim var, tuvalette kanama oluyor ve hala devam ediyor", "heavy_bleeding"),
        # pain "bad enough to kill" is a measure of pain, not a threat
        ("Başımda öldürecek derecede bir ağrı var, ilacı alınca geçiyor.", "harm_to_others"),
    ],
)
def test_a_history_with_nothing_new_does_not_raise_the_flag(rules_engine, text, flag):
    assert flag not in fired_flags(rules_engine, text)


@pytest.mark.parametrize(
    "text,flag",
    [
        # stroke, eye, headache
        (
            "Ara ara baş ağrım olur ama şu an birden çok şiddetli bir baş ağrısı başladı",
            "thunderclap_headache",
        ),
        ("Bazen ellerim uyuşur ama bugün birden sol kolum ve bacağım tutmuyor", "stroke"),
        ("Zaman zaman gözlerim kararır ama şu an sağ gözüm birden hiç görmüyor", "eye_emergency"),
        ("Zaman zaman gözlerim kararır ama şu an sağ gözüm birden hiç görmüyor", "stroke"),
        ("Annem ara sıra kekeler ama bu sabah birden konuşması bozuldu", "stroke"),
        (
            "İki yıldır sol elimde hafif güçsüzlük vardı, bugün aniden sol kolumu ve bacağımı hiç "
            "kaldıramıyorum",
            "stroke",
        ),
        ("Babam 3 senedir şeker hastası, az önce sağ tarafı tutmaz oldu, konuşamıyor", "stroke"),
        ("Birden başım döndü, dengemi kaybettim, gözlerim bulanıklaştı", "stroke"),
        ("Dengemi kaybediyorum ve her şeyi çift görüyorum, ayakta duramıyorum", "stroke"),
        (
            "Çocuk felci geçirdim, sağ bacağım zayıf; bu sabah birden sol kolum ve sol bacağım "
            "güçsüzleşti",
            "stroke",
        ),
        ("Babam bastonla yürüyordu, bugün birden sağ tarafı tutmuyor, ağzı kaydı", "stroke"),
        (
            "Annem tekerlekli sandalyede, az önce konuşması bozuldu ve sol kolunu kaldıramıyor",
            "stroke",
        ),
        ("Sağ elimin parmakları birden uyuştu ve sağ kolumu kaldıramıyorum", "stroke"),
        ("Söz konusu hasta babam, konuşması birden bozuldu", "stroke"),
        ("Birden başım patlayacak gibi ağrımaya başladı, kustum", "thunderclap_headache"),
        ("Eşimle ilişki sırasında başım patlar gibi ağrıdı, hala geçmedi", "thunderclap_headache"),
        ("Bu sabahtan beri kafam patlıyor, ilaç da almadım", "thunderclap_headache"),
        ("Annem markete gidip geldi, şimdi ağzı kaydı", "stroke"),
        ("Çocuk felcim var. Sol kolum ve sol bacağım aniden tutmaz oldu", "stroke"),
        ("Annem 80 yaşında, bugün birden saçma sapan konuşuyor, nefesi sık sık", "stroke"),
        # breathing, allergy, children
        (
            "Yıllardır deviasyonum var ama bu sabah birden nefes alamıyorum, konuşurken "
            "kesiliyorum.",
            "respiratory_distress",
        ),
        (
            "Geniz eti ameliyatı oldum, şimdi nefes alamıyorum, dudaklarım morardı.",
            "respiratory_distress",
        ),
        ("Sinüzitim var, şu an nefes alamıyorum, giderek kötüleşiyor.", "respiratory_distress"),
        (
            "3 yıldır astımım var ama şu an nefes alamıyorum, dudaklarım morardı.",
            "respiratory_distress",
        ),
        (
            "Babam yemek yerken boğazına et kaçtı, boğuluyor, nefes alamıyor.",
            "respiratory_distress",
        ),
        (
            "Yemekte sık sık boğazına kaçıyor ama şu an lokma boğazına takıldı, nefes alamıyor.",
            "respiratory_distress",
        ),
        (
            "Cildim kuru ve sivilceli ama bugün birden nefes alamıyorum, dudaklarım mosmor oldu.",
            "respiratory_distress",
        ),
        (
            "Oğlumun geniz eti büyük, bu gece aniden hırıltılı nefes almaya başladı, nefes almakta "
            "zorlanıyor.",
            "infant_child",
        ),
        (
            "Kızım 2 yaşında, bademcikleri büyük; şu an çok zor nefes alıyor, kaburgaları içeri "
            "çekiliyor.",
            "infant_child",
        ),
        ("2 aylık bebeğimin burnu tıkalı, hırıltılı nefes alıyor ve emmiyor.", "infant_child"),
        ("Oğlum grip, bugün nefes almakta zorlanıyor ve giderek kötüleşiyor.", "infant_child"),
        ("Kızım gripti, şimdi çok uyuşuk, uyandıramıyoruz.", "infant_child"),
        ("3 yaşındaki oğlumun gözleri çökmüş, ağzı kupkuru, hiç çiş yapmadı.", "infant_child"),
        ("6 aylık tedavi sonrası oğlum 8 aylık oldu, şimdi tepkisiz ve morarıyor.", "infant_child"),
        ("Fındık yedikten sonra dilim şişti ve nefes alamıyorum.", "anaphylaxis"),
        (
            "Arı soktu, yüzümde ceviz gibi bir şişlik oldu, dudaklarım şişti ve nefes alamıyorum.",
            "anaphylaxis",
        ),
        (
            "Antibiyotik iğnesinden sonra tüm vücudum kaşınıyor, kurdeşen döktüm ve nefesim "
            "daralıyor.",
            "anaphylaxis",
        ),
        (
            "Yedi yaşındaki oğlum fıstık yedi, dudakları şişti, nefes almakta zorlanıyor.",
            "anaphylaxis",
        ),
        (
            "Karides yedi, az önce boğazı kapanıyor gibi, yutkunamıyor ve nefes alamıyor.",
            "anaphylaxis",
        ),
        (
            "Boğulacakmış gibi oluyordu, şimdi gerçekten nefes alamıyor, yüzü morardı.",
            "respiratory_distress",
        ),
        (
            "Oğlum iki haftadır nezle, bu sabah birden hırıltısı arttı ve nefes alamıyor.",
            "infant_child",
        ),
        (
            "Yediğim her şeye alerjim var, az önce ceviz yedim, dilim şişti, nefes alamıyorum.",
            "anaphylaxis",
        ),
        # consciousness, seizures, injuries and burns
        (
            "Oğlum prize çatal soktu, elektrik çarptı, elinde yanık var ve ağlıyor",
            "major_trauma_burns",
        ),
        (
            "Kolumda eskiden elektrik çarpması gibi ağrılar oluyordu ama bugün tamirde elektrik "
            "akımına kapıldım, elim yandı",
            "major_trauma_burns",
        ),
        (
            "Yüzüm güneş yanığı gibi kızarıktı ama az önce kızgın yağ yüzüme ve boynuma sıçradı, "
            "derisi soyuldu",
            "major_trauma_burns",
        ),
        ("Çocuğumun üstüne kaynar su döküldü, bütün kolu su topladı", "major_trauma_burns"),
        (
            "Kas sıkışması için fizik tedavi görüyordum ama bugün motosiklet kazası geçirdim, "
            "bacağım kırıldı çok kanıyor",
            "major_trauma_burns",
        ),
        ("Annem birden kendinden geçti, sesimize tepki vermiyor", "altered_consciousness"),
        (
            "Aylardır egzama tedavisi alıyordu ama şu an babam seslenince cevap vermiyor, gözlerini "
            "açmıyor",
            "altered_consciousness",
        ),
        (
            "Bayılacağım diye korkuyordum ama az önce gerçekten bayıldım, başım çok dönüyor",
            "altered_consciousness",
        ),
        (
            "Bayılma öyküsü yoktu ama bu sabah birden bayıldı ve hâlâ kendine gelmedi",
            "altered_consciousness",
        ),
        ("Epilepsi hastası babam yere yığıldı, 10 dakikadır uyanmıyor", "altered_consciousness"),
        ("Epilepsi hastası babam yere yığıldı, 10 dakikadır uyanmıyor", "seizure"),
        ("Depakin kullanan oğlum bayıldı, sarsıyoruz ama tepki vermiyor", "altered_consciousness"),
        ("Eşim epilepsi hastası, nöbeti 5 dakikadır durmuyor", "seizure"),
        (
            "Oğlum epilepsi hastası, gece nöbet geçirdi. Ayılmadan bir tane daha başladı, şu an "
            "üçüncüsü",
            "seizure",
        ),
        ("Tegretol kullanan oğlumun nöbeti durmuyor, 10 dakikadır kasılıyor", "seizure"),
        ("Havale öyküsü var ama şu an yine havale geçiriyor, gözleri kaydı", "seizure"),
        (
            "Dengem hep sarsılıyordu ama bu sabah babam birden nöbet geçirdi, ağzından köpük "
            "geliyor",
            "seizure",
        ),
        ("Trileptal kullanan kardeşim nöbet geçiriyor, 5 dakikadır durmuyor", "seizure"),
        ("Dört aylık bebeğim havale geçiriyor, kolları kasılıyor", "seizure"),
        ("Epilepsi hastasıyım, bugün bayıldım ve başımı çarptım", "altered_consciousness"),
        ("Depakin kullanıyorum, az önce birden bayıldım", "altered_consciousness"),
        # chest pain, bleeding, poisoning, pregnancy, meningism, retention
        (
            "Geçen ay tahlillerim temiz çıktı ama yarım saattir göğsümde ezici bir baskı var, sol "
            "koluma yayılıyor",
            "acute_coronary",
        ),
        (
            "Kan tahlillerim temiz çıktı. Şu an göğsüm çok sıkışıyor ve soğuk soğuk terliyorum",
            "acute_coronary",
        ),
        (
            "Efor testim sorunsuz çıktı ama bugün göğsümde sıkışma var nefes alamıyorum",
            "acute_coronary",
        ),
        (
            "2 yıldır reflüm var ama bu sabah birden göğsümde sıkışma başladı, terliyorum",
            "acute_coronary",
        ),
        (
            "Yıllardır göğsümde hafif ağrı olur ama bugün çok arttı göğsüm sıkışıyor",
            "acute_coronary",
        ),
        (
            "Sırtımda sivilceler var ama şu an göğsümde ağrı var sol koluma vuruyor ve terliyorum",
            "acute_coronary",
        ),
        ("Kalp atışım hızlandı, göğsümde ezici bir baskı var koluma yayılıyor", "acute_coronary"),
        (
            "Göğüs hastalıklarına gittim filmim temiz ama şimdi göğsümde baskı var çeneme vuruyor",
            "acute_coronary",
        ),
        ("Sol kolumda ağrı var kalbime vuruyor, soğuk soğuk terledim", "acute_coronary"),
        ("Göğsümde sıkışma var, ağrı sol koluma iniyor", "acute_coronary"),
        (
            "Ara ara burnum kanardı ama bugün kanama hiç durmuyor, oluk gibi akıyor",
            "heavy_bleeding",
        ),
        (
            "3 aydır hemoroidim var, şu an makattan çok kan geliyor, kanama durmuyor",
            "heavy_bleeding",
        ),
        ("Grip oldum, şimdi öksürünce ağız dolusu kan geliyor", "heavy_bleeding"),
        (
            "Sinüzitim var ama bu sabahtan beri öksürdükçe kan geliyor, giderek arttı",
            "heavy_bleeding",
        ),
        ("Sivilcemi sıktım, şimdi kanama durmuyor", "heavy_bleeding"),
        (
            "Daha önce hiç olmamıştı, şu an oluk gibi kanama var durmuyor, çok korkuyorum",
            "heavy_bleeding",
        ),
        (
            "Depresyon için ilaç tedavisi görüyorum, dün gece bütün ilaçlarımı içtim",
            "poisoning_overdose",
        ),
        ("Kızım tedavideki ilacının hepsini bir seferde yuttu", "poisoning_overdose"),
        (
            "Sinüste retansiyon kisti var ama dünden beri hiç idrar yapamıyorum, karnım şişti",
            "urinary_retention",
        ),
        (
            "Oğlumun bacağında mor noktalar var, bardakla bastırınca kaybolmuyor, ateşi 39",
            "meningism",
        ),
        (
            "20 haftalık hamileyim, burnumdan kan geliyor ve alttan da kanama başladı",
            "pregnancy_emergency",
        ),
        (
            "12 haftalık gebeyim, haftalık ilaç kontrolüm var, bugün alttan kanamam başladı",
            "pregnancy_emergency",
        ),
        (
            "30 haftalık hamileyim, bir haftadır burnum kanıyor, şimdi de vajinal kanama oldu",
            "pregnancy_emergency",
        ),
        # breathless at rest
        (
            "Yatınca boğulacak gibi oluyorum, oturarak bile nefesim yetmiyor, bacaklarım şişti.",
            "respiratory_distress",
        ),
        # a baby's hard breathing is not explained away by a blocked nose or snoring told elsewhere
        (
            "Beş aylık oğlumun burnu tıkalı, horluyor gibi ses çıkarıyor, nefes almakta zorlanıyor.",
            "infant_child",
        ),
        ("11 aylık bebeğimin bir haftadır burnu tıkalı, nefes alamıyor, ememiyor.", "infant_child"),
        # a threat to kill someone still is one
        ("Onu öldüreceğim, bıçağı aldım bile.", "harm_to_others"),
    ],
)
def test_the_same_history_beside_a_sign_told_as_now_still_raises_it(rules_engine, text, flag):
    assert flag in fired_flags(rules_engine, text)


# An independent hostile review (2026-11-25) wrote emergencies beside each history context with
# the ways people say "now" ("az evvel", "gece yarısından beri", "şu anda", "demin"); these were
# silenced until every twin rule read one shared list of them (``told_now``).
@pytest.mark.parametrize(
    "text,flag",
    [
        (
            "Gecen ay kardiyologa gittim efor testi temiz cikti. Az evvel gogsumde cok siddetli "
            "bir agri basladi, nefes alamiyorum.",
            "acute_coronary",
        ),
        (
            "Babamin 2 hafta once anjiyosu temiz cikti dediler. Gece yarisindan beri gogsu cok "
            "agriyor, agri sol koluna yayiliyor, rengi soldu.",
            "acute_coronary",
        ),
        (
            "Annem 10 yildir MS hastasi. Az evvel sag kolunu ve sag bacagini hic kaldiramiyor, "
            "yere dustu.",
            "stroke",
        ),
        (
            "babam dun bypass ameliyatindan taburcu oldu eve geldik. eve gelince sol tarafi "
            "tutmuyor ve konusamiyor ne yapalim",
            "stroke",
        ),
        (
            "Dedem yatalak, evde bakiyoruz. Sabah uyandiginda sag kolunu ve sag bacagini hic "
            "oynatamiyor.",
            "stroke",
        ),
        (
            "Oglumun geniz eti var, horluyor. Gece yarisindan beri nefes alamiyor, gogsu icine "
            "cekiliyor, cok korkuyoruz.",
            "infant_child",
        ),
        (
            "Sinuzit tedavisi goruyorum antibiyotik kullaniyorum. Az evvel yemekten sonra hic "
            "nefes alamiyorum, gogsum sikisti.",
            "respiratory_distress",
        ),
        (
            "Kızım epilepsi hastası, depakin kullanıyor. 8 aylık hamile, az evvel nöbet geçirdi "
            "ve bayıldı.",
            "altered_consciousness",
        ),
        (
            "Kardesim sara hastasi. Bir saat oldu baygin yatiyor, nobet gecirmedi, nefesi "
            "horultulu.",
            "altered_consciousness",
        ),
        (
            "Burnum ara ara kanar ama gece yarisindan beri kaniyor durmuyor, basim donuyor.",
            "heavy_bleeding",
        ),
        (
            "Babam tansiyon ilacı kullanıyor. Az evvel yüzü felç oldu, sağ gözünü kapatamıyor.",
            "stroke",
        ),
        ("Annem şu anda felç geçiriyor sanıyorum, lütfen acil ne yapayım", "stroke"),
        (
            "Dedem felç geçiriyor diye korkuyoruz, hemen şimdi yatağa uzandı bize bakmıyor.",
            "stroke",
        ),
        (
            "Zaman zaman basim agrir fakat az evvel aniden cok siddetli baslayan bir bas agrim "
            "var.",
            "thunderclap_headache",
        ),
        (
            "Bazen gozlerim kararir ama az evvel sol gozum aniden tamamen gormez oldu.",
            "eye_emergency",
        ),
        (
            "Babam hastanede yatiyor zaturre tedavisi goruyor, az evvel felc gecirdi hemsire yok.",
            "stroke",
        ),
        (
            "Babama anjiyo yapilacakti, randevuyu beklerken su an kalp krizi geciriyor galiba.",
            "acute_coronary",
        ),
        ("Babam 5 yil once stent takildi, az evvel yine kalp krizi geciriyor.", "acute_coronary"),
        (
            "Bacagi 2 yil once kirilmisti platin takildi. Az evvel merdivenden dustu, bacagi "
            "yamuldu, kiriktir.",
            "major_trauma_burns",
        ),
        (
            "Oğlum geçen yıl kolundan ameliyat olduydu, kaynamıştı. Bugün parkta düştü, kolu "
            "yerinden çıktı.",
            "major_trauma_burns",
        ),
        (
            "8 aylik hamileyim, nezle oldum ama az evvel nefes alamaz oldum, gogsum sikisiyor.",
            "pregnancy_emergency",
        ),
        (
            "Oğlumun alerjisi var. Gece yarısından beri nefes alamıyor, hırıltısı var, çok "
            "korkuyoruz.",
            "infant_child",
        ),
        (
            "Dedem yemek yerken sik sik bogulur ama az evvel yine bogulmaya basladi, lokma kaldi, "
            "sesi cikmiyor.",
            "respiratory_distress",
        ),
        ("Anafilaksi teshisi konmus kizim su an anafilaksiye giriyor, epipen yok.", "anaphylaxis"),
        (
            "Kayınpederim protez ameliyatı oldu, taburcu olduk. Gece yarısından beri sol kolu ve "
            "bacağı tutmuyor, konuşamıyor.",
            "stroke",
        ),
        ("Oğlum epilepsi hastası depakin kullanıyor, şu anda nöbet geçiriyor, morardı.", "seizure"),
        (
            "Annem epilepsi hastası. Az evvel nöbet geçirdi, nöbetten sonra tekrar nöbet geçirdi.",
            "seizure",
        ),
        (
            "Annemin burnu sık sık kanar, az evvel başladı hala durmuyor, iki havlu doldu.",
            "heavy_bleeding",
        ),
        ("Sinüzitim var. Biraz önce nefes alamamaya başladım.", "respiratory_distress"),
        ("Sinüzitim var. Az evvel nefes alamamaya başladım.", "respiratory_distress"),
        ("Babam 5 yıl önce stent takıldı, şu anda kalp krizi geçiriyor.", "acute_coronary"),
        (
            "babam dun taburcu oldu, demin kalp krizi geciriyor gibi, 112 yi aradim",
            "acute_coronary",
        ),
        ("Babam şu an felç geçiriyor diye korkuyoruz, lütfen yardım edin.", "stroke"),
        ("Oğluma fıstık alerjisi teşhisi konmuştu, şu an anafilaksi geçiriyor.", "anaphylaxis"),
        ("Fizik tedavi görüyordu, şu anda düştü bacağı kırıldı.", "major_trauma_burns"),
        ("Dedem sık sık boğulur, hemen şimdi boğuluyor, yüzü kızardı.", "respiratory_distress"),
    ],
)
def test_every_history_context_yields_to_a_sign_told_as_now(rules_engine, text, flag):
    assert flag in fired_flags(rules_engine, text)
