"""The settings documentation cannot drift from the settings (issue 49): every field has a
description and exactly one group, and docs/settings.md is the text generated from the fields
(`make settings-doc` rewrites it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.paths import ROOT
from medai.settings import GROUPS, Settings, get_settings, group_fields, group_of
from medai.settings_doc import settings_markdown

DOC = ROOT / "docs" / "settings.md"


def test_every_setting_has_a_description() -> None:
    undocumented = [
        name
        for name, field in Settings.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert undocumented == [], f"settings without a description: {undocumented}"


def test_every_setting_is_in_exactly_one_group() -> None:
    groups = group_fields()  # raises naming a field in no group or in two
    listed = [name for names in groups.values() for name in names]
    assert sorted(listed) == sorted(Settings.model_fields)
    assert set(groups) == set(GROUPS) and all(groups.values())
    assert group_of("session_hours") == "auth" and group_of("dicom_send_to") == "outbox"


def test_the_documentation_is_generated_from_the_fields() -> None:
    text = settings_markdown()
    for name in Settings.model_fields:
        assert f"`MEDAI_{name.upper()}`" in text
    assert DOC.read_text(encoding="utf-8") == text, (
        "docs/settings.md differs from the settings: run `make settings-doc`"
    )


def test_the_home_folder_is_not_written_into_the_documentation() -> None:
    assert str(Path.home()) not in settings_markdown() or str(Path.home()) == "/"


def test_group_views_hold_the_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDAI_SESSION_HOURS", "3")
    get_settings.cache_clear()
    try:
        auth = get_settings().group("auth")
        assert auth.session_hours == 3.0 and auth.password_hash == get_settings().password_hash
        assert not hasattr(auth, "kiosk_enabled")
    finally:
        get_settings.cache_clear()
    with pytest.raises(KeyError, match="groups: storage"):
        Settings().group("nope")


def test_the_command_prints_the_documentation() -> None:
    from typer.testing import CliRunner

    from medai.cli import app

    out = CliRunner().invoke(app, ["settings", "--markdown"])
    assert out.exit_code == 0 and out.stdout == settings_markdown()
    listed = CliRunner().invoke(app, ["settings", "--json"])
    assert listed.exit_code == 0 and "MEDAI_OUTBOX_POLL_S" in listed.stdout
