"""Turkish-aware text normalisation, input validation and PII redaction.

Python's ``str.lower()`` is wrong for Turkish ("I" → "i" instead of "ı", "İ" → "i̇"), and
patients often type without diacritics ("gogus agrisi"), so matching code works on a
casefolded *and* an ASCII-folded form. Redaction runs on every text that leaves the process.
"""

from __future__ import annotations

import html
import re
import unicodedata

from medai.core.errors import MedaiError

MAX_TEXT_CHARS = 5000
"""Longest complaint accepted for prediction: the longest real question is ~2.2k chars."""
MAX_COMPLAINT_BYTES = 16 * MAX_TEXT_CHARS
"""Most bytes read for one complaint (a file or stdin): 4 UTF-8 bytes a character, with room
for markup that normalisation removes."""

_WS = re.compile(r"\s+")
# HTML entities the source site left without their semicolon, e.g. "Bursa&#39da".
_BARE_NUMERIC_ENTITY = re.compile(r"&#(\d{2,4})(?!\d|;)")
_TAG = re.compile(r"<[^>]{1,200}>")
_ASCII_FOLD = str.maketrans("çğıöşüâîûÇĞİÖŞÜÂÎÛ", "cgiosuaiuCGIOSUAIU")


def excerpt(value: object, limit: int = 60) -> str:
    """A short, single-line excerpt of user input for an error message: errors never repeat
    the whole input (a 100 MB body once came back in full)."""
    text = value if isinstance(value, str) else repr(value)
    text = _WS.sub(" ", text[: limit * 4])
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TextInputError(MedaiError, ValueError):
    """A text that cannot be used: empty, too long, not UTF-8, binary."""

    status, code = 422, "invalid"


def normalise(text: str) -> str:
    """NFC, HTML entities decoded, tags dropped, whitespace collapsed. Case is kept."""
    text = _BARE_NUMERIC_ENTITY.sub(lambda m: f"&#{m.group(1)};", text)
    text = html.unescape(text)
    text = _TAG.sub(" ", text)
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch if ch.isprintable() or ch.isspace() else " " for ch in text)
    return _WS.sub(" ", text).strip()


def turkish_lower(text: str) -> str:
    """Lowercase with Turkish dotted/dotless I rules (I → ı, İ → i)."""
    return unicodedata.normalize("NFC", text.replace("I", "ı").replace("İ", "i")).lower()


def ascii_fold(text: str) -> str:
    """Drop Turkish diacritics so 'göğüs ağrısı' and 'gogus agrisi' compare equal."""
    text = text.translate(_ASCII_FOLD)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def match_form(text: str) -> str:
    """The form rules and aliases are matched on: normalised, Turkish-lowercased, folded."""
    return ascii_fold(turkish_lower(normalise(text)))


def decode_text(data: bytes) -> str:
    """Strict UTF-8 decode (BOM allowed) with a clear error instead of mojibake."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TextInputError(
            f"input is not valid UTF-8 (bad byte at offset {exc.start}); convert it to UTF-8 first"
        ) from None


def validate_complaint(text: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Return the normalised complaint, or raise TextInputError saying what is wrong."""
    if not isinstance(text, str):
        raise TextInputError("complaint must be a string")
    if "\x00" in text:
        raise TextInputError("input looks binary (contains NUL bytes), not a text complaint")
    if len(text) > 4 * max_chars:
        raise TextInputError(f"complaint is too long ({len(text)} characters; limit {max_chars})")
    controls = sum(
        1
        for ch in text
        if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and ch not in "\t\n\r"
    )
    if text and controls / len(text) > 0.05:
        raise TextInputError("input looks binary (many control characters), not a text complaint")
    clean = normalise(text)
    if not clean:
        raise TextInputError("complaint is empty")
    if len(clean) > max_chars:
        raise TextInputError(f"complaint is too long ({len(clean)} characters; limit {max_chars})")
    if not any(ch.isalpha() for ch in clean):
        raise TextInputError("complaint contains no words")
    return clean


# --- PII redaction -------------------------------------------------------------------------

