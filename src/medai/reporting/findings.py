"""Rule-based chest finding extractor for report text (CheXpert-labeler style, English).

Each label has mention patterns; a mention is *negative* when a negation cue precedes it in the
same clause (NegEx-style window that runs through lists — "no effusion, consolidation or
pneumothorax" negates all three — and stops at "but", "however", ...) or a post-negation follows
it ("... is not seen", "... has resolved"); *uncertain* under hedges ("possible", "may
represent", "cannot be excluded"); otherwise *positive*. "No Finding" is positive when no other
label is positive or uncertain. Used to score drafts against reference reports and to check
that an LLM draft does not assert findings it was not given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medai.core.text import turkish_lower
from medai.imaging.labels import imaging_tasks
from medai.imaging.scope import SCOPE_SENTENCE as _MODEL_SCOPE
from medai.reporting.comparison import COMPARISON_SENTENCE

# sentences that state nothing of this film alone, skipped by every reader here: what the model
# does not assess, and the draft's comparison with a prior study (a finding "resolved" since
# then is not present; one new or unchanged is stated elsewhere in the draft)
SCOPE_SENTENCE = re.compile(f"{_MODEL_SCOPE.pattern}|{COMPARISON_SENTENCE.pattern}", re.IGNORECASE)


def _mention_table(lang: str) -> dict[str, str]:
    """label -> regex of mentions (lowercased text), from every imaging task's definition."""

    table: dict[str, str] = {}
    for task in imaging_tasks().values():
        table.update(task.mentions_en if lang == "en" else task.mentions_tr)
    return table


MENTIONS: dict[str, str] = _mention_table("en")
NEGATIONS = (
    r"\bno\b",
    r"\bnot\b",
    r"\bwithout\b",
    r"\bnegative for\b",
    r"\bfree of\b",
    r"\bclear of\b",
    r"\bno evidence of\b",
    r"\bnor\b",
    r"\babsence of\b",
    r"\bresolution of\b",
    r"\bresolved\b",
    r"\bnormal\b(?! \w+ (?:is|are) )",
    r"\bclear\b",
    r"\bruled out\b",
    r"\bdenies\b",
)
POST_NEGATIONS = (
    r"^\W*(?:is|are|was|were|has|have)? ?(?:not (?:seen|identified|present|"
    r"visualized|demonstrated|evident|appreciated)|absent|resolved|cleared)"
)
UNCERTAIN = (
    r"\bpossib\w*",
    r"\bprobabl\w*",
    r"\bmay\b",
    r"\bmight\b",
    r"\bcould\b",
    r"\bsuspic\w*",
    r"\bquestionabl\w*",
    r"\bcannot be excluded\b",
    r"\bcan ?not exclude\b",
    r"\bversus\b",
    r"\bconcern for\b",
    r"\blikely\b",
    r"\bsuggest\w*",
    r"\bequivocal\b",
    r"\bvs\b",
)
TERMINATORS = (
    r"\b(?:but|however|although|though|which|except|aside from|apart from|"
    r"with the exception|otherwise|new|there is|there are|there has been)\b"
)
_NEG = re.compile("|".join(NEGATIONS))
_UNC = re.compile("|".join(UNCERTAIN))
_POST = re.compile(POST_NEGATIONS)
_TERM = re.compile(TERMINATORS)
_MENTION = {lab: re.compile(p) for lab, p in MENTIONS.items()}
_SENTENCE = re.compile(r"(?<=[.;!?])\s+|\n+")
WINDOW_WORDS = 10


_FOUND_NONE_EN = re.compile(r"\bnone of the (?:findings|tumou?r types) the ai model looks for\b")


@dataclass(frozen=True)
class Mention:
    label: str
    status: str  # positive | negative | uncertain
    sentence: str


def _status(sentence: str, start: int, end: int) -> str:
    before = sentence[:start]
    term = list(_TERM.finditer(before))
    if term:
        before = before[term[-1].end() :]
    window = " ".join(before.split()[-WINDOW_WORDS:])
    if _NEG.search(window) or _POST.search(sentence[end : end + 40]):
        return "negative"
    if _UNC.search(window) or _UNC.search(sentence[end : end + 30]):
        return "uncertain"
    return "positive"


