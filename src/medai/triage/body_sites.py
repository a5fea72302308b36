"""Which departments a short complaint's body sites belong to.

The department model must answer with one of the departments it learned, and the out-of-scope
gate (scope.py) learned from long forum posts: a kiosk's "Karnım ağrıyor" (4 departments known,
none of them for the abdomen) went to Neurology at 82 %. A short complaint says little more than
where it hurts, and that is enough to know it is not about any department the model knows.

So on a short Turkish complaint the predictor reads the body sites it names (``SITES``: folded
word stems read with a suffix, "göz" → gözüm, gözlerim; "kas$" only as the whole word) or, when
it names no site, the symptoms of one department's organs ("ishal", "çarpıntı"). When every
department named is one the model does not know, the patient is referred to the general triage
desk. A complaint naming a site of a department the model knows ("başım ağrıyor, midem
bulanıyor") is the model's to answer; a model of all 15 departments never refers by this.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from medai.core.text import match_form

MAX_WORDS = 10  # longer complaints say more than where it hurts: the learned gate reads them

# department id -> (site stems, symptom stems), folded (match_form). A stem is read as the word
# with a possessive or case ending ("goz" → gözüm, gözlerimde); "stem*" as any word it begins
# ("kasint*" → kaşıntılı); "stem$" as the whole word only ("kas", never "kasım": November)
SITES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "dermatology": (
        ("cilt", "cild", "deri$", "derim", "deris", "deride", "sac", "tirnak", "tirnag"),
        (
            "kasint*",
            "kasin*",
            "sivilce*",
            "akne*",
            "egzama*",
            "sedef*",
            "kurdesen*",
            "sigil*",
            "dokuntu*",
            "mantar*",
            "kepek*",
        ),
    ),
    "ent": (
        (
            "kulak",
            "kulag",
            "burun",
            "burn",
            "bogaz",
            "bademcik",
            "sinus*",
            "sinuz*",
            "geniz",
            "girtlak",
            "girtlag",
        ),
        ("cinla*", "isitme*", "isitem*", "yutkun*", "horla*", "sesim kis*", "nezle*", "hapsir*"),
    ),
    "neurology": (
        ("bas", "kafa", "beyin", "beyn", "sinir", "ense"),
        ("migren*", "uyus*", "karincalan*", "unutkan*", "havale*", "nobet*", "bayil*", "denge*"),
    ),
    "physical_medicine_rehabilitation": (
        (
            "bel",
            "boyun",
            "boyn",
            "sirt",
            "omuz",
            "omz",
            "diz",
            "eklem",
            "kas$",
            "kaslar*",
            "topuk",
            "topug",
            "kalca",
            "bilek",
            "bileg",
            "dirsek",
            "omurga",
            "fitik",
            "fitig",
            "ayak",
            "ayag",
            "kol",
        ),
        ("tutulma*", "kramp*", "burkul*"),
    ),
    "orthopedics": (
        ("kemik", "kemig", "bilek", "bileg", "diz", "kalca", "omuz", "omz", "ayak", "ayag", "kol"),
        ("kirik*", "cikik*"),
    ),
    "ophthalmology": (("goz", "gorme*", "gorus*"), ("cift gor*", "bulanik gor*")),
    "cardiology": (("kalp", "kalb", "gogus", "gogs"), ("carpinti*", "tansiyon*")),
    "pulmonology": (
        ("akciger", "gogus", "gogs", "nefes"),
        ("oksur*", "balgam*", "hirilti*", "astim*"),
    ),
    "general_surgery": (
        (
            "karin",
            "karn",
            "mide",
            "bagirsak*",
            "safra",
            "makat",
            "meme",
            "kasik",
            "kasig",
            "apandis*",
        ),
        (
            "ishal*",
            "kabiz*",
            "hazimsiz*",
            "reflu*",
            "hemoroid*",
            "basur*",
            "bulant*",
            "bulaniyor*",
            "kusuyor*",
            "kusma*",
            "kustu*",
            "kusacak*",
        ),
    ),
    "internal_medicine": (
        ("karin", "karn", "mide", "bagirsak*", "tiroid*", "karaciger"),
        (
            "ates",
            "atesl*",
            "halsiz*",
            "yorgun*",
            "seker",
            "ishal*",
            "bulant*",
            "bulaniyor*",
            "kusuyor*",
            "kusma*",
            "kustu*",
            "istahsiz*",
        ),
    ),
    "urology": (("idrar", "bobrek", "mesane", "prostat*", "testis*", "haya", "sidik*"), ()),
    "obstetrics_gynecology": (
        ("rahim", "rahm", "yumurtalik*", "vajina*", "dolyol*"),
        ("adet*", "regl*", "gebe*", "hamile*", "lohusa*", "dogum*"),
    ),
    "psychiatry": (
        (),
        (
            "kaygi*",
            "panik*",
            "depresyon*",
            "mutsuz*",
            "stres*",
            "anksiyete*",
            "moral*",
            "evham*",
            "kuruntu*",
        ),
    ),
}


def _named(form: str, stems: tuple[str, ...]) -> bool:
    """Does the folded word ``form`` (or a two-word ``form``) read as one of ``stems``?"""
    for stem in stems:
        if stem.endswith("*"):
            if form.startswith(stem[:-1]):
                return True
        elif stem.endswith("$"):
            if form == stem[:-1]:
                return True
        elif form == stem or (form.startswith(stem) and form[len(stem) :] in _SUFFIXES):
            return True
    return False


_SUFFIXES = frozenset(
    (
        # possessive and case endings a body site takes, folded ("gözümde", "başının", "dizlerim");
        # never a derivation that makes another word ("kasım", "belli", "başka")
        "m",
        "n",
        "im",
        "in",
        "um",
        "un",
        "i",
        "u",
        "a",
        "e",
        "si",
        "su",
        "mi",
        "mu",
        "da",
        "de",
        "dan",
        "den",
        "mda",
        "mde",
        "imda",
        "imde",
        "umda",
        "umde",
        "nda",
        "nde",
        "inda",
        "inde",
        "unda",
        "unde",
        "mdan",
        "mden",
        "imdan",
        "imden",
        "umdan",
        "umden",
        "ma",
        "me",
        "ima",
        "ime",
        "uma",
        "ume",
        "na",
        "ne",
        "ina",
        "ine",
        "una",
        "une",
        "min",
        "imin",
        "umun",
        "nin",
        "inin",
        "unun",
        "miz",
        "imiz",
        "umuz",
        "niz",
        "iniz",
        "ler",
        "lar",
        "leri",
        "lari",
        "lerim",
        "larim",
        "lerimde",
        "larimda",
        "lerimin",
        "larimin",
        "mdaki",
        "mdeki",
        "imdaki",
        "imdeki",
        "umdaki",
        "lerimdeki",
        "larimdaki",
    )
)


def named_departments(text: str) -> set[str]:
    """The departments whose body sites ``text`` names (or, naming none, whose symptoms)."""
    words = match_form(text).replace(",", " ").replace(".", " ").split()
    pairs = [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    forms = words + pairs
    sites = {d for d, (stems, _) in SITES.items() if any(_named(f, stems) for f in forms)}
    if sites:
        return sites
    return {d for d, (_, symptoms) in SITES.items() if any(_named(f, symptoms) for f in forms)}


def outside(text: str, known: AbstractSet[str]) -> set[str]:
    """The departments a short complaint names when none of them is in ``known`` (the model's
    departments); empty when it is long, names none, or names one the model knows."""
    if len(text.split()) > MAX_WORDS:
        return set()
    named = named_departments(text)
    return named if named and not named & set(known) else set()
