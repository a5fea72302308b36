"""The web UI's one translation catalogue (``web.i18n``): every name the UI shows, from the
registries and the platform's own words, exists in Turkish and English; registry names read
like a findings table. No browser: the pages themselves are in tests/browser."""

from __future__ import annotations

import re

import pytest

from helpers.paths import SRC

# --- names: every registry name and platform word in both languages (no browser)


def _audit_outcomes() -> set[str]:
    """Every outcome the code records (``outcome="…"``), besides the default ``ok``."""
    found = {"ok"}
    for path in SRC.rglob("*.py"):
        found |= set(re.findall(r'outcome="([a-z_]+)"', path.read_text(encoding="utf-8")))
    return found


def test_every_name_the_ui_shows_exists_in_turkish_and_english():
    from medai.imaging.io import REFUSAL_CODES
    from medai.platform.access.audit import ACTIONS
    from medai.platform.access.roles import PERMISSIONS
    from medai.platform.web.i18n import missing_keys, missing_names
    from medai.platform.worklist.study_state import STATUSES

    roles = set().union(*PERMISSIONS.values())
    assert missing_keys() == {}
    assert (
        missing_names(
            {
                "role_": roles,
                "status_": STATUSES,
                "audit_": ACTIONS,
                "outcome_": _audit_outcomes(),
                "reason_": (*REFUSAL_CODES, "failed", "unknown"),
            }
        )
        == []
    )


def test_missing_names_names_what_lacks_a_language():
    from medai.platform.web.i18n import missing_names

    gaps = missing_names({"role_": ["surgeon"], "status_": ["final"]})
    assert gaps == ["tr: role_surgeon", "en: role_surgeon"]


def test_display_names_read_like_a_findings_table():
    from medai.platform.web.i18n import display_names

    tr, en = display_names("tr"), display_names("en")
    assert tr["cxr"]["name"] == "Akciğer grafisi" and en["cxr"]["name"] == "Chest X-ray"
    assert {
        tr["cxr"]["labels"][k]
        for k in ("COVID-19", "Viral_Pneumonia", "Bacterial_Pneumonia", "Pneumonia", "No Finding")
    } == {"COVID-19", "Viral pnömoni", "Bakteriyel pnömoni", "Pnömoni", "Bulgu yok"}
    assert [tr["mri"]["labels"][k] for k in ("Glioma", "Meningioma", "Pituitary", "No_Tumor")] == [
        "Gliom",
        "Menenjiom",
        "Hipofiz tümörü",
        "Tümör yok",
    ]
    assert en["mri"]["labels"]["No_Tumor"] == "No tumour"
    assert tr["triage"]["labels"]["ent"] == "Kulak Burun Boğaz"
    assert tr["cxr"]["modalities"] == "CR/DX/DR/RG"
    # the upload form and re-analysis offer the tasks whose kind reads images, by the kind
    assert tr["cxr"]["reads_images"] and tr["mri"]["reads_images"]
    assert not tr["triage"]["reads_images"]


def test_a_label_name_for_a_label_the_task_lacks_is_refused():
    from medai.core.task_registry import Task, TaskError

    with pytest.raises(TaskError, match="Unicorn"):
        Task(
            name="t",
            kind="triage",
            loader=print,
            labels=("a",),
            label_names={"Unicorn": ("Unicorn", "Tekboynuz")},
        ).validate()
