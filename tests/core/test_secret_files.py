"""Secrets from files (``MEDAI_<NAME>_FILE``): a mounted secret (Kubernetes, podman, a systemd
credential) gives the keys, the database and broker URLs and the LLM API keys without putting
them in an environment variable or the image. A missing or unreadable file, an empty one, a
line that is not a key, or a value given both ways is refused at start, naming the variable and
the file and never the secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from medai.settings import FIELD_GROUPS, SECRET_FILES, Settings

pytestmark = [pytest.mark.broker]


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("MEDAI_") and name[6:].lower().removesuffix("_file") in SECRET_FILES:
            monkeypatch.delenv(name)
    return monkeypatch


def _file(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    path.chmod(0o600)
    return path


def test_each_secret_reads_from_its_file(tmp_path, clean_env):
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    values = {
        "database_url": "postgresql+psycopg://medai:s3cret@db/medai",
        "broker_url": "redis://:s3cret@redis:6379/0",
        "llm_api_key": "sk-test-1",
        "gemini_api_key": "g-test-2",
    }
    for name, value in values.items():
        clean_env.setenv(
            f"MEDAI_{name.upper()}_FILE", str(_file(tmp_path, name, value + "\n"))
        )  # a final newline, as editors
    clean_env.setenv(
        "MEDAI_SECRET_KEYS_FILE",
        str(_file(tmp_path, "keys", f"# rotated 2026-11-26: newest first\n{new}\n\n  {old}  \n")),
    )
    settings = Settings()
    assert {name: getattr(getattr(settings, FIELD_GROUPS[name]), name) for name in values} == values
    assert settings.storage.secret_keys == [new, old]


def test_the_key_file_is_the_key_list_the_platform_uses(tmp_path, clean_env):
    from medai.platform.records.crypto import cipher
    from medai.settings import get_settings

    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_with_old = Fernet(old.encode()).encrypt(b"eski anahtar")
    clean_env.setenv("MEDAI_SECRET_KEYS_FILE", str(_file(tmp_path, "keys", f"{new}\n{old}\n")))
    get_settings.cache_clear()
    cipher.cache_clear()
    try:
        assert cipher().decrypt(sealed_with_old) == "eski anahtar"  # every key decrypts
        token = cipher().encrypt("yeni")
        assert Fernet(new.encode()).decrypt(token) == b"yeni"  # the first one encrypts
    finally:
        clean_env.delenv("MEDAI_SECRET_KEYS_FILE")
        get_settings.cache_clear()
        cipher.cache_clear()


@pytest.mark.parametrize("name", SECRET_FILES)
def test_a_value_given_both_ways_is_refused(tmp_path, clean_env, name):
    value = (
        json.dumps([Fernet.generate_key().decode()])
        if name == "secret_keys"
        else "top-secret-value"
    )
    clean_env.setenv(f"MEDAI_{name.upper()}", value)
    clean_env.setenv(f"MEDAI_{name.upper()}_FILE", str(_file(tmp_path, "f", "other\n")))
    with pytest.raises(ValidationError) as refused:
        Settings()
    message = str(refused.value)
    assert f"both MEDAI_{name.upper()} and MEDAI_{name.upper()}_FILE are set" in message
    assert value not in message and "top-secret" not in message


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot be read (No such file or directory)"),
        ("dir", "cannot be read (Is a directory)"),
        ("", "the file is empty"),
        ("\n  \n", "the file is empty"),
    ],
)
def test_a_file_that_gives_nothing_is_named(tmp_path, clean_env, content, reason):
    path = tmp_path / "url"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    clean_env.setenv("MEDAI_DATABASE_URL_FILE", str(path))
    with pytest.raises(ValidationError, match="MEDAI_DATABASE_URL_FILE") as refused:
        Settings()
    assert f"{path}: {reason}" in str(refused.value)


def test_a_key_file_names_the_line_that_is_not_a_key_never_the_line(tmp_path, clean_env):
    good = Fernet.generate_key().decode()
    clean_env.setenv(
        "MEDAI_SECRET_KEYS_FILE",
        str(_file(tmp_path, "keys", f"{good}\n# a comment\nhunter2-not-a-key\n")),
    )
    with pytest.raises(ValidationError) as refused:
        Settings()
    message = str(refused.value)
    assert "line 3 is not a key" in message
    assert "hunter2" not in message and good not in message
    clean_env.setenv("MEDAI_SECRET_KEYS_FILE", str(_file(tmp_path, "none", "# only\n\n")))
    with pytest.raises(ValidationError, match="no key in the file"):
        Settings()


def test_a_wrong_setting_never_prints_a_secret_beside_it(clean_env):
    """Any settings error (not only these): pydantic would print the input value."""
    clean_env.setenv("MEDAI_DATABASE_URL", "postgresql://medai:hunter2@db/medai")
    clean_env.setenv("MEDAI_TIMEZONE", "Nowhere/Else")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "hunter2" not in str(refused.value) and "Nowhere/Else" in str(refused.value)


def test_the_cli_runs_on_a_database_url_from_a_file(tmp_path):
    """`medai users add` and `users list` as a container runs them: the URL only in a file."""
    url_file = _file(tmp_path, "db-url", f"sqlite:///{tmp_path / 'site.db'}\n")
    env = {k: v for k, v in os.environ.items() if k != "MEDAI_DATABASE_URL"}
    env.update(MEDAI_HOME=str(tmp_path / "home"), MEDAI_DATABASE_URL_FILE=str(url_file))
    add = subprocess.run(
        [
            sys.executable,
            "-m",
            "medai.cli",
            "users",
            "add",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
            "--json",
        ],
        input="correct-horse-1\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert add.returncode == 0, add.stderr
    assert (tmp_path / "site.db").is_file() and not (tmp_path / "home" / "medai.db").exists()
    bad = subprocess.run(
        [sys.executable, "-m", "medai.cli", "users", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "MEDAI_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
    )
    assert (
        bad.returncode != 0 and "both MEDAI_DATABASE_URL and MEDAI_DATABASE_URL_FILE" in bad.stderr
    )
