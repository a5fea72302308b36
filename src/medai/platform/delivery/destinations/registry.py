"""The kinds of destination the outbox sends to, found in one registry as tasks are in
``core.task_registry``.

A kind (``dicom``: C-STORE to a PACS, ``dicomweb``: STOW-RS, ``fhir``: a FHIR transaction,
``hl7``: an ORU^R01 over MLLP) is one module holding one object behind the ``Destination``
protocol: how it builds a row's message (from ``payloads``, which call the ``documents``
builders), how it sends it, which failures a later attempt may cure, and the codes of
``core.errors.CODES`` its rows end with. What the outbox and the loop must know of a kind
(whether it files objects under the study's DICOM identity, whether a later event's message
replaces what it sent) are its attributes, so no caller compares kind names. A destination's
own settings (its address, timeout, events) are its config: the pydantic model of
``medai.destinations_config`` that ``config`` names, whose ``kind`` field is the
discriminator the destinations file is parsed by.

Failures are named so that the outbox (which owns retries) can tell them apart:

- ``DestinationUnavailable``: nothing answered, the connection was lost or the peer asked us
  to come back later. Retrying later may succeed.
- ``DestinationRejected``: the peer answered and refused. Resending the same message will not
  help; a person must look.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from medai import destinations_config
from medai.core.errors import CODES, MedaiError
from medai.platform.context import Platform
from medai.platform.delivery.payloads import Parts
from medai.platform.documents.dicom_objects import DicomObjectError
from medai.platform.records.tables import OutboxItem


@dataclass
class SendError(MedaiError, Exception):
    """A message that did not fully arrive; ``outcomes`` lists what is known per object
    where a kind sends several in one go (a DICOM batch's ``StoreOutcome``)."""

    code = "send_failed"

    destination: str
    reason: str
    outcomes: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        stored = sum(o.stored for o in self.outcomes)
        return f"{self.destination}: {self.reason} ({stored}/{len(self.outcomes)} stored)"


class DestinationUnavailable(SendError):
    """The destination is down, lost the connection or asked to come back: try again later."""

    code = "destination_unavailable"


class DestinationRejected(SendError):
    """The destination answered and refused the message (or the association)."""

    code = "destination_rejected"


class UnknownDestinationKind(MedaiError, ValueError):
    """A kind no module registered (the message lists the registered ones)."""

    code = "invalid"


UNBUILDABLE = (DicomObjectError, LookupError, FileNotFoundError, ValueError)
"""Errors building a message that a retry will not cure (a person must look)."""
FAILURES = ("destination_unavailable", "destination_rejected", "cannot_build", "delivery_error")
"""The codes a failed attempt leaves on a row, whatever the kind (``failure_code``)."""


def failure_code(error: Exception) -> str:
    """The row's code for a failed attempt: the destination's answer (``SendError.code``),
    ``cannot_build`` for a message that cannot be made, ``delivery_error`` for anything
    unexpected (a storage fault, a bug)."""
    if isinstance(error, SendError):
        return error.code
    if isinstance(error, UNBUILDABLE):
        return "cannot_build"
    return "delivery_error"


def failure_reason(error: Exception) -> str:
    """What the row says of it: the destination's generic answer, else the error's type (an
    exception's message can quote the report, and the admin reads no patient data)."""
    return error.reason if isinstance(error, SendError) else type(error).__name__


@runtime_checkable
class Destination(Protocol):
    """A kind of destination: how a row's message is built and sent, and what is retried."""

    kind: str
    """Its name, the ``kind`` of its destinations (``config``'s discriminator)."""

    @property
    def config(self) -> type[BaseModel]:
        """The pydantic model of its destinations' settings (``medai.destinations_config``)."""
        ...

    needs_dicom_identity: bool
    """It sends DICOM objects filed under the study's UIDs: a study without them (an uploaded
    PNG) has nothing for it, and its rows are recorded ``skipped`` (``no_dicom_identity``)."""
    replaced_by_later: bool
    """A later event's message replaces what it sent (a report status must not go back): a
    row retried after a later one reached the destination is ``skipped`` (``superseded``)."""
    codes: tuple[str, ...]
    """Every code of ``CODES`` its rows may end with (``failure_code``'s and its own)."""

    def build(
        self, p: Platform, item: OutboxItem, parts: Parts, dest: Any, *, correction: bool
    ) -> Any:
        """The message(s) ``item`` sends to ``dest`` (``correction``: a retracted study's);
        ``payloads.NothingToSend`` when there is none for this destination."""
        ...

    def send(self, payload: Any, dest: Any) -> int:
        """Send what ``build`` made; how many the destination acknowledged. Raises
        ``DestinationUnavailable`` or ``DestinationRejected``."""
        ...

    def retryable(self, error: Exception) -> bool:
        """Whether a later attempt may cure ``error`` (else the row waits for a person)."""
        ...


class DestinationKind:
    """What the kinds share: an outage, and anything unexpected (a storage fault, a bug), is
    tried again after the back-off; a refusal, or a message that cannot be built, waits for
    a person (``failed``)."""

    kind: str
    config: type[BaseModel]
    needs_dicom_identity = False
    replaced_by_later = False
    codes: tuple[str, ...] = FAILURES

    def retryable(self, error: Exception) -> bool:
        return not isinstance(error, (DestinationRejected, *UNBUILDABLE))


_KINDS: dict[str, Destination] = {}


def register(kind: Destination) -> Destination:
    """Add ``kind`` (or replace the kind of its name), and make its destinations configurable
    (its ``config`` model, ``destinations_config.register_config``). A kind from outside medai
    registers through the ``medai.destinations`` entry-point group; every code its rows may end
    with must be one of ``core.errors.CODES`` (the admin page has words for those)."""
    unknown = sorted(set(kind.codes) - set(CODES))
    if unknown:
        raise ValueError(
            f"destination kind {kind.kind!r}: code(s) {', '.join(unknown)} are not in "
            f"core.errors.CODES; valid: {', '.join(FAILURES)} or another of CODES"
        )
    destinations_config.register_config(kind.config)
    _KINDS[kind.kind] = kind
    return kind


def unregister(kind: str) -> None:
    """Remove a kind (a test's); no error when it is not registered."""
    _KINDS.pop(kind, None)
    destinations_config.unregister_config(kind)


def kinds() -> list[str]:
    """The registered kinds' names."""
    return sorted(_KINDS)


def get(kind: str) -> Destination:
    """The kind named ``kind``; ``UnknownDestinationKind`` naming the valid ones."""
    try:
        return _KINDS[kind]
    except KeyError:
        raise UnknownDestinationKind(
            f"unknown destination kind {kind!r}; valid: {', '.join(kinds())}"
        ) from None
