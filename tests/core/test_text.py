import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medai.core.text import (
    TextInputError,
    ascii_fold,
    decode_text,
    is_valid_tckn,
    match_form,
    normalise,
    redact_pii,
    turkish_lower,
    validate_complaint,
)


def test_turkish_lower_dotted_and_dotless_i():
    assert turkish_lower("IŞIK İSTANBUL") == "ışık istanbul"
    assert match_form("GÖĞÜS Ağrısı") == "gogus agrisi"
    assert ascii_fold("çğıöşü") == "cgiosu"


def test_normalise_entities_tags_whitespace_nfc():
    assert normalise("Bursa&#39da  <b>kulak</b>\n ağrısı &amp; x") == "Bursa'da kulak ağrısı & x"
    decomposed = "gö\u0308z"[:2] + "z"  # 'o' + combining diaeresis
    assert normalise("go\u0308z") == "göz" and decomposed


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Merhaba Gökhan bey, kulağım ağrıyor", "Merhaba [İSİM] bey, kulağım ağrıyor"),
        ("merhaba gökhan bey nasılsınız", "merhaba [İSİM] bey nasılsınız"),
        ("Nuran Hanım merhaba", "[İSİM] Hanım merhaba"),
        ("Ümit hocam sağ beyin tarafımda ağrı", "[İSİM] hocam sağ beyin tarafımda ağrı"),
        ("Dr. Ahmet Yılmaz ameliyat etti", "Dr. [İSİM] ameliyat etti"),
        ("sayın Akyüz; annem 59 yaşında", "sayın [İSİM]; annem 59 yaşında"),
        ("Sayın Ayşe Demir merhaba", "Sayın [İSİM] merhaba"),
        ("Sayın hocam merhaba", "Sayın hocam merhaba"),
        ("Sayın doktor bey", "Sayın doktor bey"),
        ("mail: ali.veli@gmail.com", "mail: [E-POSTA]"),
        ("tel 0532 123 45 67 arayın", "tel [TELEFON] arayın"),
        ("TC 10000000146 numaram", "TC [TCKN] numaram"),
        ("bkz www.doktorsitesi.com/soru/1 sayfası", "bkz [URL] sayfası"),
    ],
)
def test_redaction(text, expected):
    assert redact_pii(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "bilgi verir misiniz hocam",
        "Teşekkürler hocam",
        "Sağ Beyin bölgesinde",
        "3 yıldır 2 cm",
    ],
)
def test_redaction_leaves_ordinary_text(text):
    assert redact_pii(text) == text


def test_tckn_checksum():
    assert is_valid_tckn("10000000146")
    assert not is_valid_tckn("10000000147")
    assert not is_valid_tckn("01234567890")


@pytest.mark.parametrize(
    "bad,needle",
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("a" * 1_000_000, "too long"),
        ("abc\x00def", "binary"),
        ("\x01\x02\x03\x04\x05ab", "binary"),
        ("12345 !!!", "no words"),
    ],
)
def test_validate_complaint_rejects(bad, needle):
    with pytest.raises(TextInputError, match=needle):
        validate_complaint(bad)


def test_decode_text_rejects_non_utf8():
    assert decode_text(b"kulak") == "kulak"
    with pytest.raises(TextInputError, match="UTF-8"):
        decode_text("kulağım".encode("iso-8859-9"))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_validate_never_crashes_otherwise(text):
    try:
        out = validate_complaint(text)
    except TextInputError:
        return
    assert out and out == out.strip()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.emails())
def test_redaction_removes_emails_anywhere(prefix, email):
    out = redact_pii(f"{prefix} {email} ")
    assert email not in out
