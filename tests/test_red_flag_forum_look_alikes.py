"""Look-alikes from the first reading of the real posts' validation quarter (2026-11-25): the
words of an emergency in a forum question about something else (a blocked nose, an old stroke in
physiotherapy, acne cream, a heart already worked up, a rash that has lasted months), each family
beside emergencies in the same words that must still fire. The texts are written for the test,
not copied from the posts (docs/benchmarks/red_flags.md, "Real-post firings and English")."""

from __future__ import annotations

import pytest

from conftest import fired_flags


@pytest.mark.parametrize(
    "text,flag",
    [
        # breathing and allergy
        ("Asıl problemim nefes alamama sorunu, hangi doktora gitmeliyim?", "respiratory_distress"),
        (
            "Alerjim var, burnumda tıkanıklık var, yediğim şeylerden sonra nefes alamıyorum gibi "
            "oluyor.",
            "anaphylaxis",
        ),
        (
            "Ameliyattan sonra şişlik artarsa nefes alamam diye korkuyorum, normal mi?",
            "respiratory_distress",
        ),
        (
            "Boğazım çok ağrıyor, öksürüyorum ve konuşmakta zorlanıyorum, ne yapmalıyım?",
            "respiratory_distress",
        ),
        (
            "Boğazımda bir tıkanıklık hissi var, yutkununca geçiyor, reflü olabilir mi?",
            "respiratory_distress",
        ),
        ("Oğlumun sesi boğulu gibi kalın çıkıyor, bu normal mi?", "respiratory_distress"),
        (
            "Kızım bazı sessiz harfleri çıkaramıyor, konuşma terapisi gerekir mi?",
            "respiratory_distress",
        ),
        ("Babamın boğazına kanül takıldı, evde nasıl temizleriz?", "respiratory_distress"),
        ("Uyku apnesi olan biri gündüz boğulma yaşar mı?", "respiratory_distress"),
        (
            "Oğlum yemek yerken sık sık lokma boğazına kaçıyor, yutma testi gerekir mi?",
            "respiratory_distress",
        ),
        ("Doktor işi resmen tıkandım kaldım, hangi bölüme gideyim?", "respiratory_distress"),
        ("Mor ışıkta bakınca vücudunda parlayan noktalar görüldü.", "respiratory_distress"),
        ("Ciltteki darbeye bağlı morarmalar geçmiyor.", "respiratory_distress"),
        (
            "Güneşlendikten sonra sırtım esmer kaldı ama bir bölge bembeyaz, ten rengim eşitlenir "
            "mi?",
            "respiratory_distress",
        ),
        ("Egzersiz yaparken nefesim kesiliyor, kondisyonsuzluk mu?", "respiratory_distress"),
        ("Uykudayken nefesim kesilmiş gibi uyanıyorum, ne yapmalıyım?", "respiratory_distress"),
        (
            "Sabahları sürekli hapşuruyorum ve akşama doğru artık nefes alamaz hale geliyorum.",
            "respiratory_distress",
        ),
        ("Ağzımdan nefes aldığım için ağzım kuruyor ve nefesim yetmiyor.", "respiratory_distress"),
        ("Yüzümün bir tarafı daha şiş duruyor, asimetri ameliyatla düzelir mi?", "anaphylaxis"),
        ("Kortizon kesildi ama yüzümde ödem hâlâ duruyor.", "anaphylaxis"),
        ("Burun tıkanıklığı çekiyorum, eğilince yüzüm şişiyor gibi oluyor.", "anaphylaxis"),
        ("Nefesim daralıyor ve boğazımda düğüm var gibi, bazen bir anda oluyor.", "anaphylaxis"),
        (
            "Dilimde toplu iğne ucu kadar bir kabarıklık ve şişlik var, kanser olabilir mi?",
            "anaphylaxis",
        ),
        (
            "Geçen yıl doktor ürtiker dedi, antibiyotik verdi, kabarmalarım hâlâ oluyor.",
            "anaphylaxis",
        ),
        (
            "Diş çekiminden sonra dudağım şişmeye başladı, hastaneye gittim ve anjioödem teşhis "
            "edildi. Şimdi hamile kalmak istiyorum.",
            "anaphylaxis",
        ),
        ("Sık sık boğaz ağrısı çekiyorum, yutkunamıyorum, ilacı nasıl içeyim?", "anaphylaxis"),
        ("Geniz akıntım var, sesim kısılıyor, antibiyotik alınca düzeliyor.", "anaphylaxis"),
        ("Çocuğum bazen yediklerini boğazına kaçırıyor, ne yapmalıyız?", "anaphylaxis"),
        # stroke, eye, headache, cauda equina
        ("Kan değerleri düşük çıktı, ağzımda küçük yaralar var", "stroke"),
        ("Kızım bisikletten düştü, yüzü çizildi, hangi kremi sürelim", "stroke"),
        ("Dün dişim çekildi, ağzımın içi biraz şiş", "stroke"),
        ("Botoks yaptırmayı düşünüyorum, yüzümde sarkma var mı diye dermatoloğa sordum", "stroke"),
        ("Sol omzum güçsüz, kolumu yukarı kaldırırken ağrıyor", "stroke"),
        ("Annem iki yıl önce felç geçirdi, fizik tedavi görüyor, sağ tarafı hâlâ güçsüz", "stroke"),
        ("Bel fıtığım var, sol bacağımda güç kaybı ve karıncalanma oluyor", "stroke"),
        ("MS tanım var, sol kolumda biraz güç kaybı kaldı", "stroke"),
        ("10 gün önce yüz felci geçirdim, kortizon kullanıyorum, ne zaman düzelir", "stroke"),
        ("Baş dönmesi yüzünden hayatım felç oldu, işe gidemiyorum", "stroke"),
        ("Sonuçları görünce moralimiz bozuldu, doktorla konuştuk", "stroke"),
        ("Her baş ağrısında beyin kanaması geçiriyorum diye korkuyorum", "stroke"),
        ("Dayım beyin kanaması geçirdi, yoğun bakımda takip ediliyor, ne zaman uyanır", "stroke"),
        ("Ani işitme kaybı ve dengesizlik oldu, KBB doktoru ilaç verdi", "stroke"),
        ("Sol elim titriyor, yaşam kalitesi düşüyor", "stroke"),
        ("Serebral palsili oğlum yürüyemiyor ve konuşamıyor, hangi tedavi var", "stroke"),
        ("Sık sık baş ağrısı ve gözde bulanıklık oluyor", "eye_emergency"),
        ("Gözümde seğirme var, bunu saplantı haline getirdim", "eye_emergency"),
        (
            "MR raporumda kauda equina lifleri serbesttir yazıyor, belimde fıtık var mı",
            "cauda_equina",
        ),
        ("Ameliyattan sonra sol tarafta yüzümde felç oluştu, kulağım çınlıyor", "stroke"),
        # injuries, burns, seizures, consciousness
        (
            "Dün akşam yüzüme peeling kremi sürdüm, sabah yüzüm yandı ve kıpkırmızı oldu",
            "major_trauma_burns",
        ),
        ("Ağdadan sonra dudak üstümde deri soyuldu, kahverengi leke kaldı", "major_trauma_burns"),
        ("Her sabah yüzümü sıcak suyla yıkıyorum, sonra yüzüm çok kuruyor", "major_trauma_burns"),
        ("Spor yaparken ters bir hareket yaptım, kolum hala ağrıyor", "major_trauma_burns"),
        (
            "Koltuk altımdan ameliyat olacağım, ters bir durum olur mu diye korkuyorum",
            "major_trauma_burns",
        ),
        ("Bacağıma varis için köpük tedavisi yapıldı, kahverengi leke kaldı", "major_trauma_burns"),
        (
            "Bacağım kırıldı, şimdi fizik tedaviye gidiyorum ama hala topallıyorum",
            "major_trauma_burns",
        ),
        ("Burun kemiğimde kırık var, sağ tarafım tıkalı", "major_trauma_burns"),
        (
            "Terleme için ellerime elektrik akımı verilerek tedavi uygulandı, fayda etmedi",
            "major_trauma_burns",
        ),
        ("Boynumda kasılmalar var, uzun süre bilgisayar başında kalınca devam ediyor", "seizure"),
        ("Sırtımda ağrı ve kasılma oluyor, iki haftadır devam ediyor", "seizure"),
        ("Annem kalp krizi geçirdi, 20 dakika kalp masajı yapıldı, şimdi serviste", "seizure"),
        ("Burnum nöbetleşe tıkanıyor, bir türlü durmuyor", "seizure"),
        ("Baş dönmesi testinde gözlerimin dönmesine bakıp hesap yaptılar", "seizure"),
        (
            "Epilepsi hastasıyım, nöbetlerimde bilinç kaybı oluyor, ilacım karaciğeri etkiler mi",
            "seizure",
        ),
        ("Gözlerimi kapatınca kulağımdaki çınlama biraz azalıyor", "altered_consciousness"),
        ("Üç doktora gittim, tatmin edici bir cevap yok", "altered_consciousness"),
        (
            "İki aylık oğlum yüksek seslere irkiliyor ama konuşma sesine tepki vermiyor, işitme "
            "testi gerekir mi",
            "altered_consciousness",
        ),
        ("Otobüste baygınlık geçirecek gibi oldum, kalbim çarptı", "altered_consciousness"),
        ("Kalabalıkta gözüm kararıyor, yere yığılacak gibi oluyorum", "altered_consciousness"),
        (
            "Babam iki haftadır yoğun bakımda yatıyor, şuuru kapalı, ne zaman uyanır",
            "altered_consciousness",
        ),
        ("Sivilcelerim geçmiyor, neden böyle olduğunu anlamıyorum", "altered_consciousness"),
        ("Başımda ağrı var, sabah yataktan kalktığımda hep uykulu oluyorum", "head_injury"),
        # chest pain, children, bleeding, meningism, pregnancy, poisoning, sepsis, abdomen
        (
            "Yüzümde sivilce izleri var, kremler kullandım ama lekeler bir türlü geçmiyor.",
            "meningism",
        ),
        ("Yanaklarımda yıllardır kızarıklık var, hiç gitmiyor, ne sürmeliyim?", "meningism"),
        (
            "Ekrana bakınca başım ağrıyor, ışığa hassasiyetim de var, gözlük gerekir mi?",
            "meningism",
        ),
        (
            "5 yaşındaki oğlumun burnu hep tıkalı, burnundan nefes alamıyor, geniz eti olabilir mi?",
            "infant_child",
        ),
        (
            "Çocukluğumdan beri burnum eğri, geceleri nefes alamıyorum, ameliyat olmalı mıyım?",
            "infant_child",
        ),
        (
            "Eşimle çocuk düşünüyoruz ama bademciklerim yüzünden nefes alamıyorum, sakıncası olur "
            "mu?",
            "infant_child",
        ),
        ("Oğlum 12 yaşında, 17 mayıs günü okulda düştü, dizi hâlâ ağrıyor.", "infant_child"),
        (
            "Kardiyoloğa gittim bir şey çıkmadı, iki yıldır göğsümde batma tarzında ağrı oluyor, "
            "sol koluma da vuruyor, kas ağrısı olabilir mi?",
            "acute_coronary",
        ),
        (
            "Omzumda tendinit var, ağrı bazen boynuma ve göğsüme de vuruyor, iğne yaptırmalı mıyım?",
            "acute_coronary",
        ),
        (
            "Geçen kış kalp krizi geçirdim stent takıldı ilaç kullanıyorum, bu vitamin hapını "
            "kullanabilir miyim?",
            "acute_coronary",
        ),
        ("Sabah ağzımda kan tadı ile uyandım, tükürünce hiçbir şey yoktu.", "heavy_bleeding"),
        ("Dişlerimi fırçaladıktan sonra tükürüğümde kan gördüm, öksürüğüm yok.", "heavy_bleeding"),
        ("Cildim lekelenmeye çok müsait, hangi güneş kremini önerirsiniz?", "heavy_bleeding"),
        (
            "10 haftalık hamileyim, sinüzitim var, geceleri burnumdan nefes alamıyorum.",
            "pregnancy_emergency",
        ),
        (
            "Grip oldum, burnum tıkalı, yüzüm ve başım zonkluyor, 7 haftalık gebeyim, ilaç alabilir "
            "miyim?",
            "pregnancy_emergency",
        ),
        (
            "Yüzümde hamilelik lekesi var, güneşe çıkınca daha lekelenir diyorlar, ne "
            "kullanmalıyım?",
            "pregnancy_emergency",
        ),
        (
            "28 haftalık doğan oğlumda evre 2 beyin kanaması var, fizik tedavi alıyor.",
            "pregnancy_emergency",
        ),
        (
            "Başım sık ağrıyor, günde 3 tane ağrı kesici içerek geçiriyorum, zararı var mı?",
            "poisoning_overdose",
        ),
        ("Bu ilacı kullandığımdan beri çok kilo aldım, ilaç kilo yapar mı?", "poisoning_overdose"),
        ("Ellerimde titreme ile bayılma noktasına geliyorum ama bayılmıyorum, nedir?", "sepsis"),
        (
            "Her sabah başımın sağında şiddetli baş ağrısı oluyor, mide bulantısı ve kusma da eşlik "
            "ediyor.",
            "acute_abdomen",
        ),
        ("Sağ kulağımın üstüne yatamıyorum ağrıdan, kulak iltihabı mı?", "acute_abdomen"),
    ],
)
def test_forum_look_alike_does_not_raise_the_flag(rules_engine, text, flag):
    assert flag not in fired_flags(rules_engine, text)


