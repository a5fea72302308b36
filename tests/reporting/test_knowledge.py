"""Knowledge base: the bundled passages, document ingestion and bad files, hybrid retrieval."""

import json

import pytest
from typer.testing import CliRunner

from medai.cli import app
from medai.imaging.labels import space
from medai.reporting.knowledge import (
    KnowledgeInputError,
    builtin_chunks,
    load_chunks,
    read_document,
    split_text,
)
from medai.reporting.retrieve import HybridRetriever

runner = CliRunner()


def run_json(*args, code=0):
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_bundled_passages_cover_every_label_in_both_languages():
    chunks = builtin_chunks()
    have = {(c.label, c.lang) for c in chunks}
    for task in ("cxr", "mri"):
        for label in space(task).labels:
            assert (label, "en") in have and (label, "tr") in have, label
    assert all(c.source and c.licence for c in chunks)
    assert len({c.id for c in chunks}) == len(chunks)


def test_split_text_respects_the_limit_and_keeps_words():
    text = "First paragraph.\n\n" + " ".join(f"Sentence number {i} is here." for i in range(200))
    pieces = split_text(text, max_chars=300)
    assert all(len(p) <= 300 for p in pieces)
    assert " ".join(pieces).split() == " ".join(text.split()).split()


def test_ingest_markdown_csv_pdf(tmp_path):
    md = tmp_path / "protocol.md"
    md.write_text(
        "# Hospital CXR protocol\n\nPortable films in ICU are AP.\n\n"
        "Report line positions for every ICU film.",
        encoding="utf-8",
    )
    csv = tmp_path / "reports.csv"
    csv.write_text(
        "uid,findings,impression\nR1,Small left effusion.,Left effusion.\n"
        "R2,Clear lungs.,Normal.\n",
        encoding="utf-8",
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    fig.text(0.1, 0.5, "Pneumothorax escalation: call the thoracic surgeon")
    fig.savefig(tmp_path / "escalation.pdf")
    plt.close(fig)
    out = tmp_path / "kb"
    r = run_json(
        "kb",
        "ingest",
        str(md),
        str(csv),
        str(tmp_path / "escalation.pdf"),
        "--out",
        str(out),
        "--licence",
        "internal use only",
    )
    assert r["chunks_added"] >= 4
    again = run_json("kb", "ingest", str(md), "--out", str(out), "--licence", "internal")
    assert again["chunks_added"] == 0  # same text, same ids: no duplicates
    chunks = load_chunks(out, include_builtin=False)
    assert {c.licence for c in chunks} == {"internal use only"}
    assert any("FINDINGS: Small left effusion." in c.text for c in chunks)
    assert any("thoracic surgeon" in c.text for c in chunks)
    hits = run_json(
        "kb",
        "search",
        "pneumothorax thoracic surgeon escalation",
        "--kb",
        str(out),
        "--no-embeddings",
    )
    assert hits["mode"] == "bm25" and hits["hits"][0]["source"] == "escalation.pdf"


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("scan.md", b"\x00\x01\x02binary" * 10, "binary"),
        ("latin1.txt", "Akciğer grafisi".encode("latin-1", errors="replace") + b"\xfe", "UTF-8"),
        ("fake.pdf", b"this is not a pdf", "PDF"),
        ("data.xlsx", b"PK\x03\x04", "unsupported"),
        ("empty.md", b"   \n\n  ", "no text"),
    ],
)
def test_files_that_are_not_text_are_refused_whole(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(KnowledgeInputError, match=message):
        read_document(path, "x")
    r = run_json("kb", "ingest", str(path), "--out", str(tmp_path / "kb"), "--licence", "x", code=2)
    assert message.lower() in r["error"].lower()
    assert not (tmp_path / "kb" / "chunks.jsonl").exists()


def test_csv_without_a_text_column_asks_for_one(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(KnowledgeInputError, match="text-column"):
        read_document(path, "x")
    assert read_document(path, "x", text_column="b")[0].text == "2"


def test_hybrid_retrieval_finds_turkish_and_english_passages():
    r = HybridRetriever(builtin_chunks())
    assert r.mode == "hybrid"
    top = r.search("kalp gölgesi büyümüş, kardiyotorasik oran artmış", k=3, lang="tr")
    assert top[0].chunk.label == "Cardiomegaly" and top[0].chunk.lang == "tr"
    # a paraphrase with no shared keyword: only the embedding side can find it
    dense = r.search("air outside the lung collapsing it", k=3, lang="en")
    assert "Pneumothorax" in {h.chunk.label for h in dense}
    only = r.search("effusion", k=5, labels={"Cardiomegaly"})
    assert {h.chunk.label for h in only} == {"Cardiomegaly"}
    assert r.search("   ") == []
