"""What medai keeps on disk is private to its account: the SQLite database and its -wal/-shm,
blobs and the key are 0600, every folder of MEDAI_HOME 0700 (issue 24: the database was 0644
while blobs and the key were 0600). Files an older version left looser are tightened at start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from helpers.platform import bearer, clinic, png_bytes, use_home, wait_status


def _modes(home: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(home.stat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(home):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(home))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def _loose(modes: dict[str, int], home: Path) -> dict[str, str]:
    return {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o700 if (home / name).is_dir() else 0o600)
    }


def test_a_fresh_platform_makes_every_file_0600_in_a_0700_home(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    home = tmp_path / "home"
    old = os.umask(0o022)  # the usual umask: SQLite alone would make the database 0644
    try:
        with clinic("sqlite", home, tfidf_model_dir, tiny_imaging_dir) as (_app, client):
            rad = bearer(client, "rad1")
            r = client.post(
                "/api/v1/studies",
                headers=rad,
                data={"task": "cxr"},
                files={"file": ("x.png", png_bytes(3), "image/png")},
            )
            assert r.status_code == 201, r.text
            wait_status(client, rad, r.json()["id"], {"ai_drafted", "refused", "failed"})
            modes = _modes(home)  # while the server runs: -wal and -shm exist
    finally:
        os.umask(old)
    for name in ("medai.db", "medai.db-wal", "medai.db-shm", "secret.key", "blobs"):
        assert name in modes, sorted(modes)
    assert sum(1 for n in modes if n.startswith("blobs/") and len(Path(n).name) == 64) >= 2
    assert _loose(modes, home) == {}


def test_files_an_older_version_left_loose_are_tightened_at_start(tmp_path):
    from medai.platform.boot import open_platform
    from medai.platform.records.crypto import cipher

    home = tmp_path / "home"
    use_home(home)
    open_platform().db.dispose()
    cipher.cache_clear()
    blob = home / "blobs" / "ab" / "cd" / ("abcd" + "0" * 60)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"x")
    for path in (home, home / "blobs", home / "blobs" / "ab", blob.parent):
        path.chmod(0o755)
    for path in (blob, home / "medai.db", home / "secret.key"):
        path.chmod(0o644)
    assert _loose(_modes(home), home)  # the layout is loose before the start

    open_platform().db.dispose()
    assert _loose(_modes(home), home) == {}


def test_a_shared_folder_is_never_made_private(tmp_path):
    from medai.platform.records.blobs import private_dir

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    inner = private_dir(shared / "medai")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE(inner.stat().st_mode) == 0o700
