"""The settings documentation cannot drift from the settings (issue 49): every field has a
description and exactly one group, and docs/settings.md is the text generated from the fields
(`make settings-doc` rewrites it). The groups are typed models (issue 61): ``Settings.dicom``,
``Settings.outbox``, … each read from the same flat ``MEDAI_<FIELD>`` variables as before."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from helpers.paths import ROOT, TESTS
from medai.settings import (
    FIELD_GROUPS,
    GROUP_MODELS,
    GROUPS,
    DicomSettings,
    Settings,
    SettingsGroup,
    get_settings,
)
from medai.settings_doc import settings_markdown

DOC = ROOT / "docs" / "settings.md"
VARIABLES = TESTS / "fixtures" / "settings_variables.txt"


def _fields():
    return [(n, f) for model in GROUP_MODELS.values() for n, f in model.model_fields.items()]


def test_every_setting_has_a_description() -> None:
    undocumented = [name for name, field in _fields() if not (field.description or "").strip()]
    assert undocumented == [], f"settings without a description: {undocumented}"


def test_every_group_is_a_nested_model_and_every_setting_is_in_exactly_one() -> None:
    assert list(Settings.model_fields) == list(GROUPS) == list(GROUP_MODELS)
    for name, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, SettingsGroup), name
        assert issubclass(model, BaseModel) and model.model_fields, name
        assert field.title and model.__doc__, name  # the documentation's heading and purpose
        assert isinstance(getattr(Settings(), name), model)
    listed = [name for name, _ in _fields()]
    assert len(listed) == len(set(listed)) == len(FIELD_GROUPS)  # none in two groups
    assert FIELD_GROUPS["session_hours"] == "auth" and FIELD_GROUPS["dicom_send_to"] == "outbox"
    assert not hasattr(Settings(), "dicom_port")  # read through its group only


def test_the_variable_names_are_the_ones_documented_before_the_groups() -> None:
    """A group is how code is handed its settings, never part of a name an operator types:
    the settings read exactly the variables docs/settings.md listed before (the fixture)."""
    before = [
        line.strip()
        for line in VARIABLES.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    now = [f"MEDAI_{name.upper()}" for name, _ in _fields()]
    assert sorted(now) == sorted(before)
    documented = re.findall(r"^\| `(MEDAI_[A-Z0-9_]+)`", settings_markdown(), re.MULTILINE)
    assert sorted(documented) == sorted(before)


def test_a_flat_variable_lands_in_its_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDAI_DICOM_PORT", "11113")
    monkeypatch.setenv("MEDAI_OUTBOX_RETRY_S", "7.5")
    monkeypatch.setenv("MEDAI_MODELS", "triage=/models/t")  # a field named like its group
    s = Settings()
    assert s.dicom.dicom_port == 11113 and s.outbox.outbox_retry_s == 7.5
    assert s.models.models == {"triage": Path("/models/t")}
    assert DicomSettings().dicom_port == 11113  # a group reads its own variables too
    monkeypatch.setenv("MEDAI_DICOM_PORT", "0")
    with pytest.raises(ValueError, match="dicom_port"):
        Settings()


def test_a_flat_keyword_lands_in_its_group_beside_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Settings(dicom_port=…)`` says what ``MEDAI_DICOM_PORT`` says; the rest of that group
    still comes from the environment."""
    monkeypatch.setenv("MEDAI_DICOM_HOST", "10.1.2.3")
    monkeypatch.setenv("MEDAI_DICOM_PORT", "11113")
    s = Settings(dicom_port=104, session_hours=3)
    assert (s.dicom.dicom_port, s.dicom.dicom_host, s.auth.session_hours) == (104, "10.1.2.3", 3.0)
    given = Settings(dicom={"dicom_ae_title": "NODE"}, dicom_port=105)
    assert (given.dicom.dicom_ae_title, given.dicom.dicom_port) == ("NODE", 105)
    assert given.dicom.dicom_host == "10.1.2.3"
    whole = DicomSettings(dicom_port=106)
    assert Settings(dicom=whole).dicom is whole
    with pytest.raises(ValueError, match="given whole"):
        Settings(dicom=whole, dicom_port=107)


def test_the_documentation_is_generated_from_the_fields() -> None:
    text = settings_markdown()
    for name in FIELD_GROUPS:
        assert f"`MEDAI_{name.upper()}`" in text
    assert DOC.read_text(encoding="utf-8") == text, (
        "docs/settings.md differs from the settings: run `make settings-doc`"
    )


def test_the_home_folder_is_not_written_into_the_documentation() -> None:
    assert str(Path.home()) not in settings_markdown() or str(Path.home()) == "/"


def test_a_group_holds_its_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDAI_SESSION_HOURS", "3")
    get_settings.cache_clear()
    try:
        auth = get_settings().auth
        assert auth.session_hours == 3.0 and auth.password_hash == Settings().auth.password_hash
        assert not hasattr(auth, "kiosk_enabled")
    finally:
        get_settings.cache_clear()


def test_the_command_prints_the_documentation() -> None:
    from typer.testing import CliRunner

    from medai.cli import app

    out = CliRunner().invoke(app, ["settings", "--markdown"])
    assert out.exit_code == 0 and out.stdout == settings_markdown()
    listed = CliRunner().invoke(app, ["settings", "--json"])
    assert listed.exit_code == 0 and "MEDAI_OUTBOX_POLL_S" in listed.stdout
