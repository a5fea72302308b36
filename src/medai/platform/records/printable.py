"""Text as it leaves medai: one function every output runs patient and free text through
(the report PDF, the FHIR bundle, the HL7 message, the DICOM objects sent to a PACS).

It drops what a reader cannot see but a renderer obeys: bidirectional controls (U+202A–U+202E
embeddings and overrides, U+2066–U+2069 isolates, the LRM/RLM/ALM marks U+200E, U+200F,
U+061C: ``ALI<U+202E>ZEM`` prints as ``ALIMEZ``), C0 and C1 control characters and DEL,
the byte-order mark, line and paragraph separators, lone surrogates (they cannot even be
encoded as UTF-8) and the noncharacters U+FFFE/U+FFFF. Joiners (ZWJ, ZWNJ) stay: scripts and
emoji need them. Line breaks and tabs stay only where asked (``lines``: report text); else
they become spaces.
"""

from __future__ import annotations

import re
from typing import Any

BIDI = "\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c"
_DROPPED = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{BIDI}\ufeff\ud800-\udfff\ufffe\uffff]")
_SEPARATORS = re.compile("\r\n?|[\u2028\u2029]")
_BREAKS = re.compile("[\t\n]")


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` without invisible controls (see the module); ``lines``: keep line breaks
    (``\\n``, with ``\\r\\n``, ``\\r`` and U+2028/U+2029 made ``\\n``) and tabs."""
    text = _DROPPED.sub("", _SEPARATORS.sub("\n", str(text)))
    return text if lines else _BREAKS.sub(" ", text)


def printable_tree(value: Any) -> Any:
    """``value`` with every string in it ``printable`` (line breaks kept: report text), dicts
    and lists copied, other values as they are."""
    if isinstance(value, str):
        return printable(value, lines=True)
    if isinstance(value, dict):
        return {k: printable_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable_tree(v) for v in value]
    return value
