"""Which language a complaint is written in: Turkish, English or another (``tr | en | other``).

The department model reads only Turkish, so a complaint in another language must be recognised
before its departments are trusted. Off-the-shelf detectors were measured on the project's own
texts and rejected: on Turkish complaints cut to 1–4 words, lingua found Turkish in 72 % (58 %
without Turkish letters) and langid in 52 % (18 %); on short English complaints both 65 %
(docs/benchmarks/red_flags.md). Patients write two-word complaints, a third of them without
Turkish letters, so this reads the evidence a person would, word by word:

- the script: a text mostly in another script (Cyrillic, Arabic, …) is another language;
- letters only Turkish has (ğ, ı, ş, İ) and letters Turkish never uses (ä, ß, é, ñ, ə, ê, …);
- function and everyday complaint words of Turkish, English and the other languages a Turkish
  hospital meets most (German, French, Spanish, Italian, Portuguese, Dutch, Kurmanji,
  Azerbaijani), compared with Turkish letters folded (``basim agriyor`` is ``başım ağrıyor``);
- Turkish verb and possessive endings (``-iyor``, ``-iyo``, ``-dım``, ``-larım``) and English
  word shapes (``th``, ``-ing``, ``-tion``; w, q and x are not Turkish letters).

The language with the most evidence wins; a text with no evidence at all (digits, a name) is
read as Turkish, the product's language, and the department model's own confidence decides.
Deterministic, dependency-free, ~20 µs a text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

LANGUAGES = ("tr", "en", "other")
FOLD = str.maketrans("ğıışçöüâîû", "giiscouaiu")
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")

TURKISH_ONLY = set("ğış")  # after lowercasing (İ → i, I → ı is not assumed: see _lower)
SHARED_WITH_TURKISH = set("çöü")  # Turkish, but also German, French, Kurdish, Azerbaijani…
FOREIGN = set("äßëñéèàôêøåæœəłąęśźżãõùÿíóúáìòčřžšťďňůőűãâ") - set("âîû")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ASCII-folded. Kept to words a short complaint uses; a word in the Turkish and the English
# list proves nothing and is dropped from both; one in the Turkish and another language's list
# counts for both.
TURKISH_WORDS = _words("""
ve veya ile ama fakat ancak ya da de ki mi mu mii muu misin misiniz midir mudur miyim muyum
bir iki uc dort bes alti yedi sekiz dokuz on yirmi otuz kirk elli yuz bu su o bunlar sunlar
onlar ben sen biz siz benim senin onun bizim sizin bana sana ona beni seni onu bende sende onda
cok az daha en hic hep her cok biraz bayagi gayet asiri fazla tam yine gene hala artik simdi
sonra once beri dun bugun yarin gece sabah aksam ogle hafta haftadir gun gundur gunluk ay aydir
yil yildir saat saattir dakika dakikadir kez defa sefer var yok degil evet hayir lutfen tesekkur
merhaba selam hocam doktor doktorum hemsire hastane acil ilac ilaci ilacim hap agri agrisi agrim
agriyor agriyo agriyi sizliyor bas basim basi basimda karin karnim mide midem bulanti bulaniyor
bulaniyo kusma kusuyor kusuyorum ishal ates atesi atesim atesli oksuruk oksuruyorum nezle grip
bogaz bogazim bogazi kulak kulagim kulagi goz gozum gozu burun burnum dis disim sirt sirtim bel
belim boyun boynum ense ensem kol kolum bacak bacagim ayak ayagim el elim diz dizim gogus gogsum
kalp kalbim nefes tansiyon seker kan kanama kasinti kizariklik sislik yara yanik kirik dusme
dustu dustum halsiz halsizlik yorgun yorgunluk bas donmesi donuyor uyku uyuyamiyorum stres
anne annem annemin baba babam babamin es esim esimin oglum oglumun kizim kizimin cocuk cocugum
cocugumun bebek bebegim bebegimin dede dedem nine ninem anneannem babaannem kardes kardesim
yas yasinda yasindayim aylik yasli hamile hamileyim gebe adet regl tuvalet idrar cis kaka
neden nicin niye nasil ne nerede kac hangi kim sey seyi icin gibi kadar dolayi diye bile sadece
yalniz hem ise iken olarak oldu oluyor olur olsun olmus olmadi gecmiyor geciyor gecti basladi
baslad basliyor geldi geliyor gitti gidiyor aldim aliyorum kullaniyorum yapiyor yaptim istiyorum
lazim gerek gerekir normal mi mii tamam iyi kotu fena buyuk kucuk hafif siddetli surekli ara
arada bazen sik sikca son is isim isi yer yerinde yerde ev evde bi bisey biraz hep herkes her
sene senedir yeni eski kere zaman zamanlarda aylarda gun gunler birkac galiba sanki belki acaba
hastayim hasta hastalik tahlil test sonuc sonucu sonucum deger degeri degerim cikti mr rontgen
ultrason ameliyat tedavi kontrol randevu recete rapor asi anneanne anneannem anneannemin
anneannemde babaanne babaannemin metal para et dans kuzen kuzenim komsu komsum parca
""")

ENGLISH_WORDS = _words("""
the a an and or but of to in on at by for from with without about after before since until
i i'm im i've ive i'd me my mine you your he him his she her hers it its we us our they them
their this that these those there here what when where why how who which is are was were be
been being am have has had having do does did doing done not no yes can can't cant cannot could
couldn't couldnt will won't wont would wouldn't wouldnt should shall may might must don't dont
doesn't doesnt didn't didnt isn't isnt aren't arent wasn't wasnt haven't havent hasn't hasnt
very really so too much many more most some any all every just only also again still now then
today tonight yesterday tomorrow morning night evening week weeks day days hour hours minute
minutes month months year years ago since last first once twice
pain painful pains ache aches aching achy hurt hurts hurting sore sick ill unwell feel feels
feeling felt fever feverish temperature temp headache migraine cough coughing cold flu throat
nose runny blocked sneezing ear earache eye eyes vision blurry chest heart breath breathe
breathing short tight tightness stomach tummy belly back neck shoulder arm arms leg legs knee
ankle foot feet hand hands finger fingers head face mouth tongue lip lips tooth toothache teeth
skin rash itchy itch swollen swelling bleeding blood bruise bruised cut burn burnt sunburn
broken sprain sprained twisted dizzy dizziness tired weak numb tingle tingling nausea vomit
vomiting threw diarrhoea diarrhea constipated bloating heartburn period pregnant pee peeing
wee urine bladder sleep anxious stressed stress worried check prescription refill please help
doctor nurse hospital emergency ambulance medicine pills pill tablet tablets dose
mum mom mother dad father husband wife son daughter child children kid kids baby toddler
newborn grandma grandad grandpa grandmother grandfather brother sister friend neighbour
neighbor old year-old fell fall hit got get getting gets went going come came since suddenly
sudden severe bad worse worst better mild slight little lot lots spreading going turning
high low hot dry wet stiff upset acid sugar diabetic diabetes allergic allergy asthma inhaler
blister lump spot spots red purple blue pale yellow black white grey gray green tension pressure
sinus tonsils hives eyelid eyelids eyelash wrist elbow hip ribs rib jaw chin cheek forehead scalp
hair nail nails toe toes heel thumb palm spine tailbone groin testicle testicles penis vagina
breast nipple bum poo poop stool stools urinating cramps cramp spasm spasms twitch twitching
sweat sweating sweaty shaking shivering chills fainted faint collapsed confused drowsy sleepy
seizure fit fits stroke attack bleed bleeds bled injury injured wound bite bitten sting stung
swallowed drank ate eaten took taken overdose poison bleach accident crash slipped tripped
burned scalded coughed sneeze sneezed vomited throwing lost losing loss gain weight small big
left right side one two three four five six seven eight nine ten chesty hay menopause flushes
palpitations travellers car bone metal chemical carbon unable able keeps keep went still
""")

SHARED_WORDS = TURKISH_WORDS & ENGLISH_WORDS  # "son", "her", "on", "hat": no evidence either way
TURKISH_WORDS, ENGLISH_WORDS = TURKISH_WORDS - SHARED_WORDS, ENGLISH_WORDS - SHARED_WORDS

OTHER_WORDS = {
    "de": "und ich ist nicht ein eine einen der die das den dem des mit mein meine meinen habe "
    "hat haben seit schmerzen kopfschmerzen fieber bauch bauchschmerzen husten auch sehr "
    "wenn auf zu es sie er wir ihr kind tochter sohn mann frau",
    "fr": "je j'ai ai est le la les un une des du mal au aux et pas tete ventre fievre toux mon "
    "ma mes depuis tres avec pour dans sur il elle nous vous fils fille enfant mari femme",
    "es": "yo tengo tiene el la los las un una y con dolor cabeza fiebre estomago tos mi mis "
    "desde muy pero por que es esta estoy hijo hija nino esposo esposa me duele puedo "
    "puede respirar dolores",
    "it": "io ho ha il lo la gli le un una e di con dolore testa febbre stomaco tosse mio mia "
    "sono molto per che non figlio figlia bambino marito moglie fa male respirare",
    "pt": "eu tenho tem o os as um uma e com dor cabeca febre estomago tosse meu minha estou "
    "muito desde para que nao filho filha crianca marido esposa",
    "nl": "ik heb heeft het een en met pijn hoofdpijn koorts buikpijn hoest mijn sinds erg "
    "niet zoon dochter kind man vrouw",
    "ku": "ez min te wi em we serê sere zikê zike birin diêşe diese nexweş nexwes heye tune "
    "jî ji li û ku ev ew keça kurê nikarim",
    "az": "mən men sən sen mənim menim başım agriyir ağrıyır qızdırma qizdirma var yox və "
    "ilə bir çox cox uşaq usaq",
}
OTHER_WORDS_FOLDED = {
    lang: frozenset(w.translate(FOLD) for w in words.split()) for lang, words in OTHER_WORDS.items()
}

TURKISH_ENDING = re.compile(
    r"(?:iyor|uyor|iyo|uyo|iyom|uyom|yorum|yordu|iyoz|yoruz|amiyor|emiyor|amiyo|emiyo|"
    r"misim|mistim|mustum|medim|madim|larim|lerim|lari|leri|larda|lerde|lardan|lerden|"
    r"imde|imda|umda|umde|imden|imdan|sinde|sinda|inde|inda|siyle|isim|imiz|umuz|ligi|lugu|"
    r"ciyim|diyor|dugu|digi|dugum|digim|inca|ince|unca|ken|dir|dur|tir|tur|min|nin|nun|mun|"
    r"dan|tan|imi|ini|sini|larin|lerin)$"
)
ENGLISH_SHAPE = re.compile(r"(?:th|wh|ck|oo|ee|ea|ou|w|q|x)|(?:ing|tion|sion|ness|ly|ed|ful|less)$")


@dataclass(frozen=True)
class LanguageGuess:
    language: str  # "tr" | "en" | "other"
    scores: dict[str, float] = field(default_factory=dict)  # the evidence behind it


def _lower(text: str) -> str:
    """Lowercase without losing Turkish: "İ" is "i" and the dotless "I" stays ambiguous (read as
    "i", which matches the folded lists either way)."""
    text = unicodedata.normalize("NFC", text.replace("İ", "i"))
    return text.lower().replace("\u0307", "")


def _script(text: str) -> tuple[int, int]:
    """Letters of the Latin script and of any other script."""
    latin = other = 0
    for ch in text:
        if ch.isalpha():
            if unicodedata.name(ch, "").startswith("LATIN"):
                latin += 1
            else:
                other += 1
    return latin, other


def detect_language(text: str) -> LanguageGuess:
    """``tr`` unless the text gives more evidence of English or of another language."""
    latin, non_latin = _script(text)
    if non_latin > latin:
        return LanguageGuess("other", {"non_latin_letters": float(non_latin)})
    words = WORD.findall(_lower(text))
    score = {"tr": 0.0, "en": 0.0, "other": 0.0}
    other_langs = {lang: 0.0 for lang in OTHER_WORDS}
    for word in words:
        folded = word.translate(FOLD)
        letters = set(word)
        if letters & TURKISH_ONLY:
            score["tr"] += 2.0
            if "ə" in letters or "q" in letters:  # Azerbaijani spelling of a Turkic word
                other_langs["az"] += 3.0
        elif letters & FOREIGN:
            score["other"] += 2.0
        elif letters & SHARED_WITH_TURKISH:
            score["tr"] += 1.0
        in_tr, in_en = folded in TURKISH_WORDS, folded in ENGLISH_WORDS
        score["tr"] += 1.5 * in_tr
        score["en"] += 1.5 * in_en
        for lang, vocab in OTHER_WORDS_FOLDED.items():
            if folded in vocab and not in_en:
                other_langs[lang] += 1.5 if not in_tr else 0.75
        if in_tr or in_en or len(folded) < 3:
            continue
        if TURKISH_ENDING.search(folded) and len(folded) >= 5:
            score["tr"] += 1.0
        if ENGLISH_SHAPE.search(word):
            score["en"] += 0.5
    score["other"] += max(other_langs.values(), default=0.0)
    best = max(score, key=lambda k: (score[k], k == "tr", k == "en"))
    if score[best] <= 0.0:
        best = "tr"
    return LanguageGuess(best, {k: round(v, 2) for k, v in score.items()})
