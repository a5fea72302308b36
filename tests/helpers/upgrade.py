"""Shared by the tests of several files (moved from system/test_upgrade_from_previous_release.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers.paths import TESTS

FIXTURE = TESTS / "fixtures" / "previous_release"


BUILD = json.loads((FIXTURE / "build.json").read_text(encoding="utf-8"))


def _old_home(tmp: Path) -> Path:
    """A copy of the previous release's home: its database, stored files and key."""
    home = tmp / "old-home"
    home.mkdir()
    shutil.copyfile(FIXTURE / "medai.sqlite", home / "medai.db")
    shutil.copyfile(FIXTURE / "secret.key", home / "secret.key")
    shutil.copytree(FIXTURE / "blobs", home / "blobs")
    return home
