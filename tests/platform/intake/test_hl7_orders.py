"""HL7 v2 imaging orders over MLLP (issue 69 §3): the RIS sends the order, with its clinical
question, before the images arrive, or after them; either way the study of the same accession
states the question (page, draft, PDF), a red-flag question or a STAT priority ranks it, and
the order's question, priority and ordering physician are kept sealed.

The listener is the real one on a free port; the sender is a real MLLP client (a TCP socket
framing each message with 0x0B … 0x1C 0x0D and reading the ACK back), as a RIS's interface
engine does."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import pytest

from helpers.dicom import make_dicom, stow
from helpers.hl7 import ACUTE, CALM, END, START, omi, orm, send
from helpers.pki import client_context, write_pki
from helpers.platform import bearer, clinic


@pytest.fixture
def hospital(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    """A platform and its HL7 listener, taking the RIS's orders."""
    from medai.platform.intake.hl7_listener import Hl7Listener

    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as (app, client):
        listener = Hl7Listener(app.state.platform, port=0, allow=["RIS"], idle_s=10)
        listener.start()
        try:
            yield app, client, listener.port
        finally:
            listener.stop()


def _images(tmp_path, client, headers, accession: str, patient: str = "P-1", seed: int = 0):
    blob = make_dicom(
        tmp_path / f"{accession}-{seed}.dcm", accession=accession, patient_id=patient, seed=seed
    ).read_bytes()
    stow(client, headers, blob)
    (found,) = client.get(
        "/api/v1/studies", headers=headers, params={"accession": accession}
    ).json()["items"]
    return client.get(f"/api/v1/studies/{found['id']}", headers=headers).json()


def test_an_order_is_read_where_ris_put_it():
    from medai.platform.intake import orders

    (o,) = orders.parse(orm("ACC-7", "Pnömotoraks?", priority="S"))
    assert (o.message_type, o.accession, o.patient_id) == ("ORM^O01", "ACC-7", "P-1")
    assert (o.question, o.priority, o.order_control) == ("Pnömotoraks?", "S", "NW")
    assert o.ordering_physician == "Dr. MEHMET ÖZTÜRK" and o.sender == "RIS^HASTANE"
    (i,) = orders.parse(omi("ACC-8", "Baş ağrısı; kitle?"))
    assert (i.message_type, i.accession, i.priority) == ("OMI^O23", "ACC-8", "S")
    assert i.question == "Baş ağrısı; kitle?" and i.ordering_physician == "Uzm. Dr. ZEYNEP KAYA"
    # escaped separators are the clinician's characters; a Latin-5 message reads as Turkish
    (e,) = orders.parse(orm("ACC-9", "ateş \\T\\ öksürük \\F\\ 3 gün"))
    assert e.question == "ateş & öksürük | 3 gün"
    latin5 = orm("ACC-10", "Göğüs ağrısı, şüpheli", charset="8859/9").encode("iso-8859-9")
    (t,) = orders.parse(orders.decode(latin5))
    assert t.question == "Göğüs ağrısı, şüpheli"
    for bad, code in (
        ("EVN|A01", "AR"),  # not HL7 at all
        (orm("ACC-1", "x").replace("ORM^O01^ORM_O01", "ADT^A01^ADT_A01"), "AR"),
        (orm("ACC-1234567890123456", "x"), "AE"),  # longer than a DICOM accession
        (orm("", "x").replace("PL-|", "|"), "AE"),  # no accession anywhere
        (orm("ACC-1", "x", control="ZZ"), "AE"),
    ):
        with pytest.raises(orders.OrderError) as err:
            orders.parse(bad)
        assert err.value.ack == code, bad
    with pytest.raises(orders.OrderError) as err:
        orders.decode(orm("ACC-1", "x", charset="ISO IR87").encode())
    assert err.value.ack == "AR"