def mentions(text: str) -> list[Mention]:
    found = []
    for sentence in _SENTENCE.split(str(text).lower().replace("xxxx", " ")):
        if SCOPE_SENTENCE.search(sentence):  # what the model does not assess: not the patient
            continue
        # "None of the findings the AI model looks for (a, b and c) was detected": each absent
        none_found = bool(_FOUND_NONE_EN.search(sentence))
        for label, pattern in _MENTION.items():
            for m in pattern.finditer(sentence):
                status = "negative" if none_found else _status(sentence, m.start(), m.end())
                found.append(Mention(label, status, sentence.strip()))
    return found


def extract(text: str) -> dict[str, str]:
    """label → positive | uncertain | negative (labels not mentioned are absent).
    A positive mention anywhere wins over uncertain, which wins over negative."""
    rank = {"negative": 0, "uncertain": 1, "positive": 2}
    out: dict[str, str] = {}
    for m in mentions(text):
        if m.label not in out or rank[m.status] > rank[out[m.label]]:
            out[m.label] = m.status
    if not any(s in ("positive", "uncertain") for s in out.values()):
        out["No Finding"] = "positive"
    return out


def positive_labels(text: str, include_uncertain: bool = False) -> set[str]:
    keep = {"positive", "uncertain"} if include_uncertain else {"positive"}
    return {lab for lab, s in extract(text).items() if s in keep}


# IU X-ray MeSH major headings -> our labels (the first term of each "A/B/C" heading)
MESH_TO_LABEL: dict[str, str] = {
    "normal": "No Finding",
    "cardiomegaly": "Cardiomegaly",
    "pulmonary atelectasis": "Atelectasis",
    "pleural effusion": "Effusion",
    "opacity": "Lung Opacity",
    "infiltrate": "Infiltration",
    "nodule": "Nodule",
    "mass": "Mass",
    "pneumonia": "Pneumonia",
    "pneumothorax": "Pneumothorax",
    "consolidation": "Consolidation",
    "pulmonary edema": "Edema",
    "pulmonary emphysema": "Emphysema",
    "emphysema": "Emphysema",
    "pulmonary disease, chronic obstructive": "Emphysema",
    "lung, hyperdistention": "Emphysema",
    "fibrosis": "Fibrosis",
    "pulmonary fibrosis": "Fibrosis",
    "hernia, hiatal": "Hernia",
    "hernia": "Hernia",
    "fractures, bone": "Fracture",
    "tuberculosis": "Tuberculosis",
    "airspace disease": "Consolidation",
    "pleural thickening": "Pleural_Thickening",
    "calcified granuloma": "Nodule",
    "granulomatous disease": "Nodule",
    "granuloma": "Nodule",
    "pulmonary congestion": "Edema",
    "density": "Lung Opacity",
}


def mesh_labels(mesh_major: str) -> set[str]:
    """Our labels from an IU report's ``mesh_major`` field ("A/b/c;D/e")."""
    labels = set()
    for heading in str(mesh_major or "").split(";"):
        term = heading.split("/")[0].strip().lower()
        if term in MESH_TO_LABEL:
            labels.add(MESH_TO_LABEL[term])
    return labels


# Turkish: stems of the drafter's own vocabulary and common report wording. Turkish negates after
# the noun ("pnömotoraks izlenmedi", "efüzyon yok"), so negation and hedging are read per
# sentence. Used to check Turkish LLM drafts; deliberately conservative.
TR_MENTIONS: dict[str, str] = _mention_table("tr")
_TR_NEG = re.compile(
    r"\b(?:yok\w*|olmaksızın|negatif|dışlan\w*|değil\w*|"
    r"(?:izlen|saptan|görül|bulun|rastlan|gözlen)(?:me|ma)"
    r"(?:di|dı|mekte|makta|miş|mış|z|yen|yan)\w*)"
)
_TR_UNC = re.compile(
    r"\b(?:olası|muhtemel\w*|şüphe\w*|düşündür\w*|ekarte edilemez|"
    r"ayırt edilemez)"
)
_TR_MENTION = {lab: re.compile(p) for lab, p in TR_MENTIONS.items()}


