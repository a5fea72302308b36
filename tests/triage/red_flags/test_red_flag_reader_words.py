"""The reader's word lists are data (reader.yaml, issue 27): validated on load with the entry
named, read by the engine of their own folder (two engines with different lists in one
process, even in concurrent threads, each read with their own), and the bundled file says
exactly what the Python said before the move (the flag snapshot of every set was identical)."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

DENIED = "Göğsümde baskı yok, sol koluma vuruyor"


def _folder(tmp_path: Path, edit=None) -> Path:
    from medai.triage.red_flags.schema import DATA_DIR

    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    for name in ("concepts.yaml", "flags.yaml", "exemplars.yaml", "reader.yaml"):
        shutil.copyfile(DATA_DIR / name, folder / name)
    if edit is not None:
        raw = yaml.safe_load((folder / "reader.yaml").read_text(encoding="utf-8"))
        edit(raw["words"])
        (folder / "reader.yaml").write_text(
            yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8"
        )
    return folder


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda w: w.update(negatorz=["yok"]), "negatorz: unknown entry; valid: sentence_break"),
        (lambda w: w.pop("negators"), "negators: missing"),
        (lambda w: w.update(negators=["yok", "Değil"]), "negators: .*not folded"),
        (lambda w: w.update(negators=["yok", "yok"]), "negators: lists .*twice"),
        (lambda w: w.update(negators=[]), "negators: must be a non-empty list"),
        (lambda w: w.update(pluperfect="(?:mist"), "pluperfect: is not a regular expression"),
        (lambda w: w.update(pluperfect="x*"), "pluperfect: matches an empty word"),
        (lambda w: w.update(negation_reach=0), "negation_reach: must be a whole number"),
        (lambda w: w.update(past_phrases=[["bir"]]), "past_phrases: each phrase is a pair"),
        (lambda w: w.update(fever_from=43), "fever_from: is above fever_to"),
    ],
)
def test_a_wrong_reader_file_is_refused_with_the_entry_named(tmp_path, edit, message):
    from medai.triage.red_flags.schema import RuleFileError, load_rules

    with pytest.raises(RuleFileError, match=f"reader.yaml: {message}"):
        load_rules(_folder(tmp_path, edit))


def test_each_engine_reads_with_its_own_folders_words_even_in_concurrent_threads(tmp_path):
    from medai.triage.red_flags.engine import build_engine

    bundled = build_engine(embeddings=False, classifier=False)
    no_yok = build_engine(
        _folder(tmp_path, lambda w: w.update(negators=[x for x in w["negators"] if x != "yok"])),
        embeddings=False,
        classifier=False,
    )
    assert not bundled.check(DENIED).flags  # "yok" denies the pressure
    assert [f.id for f in no_yok.check(DENIED).flags] == ["acute_coronary"]
    assert bundled.identity["content_hash"] != no_yok.identity["content_hash"]
    jobs = [(bundled, no_yok)[i % 2] for i in range(200)]
    with ThreadPoolExecutor(8) as pool:
        fired = list(pool.map(lambda e: bool(e.check(DENIED).flags), jobs))
    assert fired == [e is no_yok for e in jobs]


def test_a_folder_without_its_own_reader_reads_with_the_bundled_one(tmp_path):
    from medai.triage.red_flags.schema import load_rules
    from medai.triage.red_flags.words import bundled

    folder = _folder(tmp_path)
    (folder / "reader.yaml").unlink()
    assert load_rules(folder).words.digest == bundled().digest


def test_every_entry_of_the_table_is_in_the_bundled_file_with_a_comment():
    from medai.triage.red_flags.schema import DATA_DIR
    from medai.triage.red_flags.words import ENTRIES, READER_FILE, load_reader

    text = (DATA_DIR / READER_FILE).read_text(encoding="utf-8")
    words = load_reader()
    for name, (_, doc) in ENTRIES.items():
        assert f"\n  {name}:" in text and getattr(words, name) is not None
        assert doc.split()[0] in text  # its description stands above it
