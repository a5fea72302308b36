"""Shared fixtures: tiny Turkish complaint files built here, never the real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    MultiplexedDatabase,
    ReadOnlyDatabase,
)

from helpers.builders import make_imaging_model_dir, make_rows, write_csv
from helpers.paths import TESTS

pytest_plugins = ["helpers.platform"]

# one home per pytest-xdist worker (the suite runs in two processes, `make test`), a home
# given in the environment included
_HOME = os.environ.get("MEDAI_HOME", "/tmp/medai-test-home") + (
    f"-{os.environ['PYTEST_XDIST_WORKER']}" if os.environ.get("PYTEST_XDIST_WORKER") else ""
)
os.environ["MEDAI_HOME"] = _HOME
os.environ.setdefault("MEDAI_CACHE_DIR", f"{_HOME}/cache")
os.environ.setdefault("MEDAI_MODELS_DIR", f"{_HOME}/models")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MEDAI_TRUSTED_HOSTS", '["localhost", "127.0.0.1", "testserver"]')
# argon2 at its least cost: the suite logs in ~2,000 times, and the served profile costs ~0.2 s
# each on 2 cores; the default profile itself is tested (test_password_hash_profiles)
os.environ.setdefault("MEDAI_PASSWORD_HASH", "insecure-fast")
os.environ.setdefault("MEDAI_PASSWORD_HASH_INSECURE_OK", "true")
# the calling AE titles the suite's modalities use (dcmtk's storescu/echoscu and pynetdicom in
# tests/helpers/dicom.py and the node tests): a DICOM node admits none by default (an empty
# MEDAI_DICOM_ALLOW refuses every association), as a fresh install does. STRANGER and OTHER are
# the titles the tests expect to be refused: never list them here.
os.environ.setdefault("MEDAI_DICOM_ALLOW", '["MODALITY", "PACS", "CT", "US"]')
# a DICOM study is analysed MEDAI_STUDY_STABLE_S after its last instance (default 5 s): the
# suite's DICOM tests read their study at once; the window's own tests
# (tests/platform/reading/test_study_stable.py) set it and move a fake clock
os.environ.setdefault("MEDAI_STUDY_STABLE_S", "0")

# hypothesis replays every example it has found: the ones found on this machine
# (.hypothesis/, git-ignored) and the committed ones (tests/hypothesis-examples/, read only: a
# failing example found here is copied there with `make hypothesis-keep` to be replayed on
# every clean checkout, CI's included)
settings.register_profile(
    "medai",
    database=MultiplexedDatabase(
        DirectoryBasedExampleDatabase(TESTS.parent / ".hypothesis" / "examples"),
        ReadOnlyDatabase(DirectoryBasedExampleDatabase(TESTS / "hypothesis-examples")),
    ),
)
settings.load_profile("medai")


@pytest.fixture(scope="session")
def complaints_csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("data") / "complaints.csv", make_rows())


@pytest.fixture(scope="session")
def tfidf_model_dir(tmp_path_factory, complaints_csv) -> Path:
    from medai.triage.train import TrainOptions, train

    out = tmp_path_factory.mktemp("models") / "tiny-tfidf"
    train(TrainOptions(data=complaints_csv, out=out, model_type="tfidf", name="tiny-tfidf"))
    return out


@pytest.fixture(scope="session")
def tiny_imaging_dir(tmp_path_factory) -> Path:
    return make_imaging_model_dir(tmp_path_factory.mktemp("imaging") / "tiny-cxr")


@pytest.fixture(scope="session")
def tiny_mri_dir(tmp_path_factory) -> Path:
    """A tiny four-class brain MRI model (the mri task's labels)."""
    return make_imaging_model_dir(
        tmp_path_factory.mktemp("mri") / "tiny-mri",
        labels=("Glioma", "Meningioma", "Pituitary", "No_Tumor"),
        task="mri",
    )


@pytest.fixture(scope="module")
def rules_engine():
    """The bundled red-flag rules alone (no e5, no classifier): what a rule change is tested on.
    ``MEDAI_TEST_RED_FLAG_RULES`` names another rules folder (a candidate edit, before it is
    sealed into the bundle) to run the same cases against."""
    import os

    from medai.triage.red_flags import build_engine

    folder = os.environ.get("MEDAI_TEST_RED_FLAG_RULES")
    return build_engine(Path(folder) if folder else None, embeddings=False, classifier=False)


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright, one per browser-test module."""
    from helpers.platform import launched_browser

    with launched_browser() as b:
        yield b


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where a browser test's screenshots go: MEDAI_SCREENSHOTS, else its temporary folder."""
    out = Path(os.environ.get("MEDAI_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


# What each test needs beyond this process, as markers (``make test-fast`` deselects them):
# its folder (browser/, system/), the fixtures it uses, a database parameter, or the module's
# own ``pytestmark`` (server, dcmtk, broker) where a module starts them itself.
_FOLDER_MARKS = {"browser": "browser", "system": "system"}
_FIXTURE_MARKS = {"browser": "browser", "launched_browser": "browser", "orthanc": "orthanc"}


def pytest_collection_modifyitems(config, items):
    tests = Path(__file__).parent
    for item in items:
        parts = Path(str(item.path)).relative_to(tests).parts
        if parts and parts[0] in _FOLDER_MARKS:
            item.add_marker(_FOLDER_MARKS[parts[0]])
        for name in item.fixturenames:
            if name in _FIXTURE_MARKS:
                item.add_marker(_FIXTURE_MARKS[name])
        params = getattr(getattr(item, "callspec", None), "params", {})
        if any(v in ("postgres", "postgresql") for v in params.values() if isinstance(v, str)):
            item.add_marker("postgres")  # a database parameter, by either of its names