# A Turkish clause ends at a comma (not a decimal comma), a semicolon or a contrastive
# conjunction (a colon does not: "Şu bulgular saptanmadı: pnömotoraks"); it states something
# when it has a predicate (var/yok/mevcut, an -len/-len participle, a copula -dır). A predicate-
# less clause ("Plevral efüzyon, pnömotoraks izlenmedi") shares the next clause's predicate.
_TR_CLAUSE = re.compile(
    r",(?!\d)|;|\b(?:ancak|fakat|ama|lakin|buna karşın|bununla birlikte|"
    r"öte yandan|yanı sıra)\b"
)
_TR_PREDICATE = re.compile(
    r"\b(?:var\w*|yok\w*|mevcut\w*|değil\w*|olası|muhtemel\w*|"
    r"uyumlu\w*|düşündür\w*|ekarte|\w*(?:izlen|saptan|görül|gözlen|"
    r"bulun|rastlan|tespit|dikkati çek|ayırt edil|edilemez)\w*|"
    r"\w+(?:dır|dir|dur|dür|tır|tir|tur|tür)\b)"
)


def _tr_clauses(sentence: str) -> list[str]:
    clauses, pending = [], ""
    for part in _TR_CLAUSE.split(sentence):
        part = part.strip()
        if not part:
            continue
        if _TR_PREDICATE.search(part):
            clauses.append(f"{pending} {part}".strip())
            pending = ""
        else:
            pending = f"{pending} {part}".strip()
    if pending:
        clauses.append(pending)
    return clauses


def positive_labels_tr(text: str) -> set[str]:
    """Labels a Turkish text states as present, clause by clause: a clause with a negation or a
    hedge states nothing, the others state every finding they name ("Plevral efüzyon yok,
    sağ akciğerde kitle izlenmektedir" states a mass)."""

    found = set()
    for sentence in _SENTENCE.split(turkish_lower(str(text))):
        if SCOPE_SENTENCE.search(sentence):  # what the model does not assess: not the patient
            continue
        for clause in _tr_clauses(sentence):
            if _TR_NEG.search(clause) or _TR_UNC.search(clause):
                continue
            found |= {lab for lab, pattern in _TR_MENTION.items() if pattern.search(clause)}
    return found


# A sentence is read as Turkish when it has a Turkish letter or a Turkish report word; an English
# reader run over Turkish text misses its negations ("COVID-19 pnömonisi paterni izlenmedi" has
# no English "no" before "covid"), so each sentence is read by its own language's reader only.
_TR_LETTER = re.compile(r"[çğıöşüâîÇĞİÖŞÜ]")  # case-sensitive: under IGNORECASE "i" is "İ"
_TR_WORD = re.compile(
    r"\b(?:ve|ile|yok|var|veya|bulgu\w*|izlen\w*|saptan\w*|görül\w*|"
    r"mevcut\w*|paterni?|uyumlu\w*|değil\w*)\b"
)


def is_turkish(sentence: str) -> bool:
    """Read as given, not Turkish-lowered: "COVID" lowered the Turkish way has a dotless ı."""
    sentence = str(sentence)
    return bool(_TR_LETTER.search(sentence) or _TR_WORD.search(sentence.lower()))


def stated_labels(text: str) -> set[str]:
    """Labels a report text states as present, each sentence read by its language's reader (a
    report may mix a Turkish draft with an English line the radiologist typed). The normal
    label is not among them: ``states_normal`` reads that."""
    turkish: list[str] = []
    english: list[str] = []
    for sentence in _SENTENCE.split(str(text)):
        if sentence.strip():
            (turkish if is_turkish(sentence) else english).append(sentence)
    found = positive_labels_tr(" ".join(turkish)) if turkish else set()
    if english:
        found |= positive_labels("\n".join(english)) - {"No Finding"}
    return found


def denied_labels(text: str) -> set[str]:
    """Labels a report text states as absent, each sentence read by its language's reader: a
    Turkish clause with a negation and no hedge denies every finding it names ("Plevral efüzyon,
    pnömotoraks izlenmedi"); an English mention read as negative ("No pneumothorax"). A hedged
    or merely unnamed label is neither stated nor denied. The normal label is not among them."""

    found: set[str] = set()
    english = []
    for sentence in _SENTENCE.split(str(text)):
        if not sentence.strip():
            continue
        if not is_turkish(sentence):
            english.append(sentence)
            continue
        low = turkish_lower(sentence)
        if SCOPE_SENTENCE.search(low):
            continue
        for clause in _tr_clauses(low):
            if _TR_NEG.search(clause) and not _TR_UNC.search(clause):
                found |= {lab for lab, pattern in _TR_MENTION.items() if pattern.search(clause)}
    if english:
        found |= {lab for lab, s in extract("\n".join(english)).items() if s == "negative"}
    return found - {"No Finding"} - stated_labels(text)


