"""Who may talk to the DICOM node, and how (issue 57, item 9): a fresh install admits no calling
AE title (an empty MEDAI_DICOM_ALLOW refuses every association, saying why in the log and the
audit), the site's list admits only those titles, ``*`` alone admits any; DICOM TLS with a
certificate and key, and mutual TLS with a CA. Real associations from pynetdicom peers; the
certificates are made here with ``cryptography``."""

from __future__ import annotations

import logging
import ssl
from types import SimpleNamespace

import pytest

from helpers.pki import client_context, write_pki
from helpers.platform import bearer, clinic

REJECTED_PERMANENT, SERVICE_USER, CALLING_NOT_RECOGNISED = 0x01, 0x01, 0x03


@pytest.fixture(scope="module")
def site(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("dicom-security")
    with clinic("sqlite", home, tfidf_model_dir, tiny_imaging_dir) as (app, client):
        yield SimpleNamespace(p=app.state.platform, client=client, home=home)


@pytest.fixture
def start_node(site):
    from medai.platform.intake.dicom_node import DicomNode

    started = []

    def start(**options):
        options.setdefault("tls", False)
        node = DicomNode(site.p, lambda *_: None, port=0, **options).start()
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


def associate(port: int, aet: str, tls: ssl.SSLContext | None = None):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = AE(ae_title=aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_requested_context(Verification)
    return ae.associate(
        "127.0.0.1", port, ae_title="MEDAI", tls_args=(tls, "localhost") if tls else None
    )


def echo_ok(assoc) -> bool:
    try:
        return assoc.is_established and assoc.send_c_echo().Status == 0
    finally:
        if assoc.is_established:
            assoc.release()


def rejected_as_unknown_caller(assoc) -> bool:
    rj = assoc.acceptor.primitive
    return assoc.is_rejected and (rj.result, rj.result_source, rj.diagnostic) == (
        REJECTED_PERMANENT,
        SERVICE_USER,
        CALLING_NOT_RECOGNISED,
    )


def test_a_fresh_install_admits_no_calling_ae_title(monkeypatch):
    from medai.settings import Settings

    monkeypatch.delenv("MEDAI_DICOM_ALLOW", raising=False)
    assert Settings().dicom.dicom_allow == []


def test_an_empty_allow_list_refuses_every_association_saying_why(site, start_node, caplog):
    caplog.set_level(logging.INFO, logger="medai.integration")
    node = start_node(allow=())
    assert any("refuses every association" in r.getMessage() for r in caplog.records)
    for aet in ("MODALITY", "PACS", "ANYONE"):
        assoc = associate(node.port, aet)
        assert rejected_as_unknown_caller(assoc), aet
    said = [r.getMessage() for r in caplog.records if "rejected: no calling AE" in r.getMessage()]
    assert len(said) == 3 and "MEDAI_DICOM_ALLOW is empty" in said[0]
    events = site.client.get(
        "/api/v1/audit",
        headers=bearer(site.client, "admin"),
        params={"action": "denied", "actor": "dicom:ANYONE", "order": "asc"},
    ).json()["items"]
    assert events and events[0]["target_type"] == "dicom_association"
    assert "no_ae_allowed" in str(events[0])


def test_the_settings_list_admits_its_titles_only(site, start_node, monkeypatch):
    from medai.settings import Settings

    monkeypatch.setenv("MEDAI_DICOM_ALLOW", '["CR01"]')
    monkeypatch.setattr(site.p, "settings", Settings())  # a platform opened with it set
    node = start_node()  # allow=None: the platform's MEDAI_DICOM_ALLOW
    assert node.allow == ("CR01",)
    assert echo_ok(associate(node.port, "CR01"))
    assert associate(node.port, "STRANGER").is_rejected


def test_a_star_alone_admits_any_caller(start_node):
    from medai.settings import check_allow_list

    node = start_node(allow=("*",))
    assert echo_ok(associate(node.port, "WHOEVER"))
    with pytest.raises(ValueError, match="stands alone"):
        check_allow_list(["*", "CR01"])


# --- DICOM TLS ------------------------------------------------------------------------------


def test_dicom_tls_association_and_echo(start_node, tmp_path):
    from medai.platform.intake.dicom_node import server_tls_context

    pki = write_pki(tmp_path / "pki")
    node = start_node(allow=("CR01",), tls=server_tls_context(pki.node_cert, pki.node_key))
    assert echo_ok(associate(node.port, "CR01", client_context(pki, with_cert=False)))
    plain = associate(node.port, "CR01")  # a peer without TLS gets no association
    assert not plain.is_established
    # over TLS the calling AE title list still decides
    assert associate(node.port, "STRANGER", client_context(pki, with_cert=False)).is_rejected


def test_mutual_tls_requires_a_sender_certificate_from_the_ca(start_node, tmp_path):
    from medai.platform.intake.dicom_node import server_tls_context

    pki = write_pki(tmp_path / "pki")
    node = start_node(allow=("CR01",), tls=server_tls_context(pki.node_cert, pki.node_key, pki.ca))
    assert echo_ok(associate(node.port, "CR01", client_context(pki, with_cert=True)))
    assert not associate(node.port, "CR01", client_context(pki, with_cert=False)).is_established


def test_tls_settings_come_in_pairs_and_a_missing_file_stops_the_node(tmp_path, monkeypatch):
    from pydantic import ValidationError

    from medai.platform.intake.dicom_node import server_tls_from_settings
    from medai.settings import Settings, get_settings

    with pytest.raises(ValidationError, match="go together"):
        Settings(dicom_tls_cert=tmp_path / "a.crt")
    monkeypatch.setenv("MEDAI_DICOM_TLS_CERT", str(tmp_path / "missing.crt"))
    monkeypatch.setenv("MEDAI_DICOM_TLS_KEY", str(tmp_path / "missing.key"))
    get_settings.cache_clear()
    try:
        with pytest.raises(OSError):
            server_tls_from_settings(get_settings().dicom)
    finally:
        monkeypatch.delenv("MEDAI_DICOM_TLS_CERT")
        monkeypatch.delenv("MEDAI_DICOM_TLS_KEY")
        get_settings.cache_clear()
