"""C-STORE against a real DICOM SCP (pynetdicom's own server): a refused association is a
rejection for a person to look at, however late the sender looks at it; a busy peer is an
outage to retry. The race (a rejection that arrives, and closes the connection, before the
requesting thread looks) is made certain with pynetdicom's own event hooks, not by load."""

from __future__ import annotations

import threading

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

pynetdicom = pytest.importorskip("pynetdicom")

from helpers.platform import free_port, refusing_port  # noqa: E402
from medai.platform.delivery.destinations import (  # noqa: E402
    DestinationRejected,
    DestinationUnavailable,
)
from medai.platform.delivery.destinations.dicom import c_store  # noqa: E402

SCP_AET = "STORE_SCP"


def capture(seed: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(seed)])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["study", str(seed)])
    ds.PatientID = f"P{seed}"
    return ds


@pytest.fixture
def scp():
    """A store SCP that checks the called AE title; yields (port, stored UIDs, its AE)."""
    from pynetdicom import AE, evt

    stored: list[str] = []

    def on_store(event):
        stored.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    ae = AE(ae_title=SCP_AET)
    ae.require_called_aet = True
    ae.add_supported_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    yield port, stored, ae
    server.shutdown()


def late_looker(monkeypatch):
    """Make the requesting thread look at the answer only after the connection has closed:
    it waits (in its own EVT_REQUESTED hook) for the reader thread's EVT_CONN_CLOSE."""
    from pynetdicom import AE, evt

    closed = threading.Event()
    real = AE.associate

    def associate(self, *args, evt_handlers=None, **kwargs):
        hooks = list(evt_handlers or []) + [
            (evt.EVT_CONN_CLOSE, lambda event: closed.set()),
            (evt.EVT_REQUESTED, lambda event: closed.wait(30)),
        ]
        return real(self, *args, evt_handlers=hooks, **kwargs)

    monkeypatch.setattr(AE, "associate", associate)
    return closed


def test_a_store_to_the_right_title_is_stored(scp):
    port, stored, _ae = scp
    (outcome,) = c_store([capture(1)], SCP_AET, "127.0.0.1", port, timeout=10)
    assert outcome.stored and stored == [outcome.sop_instance_uid]


@pytest.mark.parametrize("late", [False, True], ids=["prompt", "rejection-seen-late"])
def test_a_wrong_called_title_is_a_rejection_however_late_it_is_read(scp, late, monkeypatch):
    port, stored, _ae = scp
    closed = late_looker(monkeypatch) if late else None
    with pytest.raises(DestinationRejected) as err:
        c_store([capture(2)], "NOT_THE_SCP", "127.0.0.1", port, timeout=10)
    assert err.value.reason == "association rejected" and stored == []
    assert [o.stored for o in err.value.outcomes] == [False]
    if closed is not None:
        assert closed.is_set()  # the race really happened: the socket closed before the look


def test_a_busy_peer_is_unavailable_not_rejected(scp, monkeypatch):
    """A transient rejection (the SCP's association limit) is retried later."""
    from pynetdicom import AE

    port, stored, ae = scp
    ae.maximum_associations = 1
    holder = AE(ae_title="HOLDER")
    holder.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    held = holder.associate("127.0.0.1", port, ae_title=SCP_AET)
    assert held.is_established
    try:
        late_looker(monkeypatch)
        with pytest.raises(DestinationUnavailable) as err:
            c_store([capture(3)], SCP_AET, "127.0.0.1", port, timeout=10)
        assert err.value.reason == "association rejected" and stored == []
    finally:
        held.release()


def test_nobody_listening_is_unavailable():
    with refusing_port() as port, pytest.raises(DestinationUnavailable) as err:
        c_store([capture(4)], SCP_AET, "127.0.0.1", port, timeout=5)
    assert "could not associate" in err.value.reason
