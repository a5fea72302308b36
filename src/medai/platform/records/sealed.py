"""Column types that keep patient text sealed at rest: the database holds a Fernet token
(``crypto.cipher``; URL-safe base64 text, so a column keeps its SQL type), the code reads and
writes plain values.

Every free text that can hold patient data lives in one of these (or in a column the code seals
itself, like a chat message): a clinical question ("Ayşe Yılmaz 05321234567"), a report's
sections, a triage result (its red-flag evidence quotes the complaint), a patient reference.
``platform.ops.rotation.SEALED`` lists them all, so a key rotation covers every one.

A token the configured keys cannot open: ``SealedText`` reads as None (one log line, never the
text: a view shows the rest of the record), ``SealedJSON`` raises ``InvalidToken`` (a report
or a result read as empty would be a wrong record, so the server answers 503
``record_undecryptable`` instead).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import JSON, Text
from sqlalchemy.types import TypeDecorator

from medai.platform.records.crypto import InvalidToken, cipher

log = logging.getLogger("medai.platform")


def seal_text(value: str) -> str:
    return cipher().encrypt(value).decode("ascii")


def open_text(token: str) -> str:
    return cipher().decrypt(token.encode("ascii"))


class SealedText(TypeDecorator):
    """A text column stored as a Fernet token."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else seal_text(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        try:
            return open_text(value)
        except (InvalidToken, UnicodeEncodeError):
            log.warning(
                "a sealed text cannot be decrypted with the present keys "
                "(MEDAI_SECRET_KEYS or HOME/secret.key); read as empty"
            )
            return None


class SealedJSON(TypeDecorator):
    """A JSON column whose value is a Fernet token (a JSON string) of the JSON text. None is
    SQL NULL, as in ``SealedText`` (not a JSON ``null``, which is no token: a key rotation or a
    backup's key survey would find a value no key opens, and ``IS NULL`` would not see it)."""

    impl = JSON(none_as_null=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else seal_text(json.dumps(value, ensure_ascii=False))

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if not isinstance(value, str):  # None, or a value a migration has not sealed yet
            return value
        return json.loads(open_text(value))


__all__ = ["SealedJSON", "SealedText", "open_text", "seal_text"]
