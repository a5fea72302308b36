"""The DICOM node's association limits, with real pynetdicom peers against the real node:
too many associations from one calling AE title, from one address or in all are rejected
(A-ASSOCIATE-RJ transient, local limit exceeded) and the log names the limit, not the AE
title; an association that only echoes is aborted once it has stored nothing for the idle
time (a fake clock drives it), one that stores is kept."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest

from helpers.dicom import make_dicom
from helpers.platform import clinic

REJECTED_TRANSIENT, PRESENTATION_PROVIDER, LOCAL_LIMIT = 0x02, 0x03, 0x02


class FakeClock:
    """A monotonic clock the test moves: the reaper sees time pass without anyone waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def site(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("dicom-limits")
    with clinic("sqlite", home, tfidf_model_dir, tiny_imaging_dir) as (app, _client):
        yield SimpleNamespace(p=app.state.platform, home=home)


@pytest.fixture
def start_node(site):
    """Starts nodes on free ports with the given limits; stops them after the test."""
    from medai.platform.intake.dicom_node import DicomNode, Limits

    started = []

    def start(clock=time.monotonic, **limits):
        node = DicomNode(
            site.p, lambda *_: None, port=0, limits=Limits(**limits), clock=clock
        ).start()
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


def associate(port: int, aet: str = "MODALITY", source: str = "127.0.0.1", store: bool = False):
    """An association from a pynetdicom peer (Verification; CR storage with ``store``)."""
    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = AE(ae_title=aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    ae.add_requested_context(Verification)
    if store:
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.1", ExplicitVRLittleEndian)
    return ae.associate("127.0.0.1", port, ae_title="MEDAI", bind_address=(source, 0))


def rejected_for_a_limit(assoc) -> bool:
    rj = assoc.acceptor.primitive
    return assoc.is_rejected and (rj.result, rj.result_source, rj.diagnostic) == (
        REJECTED_TRANSIENT,
        PRESENTATION_PROVIDER,
        LOCAL_LIMIT,
    )


def wait_for(condition, timeout: float = 20.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes (never a timing assert)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def refusals(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "medai.integration" and "refused:" in r.getMessage()
    ]


def test_associations_over_each_limit_are_rejected_naming_the_limit(start_node, caplog):
    caplog.set_level(logging.INFO, logger="medai.integration")
    node = start_node(total=4, per_ae=2, per_address=3, idle_s=600)
    held = [associate(node.port, "MODALITY"), associate(node.port, "MODALITY")]
    assert all(a.is_established for a in held)

    over_ae = associate(node.port, "MODALITY")  # a third from this AE title
    assert rejected_for_a_limit(over_ae)
    held.append(associate(node.port, "PACS"))  # another AE title may: three from 127.0.0.1
    assert held[-1].is_established
    over_address = associate(node.port, "PACS")
    assert rejected_for_a_limit(over_address)
    held.append(associate(node.port, "CT", source="127.0.0.2"))  # another address may
    assert held[-1].is_established
    over_total = associate(node.port, "US", source="127.0.0.3")  # the fifth in all
    assert rejected_for_a_limit(over_total)

    assert refusals(caplog) == [
        "DICOM association from AE MODALITY at 127.0.0.1 refused: 2 already open from this "
        "AE title (limit 2)",
        "DICOM association from AE PACS at 127.0.0.1 refused: 3 already open from this "
        "address (limit 3)",
        "DICOM association from AE US at 127.0.0.3 refused: 4 associations already open (limit 4)",
    ]
    assert not any("AE title not" in r.getMessage() for r in caplog.records)
    assert all(a.send_c_echo().Status == 0 for a in held)  # the admitted ones still work

    held.pop(0).release()  # a slot given back is a slot again
    assert wait_for(lambda: node.open_associations() == 3)
    again = associate(node.port, "MODALITY")
    assert again.is_established
    for a in [*held, again]:
        a.release()
    assert wait_for(lambda: node.open_associations() == 0)


def test_echoes_do_not_keep_an_association_open_and_stores_do(start_node, site, caplog, tmp_path):
    import pydicom

    caplog.set_level(logging.INFO, logger="medai.integration")
    clock = FakeClock()
    node = start_node(clock=clock, total=8, per_ae=8, per_address=8, idle_s=30)
    echoer = associate(node.port, "MODALITY")
    storer = associate(node.port, "PACS", store=True)
    assert echoer.is_established and storer.is_established
    clock.advance(20)
    assert echoer.send_c_echo().Status == 0  # answered, but no work
    path = make_dicom(tmp_path / "kept.dcm", accession="IDLE-1")
    assert storer.send_c_store(pydicom.dcmread(path)).Status == 0  # work, at 20 s
    assert echoer.send_c_echo().Status == 0
    clock.advance(15)  # 35 s after the echoer opened, 15 s after the storer stored
    node.reap()
    assert wait_for(lambda: echoer.is_aborted or not echoer.is_alive())
    assert storer.is_established and storer.send_c_echo().Status == 0
    aborted = [r.getMessage() for r in caplog.records if "aborted:" in r.getMessage()]
    assert aborted == [
        "DICOM association from AE MODALITY at 127.0.0.1 aborted: nothing "
        "stored for 35 s (limit 30 s; C-ECHO does not count)"
    ]
    clock.advance(31)  # the storer has stored nothing since
    node.reap()
    assert wait_for(lambda: storer.is_aborted or not storer.is_alive())
    assert wait_for(lambda: node.open_associations() == 0)
    assert associate(node.port, "MODALITY").is_established  # the slots are free again


def test_the_reaper_aborts_an_echo_only_association_on_its_own(start_node):
    node = start_node(total=2, per_ae=2, per_address=2, idle_s=1)
    echoer = associate(node.port, "MODALITY")
    assert echoer.is_established

    def echoing_until_aborted() -> bool:
        if echoer.is_established:
            echoer.send_c_echo()  # every 50 ms: never idle for the network timeout
        return echoer.is_aborted or not echoer.is_alive()

    assert wait_for(echoing_until_aborted)
    assert wait_for(lambda: node.open_associations() == 0)
