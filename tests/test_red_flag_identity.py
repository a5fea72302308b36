"""The red-flag engine is one versioned thing (issue 27): its content hash covers every file
that can change whether a text fires — rule files, the classifier's files, the Python that reads
texts — and its settings; a result names it. Editing any one of those files gives another hash
(each is edited here in turn); a hospital's own rules folder gives its own engine hash; the
same files give the same hash in another process."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


def test_every_file_that_can_change_a_flag_is_hashed_and_each_edit_changes_it(tmp_path):
    from medai.triage.red_flags import identity
    from medai.triage.red_flags.engine import classifier_dir
    from medai.triage.red_flags.schema import DATA_DIR

    files = identity.engine_files(DATA_DIR, classifier_dir())
    names = {n for n, _ in files}
    assert {f"rules/{n}" for n in identity.RULE_FILES} <= names
    assert {f"classifier/{n}" for n in identity.CLASSIFIER_FILES} <= names
    for module in ("reading.py", "timing.py", "rules.py", "tokens.py", "engine.py",
                   "classifier.py", "exemplars.py", "schema.py"):
        assert f"code/{module}" in names  # the word lists and regexes in Python
    copies = []
    for name, path in files:  # a private copy of every file, to edit one at a time
        copy = tmp_path / name.replace("/", "__")
        shutil.copyfile(path, copy)
        copies.append((name, copy))
    settings = {"matcher": "suffix"}
    base = identity.content_hash(copies, settings)
    assert identity.content_hash(list(reversed(copies)), settings) == base  # order-free
    for name, copy in copies:
        original = copy.read_bytes()
        copy.write_bytes(original + b"\n")
        assert identity.content_hash(copies, settings) != base, name
        copy.write_bytes(original)
    assert identity.content_hash(copies, settings) == base
    assert identity.content_hash(copies, {"matcher": "exact"}) != base


def test_a_hospitals_own_rules_build_their_own_engine_and_results_name_it(tmp_path):
    from medai.triage.red_flags.engine import build_engine
    from medai.triage.red_flags.schema import DATA_DIR

    bundled = build_engine(embeddings=False)
    again = build_engine(embeddings=False)
    assert bundled.identity == again.identity
    assert bundled.identity["content_hash"].startswith("sha256:")
    assert bundled.identity["rules_version"] == bundled.identity["content_hash"][7:19]
    own = tmp_path / "rules"
    own.mkdir()
    for name in ("concepts.yaml", "flags.yaml", "exemplars.yaml"):
        shutil.copyfile(DATA_DIR / name, own / name)
    same_files = build_engine(own, embeddings=False)
    assert same_files.identity["content_hash"] == bundled.identity["content_hash"]
    with (own / "flags.yaml").open("a", encoding="utf-8") as fh:
        fh.write("\n# hospital edit: same rules, one more comment line\n")
    edited = build_engine(own, embeddings=False)
    assert edited.identity["content_hash"] != bundled.identity["content_hash"]
    no_classifier = build_engine(embeddings=False, classifier=False)
    assert no_classifier.identity["content_hash"] != bundled.identity["content_hash"]

    report = edited.check("Göğsümde baskı var, sol koluma vuruyor, soğuk soğuk terliyorum")
    assert report.flags and report.engine == edited.identity
    assert report.rules_version == edited.identity["rules_version"]


@pytest.mark.slow
def test_the_served_result_names_the_engine_and_another_process_agrees(tfidf_model_dir):
    import json

    from medai.core import registry
    from medai.services.triage import triage
    from medai.triage.red_flags.engine import default_engine

    result = triage(registry.load(tfidf_model_dir), "Nefes alamıyorum, dudaklarım morardı")
    engine = result.to_dict()["red_flag_engine"]
    assert engine["content_hash"] == default_engine().identity["content_hash"]
    assert engine["name"] == "red-flag-engine" and engine["version"]
    out = subprocess.run([sys.executable, "-c", (
        "import json; from medai.triage.red_flags.engine import default_engine; "
        "print(json.dumps(default_engine().identity))")], capture_output=True, text=True,
        timeout=300)
    assert json.loads(out.stdout.strip().splitlines()[-1])["content_hash"] == \
        engine["content_hash"]