def test_an_order_before_its_images_gives_the_study_its_question_priority_and_rank(
    hospital, tmp_path
):
    from sqlalchemy import text

    from medai.platform.reading.analysis import analyse_study

    app, client, port = hospital
    rad = bearer(client, "rad1")
    ack = send(port, orm("ORD-1", ACUTE, priority="S", msg_id="M-0001"))
    assert ack == {"code": "AA", "control": "M-0001", "text": ""}
    # the calm one: a routine order, no red flag
    assert send(port, orm("ORD-2", CALM, patient="P-2"))["code"] == "AA"

    acute = _images(tmp_path, client, rad, "ORD-1")
    calm = _images(tmp_path, client, rad, "ORD-2", patient="P-2", seed=1)
    assert acute["clinical_question"] == ACUTE and calm["clinical_question"] == CALM
    codes = [r["code"] for r in acute["urgent_because"]]
    assert "order_stat" in codes and "question_red_flag" in codes
    assert [r.get("rule") for r in acute["urgent_because"] if r.get("rule")] == ["stroke"]
    assert not calm["urgent"] and calm["order"]["priority"] == "R"
    assert acute["order"]["priority"] == "S"
    assert acute["order"]["ordering_physician"] == "Dr. MEHMET ÖZTÜRK"
    listed = client.get("/api/v1/studies", headers=rad).json()["items"]
    assert [s["id"] for s in listed][:1] == [acute["id"]]
    assert listed[0]["reading"]["rank"] == "red_flag" and listed[0]["reading"]["request"]["stat"]

    # the draft opens with the order's question; the PDF states it
    assert analyse_study(app.state.platform, acute["id"]) == "ai_drafted"
    report = client.get(f"/api/v1/studies/{acute['id']}/report", headers=rad).json()
    assert report["sections"]["technique"].startswith(f"Klinik bilgi: {ACUTE}")
    if shutil.which("pdftotext") is not None:
        pdf = client.get(f"/api/v1/studies/{acute['id']}/report/pdf", headers=rad)
        words = subprocess.run(
            ["pdftotext", "-layout", "-", "-"], input=pdf.content, capture_output=True, check=True
        ).stdout.decode()
        assert ACUTE in " ".join(words.split())

    # sealed: neither the question, the physician nor the patient's ID is readable at rest
    with app.state.platform.db.reader() as db:
        raw = db.execute(
            text(
                "SELECT question, priority, ordering_physician, patient_key FROM imaging_orders "
                "WHERE accession = 'ORD-1'"
            )
        ).one()
    assert not any(s in str(raw) for s in ("hemiparezi", "ÖZTÜRK", "P-1"))
    assert "'S'" not in str(raw)


def test_an_order_after_its_images_and_draft_reaches_the_study_and_the_unsigned_draft(
    hospital, tmp_path
):
    from medai.platform.reading.analysis import analyse_study

    app, client, port = hospital
    rad = bearer(client, "rad1")
    study = _images(tmp_path, client, rad, "ORD-3")
    assert study["clinical_question"] is None and study["order"] is None
    assert analyse_study(app.state.platform, study["id"]) == "ai_drafted"
    before = client.get(f"/api/v1/studies/{study['id']}/report", headers=rad).json()
    assert "Klinik bilgi" not in before["sections"]["technique"]

    assert send(port, omi("ORD-3", ACUTE, priority="S"))["code"] == "AA"
    after = client.get(f"/api/v1/studies/{study['id']}", headers=rad).json()
    assert after["clinical_question"] == ACUTE and after["urgent"]
    assert after["order"]["message_type"] == "OMI^O23"
    report = client.get(f"/api/v1/studies/{study['id']}/report", headers=rad).json()
    assert report["version"] == before["version"] + 1 and report["source"] == "ai"
    assert report["sections"]["technique"].startswith(f"Klinik bilgi: {ACUTE}")
    assert report["sections"]["findings"] == before["sections"]["findings"]
    ranked = client.get("/api/v1/studies", headers=rad, params={"red_flag": True}).json()
    assert [s["id"] for s in ranked["items"]] == [study["id"]]

    # the same order again (a resend) changes nothing; a person's edit is never rewritten
    assert send(port, omi("ORD-3", ACUTE, priority="S"))["code"] == "AA"
    again = client.get(f"/api/v1/studies/{study['id']}/report", headers=rad).json()
    assert again["version"] == report["version"]


def test_a_person_edit_keeps_its_text_when_the_order_comes(hospital, tmp_path):
    from medai.platform.reading.analysis import analyse_study

    app, client, port = hospital
    rad = bearer(client, "rad1")
    study = _images(tmp_path, client, rad, "ORD-4")
    analyse_study(app.state.platform, study["id"])
    draft = client.get(f"/api/v1/studies/{study['id']}/report", headers=rad).json()
    mine = {**draft["sections"], "findings": "Kendi bulgularım."}
    r = client.put(
        f"/api/v1/studies/{study['id']}/report",
        headers=rad,
        json={"sections": mine, "version": draft["version"]},
    )
    assert r.status_code == 200, r.text
    assert send(port, orm("ORD-4", CALM))["code"] == "AA"
    kept = client.get(f"/api/v1/studies/{study['id']}/report", headers=rad).json()
    assert kept["sections"]["findings"] == "Kendi bulgularım."
    assert "Klinik bilgi" not in kept["sections"]["technique"]
    shown = client.get(f"/api/v1/studies/{study['id']}", headers=rad).json()
    assert shown["clinical_question"] == CALM  # on the page beside the editor


