"""The DICOM node: a Storage SCP (C-STORE) and Verification SCP (C-ECHO) on pynetdicom, so that
modalities and the PACS send studies to medai the way they send them anywhere else.

Run by ``medai dicom listen`` or inside ``medai serve --dicom-port``, on the same database and
blob store as the API: a received instance is filed like a browser upload (``receive``), so
it shows in the worklist and is analysed by the same job machinery. The C-STORE handler only
stores, files and queues — the model never runs inside it — so the sender gets its answer in
milliseconds.

Bounded: an association must call this node's AE title and come from a calling AE title the
site allowed (``MEDAI_DICOM_ALLOW``): others are rejected, and an empty list — a fresh
install's — rejects every association, the log saying why (``["*"]`` admits any caller, an
explicit choice). With a certificate and key (``MEDAI_DICOM_TLS_CERT``/``_KEY``) the node
speaks only DICOM TLS (PS3.15 B.1) on its port; with ``MEDAI_DICOM_TLS_CA`` a sender must also
present a certificate that CA signed. The peer may send PDUs no larger than
announced (``MAX_PDU``) and one message no larger than the imaging limit (a larger one closes
the connection while it arrives, before it fills memory); a decompression bomb is refused
from its header with "Out of Resources". Refusals and failures are DICOM statuses, never a
crash. Log lines name the calling AE, the study id and the SOP class, never patient data.

Associations are limited (``Limits``, from ``MEDAI_DICOM_MAX_*`` and ``MEDAI_DICOM_IDLE_S``):
at most so many open at once from one calling AE title, from one peer address and in all;
one over a limit is rejected with A-ASSOCIATE-RJ "rejected (transient), service provider
(presentation), local limit exceeded", and the log names the limit that was reached. An
association that has stored nothing for ``idle_s`` is aborted by a reaper thread, however many
C-ECHOs it sends (pynetdicom's own network timeout restarts with every PDU, so an echo every
25 s kept six associations — every slot — open for good). A C-STORE being handled, or one
whose bytes are arriving (``MIN_RATE``), is work.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medai.core.faults import StorageFault
from medai.destinations_config import check_ae_title
from medai.platform.access import audit
from medai.platform.context import Platform
from medai.platform.intake import receive
from medai.platform.ops import key_check
from medai.services import imaging as imaging_service
from medai.settings import DicomSettings, check_allow_list

log = logging.getLogger("medai.integration")
Dispatch = Callable[[int, int, bool], None]  # (study id, job id, urgent)

MAX_PDU = 256 * 1024  # announced to peers: the largest PDU they may send us
PDU_LIMIT = MAX_PDU + 64 * 1024  # a peer's PDU above this closes the connection
MESSAGE_LIMIT = imaging_service.MAX_BYTES + 1024 * 1024  # one C-STORE message, all PDUs
SUCCESS, OUT_OF_RESOURCES, PROCESSING_FAILURE = 0x0000, 0xA700, 0x0110
UNACCEPTABLE = receive.Unacceptable.dicom_status  # 0xA900 Data Set does not match SOP Class
# A-ASSOCIATE-RJ: rejected (transient), DUL service provider (presentation), local limit
LIMIT_REJECTION = (0x02, 0x03, 0x02)
# A-ASSOCIATE-RJ: rejected (permanent), DUL service user, calling AE title not recognised
CALLING_REJECTION = (0x01, 0x01, 0x03)
ANY_CALLER = "*"  # in the allow list: any calling AE title (settings.ANY_CALLER)
MIN_RATE = 32 * 1024  # bytes/s: a C-STORE arriving at least this fast is work, not idling


@dataclass(frozen=True)
class Limits:
    """How many associations may be open at once (from one calling AE title, from one peer
    address, in all) and how long one may stay open without storing anything."""

    total: int = 12
    per_ae: int = 6
    per_address: int = 6
    idle_s: float = 60.0

    @classmethod
    def from_settings(cls, dicom: DicomSettings) -> Limits:
        return cls(
            total=dicom.dicom_max_associations,
            per_ae=dicom.dicom_max_per_ae,
            per_address=dicom.dicom_max_per_address,
            idle_s=dicom.dicom_idle_s,
        )

    @property
    def tick_s(self) -> float:
        """How often the reaper looks: a quarter of the idle time, at most 5 s."""
        return min(max(self.idle_s / 4, 0.05), 5.0)


@dataclass
class _Open:
    """One admitted association, as the limits and the reaper see it."""

    calling: str
    address: str
    last_work: float  # when it was admitted, stored, or its message's bytes last arrived
    busy: int = 0  # C-STOREs being handled now
    seen: int = 0  # the bytes of its message in transit at the reaper's last look
    seen_at: float = 0.0


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

    def __init__(
        self,
        p: Platform,
        dispatch: Dispatch,
        *,
        ae_title: str = "MEDAI",
        host: str = "127.0.0.1",
        port: int = 11112,
        allow: tuple[str, ...] | list[str] | None = None,
        language: str = "tr",
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
        tls: ssl.SSLContext | bool | None = None,
    ) -> None:
        """``allow``: the calling AE titles admitted (None: ``MEDAI_DICOM_ALLOW``; empty: none;
        ``("*",)``: any). ``tls``: an SSL context to serve DICOM TLS with, False for plain
        DICOM, None for what the settings say (``server_tls_from_settings``). What is not
        given comes from the platform's ``settings.dicom``."""
        dicom = p.settings.dicom
        self.p, self.dispatch, self.language = p, dispatch, language
        self.ae_title, self.host, self.port = check_ae_title(ae_title), host, port
        self.allow = tuple(check_allow_list(dicom.dicom_allow if allow is None else allow))
        self.any_caller = self.allow == (ANY_CALLER,)
        self.tls = server_tls_from_settings(dicom) if tls is None else (tls or None)
        self.limits = limits or Limits.from_settings(dicom)
        self._clock = clock  # a test's fake clock drives the reaper without waiting
        self._budgets: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._open: dict[Any, _Open] = {}  # admitted associations (guarded by _admission)
        self._admission = threading.Lock()
        self._stopping = threading.Event()
        self._reaper: threading.Thread | None = None
        self._server: Any = None
        self._ae: Any = None
        self._lock = threading.Lock()

    def _application_entity(self) -> Any:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # made at import

        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = MAX_PDU
        ae.maximum_associations = self.limits.total  # pynetdicom's own cap, as a backstop
        ae.require_called_aet = True
        # pynetdicom admits any caller with an empty list: "none allowed" is refused in
        # _on_requested instead, with its own reason
        ae.require_calling_aet = [] if self.any_caller else list(self.allow)
        ae.acse_timeout, ae.dimse_timeout, ae.network_timeout = 30, 30, 60
        # every storage SOP class in every transfer syntax: a study is stored as sent, and
        # the analysis says clearly when it cannot decode it
        for cx in AllStoragePresentationContexts:
            # pynetdicom's storage contexts all name their abstract syntax
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)  # type: ignore[arg-type]
        ae.add_supported_context(Verification)
        return ae

    def start(self) -> DicomNode:
        """Listen; refused (``KeysMissing``, naming the key ids) when this process's keys
        open none of the site's sealed data: a study filed then would be sealed under a key
        the rest of the site does not share."""
        from pynetdicom import evt

        key_check.check_ready(self.p)
        self._ae = self._application_entity()
        handlers = [
            (evt.EVT_CONN_OPEN, self._on_open),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_CONN_CLOSE, self._on_close),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_DIMSE_RECV, self._on_dimse_recv),
            (evt.EVT_REJECTED, self._on_rejected),
        ]
        self._server = self._ae.start_server(
            (self.host, self.port), block=False, evt_handlers=handlers, ssl_context=self.tls
        )
        self.port = self._server.server_address[1]
        self._stopping.clear()
        self._reaper = threading.Thread(
            target=self._reap_loop, name="medai-dicom-reaper", daemon=True
        )
        self._reaper.start()
        log.info(
            "DICOM node %s listening on %s:%s (%s; %s)",
            self.ae_title,
            self.host,
            self.port,
            "DICOM TLS" if self.tls is not None else "plain DICOM, no TLS",
            "any calling AE title"
            if self.any_caller
            else f"calling AE titles {', '.join(self.allow)}"
            if self.allow
            else "no calling AE title allowed",
        )
        if not self.allow:
            log.warning(
                "DICOM node %s refuses every association: MEDAI_DICOM_ALLOW names no calling "
                "AE title (a fresh install's default); list the modalities and the PACS that "
                'may send, e.g. MEDAI_DICOM_ALLOW=\'["CR01", "PACS"]\' (docs/integration.md)',
                self.ae_title,
            )
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            if self._ae is not None:
                self._ae.shutdown()
                self._ae = self._server = None
        if self._reaper is not None:
            self._reaper.join(timeout=10)
            self._reaper = None

    # --- association limits ----------------------------------------------------------------

    def open_associations(self) -> int:
        """Associations admitted and not yet closed."""
        with self._admission:
            return len(self._open)

    def _refusal(self, calling: str, address: str) -> tuple[str, str] | None:
        """(audit reason, log reason) when a new association from ``calling`` at ``address``
        would pass a limit; call with ``_admission`` held."""
        limits, open_ = self.limits, list(self._open.values())
        from_address = sum(o.address == address for o in open_)
        if from_address >= limits.per_address:
            return "per_address_limit", (
                f"{from_address} already open from this address (limit {limits.per_address})"
            )
        from_ae = sum(o.calling == calling for o in open_)
        if from_ae >= limits.per_ae:
            return "per_ae_limit", (
                f"{from_ae} already open from this AE title (limit {limits.per_ae})"
            )
        if len(open_) >= limits.total:
            return "total_limit", (f"{len(open_)} associations already open (limit {limits.total})")
        return None

    def _addressed_here(self, calling: str, called: str) -> bool:
        """Whether pynetdicom's own checks would accept the AE titles: a wrong one is
        rejected there, permanently, with its own reason (``_on_rejected``)."""
        return called == self.ae_title and (self.any_caller or calling in self.allow)

    def _on_requested(self, event: Any) -> None:
        """Admit an A-ASSOCIATE-RQ within the limits, or reject it (transient, local limit
        exceeded) naming the limit in the log and the audit."""
        assoc = event.assoc
        request = assoc.requestor.primitive
        calling = str(request.calling_ae_title).strip()
        called = str(request.called_ae_title).strip()
        if called == self.ae_title and not self.allow:
            self._refuse_unlisted(event, calling)
            return
        if not self._addressed_here(calling, called):
            return
        address = _address(event) or "?"
        with self._admission:
            refused = self._refusal(calling, address)
            if refused is None:
                now = self._clock()
                self._open[assoc] = _Open(calling, address, last_work=now, seen_at=now)
                return
        reason, why = refused
        log.warning("DICOM association from AE %s at %s refused: %s", calling, address, why)
        self._audit(event, calling, "denied", "dicom_association", "denied", reason=reason)
        assoc.acse.send_reject(*LIMIT_REJECTION)
        assoc.kill()  # as pynetdicom's own rejection does: the RJ is sent, the thread ends

    def _refuse_unlisted(self, event: Any, calling: str) -> None:
        """No calling AE title is allowed (MEDAI_DICOM_ALLOW empty): reject permanently
        ("calling AE title not recognised"), saying in the log what to configure."""
        address = _address(event) or "?"
        log.warning(
            "DICOM association from AE %s at %s rejected: no calling AE title is allowed "
            "(MEDAI_DICOM_ALLOW is empty; list the modalities and PACS that may send)",
            calling,
            address,
        )
        self._audit(event, calling, "denied", "dicom_association", "denied", reason="no_ae_allowed")
        event.assoc.acse.send_reject(*CALLING_REJECTION)
        event.assoc.kill()

    def _on_close(self, event: Any) -> None:
        with self._admission:
            self._open.pop(event.assoc, None)

    def _working(self, event: Any, busy: int) -> None:
        """A C-STORE starts (+1) or ends (-1): work, which restarts the idle time."""
        with self._admission:
            entry = self._open.get(event.assoc)
            if entry is not None:
                entry.busy += busy
                entry.last_work = self._clock()

    def reap(self) -> list[Any]:
        """Abort every association idle for longer than ``limits.idle_s`` (nothing stored,
        no C-STORE arriving); the ones aborted."""
        now, idle = self._clock(), []
        with self._admission:
            for assoc, entry in list(self._open.items()):
                if not assoc.is_alive():  # ended without a close event
                    self._open.pop(assoc, None)
                    continue
                self._note_transit(assoc, entry, now)
                if not entry.busy and now - entry.last_work > self.limits.idle_s:
                    self._open.pop(assoc, None)
                    idle.append((assoc, entry))
        for assoc, entry in idle:
            log.warning(
                "DICOM association from AE %s at %s aborted: nothing stored for "
                "%.0f s (limit %.0f s; C-ECHO does not count)",
                entry.calling,
                entry.address,
                now - entry.last_work,
                self.limits.idle_s,
            )
            # blocking until the peer closes (at most the ACSE timeout): not on this thread
            threading.Thread(target=assoc.abort, name="medai-dicom-abort", daemon=True).start()
        return [assoc for assoc, _ in idle]

    def _note_transit(self, assoc: Any, entry: _Open, now: float) -> None:
        """A message arriving at ``MIN_RATE`` or faster is a C-STORE on its way: work."""
        budget = self._budgets.get(assoc)
        used = budget.used if budget is not None else 0
        if used > entry.seen and used - entry.seen >= MIN_RATE * max(now - entry.seen_at, 0):
            entry.last_work = now
        entry.seen, entry.seen_at = used, now

    def _reap_loop(self) -> None:
        while not self._stopping.wait(self.limits.tick_s):
            try:
                self.reap()
            except Exception as exc:  # broad: the reaper thread never dies (logged)
                log.error("DICOM association reaper: %s", type(exc).__name__)

    # --- events ----------------------------------------------------------------------------

    def _on_open(self, event: Any) -> None:
        from pynetdicom import evt
        from pynetdicom._handlers import standard_dimse_recv_handler

        budget = _Budget()
        self._budgets[event.assoc] = budget
        budget.bound(event.assoc.dul.socket)
        # pynetdicom's logging handler runs before ours and raises AttributeError on a C-STORE
        # request without its SOP Instance UID, which stops every handler after it:
        # ``_on_dimse_recv`` calls it itself, after answering such a request
        event.assoc.unbind(evt.EVT_DIMSE_RECV, standard_dimse_recv_handler)

    def _on_echo(self, event: Any) -> int:
        self._reset(event)
        return SUCCESS

    def _on_rejected(self, event: Any) -> None:
        """pynetdicom's own rejections: a calling AE title not allowed, a called AE title not
        this node's, its backstop on the number of associations."""
        calling = str(event.assoc.requestor.ae_title).strip()
        why, reason = _rejection(event.assoc, self.ae_title)
        log.warning(
            "DICOM association from AE %s at %s rejected: %s", calling, _address(event) or "?", why
        )
        self._audit(event, calling, "denied", "dicom_association", "denied", reason=reason)

    def _audit(
        self, event: Any, calling: str, action: str, target: str | None, outcome: str, **detail: Any
    ) -> None:
        """An audit event for what the node refused (filed instances are audited with their
        row); a failing audit never takes the node down."""
        try:
            with self.p.db.session() as db:
                audit.record(
                    db,
                    audit.Actor(name=f"dicom:{calling}"[:64], client=_address(event)),
                    action,
                    target,
                    None,
                    outcome=outcome,
                    **detail,
                )
        except Exception as exc:  # broad: never changes the peer's answer (logged)
            log.error("audit of a refused DICOM request failed: %s", type(exc).__name__)

    def _on_store(self, event: Any) -> Any:
        self._reset(event)
        self._working(event, +1)
        try:
            return self._store(event)
        finally:
            self._working(event, -1)

    def _on_dimse_recv(self, event: Any) -> None:
        """A C-STORE request without its Affected SOP Instance UID (an instance whose
        SOPInstanceUID is empty: the sender copies it into the request) is no valid request to
        pynetdicom, which drops it without an answer; the sender then waits out its timeout and
        aborts, with no status to log. It is answered here instead, as any instance without its
        UID is: 0xA900 with an Error Comment naming the attribute, the association kept."""
        from pynetdicom import _config
        from pynetdicom._handlers import standard_dimse_recv_handler
        from pynetdicom.dimse_primitives import C_STORE

        message = event.message
        command = message.command_set
        if (
            type(message).__name__ != "C_STORE_RQ"
            or str(command.get("AffectedSOPInstanceUID", "") or "").strip(" \x00")
            or command.get("MessageID") is None  # nothing to answer to
        ):
            if _config.LOG_HANDLER_LEVEL == "standard":  # what ``_on_open`` unbound
                standard_dimse_recv_handler(event)
            return  # a whole request: the C-STORE handler checks the dataset's values
        calling = str(event.assoc.requestor.ae_title).strip()
        why = "SOPInstanceUID: empty or absent"
        log.warning(
            "C-STORE from %s refused with 0x%04X (%s): %s",
            calling,
            UNACCEPTABLE,
            "Unacceptable",
            why,
        )
        self._audit(
            event,
            calling,
            "upload",
            None,
            "refused",
            status=f"0x{UNACCEPTABLE:04X}",
            reason="Unacceptable",
            why=why,
        )
        rsp = C_STORE()
        rsp.MessageIDBeingRespondedTo = command.get("MessageID")
        sop_class = str(command.get("AffectedSOPClassUID", "") or "").strip(" \x00")
        if sop_class:
            try:
                rsp.AffectedSOPClassUID = sop_class
            except ValueError:  # not one pynetdicom sends back: the response goes without it
                pass
        # pynetdicom types ErrorComment as None; its setter takes a string
        rsp.Status, rsp.ErrorComment = UNACCEPTABLE, why  # type: ignore[assignment]
        try:
            event.assoc.dimse.send_msg(rsp, message.context_id)
        except Exception as exc:  # broad: pynetdicom raises many types to a peer gone (logged)
            log.error("answering a C-STORE without its UID failed: %s", type(exc).__name__)

    def _store(self, event: Any) -> Any:
        calling = str(event.assoc.requestor.ae_title).strip()
        try:
            data = event.encoded_dataset(include_meta=True)
            got = receive.store(self.p, data, calling, _address(event), self.language)
        except receive.Quarantined as exc:  # recorded and audited with its study
            return _status(exc.dicom_status, exc.comment)
        except receive.Refused as exc:  # its text names a rule and an attribute, no value
            log.warning(
                "C-STORE from %s refused with 0x%04X (%s): %s",
                calling,
                exc.dicom_status,
                type(exc).__name__,
                exc,
            )
            self._audit(
                event,
                calling,
                "upload",
                None,
                "refused",
                status=f"0x{exc.dicom_status:04X}",
                reason=type(exc).__name__,
                why=str(exc)[:200],
            )
            return _status(exc.dicom_status, str(exc))
        except OSError as exc:  # a full or read-only disk: come back later
            log.error("C-STORE from %s not stored: %s", calling, type(exc).__name__)
            return OUT_OF_RESOURCES
        except Exception as exc:  # broad: named to the sender, never a crash of the node (logged)
            status = OUT_OF_RESOURCES if isinstance(exc, StorageFault) else PROCESSING_FAILURE
            log.error("C-STORE from %s failed: %s", calling, type(exc).__name__)
            return status
        if got.job_id is not None:
            try:
                self.dispatch(got.study_id, got.job_id, False)
            except Exception as exc:  # broad: the job row stays queued (logged)
                log.error("dispatching study %s failed: %s", got.study_id, type(exc).__name__)
        return SUCCESS

    def _reset(self, event: Any) -> None:
        budget = self._budgets.get(event.assoc)
        if budget is not None:
            budget.used = 0


