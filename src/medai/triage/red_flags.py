"""Urgency red flags written by the team, in Turkish, checked before and independently of any model.

A red flag overrides the suggested department with emergency advice and is never hidden by the
model's confidence. Patterns match the ASCII-folded lowercase form (see ``core.text.match_form``),
so "göğüs ağrısı" and "gogus agrisi" both fire. Negations are deliberately *not* handled: a false
alarm costs a phone call, a missed one can cost a life. Rules are data: a hospital can extend them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medai.core.text import match_form

EMERGENCY_ADVICE_TR = (
    "Acil durum belirtileri var: beklemeden 112'yi arayın veya en yakın acil servise başvurun."
)
EMERGENCY_ADVICE_EN = (
    "Emergency warning signs: call 112 or go to the nearest emergency department now."
)
SUICIDE_ADVICE_TR = (
    "Kendinize zarar verme düşünceleriniz varsa yalnız kalmayın: hemen 112'yi arayın veya "
    "acil servise başvurun."
)


@dataclass(frozen=True)
class RedFlag:
    """Fires when every group has at least one matching pattern."""

    id: str
    name_tr: str
    name_en: str
    groups: tuple[tuple[str, ...], ...]
    advice_tr: str = EMERGENCY_ADVICE_TR

    def compiled(self) -> list[re.Pattern[str]]:
        return [re.compile("|".join(f"(?:{p})" for p in g)) for g in self.groups]


_CHEST = (r"gogs?u?(?:s|m|mu|mde|mun|un|te|ume)?\w{0,4}\s+(?:\w+\s+){0,2}"
          r"(?:agri|agriy|sikis|bask|yan)")
_BREATH = (r"nefes\s*(?:darlig|alam|almakta|almada|alirken zorl|kesil)|soluk\s*(?:alam|darlig)"
           r"|bogul")

RED_FLAGS: tuple[RedFlag, ...] = (
    RedFlag("chest_pain_breathless", "Göğüs ağrısı ve nefes darlığı",
            "Chest pain with breathlessness", ((_CHEST, r"gogus\w*\s+sikis"), (_BREATH,))),
    RedFlag("chest_pain_radiating", "Kola/çeneye yayılan göğüs ağrısı",
            "Chest pain spreading to the arm or jaw",
            ((_CHEST,), (r"sol kol", r"kolum\w*\s+(?:\w+\s+)?(?:yayil|vur|uyus)", r"ceneme",
                         r"cene\w*\s+(?:\w+\s+)?yayil", r"sirtima vur"))),
    RedFlag("stroke_signs", "İnme belirtileri", "Signs of stroke",
            ((r"yuz\w*\s+(?:\w+\s+)?(?:kaydi|kayma|kayiyor|kaymis|felc|dusuk|egil)",
              r"agz\w*\s+(?:\w+\s+)?(?:kaydi|kayma|kayiyor|kaymis|egil)",
              r"agiz\s+kaymas", r"konusma\w*\s+(?:\w+\s+)?(?:bozul|zorl|pelteks|anlasilmaz)",
              r"konusamiyor", r"dilim\s+dolas", r"(?:tek|bir)\s+taraf\w*\s+(?:\w+\s+){0,2}"
              r"(?:uyus|gucsuz|tutmuyor|felc|hissizl)", r"(?:kolum|bacagim)\w*\s+(?:\w+\s+)?"
              r"(?:kaldiramiyor|tutmuyor|aniden uyus)", r"inme\b", r"felc\s+ge[cç]ir"),)),
    RedFlag("suicidal_thoughts", "İntihar düşünceleri", "Suicidal thoughts",
            ((r"intihar", r"kendimi\s+(?:oldur|asma|oldurme)", r"olmek\s+istiyorum",
              r"yasamak\s+istemiyorum", r"canima\s+kiy", r"hayatima\s+son\s+ver",
              r"kendime\s+zarar", r"bilegimi\s+kes", r"yasamanin\s+anlami\s+yok"),),
            advice_tr=SUICIDE_ADVICE_TR),
    RedFlag("heavy_bleeding", "Şiddetli kanama", "Heavy bleeding",
            ((r"(?:cok|asiri|siddetli|yogun|fazla|durmayan|bol)\s+(?:\w+\s+)?kanama",
              r"kanama\w*\s+(?:\w+\s+)?(?:durmuyor|durmadi|dinmiyor|kesilmiyor)",
              r"kan\s+kus", r"kanli\s+kus", r"oksur\w*\s+(?:\w+\s+)?kan\s+(?:geli|cik)",
              r"agiz\w*\s+(?:\w+\s+)?kan\s+gel", r"pihti\w*\s+(?:\w+\s+)?kanama"),)),
    RedFlag("loss_of_consciousness", "Bilinç kaybı / nöbet", "Loss of consciousness or seizure",
            ((r"bilinc\w*\s+(?:\w+\s+)?(?:kayb|kapan|bulan)", r"bayil(?:di|dim|iyor|ma)",
              r"kendinden\s+gec", r"nobet\s+gec(?:ir|iri)", r"havale\s+gec", r"uyandiramiyor"),)),
    RedFlag("thunderclap_headache", "Ani, hayatının en şiddetli baş ağrısı",
            "Sudden worst-ever headache",
            ((r"bas\s*agri\w*", r"basim\s+(?:\w+\s+)?agri"),
             (r"hayatimin\s+en", r"ani\w*\s+(?:\w+\s+)?(?:siddetli|cok)", r"patlar\s+gibi",
              r"ense\w*\s+(?:\w+\s+)?(?:sert|tutul)", r"yildirim\s+gibi"))),
    RedFlag("anaphylaxis", "Ciddi alerjik reaksiyon", "Severe allergic reaction",
            ((r"bogaz\w*\s+(?:\w+\s+)?(?:sis|kapan)", r"dil\w*\s+(?:\w+\s+)?sis",
              r"dudak\w*\s+(?:\w+\s+)?sis", r"anafila"),
             (_BREATH, r"yutkunam", r"anafila", r"alerj"))),
    RedFlag("poisoning_overdose", "Zehirlenme / aşırı ilaç alımı", "Poisoning or overdose",
            ((r"zehirlen", r"(?:cok|fazla|kutu)\s+(?:\w+\s+)?(?:ilac|hap)\s+(?:ic|yut|aldi|al)",
              r"ilac\w*\s+(?:\w+\s+)?(?:hepsini|kutusunu)\s+(?:ic|yut)", r"camasir\s+suyu\s+ic"),)),
)


@dataclass(frozen=True)
class FiredFlag:
    id: str
    name_tr: str
    name_en: str
    advice_tr: str
    matched: list[str]


_COMPILED = [(flag, flag.compiled()) for flag in RED_FLAGS]


def check(text: str) -> list[FiredFlag]:
    """All red flags the text raises, with the phrases that matched (for the clinician)."""
    form = match_form(text)
    fired: list[FiredFlag] = []
    for flag, groups in _COMPILED:
        hits = [g.search(form) for g in groups]
        if all(hits):
            fired.append(FiredFlag(flag.id, flag.name_tr, flag.name_en, flag.advice_tr,
                                   [h.group(0) for h in hits if h]))
    return fired