def test_the_listener_refuses_what_it_must_and_never_mixes_patients(hospital, tmp_path):
    _app, client, port = hospital
    rad = bearer(client, "rad1")
    stranger = send(port, orm("ORD-5", ACUTE, sender="EVIL^ELSEWHERE"))
    assert stranger["code"] == "AR" and "not allowed" in stranger["text"]
    assert send(port, "MSH|^~\\&|RIS|H|||x||ADT^A01|1|P|2.5")["code"] == "AR"
    assert send(port, orm("ACC-1234567890123456", ACUTE))["code"] == "AE"
    # an order naming another patient than the study of its accession: nothing applied
    study = _images(tmp_path, client, rad, "ORD-6", patient="P-6")
    assert send(port, orm("ORD-6", ACUTE, patient="P-OTHER"))["code"] == "AA"
    seen = client.get(f"/api/v1/studies/{study['id']}", headers=rad).json()
    assert seen["clinical_question"] is None and seen["order"] is None and not seen["urgent"]
    # a cancelled order is not applied to images that come after it
    assert send(port, orm("ORD-7", ACUTE))["code"] == "AA"
    assert send(port, orm("ORD-7", ACUTE, control="CA"))["code"] == "AA"
    late = _images(tmp_path, client, rad, "ORD-7", seed=3)
    assert late["clinical_question"] is None and late["order"] is None
    # two messages on one connection, each answered in turn
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            START + orm("ORD-8", CALM).encode() + END + START + orm("ORD-9", CALM).encode() + END
        )
        buf = b""
        while buf.count(END) < 2:
            chunk = sock.recv(65536)
            assert chunk
            buf += chunk
    assert buf.count(b"MSA|AA|") == 2
    # a frame larger than the limit closes the connection, never fills memory
    from medai.platform.intake.hl7_listener import MAX_MESSAGE

    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(START + b"MSH|" + b"x" * (MAX_MESSAGE + 10))
        except OSError:
            pass
        assert sock.recv(100) == b""


def test_mllp_over_tls_takes_orders_and_refuses_plain_or_uncertified_senders(
    tmp_path, tfidf_model_dir, tiny_imaging_dir, caplog
):
    """MEDAI_HL7_TLS_CERT/_KEY: the listener speaks only MLLP over TLS (a plain connection gets
    no ACK and files nothing); with MEDAI_HL7_TLS_CA, a sender without a certificate the CA
    signed is refused in the handshake, and one with it is answered AA."""
    from medai.platform.intake.dicom_node import server_tls_context
    from medai.platform.intake.hl7_listener import Hl7Listener

    pki = write_pki(tmp_path / "pki")
    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as (app, client):
        listener = Hl7Listener(
            app.state.platform,
            port=0,
            allow=["RIS"],
            idle_s=10,
            tls=server_tls_context(pki.node_cert, pki.node_key, pki.ca),
        )
        listener.start()
        try:
            port = listener.port
            # a sender with its CA-signed certificate: the order is taken
            ack = send(port, orm("TLS-1", CALM), tls=client_context(pki, with_cert=True))
            assert ack["code"] == "AA"
            # without a certificate (mutual TLS required): refused in the handshake
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                send(port, orm("TLS-2", CALM), tls=client_context(pki, with_cert=False))
            # plain MLLP on a TLS port: no ACK, nothing filed
            with pytest.raises((AssertionError, ConnectionError, OSError)):
                send(port, orm("TLS-3", CALM))
        finally:
            listener.stop()
        rad = bearer(client, "rad1")
        study = _images(tmp_path, client, rad, "TLS-1")
        assert study["clinical_question"] == CALM
        for accession in ("TLS-2", "TLS-3"):
            study = _images(tmp_path, client, rad, accession, seed=len(accession))
            assert study["order"] is None, accession
    assert "TLS handshake failed" in caplog.text
    # a certificate without its key is refused at start, naming both variables
    from medai.settings import Hl7Settings

    with pytest.raises(ValueError, match="MEDAI_HL7_TLS_CERT and MEDAI_HL7_TLS_KEY go together"):
        Hl7Settings(hl7_tls_cert=pki.node_cert)