@pytest.mark.parametrize(
    "text,flag",
    [
        # breathing and allergy
        ("Nefes alamıyorum, dudaklarım morardı.", "respiratory_distress"),
        (
            "Burnumdan nefes alamıyorum ama asıl ağzımdan da nefes alamıyorum, dudaklarım mosmor.",
            "respiratory_distress",
        ),
        (
            "Annem birden nefes alamıyor, konuşmakta zorlanıyor, dudakları morarıyor.",
            "respiratory_distress",
        ),
        (
            "Nefes darlığım arttı, konuşmakta zorlanıyorum, iki kelimede bir duruyorum.",
            "respiratory_distress",
        ),
        ("Boğazıma lokma kaçtı, nefes alamıyorum.", "respiratory_distress"),
        ("Oğlum boğuluyor, boğazına bir şey kaçtı, ses çıkaramıyor.", "respiratory_distress"),
        ("Yemek yerken tıkandı kaldı, yüzü morarıyor.", "respiratory_distress"),
        ("Bebeğimin dudakları mosmor oldu, nefes alamıyor.", "respiratory_distress"),
        ("Babam birden nefes nefese kaldı, oturunca da geçmiyor.", "respiratory_distress"),
        (
            "Yatınca boğulacak gibi oluyorum, oturarak bile nefesim yetmiyor, bacaklarım şişti.",
            "respiratory_distress",
        ),
        ("Arı soktu, dudaklarım ve dilim şişti, nefes alamıyorum.", "anaphylaxis"),
        ("Penisilin iğnesinden sonra yüzüm şişti, nefesim daralıyor.", "anaphylaxis"),
        ("Fıstık yedikten sonra gözlerim şişti, hırıltım var.", "anaphylaxis"),
        ("Yeni ilaçtan sonra boğazım şişti, nefes alamıyorum.", "anaphylaxis"),
        ("Kontrastlı çekimden sonra anafilaksi geçiriyor, nefesi daralıyor.", "anaphylaxis"),
        ("Arı soktu, her yerim kaşınıyor, nefesim daraldı.", "anaphylaxis"),
        ("Antibiyotik içtim, yüzüm şişti, zor yutkunuyorum.", "anaphylaxis"),
        ("Dudaklarım şişti, fıstık yemiştim, doktora gidemedim.", "anaphylaxis"),
        ("Fıstık yedi, boğazı kapanıyor, nefes alamıyor.", "anaphylaxis"),
        ("Dudağım şişiyor, nefes alamıyorum, daha önce anjioödem teşhisi konmuştu.", "anaphylaxis"),
        (
            "Ciltteki morarma yayılıyor, dudakları da mosmor, nefes alamıyor.",
            "respiratory_distress",
        ),
        ("Egzersiz yaparken birden nefes alamadım, dudaklarım morardı.", "respiratory_distress"),
        ("Yüzümde sivilce vardı, bugün arı soktu, dilim şişti, nefes alamıyorum.", "anaphylaxis"),
        # stroke, eye, headache, cauda equina
        ("Annemin yüzü düştü, ağzı bir yana kaydı", "stroke"),
        ("Babam bisikletten indi, birden yüzünün sol tarafı düştü", "stroke"),
        ("Dişçiden döndük, annemin ağzı bir tarafa çekildi, konuşması anlaşılmıyor", "stroke"),
        ("Annemin yüzünde sarkma başladı, ağzı yamuldu", "stroke"),
        ("Babamın sol kolu ve sol bacağı birden güçsüzleşti", "stroke"),
        (
            "Babam 3 yıl önce felç geçirmişti, fizik tedavi gördü; bugün yine sol tarafı tutmuyor",
            "stroke",
        ),
        ("Bel fıtığım var ama bu sabah aniden sol kolum ve sol bacağım güçsüzleşti", "stroke"),
        ("MS hastasıyım, bugün sol kolumu ve bacağımı kaldıramıyorum", "stroke"),
        ("Eşim bugün yüz felci geçirdi, konuşamıyor", "stroke"),
        ("Babam felç oldu, konuşamıyor", "stroke"),
        ("Babamın konuşması bozuldu, kelimeleri karıştırıyor", "stroke"),
        ("Annem beyin kanaması geçiriyor, ne yapalım", "stroke"),
        ("Dayım beyin kanaması geçirdi, evdeyiz, ne yapalım", "stroke"),
        ("Birden dengemi kaybettim, ayakta duramıyorum", "stroke"),
        ("Sol eli birden güçsüzleşti, bardak elinden düşüyor", "stroke"),
        ("Fizik tedavi gören annem bugün tekrar konuşamıyor, sağ tarafı güçsüz", "stroke"),
        ("Gözüm çok ağrıyor ve kızardı, bulanık görüyorum", "eye_emergency"),
        ("Gözüme metal parçası saplandı", "eye_emergency"),
        ("Bel ağrısıyla birlikte idrarımı tutamıyorum", "cauda_equina"),
        ("Annemin yüzü felç oldu", "stroke"),
        ("Babam yüz felci geçirdi", "stroke"),
        # injuries, burns, seizures, consciousness
        ("Kızımın yüzüne kaynar su döküldü, yüzü yandı, su topladı", "major_trauma_burns"),
        (
            "Oğlumun kolu kızgın yağla haşlandı, üstüne krem sürdük, kolunun tamamı su topladı",
            "major_trauma_burns",
        ),
        ("Bebeğimin üstüne sıcak su döküldü, göğsü kıpkırmızı", "major_trauma_burns"),
        ("Babam merdivenden düştü, bacağı ters dönmüş, basamıyor", "major_trauma_burns"),
        (
            "Kayınpederim traktörden düştü, bacağı ters dönmüş, hareket ettiremiyor",
            "major_trauma_burns",
        ),
        ("Oğlumun eli makineye sıkıştı, parmağı koptu, kan fışkırıyor", "major_trauma_burns"),
        ("Annem düştü, bacağı kırıldı, kemik dışarı çıkmış", "major_trauma_burns"),
        (
            "Babam fizik tedavi görüyordu, bugün merdivenden düştü, bacağı ters dönmüş",
            "major_trauma_burns",
        ),
        ("Kolum kırıldı, kemik görünüyor", "major_trauma_burns"),
        ("Oğlumu elektrik akımı çarptı, eli kapkara oldu", "major_trauma_burns"),
        ("Babam yere düştü, kolları bacakları kasıldı, 5 dakikadır devam ediyor", "seizure"),
        ("Dedem kasıldı bıraktı kasıldı bıraktı, arada kendine gelmiyor", "seizure"),
        ("Eşim krize girdi, ağzından köpük geliyor, 10 dakikadır durmuyor", "seizure"),
        ("Oğlum nöbet geçiriyor, durmuyor", "seizure"),
        ("Bebeğimin gözleri döndü, kolları kasıldı", "seizure"),
        ("Epilepsi hastası oğlum tekrar nöbet geçiriyor, 10 dakikadır durmuyor", "seizure"),
        ("Babam kasıldı ve bayıldı, hala uyanmıyor", "seizure"),
        ("Dün babam nöbet geçirdi, nöbet 10 dakika kadar sürdü", "seizure"),
        ("Annem yere yığıldı, gözleri kapandı, seslenince cevap vermiyor", "altered_consciousness"),
        ("Babama seslendik cevap yok, nefes alıyor ama uyanmıyor", "altered_consciousness"),
        ("Bebeğim sabahtan beri tepki vermiyor, gözlerini açmıyor", "altered_consciousness"),
        ("Annem mutfakta yere yığıldı, kendine gelmiyor", "altered_consciousness"),
        ("Babam yoğun bakımdan çıktı, bugün evde bayıldı, uyanmıyor", "altered_consciousness"),
        ("Dedem bu sabahtan beri kimseyi tanımıyor, saçmalıyor", "altered_consciousness"),
        ("Oğlum yataktan düştü, başını çarptı, iki kez kustu", "head_injury"),
        ("Oğlumun eli yandı, ağlaması yarım saat sürdü, eli su topladı", "major_trauma_burns"),
        # chest pain, children, bleeding, meningism, pregnancy, poisoning, sepsis, abdomen
        (
            "Kızımın ateşi var, bacaklarında mor noktalar çıktı, bardakla bastırdım geçmiyor.",
            "meningism",
        ),
        ("Oğlumun ateşi 39, vücudunda mor noktalar var, geçmiyor, çok halsiz.", "meningism"),
        ("Çok şiddetli baş ağrım var, ışığa bakamıyorum, kusuyorum.", "meningism"),
        (
            "2 yaşındaki kızım burnundan nefes alamıyor, göğsünün altı içe çekiliyor.",
            "infant_child",
        ),
        ("2 aylık bebeğimin burnu tıkalı, nefes alamıyor, emmiyor.", "infant_child"),
        ("Çocuğum nefes alamıyor, dudakları morarıyor.", "infant_child"),
        ("1 yaşındaki oğlum çok mayışık, uyandıramıyorum.", "infant_child"),
        (
            "Geçen yıl efor testim normaldi ama bir saattir göğsümde sıkışma var, sol koluma "
            "vuruyor.",
            "acute_coronary",
        ),
        (
            "Kardiyoloğa gittim bir şey çıkmadı demişti ama şu an göğsümde çok şiddetli ağrı var, "
            "midem bulanıyor.",
            "acute_coronary",
        ),
        ("Boyun fıtığım var ama şimdi göğsümde ezici bir baskı var, terliyorum.", "acute_coronary"),
        ("Babam şu an kalp krizi geçiriyor galiba, göğsünü tutuyor.", "acute_coronary"),
        ("Ağzımdan kan geliyor, durmuyor.", "heavy_bleeding"),
        ("Öksürünce ağız dolusu kan geliyor, bardak dolusu kan tükürdüm.", "heavy_bleeding"),
        ("Kan kusuyorum, midem çok ağrıyor.", "heavy_bleeding"),
        ("8 haftalık hamileyim, bugün kanamam başladı, pıhtılar geliyor.", "pregnancy_emergency"),
        ("32 haftalık hamileyim, nefes alamıyorum, göğsüm sıkışıyor.", "pregnancy_emergency"),
        (
            "34 haftalık gebeyim, şiddetli baş ağrım var, gözlerim bulanık görüyor.",
            "pregnancy_emergency",
        ),
        ("Kardeşim bir kutu ilacın hepsini içti, uyandıramıyoruz.", "poisoning_overdose"),
        ("Annem 20 tane uyku hapı aldı, çok uykulu.", "poisoning_overdose"),
        ("Babamın ateşi 39, titriyor, bayıldı, tansiyonu düştü.", "sepsis"),
        ("Karnımda çok şiddetli ağrı var, kusuyorum, ateşim 39.", "acute_abdomen"),
        ("Sağ üst karnımda dayanılmaz ağrı var, ateşim 38.8, kusuyorum.", "acute_abdomen"),
        ("Kalp krizi geçiriyorum galiba, göğsüm sıkışıyor, sol kolum uyuştu.", "acute_coronary"),
        ("12 haftalık hamileyim, alttan kanama var, karnım ağrıyor.", "pregnancy_emergency"),
    ],
)
def test_the_emergency_in_the_same_words_still_raises_it(rules_engine, text, flag):
    assert flag in fired_flags(rules_engine, text)