def server_tls_context(cert: Path, key: Path, ca: Path | None = None) -> ssl.SSLContext:
    """The node's TLS: TLS 1.2 or newer, this certificate and key; with ``ca``, a sender must
    present a certificate that CA signed (mutual TLS). A file that is missing or not PEM
    raises (OSError, ssl.SSLError): the node does not start on a TLS setting it cannot honour."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
    if ca is not None:
        ctx.load_verify_locations(cafile=str(ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def server_tls_from_settings(dicom: DicomSettings) -> ssl.SSLContext | None:
    """``MEDAI_DICOM_TLS_CERT``/``_KEY``/``_CA`` as a server context; None when unset."""
    if dicom.dicom_tls_cert is None or dicom.dicom_tls_key is None:
        return None
    return server_tls_context(dicom.dicom_tls_cert, dicom.dicom_tls_key, dicom.dicom_tls_ca)


def _status(status: int, comment: str) -> Any:
    """A C-STORE response status with its ErrorComment (0000,0902), which the sender logs."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.Status, ds.ErrorComment = status, comment[:64]
    return ds


def _rejection(assoc: Any, ae_title: str) -> tuple[str, str]:
    """(log text, audit reason) of a rejection pynetdicom sent."""
    primitive = getattr(assoc.acceptor, "primitive", None)
    source = getattr(primitive, "result_source", None), getattr(primitive, "diagnostic", None)
    if source == (0x01, 0x03):
        return "calling AE title not in the allow list", "calling_ae_not_allowed"
    if source == (0x01, 0x07):
        return f"called AE title is not {ae_title}", "called_ae_wrong"
    if source == (0x03, 0x02):
        return "too many associations open (local limit exceeded)", "total_limit"
    return "refused by the association negotiation", "rejected"


def _address(event: Any) -> str | None:
    try:
        return str(event.assoc.requestor.address)[:64]
    except (AttributeError, ValueError):  # no address: a test's or a closed association
        return None