_L = "A-Za-zÇĞİÖŞÜÂÎÛçğıöşüâîû"
_UP = "A-ZÇĞİÖŞÜÂÎÛ"
_TITLES = (
    r"(?i:hanımefendi|hanımcım|hanıma|hanım|hanim|beyefendi|beyciğim|beye|bey"
    r"|hocamın|hocama|hocam|hocaya|hoca)"
)
_GREETINGS = {
    "merhaba",
    "merhabalar",
    "selam",
    "selamlar",
    "sayın",
    "sayin",
    "değerli",
    "degerli",
    "sevgili",
    "saygıdeğer",
    "saygideger",
    "doktor",
    "dr",
    "iyi",
    "günler",
    "gunler",
    "akşamlar",
    "aksamlar",
    "teşekkürler",
    "tesekkurler",
    "teşekkür",
    "tşk",
    "kolay",
    "gelsin",
    "hocam",
    "hoca",
    "bey",
    "hanım",
    "rica",
    "ederim",
    "acaba",
    "lütfen",
    "lutfen",
    "saygılar",
    "saygılarımla",
    "günaydın",
    "gunaydin",
    "hayırlı",
    "nasılsınız",
    "sağolun",
    "sağ",
    "olun",
    "op",
    "doç",
    "doc",
    "prof",
    "uzm",
    "uzman",
    "operatör",
    "operator",
    "ben",
    "size",
    "sizin",
    "çok",
    "cok",
    "bir",
    "bu",
    "şu",
    "o",
    "ama",
    "fakat",
    "yani",
    "evet",
    "hayır",
    "tamam",
    "ve",
    "ile",
    "de",
    "da",
    "ki",
    "mi",
    "hocamız",
    "doktorum",
    "hekim",
}
_GREETING_ALT = "|".join(
    sorted((re.escape(g) for g in _GREETINGS if len(g) > 2), key=len, reverse=True)
)
# A capitalised word or two right before a title ("Gökhan bey", "Ayşe Yılmaz hanım") ...
_CAP_NAME_BEFORE_TITLE = re.compile(
    rf"(?<![{_L}])((?:[{_UP}][{_L}]*\s+)?[{_UP}][{_L}]*)(\s+){_TITLES}(?![{_L}])"
)
# ... or any word between a greeting and a title ("merhaba gökhan bey").
_GREETED_NAME = re.compile(
    rf"(?<![{_L}])((?:{_GREETING_ALT})\s+)([{_L}]+)(\s+){_TITLES}(?![{_L}])", re.IGNORECASE
)
_NAME_AFTER_DR = re.compile(
    rf"(?<![{_L}])((?:Dr|Doç|Doc|Prof|Uzm|Op)\.?\s*(?:Dr\.?\s*)?)"
    rf"([{_UP}][{_L}]+(?:\s+[{_UP}][{_L}]+){{0,2}})"
)
# "Sayın Akyüz", "sayın ahmet yılmaz": Sayın is always followed by a name or a title.
_NAME_AFTER_SAYIN = re.compile(rf"(?<![{_L}])((?i:sayın|sayin)\s+)([{_L}]+(?:\s+[{_UP}][{_L}]+)?)")
_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_URL = re.compile(
    r"(?:https?://|www\.)[^\s<>\"']+|\b[\w-]+\.(?:com|net|org|gov|edu)(?:\.tr)?\b[^\s]*",
    re.IGNORECASE,
)
_DIGIT_RUN = re.compile(r"(?<![\d])(?:\+?\d[\d\s().-]{8,}\d)(?![\d])")


def is_valid_tckn(digits: str) -> bool:
    """Turkish national id (TC kimlik no) checksum: 11 digits, first non-zero, two check digits."""
    if len(digits) != 11 or not digits.isdigit() or digits[0] == "0":
        return False
    d = [int(c) for c in digits]
    d10 = ((d[0] + d[2] + d[4] + d[6] + d[8]) * 7 - (d[1] + d[3] + d[5] + d[7])) % 10
    d11 = sum(d[:10]) % 10
    return d[9] == d10 and d[10] == d11


def _redact_digits(match: re.Match[str]) -> str:
    raw = match.group(0)
    digits = re.sub(r"\D", "", raw)
    if is_valid_tckn(digits):
        return "[TCKN]"
    if 10 <= len(digits) <= 13:
        return "[TELEFON]"
    return raw


def _redact_cap_name(match: re.Match[str]) -> str:
    words = match.group(1).split()
    whole = match.group(0)
    rest = whole[len(match.group(1)) :]
    if turkish_lower(words[-1]) in _GREETINGS:
        return whole
    if len(words) == 2 and turkish_lower(words[0]) in _GREETINGS:
        return words[0] + " [İSİM]" + rest
    return "[İSİM]" + rest


def _redact_after_sayin(match: re.Match[str]) -> str:
    words = match.group(2).split()
    if turkish_lower(words[0]) in _GREETINGS or re.fullmatch(_TITLES, words[0]):
        return match.group(0)
    return match.group(1) + "[İSİM]"


def _redact_greeted_name(match: re.Match[str]) -> str:
    if turkish_lower(match.group(2)) in _GREETINGS:
        return match.group(0)
    return match.group(1) + "[İSİM]" + match.group(0)[match.end(2) - match.start(0) :]


def redact_pii(text: str) -> str:
    """Replace e-mails, URLs, phone numbers, TC kimlik numbers and addressed names.

    Placeholders are bracketed tokens ([E-POSTA], [URL], [TELEFON], [TCKN], [İSİM]) so a
    reader sees that something was removed; the medical content is left untouched.
    """
    text = _EMAIL.sub("[E-POSTA]", text)
    text = _URL.sub("[URL]", text)
    text = _DIGIT_RUN.sub(_redact_digits, text)
    text = _NAME_AFTER_DR.sub(lambda m: m.group(1) + "[İSİM]", text)
    text = _NAME_AFTER_SAYIN.sub(_redact_after_sayin, text)
    text = _GREETED_NAME.sub(_redact_greeted_name, text)
    text = _CAP_NAME_BEFORE_TITLE.sub(_redact_cap_name, text)
    return text