def named_labels(text: str) -> set[str]:
    """Labels a text names at all, stated, denied or asked about, in either language ("Plevral
    efüzyon var mı?", "Is there a pneumothorax?")."""

    low, tr_low = str(text).lower(), turkish_lower(str(text))
    return {lab for lab, pat in _MENTION.items() if pat.search(low)} | {
        lab for lab, pat in _TR_MENTION.items() if pat.search(tr_low)
    }


# the drafts' own words for a model that found none of its labels ("YZ modelinin aradığı
# bulgular (…) saptanmadı"): signed unchanged, the signer agrees none of them is present
_NORMAL_TR = re.compile(
    r"\b(?:normal\w*|olağan|temiz\w*|(?:bulgu|patoloji|anormallik|lezyon|"
    r"tümör|kitle)\w* (?:yok|(?:izlen|görül|gözlen)me(?:di|miş|mekte|z)\w*|"
    r"saptanma(?:dı|mış|makta|z)\w*)|modelinin aradığı [^.;]*saptanmadı)"
)
_NORMAL_EN = re.compile(
    r"\b(?:normal|unremarkable|no (?:acute |significant |focal )?"
    r"(?:abnormalit\w*|findings?|pathology|disease|tumou?r|mass|lesion)|"
    r"lungs are clear|clear lungs|none of the (?:findings|tumou?r types) the a[iı] model looks for)\b"
)
_NOT_NORMAL = re.compile(r"\b(?:değil\w*|not normal|abnormal)\b")
# an undecided draft names "tümör yok" / "no tumour" among the classes it could not separate;
# a conflicting one says the model "also marked the image as normal"
_UNDECIDED = re.compile(
    r"karar veremedi|belirsiz|could not decide|indeterminate|undecided|"
    r"çelişki|conflict"
)


def states_normal(text: str) -> bool:
    """Does the text say the study is normal ("Akciğerler temizdir", "Tümör izlenmedi", "No
    acute abnormality")? The normal label is learned from a signature only when the text says
    so or the model decided it: an undecided or refused study signed with "değerlendirilemedi"
    is not a normal study."""

    for sentence in _SENTENCE.split(turkish_lower(str(text))):
        if _NOT_NORMAL.search(sentence) or _UNDECIDED.search(sentence):
            continue
        if COMPARISON_SENTENCE.search(sentence):  # two studies compared, not this one's word
            continue
        if _NORMAL_TR.search(sentence) or _NORMAL_EN.search(sentence):
            return True
    return False


# a sentence that speaks of what the AI model looked for ("YZ modelinin aradığı bulgular …
# saptanmadı") states the model's result, not the film's: it does not call the film normal
_OF_THE_MODEL = re.compile(r"\bmodel\w*")


def calls_normal(text: str) -> list[str]:
    """The sentences of ``text`` that call the study normal outright ("Akciğerler temizdir.",
    "No acute lung abnormality (AI suggestion).", "Tümör düşündüren bulgu yok"), as opposed to
    saying what the model looked for and did not find; undecided sentences and those that name
    the model are not such claims. A draft must have none."""

    out = []
    for sentence in _SENTENCE.split(str(text)):
        low = turkish_lower(sentence)
        if not low.strip() or _UNDECIDED.search(low) or _OF_THE_MODEL.search(low):
            continue
        if COMPARISON_SENTENCE.search(low):  # two studies compared, not this one's word
            continue
        if _NOT_NORMAL.search(low):
            continue
        if _NORMAL_CLAIM.search(low):
            out.append(sentence.strip())
    return out


# a whole study called normal (not one finding denied: "pnömotoraks izlenmedi" is a finding's
# absence, which a draft may state)
_NORMAL_CLAIM = re.compile(
    r"\b(?:normal\w*|olağan\w*|temiz\w*|unremarkable|within normal limits|"
    r"lungs are clear|clear lungs|"
    r"(?:patoloji|anormallik)\w* (?:yok|izlenme\w*|saptanma\w*|görülme\w*)|"
    r"bulgu (?:yok|izlenme\w*|saptanma\w*)|tümör düşündüren bulgu\w* yok\w*|"
    r"no (?:acute |significant )?(?:\w+ )?(?:abnormalit\w*|patholog\w*|disease|process)|"
    r"no (?:acute )?findings?|no tumou?r (?:is )?suggested)"
)
