"""Authenticated backups: the tamper drill (issue 57, item 1).

A backup's ``manifest.json`` holds the sha256 of every file, so whoever can write the backup
folder could edit ``database.sqlite`` (a patient account given the radiologist role, a known
password hash), recompute its hash in the manifest and have ``medai restore`` load it. The
manifest is therefore authenticated: an HMAC-SHA256 over it under a key derived from the
site's newest key, which the backup does not hold. Every forged variant below is refused
before anything is staged or loaded, with a ``code`` that says why, and the target (home and
database) is left as it was: empty. A genuine backup restores; one of the previous release
(no MAC) is refused unless the operator types the override naming that backup.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from helpers.platform import png_bytes, use_home
from medai.platform.dicom.arrival import Arrival
from medai.platform.ops import backup_files, backup_manifest


def _settings(home: Path, keys: list[str], url: str | None = None):
    from medai.settings import Settings

    return Settings(
        home=home, database_url=url or f"sqlite:///{home / 'medai.db'}", secret_keys=keys
    )


def _make_site(home: Path, files: int = 2) -> str:
    """A SQLite site made through the platform: a radiologist, a patient and ``files`` studies
    with their stored files; its key (``home/secret.key``)."""
    from medai.platform.access import accounts
    from medai.platform.boot import open_platform
    from medai.platform.worklist import filing
    from medai.services.model_handles import ModelHandles

    home.mkdir(parents=True, exist_ok=True)
    use_home(home)
    p = open_platform(f"sqlite:///{home / 'medai.db'}", models=ModelHandles({}), adopt_models=False)
    with p.db.session() as db:
        rad = accounts.create_user(
            db, "rad", "correct-horse-1", "radiologist", hash_profile=p.settings.auth.password_hash
        )
        accounts.create_user(
            db, "pat", "battery-staple-2", "patient", hash_profile=p.settings.auth.password_hash
        )
        for n in range(files):
            sha = p.store.put_bytes(png_bytes(n + 1))
            filing.create(
                db,
                Arrival(
                    sha=sha,
                    size=10,
                    content_type="image/png",
                    task="cxr",
                    uploaded_by=rad.id,
                    question=f"q{n}",
                ),
            )
    p.db.dispose()
    return (home / "secret.key").read_text().strip()


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    """One site and one genuine backup of it (each test tampers with its own copy): the
    backup's folder and the site's key."""
    from medai.platform.ops import backup as bk

    before = os.environ.get("MEDAI_HOME")
    root = tmp_path_factory.mktemp("authenticated")
    try:
        key = _make_site(root / "site")
        bk.backup(root / "backup", _settings(root / "site", [key]))
    finally:
        if before is not None:
            use_home(Path(before))
    return root / "backup", key


def _copy_of(made: tuple[Path, str], dest: Path) -> tuple[Path, str]:
    """A module fixture's backup copied for one test to tamper with, and its key."""
    src, key = made
    shutil.copytree(src, dest)
    return dest, key


@pytest.fixture
def copy(genuine, tmp_path) -> tuple[Path, str]:
    return _copy_of(genuine, tmp_path / "backup")


def _load(dest: Path) -> dict:
    return json.loads((dest / "manifest.json").read_text())


def _save(dest: Path, manifest: dict) -> None:
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _rehash(dest: Path, *relatives: str) -> None:
    """What a forger does after editing a file: its sha256 and size recomputed in the
    manifest (the MAC left as it was: the forger does not have the key)."""
    manifest = _load(dest)
    for relative in relatives:
        data = (dest / relative).read_bytes()
        manifest["files"][relative] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
    _save(dest, manifest)


