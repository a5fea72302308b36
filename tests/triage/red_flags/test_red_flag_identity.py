"""The red-flag engine is one sealed, versioned model (issue 27): a folder holding every file
that can change whether a text fires (rules, the reader's word lists, exemplar embeddings, the
classifier and what it was sealed for), with a card whose content hash a result names. Editing
any file of a sealed folder stops it loading until it is resealed, and resealing gives another
hash; the Python that reads texts and the settings count too (the result then says the engine
did not run as sealed); a hospital's own folder is sealed into its own engine; the same files
give the same hash wherever they live and in another process."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHEST = "Göğsümde baskı var, sol koluma vuruyor, soğuk soğuk terliyorum"


@pytest.fixture(scope="module")
def engine_copy(tmp_path_factory) -> Path:
    from medai.triage.red_flags.schema import DATA_DIR

    folder = tmp_path_factory.mktemp("engine") / "red-flags"
    shutil.copytree(DATA_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_the_bundled_engine_is_sealed_and_registered_as_a_task():
    from medai.core import model_dir
    from medai.triage.red_flags.engine import build_engine
    from medai.triage.red_flags.schema import DATA_DIR

    card = model_dir.read_card(DATA_DIR)
    assert card.task == "red_flags" and card.model_type == "red_flag_engine"
    engine = build_engine(embeddings=True)
    # after any edit of the package's Python or data: `make seal-red-flags`
    assert engine.identity["sealed"], "the bundled engine is not sealed for this code"
    assert engine.identity["content_hash"] == card.content_hash
    assert engine.identity["rules_version"] == card.content_hash[7:19]
    served = model_dir.load(DATA_DIR)
    assert served.identity == engine.identity and served.check(CHEST).flags
    classifier = model_dir.load(DATA_DIR / "classifier")
    assert classifier.threshold == card.thresholds["urgent"]  # the threshold is the card's
    assert model_dir.read_card(DATA_DIR / "classifier").task == "red_flag_classifier"


def test_each_file_of_a_sealed_engine_is_covered_and_an_edit_stops_it_loading(engine_copy):
    from medai.core.model_dir import ModelLoadError
    from medai.triage.red_flags.engine import build_engine

    bundled = build_engine(embeddings=False)
    copy = build_engine(engine_copy, embeddings=False)
    assert copy.identity["content_hash"] == bundled.identity["content_hash"]  # location-free
    files = sorted(
        p
        for p in engine_copy.rglob("*")
        if p.is_file() and p.relative_to(engine_copy).as_posix() != "model_card.json"
    )
    names = {p.relative_to(engine_copy).as_posix() for p in files}
    assert {
        "concepts.yaml",
        "flags.yaml",
        "exemplars.yaml",
        "reader.yaml",
        "config.json",
        "exemplars.e5.npz",
        "classifier/model.safetensors",
        "classifier/config.json",
        "classifier/model_card.json",
        "classifier/vocabulary.json",
    } <= names
    for path in files:
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        with pytest.raises(ModelLoadError, match=r"differ.*medai triage seal-red-flags"):
            build_engine(engine_copy, embeddings=False)
        path.write_bytes(original)
    assert build_engine(engine_copy, embeddings=False).identity == copy.identity


def test_resealing_an_edited_folder_gives_another_engine_that_serves(engine_copy, tmp_path):
    from medai.core.model_dir import read_card
    from medai.triage.red_flags.engine import build_engine
    from medai.triage.red_flags.identity import seal

    own = tmp_path / "own"
    shutil.copytree(engine_copy, own)
    before = build_engine(own).identity
    with (own / "flags.yaml").open("a", encoding="utf-8") as fh:
        fh.write("\n# hospital edit: reviewed 2026-11-24\n")
    card = seal(own, version="h1")
    after = build_engine(own).identity
    assert (
        after["sealed"]
        and after["content_hash"] == card["content_hash"] == read_card(own).content_hash
    )
    assert after["content_hash"] != before["content_hash"] and after["version"] == "h1"
    report = build_engine(own).check(CHEST)
    assert report.flags and report.engine == after
    assert report.rules_version == after["rules_version"]


@pytest.mark.slow  # builds the engine once per code file (~18 s)
def test_code_and_settings_count_a_changed_one_is_not_the_sealed_engine(
    engine_copy, tmp_path, monkeypatch
):
    from medai.triage.red_flags import identity
    from medai.triage.red_flags.engine import build_engine

    sealed = build_engine(engine_copy).identity
    assert sealed["sealed"]
    names = {p.name for p in identity.code_files()}
    assert {
        "reading.py",
        "timing.py",
        "rules.py",
        "tokens.py",
        "words.py",
        "engine.py",
        "classifier.py",
        "exemplars.py",
        "schema.py",
        "language.py",
        "text.py",
    } <= names
    copies = []
    for path in identity.code_files():  # edit a private copy of each module in turn
        copy = tmp_path / f"{path.parent.name}__{path.name}"
        shutil.copyfile(path, copy)
        copies.append(copy)
    monkeypatch.setattr(identity, "code_files", lambda: copies)
    seen = set()
    for copy in copies:
        original = copy.read_bytes()
        copy.write_bytes(original + b"\n# edited\n")
        identity.code_hash.cache_clear()
        running = build_engine(engine_copy).identity
        assert not running["sealed"] and running["content_hash"] != sealed["content_hash"]
        seen.add(running["content_hash"])
        copy.write_bytes(original)
    assert len(seen) == len(copies)  # each module edit gives its own hash
    identity.code_hash.cache_clear()
    monkeypatch.undo()
    identity.code_hash.cache_clear()
    for kwargs in ({"embeddings": False}, {"classifier": False}, {"matcher": "exact"}):
        other = build_engine(engine_copy, **kwargs).identity
        assert not other["sealed"] and other["content_hash"] != sealed["content_hash"], kwargs


def test_an_unsealed_folder_is_refused_where_it_would_serve_and_sealing_makes_it_whole(
    tmp_path, monkeypatch
):
    from medai.services.triage import served_flag_engine
    from medai.settings import get_settings
    from medai.triage.red_flags import engine as engine_module
    from medai.triage.red_flags.identity import EngineSealError, seal
    from medai.triage.red_flags.schema import DATA_DIR

    own = tmp_path / "rules"
    own.mkdir()
    for name in ("concepts.yaml", "flags.yaml", "exemplars.yaml"):
        shutil.copyfile(DATA_DIR / name, own / name)
    monkeypatch.setenv("MEDAI_RED_FLAG_RULES", str(own))
    get_settings.cache_clear()
    monkeypatch.setattr(engine_module, "_DEFAULT", {})
    try:
        with pytest.raises(EngineSealError, match="seal-red-flags"):
            served_flag_engine()
        seal(own)
        assert (own / "reader.yaml").is_file() and (own / "classifier").is_dir()
        served = served_flag_engine()
        assert served.identity["sealed"]
        # the same files as the bundled engine: the same engine
        assert (
            served.identity["content_hash"] == engine_module.build_engine().identity["content_hash"]
        )
    finally:
        get_settings.cache_clear()


def test_the_served_triage_is_not_ready_without_its_red_flag_engine(
    tmp_path, monkeypatch, tfidf_model_dir
):
    from medai.core import model_dir
    from medai.services.triage import red_flag_options
    from medai.settings import get_settings
    from medai.triage.red_flags import engine as engine_module

    broken = tmp_path / "rules"
    broken.mkdir()  # no files at all
    monkeypatch.setenv("MEDAI_RED_FLAG_RULES", str(broken))
    get_settings.cache_clear()
    monkeypatch.setattr(engine_module, "_DEFAULT", {})
    try:
        with pytest.raises(model_dir.ModelLoadError, match="red-flag engine"):
            model_dir.load(tfidf_model_dir, flag_options=red_flag_options())
    finally:
        get_settings.cache_clear()


@pytest.mark.slow
def test_the_served_result_names_the_engine_and_another_process_agrees(tfidf_model_dir):
    import json

    from medai.core import model_dir
    from medai.services.triage import triage
    from medai.triage.red_flags.engine import default_engine

    result = triage(model_dir.load(tfidf_model_dir), "Nefes alamıyorum, dudaklarım morardı")
    engine = result.to_dict()["red_flag_engine"]
    assert engine["content_hash"] == default_engine().identity["content_hash"]
    assert engine["name"] == "red-flag-engine" and engine["version"] and engine["sealed"]
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import json; from medai.triage.red_flags.engine import default_engine; "
                "print(json.dumps(default_engine().identity))"
            ),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1])["content_hash"] == engine["content_hash"]


def test_what_a_hospital_gets_wrong_is_named(tmp_path, monkeypatch, engine_copy):
    """From a new user's trial: a missing folder, an empty variable, and `medai models reseal`
    on an engine (which seals it properly: validated, exemplars embedded)."""
    from typer.testing import CliRunner

    from medai.cli import app
    from medai.settings import get_settings
    from medai.triage.red_flags import engine as engine_module
    from medai.triage.red_flags.identity import EngineSealError

    with pytest.raises(EngineSealError, match="no such folder"):
        engine_module.build_engine(tmp_path / "nope", embeddings=False)
    monkeypatch.setenv("MEDAI_RED_FLAG_RULES", "")
    get_settings.cache_clear()
    try:
        assert get_settings().models.red_flag_rules is None  # empty: the bundled engine
    finally:
        get_settings.cache_clear()
    own = tmp_path / "own"
    shutil.copytree(engine_copy, own)
    with (own / "flags.yaml").open("a", encoding="utf-8") as fh:
        fh.write("  - id: broken\n")
    out = CliRunner().invoke(app, ["models", "reseal", str(own), "--json"])
    assert out.exit_code != 0 and "flags.yaml" in out.output
    shutil.copyfile(engine_copy / "flags.yaml", own / "flags.yaml")
    out = CliRunner().invoke(app, ["models", "reseal", str(own), "--json"])
    assert out.exit_code == 0, out.output
    assert engine_module.build_engine(own, embeddings=False).identity["version"]
