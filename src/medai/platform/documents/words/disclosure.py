"""How a report version's text was made, in the report's language: the one sentence every copy
of the report carries (the API's ``ai_disclosure``, the signed report's DICOM SR comment, the
HL7 NTE, the PDF and the FHIR DiagnosticReport's text all read ``text``).

It says what happened, never more: an unsigned AI draft awaits review and claims no signature;
a signed AI-assisted version says whether the signer changed the AI's draft (``ai_edited``:
the signed text differs from it) or signed it without changes; a report with no AI draft says
it was written by hand and claims no AI assistance; an amendment says so. The words of the
sentences are ``report_words``' (one source for the PDF's headings and this).
"""

from __future__ import annotations

from typing import Any

from medai.platform.documents.words import report_words as rw


def text(report: dict[str, Any], lang: str, signed_when: str | None = None) -> str:
    """The disclosure of ``report`` (``versions.as_dict``'s keys: ``status``, ``signed_by``,
    ``ai_assisted``, ``ai_edited``) in ``lang``; ``signed_when``: the signing time as people
    read it. ``ai_edited`` None (not known) says only "reviewed and signed"."""
    w = rw.words(lang)
    assisted = report.get("ai_assisted", True) is not False
    signer = rw.signer_name(report)  # title and full name, or the user name
    amended = report.get("status") == "amended"
    parts = []
    if signer:
        if amended:
            parts.append(w["amended_signed"])
        edited = report.get("ai_edited")
        if not assisted:
            key = "hand_signed"
        elif edited is None:
            key = "ai_signed"
        else:
            key = "ai_signed_edited" if edited else "ai_signed_unchanged"
        parts.append(w[key].format(signer=signer, when=signed_when or w["unknown_time"]))
    elif amended:
        parts += [w["amended_unsigned"]] + ([w["ai_first_draft"]] if assisted else [])
    else:
        parts.append(w["ai_unsigned" if assisted else "hand_unsigned"])
    if assisted:
        parts.append(w["not_diagnosis"])
    return " ".join(parts)
