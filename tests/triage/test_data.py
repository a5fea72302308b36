import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.builders import make_rows, write_csv
from medai.core.dedup import near_duplicate_groups
from medai.triage.data import DataFormatError, load_complaints, split


def test_near_duplicates_are_grouped():
    base = "Hocam merhaba iki haftadır kulağımda çınlama var ve geceleri uyuyamıyorum ne yapmalıyım"
    texts = [
        base,
        base.replace("iki", "üç") + "?",
        "Sırtımda kaşıntılı kırmızı lekeler çıktı",
        "Bel fıtığı ameliyatı sonrası fizik tedavi gerekli mi",
    ]
    groups = near_duplicate_groups(texts, threshold=0.8)
    assert groups[0] == groups[1]
    assert len({groups[0], groups[2], groups[3]}) == 3


def test_split_is_stratified_and_keeps_groups_whole(tmp_path):
    rows = make_rows(per_class=60)
    # a near-duplicate family of 6 rows that must not straddle splits
    family = [
        {
            "text": f"Kulağımda sürekli uğultu ve dolgunluk hissi var, ilaç işe yaramadı {'!' * i}",
            "label": "KBB",
        }
        for i in range(6)
    ]
    data = load_complaints(write_csv(tmp_path / "d.csv", rows + family))
    parts = split(data, test_frac=0.2, val_frac=0.2, seed=1)
    sides = [set(data.groups[idx].tolist()) for idx in (parts.train, parts.validation, parts.test)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert len(parts.train) + len(parts.validation) + len(parts.test) == len(data)
    labels = np.array(data.labels)
    for idx in (parts.validation, parts.test):
        assert set(labels[idx]) == set(labels)  # every department on every side


def test_near_duplicates_can_be_dropped(tmp_path):
    rows = make_rows(per_class=5) + [
        {
            "text": "Kulağımda sürekli uğultu ve dolgunluk hissi var, ilaç işe yaramadı" + "!" * i,
            "label": "KBB",
        }
        for i in range(4)
    ]
    path = write_csv(tmp_path / "d.csv", rows)
    grouped = load_complaints(path)
    dropped = load_complaints(path, drop_near_duplicates=True)
    assert len(grouped) - len(dropped) == dropped.report.skipped["near_duplicate"] >= 3
    assert sum("uğultu" in t for t in dropped.texts) == 1


def test_report_counts_every_skip(tmp_path):
    rows = make_rows(per_class=5) + [
        {"text": "", "label": "KBB"},
        {"text": "   ", "label": "KBB"},
        {"text": "<div>page</div><script>x</script>", "label": "KBB"},
        {"text": "Dişim ağrıyor", "label": "Diş Hekimliği"},
        {"text": "Aynı metin", "label": "KBB"},
        {"text": "Aynı  metin", "label": "KBB"},
        {"text": "Çelişkili metin", "label": "KBB"},
        {"text": "çelişkili metin", "label": "Dermatoloji"},
    ]
    data = load_complaints(write_csv(tmp_path / "d.csv", rows))
    r = data.report
    assert r.rows_read == len(rows)
    assert r.skipped["empty"] == 2 and r.skipped["page_dump"] == 1
    assert r.unknown_labels == {"Diş Hekimliği": 1}
    assert r.skipped["exact_duplicate"] == 2 and r.skipped["conflicting_labels"] == 1
    assert r.rows_kept == len(data) == 20 + 1
    assert all(
        lab in {"dermatology", "ent", "neurology", "physical_medicine_rehabilitation"}
        for lab in data.labels
    )


def test_jsonl_and_redaction(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"text": t, "label": "KBB"}, ensure_ascii=False)
            for t in ["Merhaba Ayşe hanım kulağım ağrıyor", "mail a@b.com boğazım"]
        )
    )
    data = load_complaints(path, redact=True)
    assert data.texts == ["Merhaba [İSİM] hanım kulağım ağrıyor", "mail [E-POSTA] boğazım"]


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"metin,etiket\nx,y\n", "missing column"),
        ("text,label\nkulağım,KBB\n".encode("iso-8859-9"), "UTF-8"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path, content, needle):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=needle):
        load_complaints(path)


def test_bad_jsonl_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "KBB"}\n{not json\n')
    with pytest.raises(DataFormatError, match=r"bad.jsonl:2"):
        load_complaints(path)


def test_missing_file():
    with pytest.raises(DataFormatError, match="no such file"):
        load_complaints("/nonexistent/file.csv")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_the_loader(tmp_path, blob):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(b"text,label\n" + blob)
    try:
        data = load_complaints(path)
    except DataFormatError:
        return
    assert data.report.rows_kept == len(data.texts)
    assert data.report.rows_read >= data.report.rows_kept
