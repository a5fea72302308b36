"""Batch use (issue 27) through the real CLI: a file of complaints (CSV or JSON lines) or a
folder / manifest of images through a model loaded once — one JSON line per input row, in
order; a bad row (empty, too long, not JSON, unreadable or refused image) is reported on its
line and never stops the batch; the summary at the end counts what happened."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from helpers.platform import colour_png, png_bytes
from medai.cli import app

runner = CliRunner()


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_csv_of_complaints_one_line_each_bad_rows_reported(tmp_path, tfidf_model_dir):
    from medai.services.batch import MAX_LINE_BYTES

    data = tmp_path / "complaints.csv"
    data.write_text(
        "\ufeffid,text\n"
        "a1,Üç gündür öksürüyorum ve balgamım var\n"
        "a2,\n"
        'a3,"İki satırlı\nbir şikayet, ""tırnaklı"" sözlerle"\n'
        f"a4,{'x' * (MAX_LINE_BYTES + 10)}\n"
        "a5,Dizim şişti ve ağrıyor\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    r = runner.invoke(
        app,
        [
            "triage",
            "predict",
            "--batch",
            str(data),
            "--model",
            str(tfidf_model_dir),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    rows = _lines(out.read_text())
    assert [x["row"] for x in rows] == [1, 2, 3, 4, 5]
    assert [x["id"] for x in rows] == ["a1", "a2", "a3", None, "a5"]
    assert [x["ok"] for x in rows] == [True, False, True, False, True]
    assert rows[1]["error_type"] == "TextInputError"
    assert "longer than" in rows[3]["error"]
    assert rows[0]["result"]["model"]["content_hash"].startswith("sha256:")
    summary = json.loads(r.stdout.strip().splitlines()[-1])["summary"]
    assert (summary["rows"], summary["ok"], summary["errors"]) == (5, 3, 2)
    assert sum(v for k, v in summary["outcomes"].items() if k != "red_flag") == 3


def test_json_lines_in_json_lines_out_on_stdout(tmp_path, tfidf_model_dir):
    data = tmp_path / "complaints.jsonl"
    data.write_text(
        "\n".join(
            [
                json.dumps(
                    {"id": 7, "text": "Boğazım ağrıyor ve yutkunamıyorum"}, ensure_ascii=False
                ),
                "{not json",
                json.dumps(["a list"]),
                json.dumps({"id": "no-text", "body": "x"}),
                "",
                json.dumps(
                    {"text": "Göğsümde baskı var, sol koluma vuruyor, terliyorum"},
                    ensure_ascii=False,
                ),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    r = runner.invoke(
        app, ["triage", "predict", "--batch", str(data), "--model", str(tfidf_model_dir)]
    )
    assert r.exit_code == 0, r.output
    rows = _lines(r.stdout)
    assert [x["ok"] for x in rows] == [True, False, False, False, True]
    assert rows[0]["id"] == "7" and rows[3]["id"] == "no-text"
    assert "no text" in rows[3]["error"]
    assert rows[4]["result"]["red_flags"]  # the urgent one still flagged in a batch


def test_a_file_that_cannot_be_read_is_refused_whole(tmp_path, tfidf_model_dir):
    data = tmp_path / "wrong.csv"
    data.write_text("name,age\nAli,3\n")
    r = runner.invoke(
        app, ["triage", "predict", "--batch", str(data), "--model", str(tfidf_model_dir), "--json"]
    )
    assert r.exit_code == 2
    assert "no text column" in json.loads(r.stdout.strip().splitlines()[-1])["error"]
    r = runner.invoke(
        app,
        [
            "triage",
            "predict",
            "--batch",
            str(tmp_path / "none.csv"),
            "--model",
            str(tfidf_model_dir),
            "--json",
        ],
    )
    assert r.exit_code == 2


def test_a_folder_and_a_manifest_of_images(tmp_path, tiny_imaging_dir):
    folder = tmp_path / "films"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(png_bytes(1))
    (folder / "sub" / "b.png").write_bytes(png_bytes(2))
    (folder / "c.jpg").write_bytes(colour_png())  # a colour photo: refused, not an error
    (folder / "d.dcm").write_bytes(b"DICM but not really")
    (folder / "notes.txt").write_text("skipped: not an image suffix")
    r = runner.invoke(
        app, ["imaging", "predict", str(folder), "--task", "cxr", "--model", str(tiny_imaging_dir)]
    )
    assert r.exit_code == 0, r.output
    rows = _lines(r.stdout)
    assert [x["id"] for x in rows] == ["a.png", "c.jpg", "d.dcm", "sub/b.png"]
    assert [x["ok"] for x in rows] == [True, True, False, True]
    assert rows[1]["result"]["refused"] is True
    assert rows[2]["error_type"] == "ImageInputError"

    manifest = tmp_path / "manifest.csv"
    manifest.write_text("file,label\nfilms/a.png,No Finding\nfilms/missing.png,x\n,\n")
    out = tmp_path / "img.jsonl"
    r = runner.invoke(
        app,
        [
            "imaging",
            "predict",
            str(manifest),
            "--task",
            "cxr",
            "--model",
            str(tiny_imaging_dir),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    rows = _lines(out.read_text())
    assert [x["ok"] for x in rows] == [True, False, False]
    summary = json.loads(r.stdout.strip().splitlines()[-1])["summary"]
    assert (summary["rows"], summary["ok"], summary["errors"]) == (3, 1, 2)


def test_quotes_semicolons_and_the_output_file_are_handled(tmp_path, tfidf_model_dir):
    """A stray inch mark keeps its row; an unterminated quote costs only its own row; a
    Turkish spreadsheet's semicolons are read; --out may not overwrite the input; a batch in
    which no row got a result exits 1."""
    data = tmp_path / "c.csv"
    data.write_text(
        'id,text\n1,Başım ağrıyor\n2,Kolumda 5" uzunluğunda yara var\n'
        '3,"unterminated quote\n4,Kulağım çınlıyor\n5,Dizim ağrıyor\n',
        encoding="utf-8",
    )
    r = runner.invoke(
        app, ["triage", "predict", "--batch", str(data), "--model", str(tfidf_model_dir)]
    )
    assert r.exit_code == 0, r.output
    rows = _lines(r.stdout)
    assert [x["row"] for x in rows] == [1, 2, 3, 4, 5]
    assert [x["ok"] for x in rows] == [True, True, False, True, True]
    assert "never closed" in rows[2]["error"]
    assert [x["id"] for x in rows] == ["1", "2", None, "4", "5"]

    semi = tmp_path / "semi.csv"
    semi.write_text("id;text\n1;Boğazım ağrıyor, yutkunamıyorum\n", encoding="utf-8")
    r = runner.invoke(
        app, ["triage", "predict", "--batch", str(semi), "--model", str(tfidf_model_dir)]
    )
    assert r.exit_code == 0 and _lines(r.stdout)[0]["ok"], r.output

    before = data.read_bytes()
    r = runner.invoke(
        app,
        [
            "triage",
            "predict",
            "--batch",
            str(data),
            "--out",
            str(data),
            "--model",
            str(tfidf_model_dir),
            "--json",
        ],
    )
    assert r.exit_code == 2 and "is the input file" in r.stdout
    assert data.read_bytes() == before

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": ""}\n\n{oops\n', encoding="utf-8")
    r = runner.invoke(
        app, ["triage", "predict", "--batch", str(bad), "--model", str(tfidf_model_dir)]
    )
    assert r.exit_code == 1  # nothing triaged
    assert [x["row"] for x in _lines(r.stdout)] == [1, 3]  # line numbers, blank ones counted


def test_an_empty_folder_is_refused(tmp_path, tiny_imaging_dir):
    (tmp_path / "empty").mkdir()
    r = runner.invoke(
        app,
        [
            "imaging",
            "predict",
            str(tmp_path / "empty"),
            "--task",
            "cxr",
            "--model",
            str(tiny_imaging_dir),
            "--json",
        ],
    )
    assert r.exit_code == 2 and "no image in it" in r.stdout
