"""How stored passwords are hashed (platform.access.passwords.HASH_PROFILES): the served default
is RFC 9106's argon2id, the suite runs on the cheapest profile (conftest) for speed, and a hash
made under one profile is upgraded to the configured one at its user's next login. The accounts
are handed the configured profile (``settings.auth.password_hash``) as ``hash_profile``: a
restart with another MEDAI_PASSWORD_HASH hands them another."""

from __future__ import annotations

import typing

import pytest
from argon2 import extract_parameters

from helpers.platform import PASSWORD, use_home


def test_the_default_profile_is_rfc9106_and_the_setting_lists_every_profile(monkeypatch):
    from medai.platform.access.passwords import DEFAULT_HASH_PROFILE, HASH_PROFILES, hasher
    from medai.settings import AuthSettings, Settings

    monkeypatch.delenv("MEDAI_PASSWORD_HASH", raising=False)
    assert Settings().auth.password_hash == DEFAULT_HASH_PROFILE == "rfc9106-low-memory"
    p = extract_parameters(hasher().hash(PASSWORD))
    assert (p.memory_cost, p.time_cost, p.parallelism, p.type.name) == (65536, 3, 4, "ID")
    options = typing.get_args(AuthSettings.model_fields["password_hash"].annotation)
    assert set(options) == set(HASH_PROFILES)  # one table: the setting offers exactly it


def test_a_wrong_profile_names_the_valid_ones(monkeypatch):
    from pydantic import ValidationError

    from medai.platform.access.passwords import hasher
    from medai.settings import Settings

    monkeypatch.setenv("MEDAI_PASSWORD_HASH", "md5")
    with pytest.raises(ValidationError, match="owasp-minimum"):
        Settings()
    with pytest.raises(ValueError, match="rfc9106-low-memory, owasp-minimum, insecure-fast"):
        hasher("md5")


@pytest.fixture
def db(tmp_path):
    from medai.platform.records.db import Database
    from medai.settings import get_settings

    use_home(tmp_path)
    database = Database(f"sqlite:///{tmp_path / 'm.db'}")
    database.upgrade()
    yield database
    get_settings.cache_clear()
    database.dispose()


def stored_hash(db) -> str:
    from medai.platform.records.tables import User

    with db.session() as s:
        return s.query(User).one().password_hash


def test_a_hash_is_upgraded_to_the_configured_profile_at_the_next_login(db):
    from medai.platform.access import accounts, credentials

    with db.session() as s:
        accounts.create_user(s, "dr.ayse", PASSWORD, "clinician", hash_profile="insecure-fast")
    old = stored_hash(db)
    assert extract_parameters(old).memory_cost == 8

    stronger = {"hash_profile": "owasp-minimum"}  # as after a restart with that profile
    with db.session() as s, pytest.raises(credentials.AuthFailed):
        credentials.authenticate(s, "dr.ayse", PASSWORD + "x", "10.0.0.1", 5, 900, **stronger)
    assert stored_hash(db) == old  # a wrong password changes nothing
    with db.session() as s:
        credentials.authenticate(s, "dr.ayse", PASSWORD, "10.0.0.1", 5, 900, **stronger)
    p = extract_parameters(stored_hash(db))
    assert (p.memory_cost, p.time_cost, p.parallelism) == (19 * 1024, 2, 1)
    with db.session() as s:  # and the upgraded hash still lets the user in
        assert credentials.authenticate(s, "dr.ayse", PASSWORD, "10.0.0.1", 5, 900, **stronger)


def test_the_accounts_use_the_default_profile_when_nothing_is_set(monkeypatch):
    from medai.platform.access import credentials
    from medai.settings import Settings

    monkeypatch.delenv("MEDAI_PASSWORD_HASH", raising=False)
    profile = Settings().auth.password_hash  # what the platform hands the accounts
    for made in (credentials._hasher(profile).hash(PASSWORD), credentials.dummy_hash(profile)):
        p = extract_parameters(made)
        assert (p.memory_cost, p.time_cost, p.parallelism) == (65536, 3, 4)


def test_the_test_profile_needs_a_second_explicit_yes(monkeypatch):
    from pydantic import ValidationError

    from medai.settings import Settings

    monkeypatch.setenv("MEDAI_PASSWORD_HASH", "insecure-fast")
    monkeypatch.delenv("MEDAI_PASSWORD_HASH_INSECURE_OK", raising=False)
    with pytest.raises(ValidationError, match="MEDAI_PASSWORD_HASH_INSECURE_OK"):
        Settings()
    monkeypatch.setenv("MEDAI_PASSWORD_HASH_INSECURE_OK", "true")
    assert Settings().auth.password_hash == "insecure-fast"


def test_a_cheaper_profile_never_weakens_a_stored_hash(db):
    from medai.platform.access import accounts, credentials

    with db.session() as s:
        accounts.create_user(s, "dr.ayse", PASSWORD, "clinician", hash_profile="owasp-minimum")
    strong = stored_hash(db)
    cheaper = {"hash_profile": "insecure-fast"}  # a stray variable
    with db.session() as s:
        assert credentials.authenticate(s, "dr.ayse", PASSWORD, "10.0.0.1", 5, 900, **cheaper)
    assert stored_hash(db) == strong