def _sql(dest: Path, statement: str) -> None:
    conn = sqlite3.connect(dest / "database.sqlite")
    try:
        conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def _attacker_sign(manifest: dict, key: str, key_id: str | None = None) -> None:
    """The MAC as an attacker with a key of their own would compute it (the canonical form
    and derivation are public: only the key is secret)."""
    from medai.platform.records.crypto import _derive

    body = {k: v for k, v in manifest.items() if k != "mac"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    value = hmac.new(
        _derive(key, b"medai backup manifest v1"), canonical, hashlib.sha256
    ).hexdigest()
    manifest["mac"] = {
        "alg": "HMAC-SHA256",
        "key_id": key_id or backup_manifest.key_id(key),
        "value": value,
    }


# --- the tamper drill: each forges the copy and says what the refusal must name ---


def _role_edited(dest: Path, key: str) -> str:
    _sql(dest, "UPDATE users SET role = 'radiologist' WHERE username = 'pat'")
    _rehash(dest, "database.sqlite")
    return "manifest_forged"


def _password_hash_swapped(dest: Path, key: str) -> str:
    _sql(
        dest,
        "UPDATE users SET password_hash = "
        "(SELECT password_hash FROM users WHERE username = 'pat') WHERE username = 'rad'",
    )
    _rehash(dest, "database.sqlite")
    return "manifest_forged"


def _mac_removed(dest: Path, key: str) -> str:
    """A backup of this release's schema whose MAC was removed (and the database edited):
    no release that writes this schema leaves a manifest without a MAC, so it is forged, and
    no override restores it."""
    _sql(dest, "UPDATE users SET role = 'radiologist' WHERE username = 'pat'")
    _rehash(dest, "database.sqlite")
    manifest = _load(dest)
    manifest.pop("mac")
    _save(dest, manifest)
    return "manifest_forged"


def _mac_removed_revision_lowered(dest: Path, key: str) -> str:
    """The same, the manifest claiming an older schema than its database holds: the override
    lets the manifest through, the loaded database's own revision then refuses it."""
    _mac_removed(dest, key)
    manifest = _load(dest)
    manifest["database"]["revision"] = "0016"
    _save(dest, manifest)
    return "restore_mismatch"


def _mac_emptied(dest: Path, key: str) -> str:
    manifest = _load(dest)
    manifest["mac"] = {}
    _save(dest, manifest)
    return "manifest_forged"


def _key_id_swapped(dest: Path, key: str) -> str:
    """The MAC's key id changed to the id of another key the restoring site has."""

    manifest = _load(dest)
    manifest["mac"]["key_id"] = backup_manifest.key_id(OTHER_KEY)
    _save(dest, manifest)
    return "manifest_forged"


def _needed_edited(dest: Path, key: str) -> str:
    manifest = _load(dest)
    manifest["keys"]["needed"] = []
    _save(dest, manifest)
    return "manifest_forged"


def _blob_added(dest: Path, key: str) -> str:
    first = next(p for p in (dest / "blobs").rglob("*") if p.is_file())
    sha = "0" * 64
    extra = dest / "blobs" / "00" / "00" / sha
    extra.parent.mkdir(parents=True)
    shutil.copyfile(first, extra)
    return "unlisted_files"


def _database_added(dest: Path, key: str) -> str:
    shutil.copyfile(dest / "database.sqlite", dest / "database.pgdump")
    return "unlisted_files"


def _config_added(dest: Path, key: str) -> str:
    (dest / "config" / "destinations.yaml").write_text("pacs: {url: http://attacker.example}\n")
    return "unlisted_files"


def _registry_added(dest: Path, key: str) -> str:
    (dest / "registry" / "abc").mkdir(parents=True)
    (dest / "registry" / "abc" / "model.onnx").write_bytes(b"not a model")
    return "unlisted_files"


def _blob_unlisted_and_removed(dest: Path, key: str) -> str:
    manifest = _load(dest)
    blob = next(p for p in manifest["files"] if p.startswith("blobs/"))
    manifest["files"].pop(blob)
    (dest / blob).unlink()
    _save(dest, manifest)
    return "manifest_forged"


def _config_unlisted_and_removed(dest: Path, key: str) -> str:
    manifest = _load(dest)
    manifest["files"].pop("config/settings.json")
    (dest / "config" / "settings.json").unlink()
    _save(dest, manifest)
    return "manifest_forged"


def _counts_edited(dest: Path, key: str) -> str:
    manifest = _load(dest)
    manifest["counts"]["users"] += 1
    _save(dest, manifest)
    return "manifest_forged"


def _created_at_edited(dest: Path, key: str) -> str:
    manifest = _load(dest)
    manifest["created_at"] = "2020-01-01T00:00:00Z"
    _save(dest, manifest)
    return "manifest_forged"


def _revision_edited(dest: Path, key: str) -> str:
    manifest = _load(dest)
    manifest["database"]["revision"] = "0001"
    _save(dest, manifest)
    return "manifest_forged"


def _blob_replaced(dest: Path, key: str) -> str:
    blobs = sorted(p for p in _load(dest)["files"] if p.startswith("blobs/"))
    shutil.copyfile(dest / blobs[0], dest / blobs[1])  # study 2's name, study 1's film
    _rehash(dest, blobs[1])
    return "manifest_forged"


def _resigned_by_attacker(dest: Path, key: str) -> str:
    """The database edited and the manifest re-signed under the attacker's own key: no key of
    the restoring site has that id."""
    _sql(dest, "UPDATE users SET role = 'radiologist' WHERE username = 'pat'")
    _rehash(dest, "database.sqlite")
    manifest = _load(dest)
    _attacker_sign(manifest, ATTACKER_KEY)
    _save(dest, manifest)
    return "keys_missing"


def _resigned_under_the_sites_key_id(dest: Path, key: str) -> str:
    """The same, the MAC claiming the site's own key id."""
    _sql(dest, "UPDATE users SET role = 'radiologist' WHERE username = 'pat'")
    _rehash(dest, "database.sqlite")
    manifest = _load(dest)
    _attacker_sign(manifest, ATTACKER_KEY, key_id=manifest["mac"]["key_id"])
    _save(dest, manifest)
    return "manifest_forged"


OTHER_KEY = Fernet.generate_key().decode()  # a second key the restoring site has
ATTACKER_KEY = Fernet.generate_key().decode()

FORGERIES: dict[str, Callable[[Path, str], str]] = {
    "database role edited, sha256 recomputed": _role_edited,
    "database password hash swapped, sha256 recomputed": _password_hash_swapped,
    "mac removed": _mac_removed,
    "mac removed, revision lowered (with the override)": _mac_removed_revision_lowered,
    "mac emptied": _mac_emptied,
    "mac key id swapped for another key's": _key_id_swapped,
    "keys.needed edited": _needed_edited,
    "a blob added": _blob_added,
    "a second database file added": _database_added,
    "a config file added": _config_added,
    "a registry file added": _registry_added,
    "a blob unlisted and removed": _blob_unlisted_and_removed,
    "a config file unlisted and removed": _config_unlisted_and_removed,
    "counts edited": _counts_edited,
    "created_at edited": _created_at_edited,
    "revision edited": _revision_edited,
    "a blob replaced by another, manifest recomputed": _blob_replaced,
    "re-signed under the attacker's key": _resigned_by_attacker,
    "re-signed by the attacker, claiming the site's key id": _resigned_under_the_sites_key_id,
}


def _assert_untouched(target: Path) -> None:
    """Nothing restored: no database file, no stored file, no restored settings."""
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == []


@pytest.mark.parametrize("name", list(FORGERIES))
def test_a_forged_backup_is_refused_and_leaves_the_target_empty(copy, tmp_path, name):
    from medai.platform.ops.restore import restore

    dest, key = copy
    code = FORGERIES[name](dest, key)
    target = tmp_path / "target"
    target.mkdir()
    override = _load(dest)["created_at"] if "mac" not in _load(dest) else None
    with pytest.raises(
        backup_files.BackupError
    ) as refused:  # the override typed where it could apply
        restore(dest, _settings(target, [key, OTHER_KEY]), accept_unauthenticated=override)
    assert refused.value.code == code, str(refused.value)
    message = str(refused.value)
    if code == "manifest_forged":
        assert ("altered" in message or "MAC was removed" in message) and (
            "nothing was restored" in message
        )
    elif code == "restore_mismatch":
        assert "schema revision" in message
    elif code == "keys_missing":
        assert backup_manifest.key_id(ATTACKER_KEY) in message
    elif code == "unlisted_files":
        assert "manifest does not list" in message and "nothing was restored" in message
    else:
        assert "--accept-unauthenticated-backup" in message
    _assert_untouched(target)


def test_a_backup_of_another_site_is_refused_naming_its_key_id(tmp_path):
    """A backup made by another site (its own key; nothing sealed in it, so no data key id
    would give it away) restored where only this site's key is configured: the manifest's key
    id is named, nothing restored."""
    from medai.platform.ops import backup as bk
    from medai.platform.ops.restore import restore

    before = os.environ.get("MEDAI_HOME")
    try:
        other = tmp_path / "other"
        other.mkdir()
        use_home(other)
        other_key = Fernet.generate_key().decode()
        from medai.platform.access import accounts
        from medai.platform.records.db import Database
        from medai.settings import get_settings

        database = Database(f"sqlite:///{other / 'medai.db'}")
        database.upgrade()
        with database.session() as db:
            profile = get_settings().auth.password_hash
            accounts.create_user(db, "rad", "known-password-9", "radiologist", hash_profile=profile)
        database.dispose()
        manifest = bk.backup(tmp_path / "b", _settings(other, [other_key]))
    finally:
        if before is not None:
            use_home(Path(before))
    assert manifest["keys"]["needed"] == []  # nothing sealed: only the MAC names a key
    target = tmp_path / "target"
    target.mkdir()
    own = Fernet.generate_key().decode()
    with pytest.raises(backup_files.BackupError) as refused:
        restore(tmp_path / "b", _settings(target, [own]))
    assert refused.value.code == "keys_missing"
    assert backup_manifest.key_id(other_key) in str(refused.value)
    assert backup_manifest.key_id(own) in str(refused.value)
    _assert_untouched(target)


def test_a_genuine_backup_is_authenticated_and_restores(copy, tmp_path):
    """The MAC names the site's newest key by id (never the key); the restoring site finds
    that key among its own, whatever its place in the list."""
    from medai.platform.ops.restore import restore

    dest, key = copy
    manifest = _load(dest)
    assert manifest["mac"]["alg"] == "HMAC-SHA256"
    assert (
        manifest["mac"]["key_id"]
        == backup_manifest.key_id(key)
        == manifest["keys"]["configured"][0]
    )
    assert key not in (dest / "manifest.json").read_text()
    target = tmp_path / "target"
    target.mkdir()
    out = restore(dest, _settings(target, [OTHER_KEY, key]))
    assert out["manifest"] == {"authenticated": True, "key_id": backup_manifest.key_id(key)}
    assert out["counts"]["users"] == 2 and out["checked"]["files_decrypted"] == 2
    conn = sqlite3.connect(target / "medai.db")
    try:
        roles = dict(conn.execute("SELECT username, role FROM users"))
    finally:
        conn.close()
    assert roles == {"rad": "radiologist", "pat": "patient"}
    assert (target / "restored-config" / "settings.json").is_file()


def test_a_backup_needs_a_key_to_authenticate_it(tmp_path):
    """A site with no key configured (none generated yet) is not backed up unauthenticated:
    refused before the folder is written."""
    from medai.platform.ops import backup as bk

    home = tmp_path / "home"
    home.mkdir()
    (home / "medai.db").touch()
    with pytest.raises(backup_files.BackupError) as refused:
        bk.backup(tmp_path / "b", _settings(home, []))
    assert refused.value.code == "keys_missing"
    assert not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def previous(tmp_path_factory):
    """A backup of the previous release's site (``tests/fixtures/previous_release``, schema
    0016) as that release wrote it: the same manifest, no MAC; and the site's key."""
    from helpers.upgrade import _old_home
    from medai.platform.ops import backup as bk

    before = os.environ.get("MEDAI_HOME")
    root = tmp_path_factory.mktemp("previous-release-backup")
    try:
        home = _old_home(root)
        key = (home / "secret.key").read_text().strip()
        bk.backup(root / "backup", _settings(home, [key]))
    finally:
        if before is not None:
            use_home(Path(before))
    manifest = _load(root / "backup")
    manifest.pop("mac")
    _save(root / "backup", manifest)
    return root / "backup", key


@pytest.fixture
def old(previous, tmp_path) -> tuple[Path, str]:
    return _copy_of(previous, tmp_path / "old-backup")


def _unauthenticated(dest: Path) -> str:
    """The created_at of a backup without a MAC: what the override must name."""
    manifest = _load(dest)
    assert "mac" not in manifest
    return manifest["created_at"]


def test_an_unauthenticated_backup_restores_only_with_the_typed_override(old, tmp_path):
    from medai.platform.ops.restore import restore

    dest, key = old
    created_at = _unauthenticated(dest)
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(backup_files.BackupError) as refused:
        restore(dest, _settings(target, [key]))
    assert refused.value.code == "manifest_unauthenticated"
    message = str(refused.value)  # the option named, never a command with the value to paste
    assert "--accept-unauthenticated-backup" in message and created_at not in message
    _assert_untouched(target)
    for wrong in ("yes", "2020-01-01T00:00:00Z", ""):  # the override names THIS backup
        with pytest.raises(backup_files.BackupError) as refused:
            restore(dest, _settings(target, [key]), accept_unauthenticated=wrong)
        assert refused.value.code == "manifest_unauthenticated"
        _assert_untouched(target)

    out = restore(dest, _settings(target, [key]), accept_unauthenticated=created_at)
    assert out["manifest"] == {"authenticated": False, "accepted_unauthenticated": created_at}
    assert out["revision"] == "0016" and out["counts"] == _load(dest)["counts"]
    assert out["checked"]["files_decrypted"] == out["checked"]["files_named"] > 0


def test_the_override_still_runs_every_other_check(copy, old, tmp_path):
    """With the override, an unlisted file, a damaged file and a forged MAC are refused as
    before: the override only accepts a manifest that has no MAC at all."""
    from medai.platform.ops.restore import restore

    dest, key = copy
    target = tmp_path / "target"
    target.mkdir()

    forged = tmp_path / "forged"
    shutil.copytree(dest, forged)
    _role_edited(forged, key)  # a MAC present and wrong: the override does not apply
    with pytest.raises(backup_files.BackupError) as refused:
        restore(
            forged, _settings(target, [key]), accept_unauthenticated=_load(forged)["created_at"]
        )
    assert refused.value.code == "manifest_forged"
    _assert_untouched(target)

    dest, key = old
    created_at = _unauthenticated(dest)
    _database_added(dest, key)
    with pytest.raises(backup_files.BackupError) as refused:
        restore(dest, _settings(target, [key]), accept_unauthenticated=created_at)
    assert refused.value.code == "unlisted_files"
    _assert_untouched(target)
    (dest / "database.pgdump").unlink()

    # the previous release's clinician made a radiologist, the hash not recomputed
    _sql(dest, "UPDATE users SET role = 'radiologist' WHERE username = 'clin'")
    with pytest.raises(backup_files.BackupError) as refused:
        restore(dest, _settings(target, [key]), accept_unauthenticated=created_at)
    assert refused.value.code == "backup_damaged"
    _assert_untouched(target)


def _medai(*args: str, home: Path, keys: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MEDAI_DATABASE_URL",)}
    env.pop("MEDAI_SECRET_KEYS_FILE", None)
    env.update(MEDAI_HOME=str(home), MEDAI_SECRET_KEYS=json.dumps(keys))
    return subprocess.run(
        [sys.executable, "-m", "medai.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_the_cli_refuses_a_forged_and_an_unauthenticated_backup(copy, old, tmp_path):
    """``medai restore`` as an operator runs it: exit 2 and the ``code`` in ``--json`` for a
    forged manifest and for one without a MAC; the typed override restores the latter."""
    dest, key = copy
    target = tmp_path / "target"
    target.mkdir()

    forged = tmp_path / "forged"
    shutil.copytree(dest, forged)
    _role_edited(forged, key)
    done = _medai("restore", str(forged), "--json", home=target, keys=[key])
    assert done.returncode == 2, done.stdout + done.stderr
    assert json.loads(done.stdout)["code"] == "manifest_forged"
    _assert_untouched(target)

    dest, key = old
    created_at = _unauthenticated(dest)
    done = _medai("restore", str(dest), "--json", home=target, keys=[key])
    assert done.returncode == 2, done.stdout + done.stderr
    assert json.loads(done.stdout)["code"] == "manifest_unauthenticated"
    _assert_untouched(target)
    done = _medai(
        "restore",
        str(dest),
        "--json",
        "--accept-unauthenticated-backup",
        created_at,
        home=target,
        keys=[key],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["manifest"]["authenticated"] is False
    assert out["counts"]["studies"] == _load(dest)["counts"]["studies"]


@pytest.mark.parametrize("body", ["[]", '"medai-backup/1"', "null", "1"])
def test_a_manifest_that_is_not_an_object_is_not_a_backup(copy, tmp_path, body):
    from medai.platform.ops.restore import restore

    dest, key = copy
    (dest / "manifest.json").write_text(body)
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(backup_files.BackupError) as refused:
        restore(dest, _settings(target, [key]))
    assert refused.value.code == "not_a_backup"
    _assert_untouched(target)


# --- a link or a special file in a backup (issue 67, item 9) ---


def _a_blob(dest: Path) -> str:
    return next(r for r in sorted(_load(dest)["files"]) if r.startswith("blobs/"))


def _blob_linked_outside(dest: Path, outside: Path) -> str:
    """A stored file replaced by a link to a copy of it kept outside the backup (the same
    bytes: the manifest's hash still matches)."""
    blob = _a_blob(dest)
    shutil.copyfile(dest / blob, outside / "copy")
    (dest / blob).unlink()
    (dest / blob).symlink_to(outside / "copy")
    return blob


def _manifest_linked_outside(dest: Path, outside: Path) -> str:
    shutil.copyfile(dest / "manifest.json", outside / "manifest.json")
    (dest / "manifest.json").unlink()
    (dest / "manifest.json").symlink_to(outside / "manifest.json")
    return "manifest.json"


def _folder_linked_outside(dest: Path, outside: Path) -> str:
    """A folder of stored files replaced by a link to a copy of it."""
    folder = Path(_a_blob(dest)).parent
    shutil.copytree(dest / folder, outside / "folder")
    shutil.rmtree(dest / folder)
    (dest / folder).symlink_to(outside / "folder", target_is_directory=True)
    return folder.as_posix()


LINKED = {
    "a stored file linked to a copy outside": _blob_linked_outside,
    "manifest.json linked to a copy outside": _manifest_linked_outside,
    "a folder of stored files linked to a copy outside": _folder_linked_outside,
}


@pytest.mark.parametrize("name", list(LINKED))
def test_a_link_in_a_backup_is_refused_naming_it(copy, tmp_path, name):
    """A backup restores what it holds, never what a link points at: the link is named and
    nothing is restored (before: the linked copy was read and restored as the backup's)."""
    from medai.platform.ops.restore import restore

    dest, key = copy
    outside = tmp_path / "outside"
    outside.mkdir()
    member = LINKED[name](dest, outside)
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(backup_files.BackupError) as refused:
        restore(dest, _settings(target, [key]))
    assert refused.value.code == "unsafe_file", str(refused.value)
    message = str(refused.value)
    assert member in message and "symbolic link" in message and "nothing was restored" in message
    _assert_untouched(target)


def _open_or_time_out(opener: Callable[[], object], seconds: float = 10.0):
    """``opener()`` on a thread: what it returned or raised, or a failure when it is still
    blocked after ``seconds`` (a FIFO's open waits for a writer for good)."""
    import threading

    out: dict = {}

    def run() -> None:
        try:
            out["value"] = opener()
        except BaseException as exc:  # handed to the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    return out


def test_a_member_that_became_a_link_or_a_fifo_after_the_check_is_not_read(copy, tmp_path):
    """What ``check_members`` saw may change before a file is opened: each file is opened
    without following a link in it or in a folder on its way, and without waiting on a FIFO."""

    dest, _key = copy
    blob = _a_blob(dest)
    with backup_files.open_member(dest, blob) as fh:  # a regular file opens
        assert fh.read(4)
    (dest / blob).unlink()
    os.mkfifo(dest / blob)
    got = _open_or_time_out(lambda: backup_files.open_member(dest, blob))
    assert got["error"].code == "unsafe_file" and "FIFO" in str(got["error"])
    (dest / blob).unlink()
    (dest / blob).symlink_to("/dev/zero")
    got = _open_or_time_out(lambda: backup_files.open_member(dest, blob))
    assert got["error"].code == "unsafe_file" and "/dev/zero" in str(got["error"])
    folder = Path(blob).parent
    shutil.move(dest / folder, tmp_path / "moved")
    (dest / folder).symlink_to(tmp_path / "moved", target_is_directory=True)
    got = _open_or_time_out(lambda: backup_files.open_member(dest, blob))
    assert got["error"].code == "unsafe_file" and folder.as_posix() in str(got["error"])


def _medai_bounded(*args: str, home: Path, keys: list[str]) -> subprocess.CompletedProcess:
    """``medai`` as ``_medai`` runs it, with the files it may write bounded (64 MB): a restore
    that copies an endless stream is killed by the bound instead of filling the disk; and a
    timeout, so one that blocks fails instead of hanging the suite."""
    import resource

    env = {k: v for k, v in os.environ.items() if k not in ("MEDAI_DATABASE_URL",)}
    env.pop("MEDAI_SECRET_KEYS_FILE", None)
    env.update(MEDAI_HOME=str(home), MEDAI_SECRET_KEYS=json.dumps(keys))

    def bound() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))

    return subprocess.run(
        [sys.executable, "-m", "medai.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        preexec_fn=bound,
    )


@pytest.mark.parametrize("special", ["a link to /dev/zero", "a FIFO"])
def test_the_cli_refuses_a_special_file_before_reading_it(copy, tmp_path, special):
    """The reported case: a stored file replaced by a link to ``/dev/zero`` (before: `medai
    restore` read it for ever at "verify 60 %"), and a FIFO (its open waited for ever). Exit 2,
    ``unsafe_file`` naming the member, nothing restored, in well under the timeout."""
    dest, key = copy
    blob = _a_blob(dest)
    (dest / blob).unlink()
    if special == "a FIFO":
        os.mkfifo(dest / blob)
    else:
        (dest / blob).symlink_to("/dev/zero")
    target = tmp_path / "target"
    target.mkdir()
    done = _medai_bounded("restore", str(dest), "--json", home=target, keys=[key])
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    out = json.loads(done.stdout)
    assert out["code"] == "unsafe_file" and blob in out["error"], out
    assert ("FIFO" if special == "a FIFO" else "/dev/zero") in out["error"]
    _assert_untouched(target)
