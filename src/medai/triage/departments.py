"""The 15 hospital departments: stable ids, Turkish and English names, and label aliases.

Training files come from many sources that spell departments differently ("Noroloji",
"Fiziksel Tıp ve Rehabilitasyon", "KBB"). Every spelling resolves to one stable id; a label
that resolves to nothing is reported to the caller, never silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from medai.core.errors import MedaiError
from medai.core.text import match_form


@dataclass(frozen=True)
class Department:
    id: str
    name_tr: str
    name_en: str
    aliases: tuple[str, ...] = field(default=())

    def name(self, lang: str = "tr") -> str:
        return self.name_en if lang == "en" else self.name_tr


DEPARTMENTS: tuple[Department, ...] = (
    Department(
        "dermatology",
        "Dermatoloji",
        "Dermatology",
        ("Cildiye", "Deri ve Zührevi Hastalıkları", "Deri Hastalıkları", "Derma"),
    ),
    Department(
        "psychiatry", "Psikiyatri", "Psychiatry", ("Ruh Sağlığı ve Hastalıkları", "Psikiyatrist")
    ),
    Department(
        "orthopedics",
        "Ortopedi",
        "Orthopaedics",
        ("Ortopedi ve Travmatoloji", "Ortopedi ve Travmatoloji Cerrahisi", "Orthopedics"),
    ),
    Department(
        "pediatrics",
        "Pediatri",
        "Paediatrics",
        ("Çocuk Sağlığı ve Hastalıkları", "Çocuk Hastalıkları", "Pediatrics"),
    ),
    Department(
        "obstetrics_gynecology",
        "Kadın Hastalıkları ve Doğum",
        "Obstetrics and Gynaecology",
        (
            "Kadın Doğum",
            "Kadın Hastalıkları",
            "Jinekoloji",
            "Kadın-Doğum",
            "Obstetrics",
            "Gynecology",
            "Obstetrics and Gynecology",
            "OB/GYN",
        ),
    ),
    Department("general_surgery", "Genel Cerrahi", "General Surgery", ()),
    Department(
        "neurosurgery",
        "Beyin ve Sinir Cerrahisi",
        "Neurosurgery",
        ("Beyin Cerrahisi", "Nöroşirürji", "Beyin ve Sinir Cerrahi"),
    ),
    Department("ophthalmology", "Göz Hastalıkları", "Ophthalmology", ("Göz", "Göz Doktoru")),
    Department("urology", "Üroloji", "Urology", ()),
    Department("neurology", "Nöroloji", "Neurology", ()),
    Department("cardiology", "Kardiyoloji", "Cardiology", ("Kalp", "Kalp Hastalıkları")),
    Department(
        "internal_medicine",
        "Dahiliye",
        "Internal Medicine",
        ("İç Hastalıkları", "Dahiliye (İç Hastalıkları)", "İç Hastalıkları (Dahiliye)"),
    ),
    Department(
        "ent",
        "Kulak Burun Boğaz",
        "Ear, Nose and Throat",
        (
            "KBB",
            "Kulak Burun Boğaz Hastalıkları",
            "Kulak-Burun-Boğaz",
            "ENT",
            "Otorhinolaryngology",
            "Otolaryngology",
        ),
    ),
    Department(
        "pulmonology",
        "Göğüs Hastalıkları",
        "Pulmonology",
        ("Göğüs", "Göğüs Hastalıkları ve Tüberküloz", "Pulmonary Medicine"),
    ),
    Department(
        "physical_medicine_rehabilitation",
        "Fizik Tedavi ve Rehabilitasyon",
        "Physical Medicine and Rehabilitation",
        (
            "Fiziksel Tıp ve Rehabilitasyon",
            "Fizik Tedavi",
            "FTR",
            "FTR Uzmanı",
            "Physical Therapy",
            "PM&R",
        ),
    ),
)

BY_ID: dict[str, Department] = {d.id: d for d in DEPARTMENTS}


def _key(label: str) -> str:
    return re.sub(r"[^a-z0-9&/]+", " ", match_form(label)).strip()


_ALIASES: dict[str, str] = {}
for _d in DEPARTMENTS:
    for _name in (_d.id, _d.id.replace("_", " "), _d.name_tr, _d.name_en, *_d.aliases):
        _ALIASES[_key(_name)] = _d.id


class UnknownLabelError(MedaiError, KeyError):
    """A label that names none of the 15 departments."""

    code = "invalid"


def resolve(label: str) -> str | None:
    """Department id for any known spelling, or None when the label is unknown."""
    if not isinstance(label, str) or not label.strip():
        return None
    return _ALIASES.get(_key(label))


def resolve_strict(label: str) -> str:
    dep = resolve(label)
    if dep is None:
        raise UnknownLabelError(f"unknown department label {label!r}")
    return dep


def get(dep_id: str) -> Department:
    try:
        return BY_ID[dep_id]
    except KeyError:
        raise UnknownLabelError(f"unknown department id {dep_id!r}") from None


def display_names(ids: Iterable[str], lang: str = "tr") -> list[str]:
    return [get(i).name(lang) if i in BY_ID else i for i in ids]
