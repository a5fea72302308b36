"""The DICOM node: a Storage SCP (C-STORE) and Verification SCP (C-ECHO) on pynetdicom, so that
modalities and the PACS send studies to medai the way they send them anywhere else.

Run by ``medai dicom listen`` or inside ``medai serve --dicom-port``, on the same database and
blob store as the API: a received instance is filed like a browser upload (``receive``), so
it shows in the worklist and is analysed by the same job machinery. The C-STORE handler only
stores, files and queues — the model never runs inside it — so the sender gets its answer in
milliseconds.

Bounded: an association must call this node's AE title (and, with an allow list, come from
an allowed calling AE title: others are rejected); the peer may send PDUs no larger than
announced (``MAX_PDU``) and one message no larger than the imaging limit (a larger one closes
the connection while it arrives, before it fills memory); a decompression bomb is refused
from its header with "Out of Resources". Refusals and failures are DICOM statuses, never a
crash. Log lines name the calling AE, the study id and the SOP class, never patient data.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from medai.platform import audit
from medai.platform.context import Platform
from medai.platform.integration import receive
from medai.services import imaging as imaging_service

log = logging.getLogger("medai.integration")
Dispatch = Callable[[int, int, bool], None]  # (study id, job id, urgent)

MAX_PDU = 256 * 1024  # announced to peers: the largest PDU they may send us
PDU_LIMIT = MAX_PDU + 64 * 1024  # a peer's PDU above this closes the connection
MESSAGE_LIMIT = imaging_service.MAX_BYTES + 1024 * 1024  # one C-STORE message, all PDUs
MAX_ASSOCIATIONS = 6
SUCCESS, OUT_OF_RESOURCES, PROCESSING_FAILURE = 0x0000, 0xA700, 0x0110


class _Budget:
    """What one association's peer may still send before the connection is closed: checked
    on every socket read, so an oversized PDU or message never reaches memory whole."""

    def __init__(self) -> None:
        self.used = 0

    def bound(self, sock: Any) -> None:
        read = sock.recv

        def recv(nr_bytes: int) -> bytearray:
            if nr_bytes > PDU_LIMIT:
                raise OSError(f"a PDU of {nr_bytes:,} bytes is larger than {PDU_LIMIT:,}")
            self.used += nr_bytes
            if self.used > MESSAGE_LIMIT:
                raise OSError(f"a message larger than {MESSAGE_LIMIT:,} bytes")
            return read(nr_bytes)

        sock.recv = recv


class DicomNode:
    """One listening node; ``start`` binds (port 0: a free one, see ``port``), ``stop`` ends
    every association and the server."""

    def __init__(self, p: Platform, dispatch: Dispatch, *, ae_title: str = "MEDAI",
                 host: str = "127.0.0.1", port: int = 11112,
                 allow: tuple[str, ...] | list[str] = (), language: str = "tr") -> None:
        from medai.settings import check_ae_title

        self.p, self.dispatch, self.language = p, dispatch, language
        self.ae_title, self.host, self.port = check_ae_title(ae_title), host, port
        self.allow = tuple(check_ae_title(a) for a in allow)
        self._budgets: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._server: Any = None
        self._ae: Any = None
        self._lock = threading.Lock()

    def _application_entity(self) -> Any:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = MAX_PDU
        ae.maximum_associations = MAX_ASSOCIATIONS
        ae.require_called_aet = True
        ae.require_calling_aet = list(self.allow)
        ae.acse_timeout, ae.dimse_timeout, ae.network_timeout = 30, 30, 60
        # every storage SOP class in every transfer syntax: a study is stored as sent, and
        # the analysis says clearly when it cannot decode it
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        return ae

    def start(self) -> DicomNode:
        from pynetdicom import evt

        self._ae = self._application_entity()
        handlers = [(evt.EVT_CONN_OPEN, self._on_open), (evt.EVT_C_ECHO, self._on_echo),
                    (evt.EVT_C_STORE, self._on_store), (evt.EVT_REJECTED, self._on_rejected)]
        self._server = self._ae.start_server((self.host, self.port), block=False,
                                             evt_handlers=handlers)
        self.port = self._server.server_address[1]
        log.info("DICOM node %s listening on %s:%s (%s)", self.ae_title, self.host, self.port,
                 f"calling AE titles {', '.join(self.allow)}" if self.allow else "any caller")
        return self

    def stop(self) -> None:
        with self._lock:
            if self._ae is not None:
                self._ae.shutdown()
                self._ae = self._server = None

    # --- events ----------------------------------------------------------------------------

    def _on_open(self, event: Any) -> None:
        budget = _Budget()
        self._budgets[event.assoc] = budget
        budget.bound(event.assoc.dul.socket)

    def _on_echo(self, event: Any) -> int:
        self._reset(event)
        return SUCCESS

    def _on_rejected(self, event: Any) -> None:
        calling = str(event.assoc.requestor.ae_title).strip()
        log.warning("DICOM association from %s rejected (calling AE title not allowed, or "
                    "called AE title not %s)", calling, self.ae_title)
        self._audit(event, calling, "denied", "dicom_association", "denied")

    def _audit(self, event: Any, calling: str, action: str, target: str | None, outcome: str,
               **detail: Any) -> None:
        """An audit event for what the node refused (filed instances are audited with their
        row); a failing audit never takes the node down."""
        try:
            with self.p.db.session() as db:
                audit.record(db, audit.Actor(name=f"dicom:{calling}"[:64],
                                             client=_address(event)),
                             action, target, None, outcome=outcome, **detail)
        except Exception as exc:
            log.error("audit of a refused DICOM request failed: %s", type(exc).__name__)

    def _on_store(self, event: Any) -> int:
        self._reset(event)
        calling = str(event.assoc.requestor.ae_title).strip()
        try:
            data = event.encoded_dataset(include_meta=True)
            got = receive.store(self.p, data, calling, _address(event), self.language)
        except receive.Refused as exc:
            log.warning("C-STORE from %s refused with 0x%04X: %s", calling, exc.status,
                        type(exc).__name__)
            self._audit(event, calling, "upload", None, "refused",
                        status=f"0x{exc.status:04X}", reason=type(exc).__name__)
            return exc.status
        except OSError as exc:  # a full or read-only disk: come back later
            log.error("C-STORE from %s not stored: %s", calling, type(exc).__name__)
            return OUT_OF_RESOURCES
        except Exception as exc:  # named to the sender, never a crash of the node
            from medai.core.faults import StorageFault

            status = OUT_OF_RESOURCES if isinstance(exc, StorageFault) else PROCESSING_FAILURE
            log.error("C-STORE from %s failed: %s", calling, type(exc).__name__)
            return status
        if got.job_id is not None:
            try:
                self.dispatch(got.study_id, got.job_id, False)
            except Exception as exc:  # the job row stays queued: a pool or sweeper takes it
                log.error("dispatching study %s failed: %s", got.study_id, type(exc).__name__)
        return SUCCESS

    def _reset(self, event: Any) -> None:
        budget = self._budgets.get(event.assoc)
        if budget is not None:
            budget.used = 0


def _address(event: Any) -> str | None:
    try:
        return str(event.assoc.requestor.address)[:64]
    except Exception:
        return None


def standalone_dispatch(p: Platform) -> tuple[Dispatch, Callable[[], None]]:
    """How ``medai dicom listen`` hands a queued analysis on: to Celery when
    ``MEDAI_BROKER_URL`` is set, else to a pool of ``MEDAI_JOB_THREADS`` analysis threads of
    its own (0: none — a ``medai serve`` on the same database takes the jobs within its
    poll interval). Returns (dispatch, stop)."""
    from medai.settings import get_settings

    settings = get_settings()
    if settings.broker_url:
        from medai.platform.queue import publish

        broker = settings.broker_url

        def publish_job(study_id: int, job_id: int, urgent: bool) -> None:
            publish(broker, study_id, job_id, urgent)

        return publish_job, lambda: None
    if settings.job_threads <= 0:
        return (lambda *_: None), (lambda: None)
    from medai.platform.jobs import JobPool

    pool = JobPool(p, settings.job_threads, settings.job_lease_s)
    pool.start()
    p.watch_models()  # this process analyses: it follows promotions and rollbacks

    def stop() -> None:
        pool.stop()
        p.stop_watching()

    return (lambda *_: pool.notify()), stop
