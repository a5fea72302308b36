"""The outbox against real FHIR and HL7 receivers (``outbox_peers``): an analysis and each
signed version are enqueued in their own transaction, delivered in order, retried with
back-off while a receiver is down (a fake clock moves time), delivered once it is back, sent
again after a sender died between sending and marking without a second copy at the receiver,
failed for a person when refused and retried by an admin; the admin sees states and reasons,
never patient data. SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import logging
import random
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select

from helpers.outbox_peers import FhirServer, MllpServer, unescape
from helpers.platform import bearer, clinic, decided, png_bytes, refusing_port, wait_status

MARKER = "Zeynep-Kaya-4471"  # patient text that must never reach a log or the admin view
BASE, CAP = 30.0, 600.0


class Clock:
    """The loop's clock, moved by the test (no waiting, no wall-clock asserts)."""

    def __init__(self) -> None:
        from medai.platform.records.db import utcnow

        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Hospital:
    app: object
    client: object
    fhir: FhirServer
    hl7: MllpServer
    clock: Clock

    @property
    def p(self):
        return self.app.state.platform

    def loop(self, **options):
        from medai.platform.delivery.delivery import DeliveryLoop
        from medai.platform.delivery.outbox import Backoff

        return DeliveryLoop(
            self.p,
            clock=self.clock,
            rng=random.Random(7),
            backoff=Backoff(BASE, CAP),
            lease_s=120,
            **options,
        )

    def rows(self, study_id: int):
        from medai.platform.records.tables import OutboxItem

        with self.p.db.reader() as db:
            return {
                (r.event, r.report_version, r.destination): r
                for r in db.scalars(select(OutboxItem).where(OutboxItem.study_id == study_id))
            }


@contextmanager
def hospital(kind, tmp_path, triage_dir, cxr_dir, monkeypatch):
    fhir, hl7 = FhirServer().start(), MllpServer().start()
    monkeypatch.setenv("MEDAI_FHIR_URL", fhir.url)
    monkeypatch.setenv("MEDAI_HL7_MLLP", f"127.0.0.1:{hl7.port}")
    try:
        with refusing_port() as pacs_port:  # a PACS that is down
            monkeypatch.setenv("MEDAI_DICOM_SEND_TO", f"PACS@127.0.0.1:{pacs_port}")
            with clinic(kind, tmp_path, triage_dir, cxr_dir, outbox_threads=0) as (app, client):
                yield Hospital(app, client, fhir, hl7, Clock())
    finally:
        fhir.stop()
        hl7.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def hosp(request, tmp_path, tfidf_model_dir, tiny_imaging_dir, monkeypatch):
    with hospital(request.param, tmp_path, tfidf_model_dir, tiny_imaging_dir, monkeypatch) as h:
        yield h


@pytest.fixture
def lite(tmp_path, tfidf_model_dir, tiny_imaging_dir, monkeypatch):
    with hospital("sqlite", tmp_path, tfidf_model_dir, tiny_imaging_dir, monkeypatch) as h:
        yield h


def analysed_study(h: Hospital, seed: int = 1) -> int:
    rad = bearer(h.client, "rad1")
    r = h.client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr", "patient_ref": MARKER, "clinical_question": f"öksürük {MARKER}"},
        files={"file": ("x.png", png_bytes(seed), "image/png")},
    )
    assert r.status_code == 201, r.text
    return wait_status(h.client, rad, r.json()["id"], {"ai_drafted"})["id"]


def sign(h: Hospital, sid: int, text: str | None = None) -> dict:
    rad = bearer(h.client, "rad1")
    version = h.client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    body = {"version": version, "labels": decided(h.client, rad, sid)}
    if text is not None:
        body["sections"] = {"findings": text, "impression": f"Sonuç {MARKER}"}
    r = h.client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def admin_view(h: Hospital, **params) -> dict:
    r = h.client.get("/api/v1/admin/outbox", headers=bearer(h.client, "admin"), params=params)
    assert r.status_code == 200, r.text
    return r.json()


def by_name(view: dict) -> dict:
    return {d["name"]: d for d in view["destinations"]}


def oru_status(msg) -> str:
    return str(msg.ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION.OBR.obr_25.value)


def test_results_follow_the_report_to_fhir_and_hl7(hosp, caplog):
    h = hosp
    caplog.set_level(logging.DEBUG)
    sid = analysed_study(h)
    rows = h.rows(sid)
    # the analysis enqueued once per destination that takes it: FHIR preliminary; DICOM
    # skipped (an uploaded PNG has no DICOM identity); HL7 takes signed reports only
    assert {k: r.state for k, r in rows.items()} == {
        ("analysed", 1, "fhir"): "queued",
        ("analysed", 1, "dicom"): "skipped",
    }
    assert rows[("analysed", 1, "dicom")].code == "no_dicom_identity"
    assert h.loop().run_once() == {"delivered": 1}
    dr = h.fhir.reports()[f"medai-report-{sid}"]
    assert dr["status"] == "preliminary" and not h.hl7.messages

    signed = sign(h, sid)
    assert h.loop().run_once() == {"delivered": 2}
    assert h.fhir.reports()[f"medai-report-{sid}"]["status"] == "final"
    (msg,) = h.hl7.messages
    assert oru_status(msg) == "F" and str(msg.msh.msh_9.value) == "ORU^R01^ORU_R01"
    assert signed["signed_by"] in msg.to_er7()
    # the findings: after sign-off the coded OBX are the signer's only (issue 59)
    coded = [
        o.OBX
        for o in msg.ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION.ORU_R01_OBSERVATION
        if str(o.OBX.obx_2.value) == "CWE"
    ]
    assert coded and not [o for o in coded if "AI-SUGGESTION" in o.to_er7()]
    assert all("SIGNER" in o.to_er7() and str(o.obx_11.value) == "F" for o in coded)

    # an amendment: a new signed version, status amended / corrected
    amended = sign(h, sid, f"Sağ alt lobda | konsolidasyon ^ {MARKER}\nikinci satır")
    assert amended["status"] == "amended"
    assert h.loop().run_once() == {"delivered": 2}
    dr = h.fhir.reports()[f"medai-report-{sid}"]
    assert dr["status"] == "amended" and len(h.fhir.reports()) == 1  # one report, updated
    text = base64.b64decode(dr["presentedForm"][0]["data"]).decode()
    assert f"Sağ alt lobda | konsolidasyon ^ {MARKER}" in text
    last = h.hl7.messages[-1]
    assert oru_status(last) == "C" and len(h.hl7.distinct) == 2
    obx = [
        unescape(str(o.OBX.obx_5.value))
        for o in last.ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION.ORU_R01_OBSERVATION
    ]
    assert f"Sağ alt lobda | konsolidasyon ^ {MARKER}" in obx and "ikinci satır" in obx
    assert [s for t, _, s in h.fhir.history if t == "DiagnosticReport"] == [
        "preliminary",
        "final",
        "amended",
    ]
    assert not h.fhir.invalid and not h.hl7.unparsed
    # nothing more is due, and nothing was sent twice
    assert h.loop().run_once() == {}
    assert h.fhir.requests == 3 and len(h.hl7.messages) == 2
    # every delivery is an audit event naming the destination
    events = h.client.get(
        "/api/v1/audit",
        headers=bearer(h.client, "admin"),
        params={"action": "export", "actor": "medai-outbox"},
    ).json()["items"]
    assert sorted(e["detail"]["destination"] for e in events) == [
        "fhir",
        "fhir",
        "fhir",
        "hl7",
        "hl7",
    ]

    view = admin_view(h)
    d = by_name(view)
    assert d["fhir"]["counts"]["delivered"] == 3 and d["hl7"]["counts"]["delivered"] == 2
    assert d["dicom"]["counts"]["skipped"] == 3 and d["dicom"]["where"].startswith("PACS@")
    assert MARKER not in json.dumps(view)
    assert not [r for r in caplog.records if MARKER in r.getMessage()]


def test_a_destination_that_is_down_gets_everything_when_it_is_back(hosp):
    h = hosp
    h.fhir.stop()
    h.hl7.stop()
    sid = analysed_study(h)
    v = sign(h, sid)["version"]
    loop = h.loop()
    assert loop.run_once() == {"retrying": 2}  # one try per destination and pass
    rows = h.rows(sid)
    first = rows[("analysed", 1, "fhir")]
    assert (first.state, first.attempts, first.code) == ("queued", 1, "destination_unavailable")
    wait = (first.next_at - h.clock.now).total_seconds()
    assert BASE * 0.8 <= wait <= BASE
    # the signed report waits behind the preliminary one of the same study (order kept)
    assert rows[("signed", v, "fhir")].attempts == 0
    hl7_wait = (rows[("signed", v, "hl7")].next_at - h.clock.now).total_seconds()
    assert BASE * 0.8 <= hl7_wait <= BASE
    view = by_name(admin_view(h))
    assert view["fhir"]["counts"]["retrying"] == 1 and view["fhir"]["counts"]["queued"] == 1
    assert view["fhir"]["next_attempt_at"]
    assert view["fhir"]["last_problem"]["code"] == "destination_unavailable"
    assert admin_view(h, state="retrying")["total"] == 2

    assert loop.run_once() == {}  # not due yet
    h.clock.advance(BASE)
    assert loop.run_once() == {"retrying": 2}
    second = h.rows(sid)[("analysed", 1, "fhir")]
    wait = (second.next_at - h.clock.now).total_seconds()
    assert second.attempts == 2 and 2 * BASE * 0.8 <= wait <= 2 * BASE  # doubled
    for _ in range(8):  # many failures: the wait stops growing at the cap
        h.clock.advance(CAP)
        loop.run_once()
    capped = h.rows(sid)[("analysed", 1, "fhir")]
    assert capped.attempts == 10
    assert CAP * 0.8 <= (capped.next_at - h.clock.now).total_seconds() <= CAP

    # back up (same ports); a new loop, as after a restart: the state is in the database
    h.fhir.start()
    h.hl7.start()
    h.clock.advance(CAP)
    assert h.loop().run_once() == {"delivered": 3}
    assert h.fhir.reports()[f"medai-report-{sid}"]["status"] == "final"
    assert [s for t, _, s in h.fhir.history if t == "DiagnosticReport"] == ["preliminary", "final"]
    assert len(h.hl7.messages) == 1 and oru_status(h.hl7.messages[0]) == "F"
    assert {r.state for r in h.rows(sid).values()} == {"delivered", "skipped"}


class Crash(BaseException):
    """The sender dies (a kill): nothing after the send runs."""


def test_a_sender_killed_between_send_and_mark_sends_it_again_as_the_same(lite):
    h = lite
    sid = analysed_study(h)
    h.loop().run_once()
    sign(h, sid)

    def die(item):
        raise Crash()

    with pytest.raises(Crash):
        h.loop(after_send=die).run_once()
    (fhir_row,) = [r for k, r in h.rows(sid).items() if k[0] == "signed" and r.state == "sending"]
    assert h.fhir.reports()[f"medai-report-{sid}"]["status"] == "final"  # it had arrived
    assert h.loop().run_once() == {"delivered": 1}  # the HL7 row; FHIR's lease still holds
    h.clock.advance(121)  # the dead sender's lease runs out
    with pytest.raises(Crash):
        h.loop(after_send=die).run_once()  # HL7 was delivered; FHIR is taken over ...
    h.clock.advance(121)
    assert h.loop().run_once() == {"delivered": 1}  # ... and finally marked
    row = h.rows(sid)[("signed", fhir_row.report_version, "fhir")]
    assert row.state == "delivered" and row.attempts == 3
    # the FHIR server got the same transaction three times and keeps one report
    assert h.fhir.requests == 4 and len(h.fhir.reports()) == 1
    assert [s for t, _, s in h.fhir.history if t == "DiagnosticReport"] == [
        "preliminary",
        "final",
        "final",
        "final",
    ]


def test_a_resent_hl7_message_keeps_its_control_id(lite):
    h = lite
    sid = analysed_study(h)
    sign(h, sid)

    def die(item):
        if item.kind == "hl7":
            raise Crash()

    with pytest.raises(Crash):
        h.loop(after_send=die, destinations=[d for d in _dests() if d.name == "hl7"]).run_once()
    h.clock.advance(121)
    assert h.loop().run_once() == {"delivered": 3}
    assert len(h.hl7.messages) == 2 and len(h.hl7.distinct) == 1  # same MSH-10


def _dests():
    from medai.settings import get_settings

    return get_settings().destinations()


def test_a_refusal_fails_for_a_person_and_an_admin_retries_it(lite, caplog):
    h = lite
    caplog.set_level(logging.DEBUG)
    h.fhir.reject = True
    h.hl7.ack = "AE"
    sid = analysed_study(h)
    assert h.loop().run_once() == {"failed": 1}
    row = h.rows(sid)[("analysed", 1, "fhir")]
    assert (row.state, row.code, row.reason) == (
        "failed",
        "destination_rejected",
        "HTTP 422 (business-rule)",
    )
    v = sign(h, sid)["version"]  # a failed row does not hold the next one back
    assert h.loop().run_once() == {"failed": 2}
    assert h.rows(sid)[("signed", v, "hl7")].reason == "negative ACK AE"
    h.clock.advance(CAP * 10)
    assert h.loop().run_once() == {}  # failed rows wait for a person

    view = admin_view(h, state="failed")
    assert view["total"] == 3 and MARKER not in json.dumps(view)
    assert by_name(view)["fhir"]["last_problem"]["reason"] == "HTTP 422 (business-rule)"
    assert not [r for r in caplog.records if MARKER in r.getMessage()]

    h.fhir.reject = False
    h.hl7.ack = "AA"
    admin = bearer(h.client, "admin")
    failed = {(i["event"], i["destination"]): i["id"] for i in view["items"]}
    radiologist = bearer(h.client, "rad1")
    assert (
        h.client.post(
            f"/api/v1/admin/outbox/{failed[('signed', 'fhir')]}/retry", headers=radiologist
        ).status_code
        == 403
    )
    for key in (("signed", "fhir"), ("signed", "hl7")):
        r = h.client.post(f"/api/v1/admin/outbox/{failed[key]}/retry", headers=admin)
        assert r.status_code == 200 and r.json()["state"] == "queued"
    again = h.client.post(f"/api/v1/admin/outbox/{failed[('signed', 'hl7')]}/retry", headers=admin)
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    assert (
        h.client.post("/api/v1/admin/outbox/999999/retry", headers=admin).json()["code"]
        == "not_found"
    )
    assert h.loop().run_once() == {"delivered": 2}
    assert h.fhir.reports()[f"medai-report-{sid}"]["status"] == "final"
    # the old preliminary report retried now would move the status back: not sent
    h.client.post(f"/api/v1/admin/outbox/{failed[('analysed', 'fhir')]}/retry", headers=admin)
    assert h.loop().run_once() == {"skipped": 1}
    assert h.rows(sid)[("analysed", 1, "fhir")].code == "superseded"
    assert h.fhir.reports()[f"medai-report-{sid}"]["status"] == "final"
    audit = h.client.get(
        "/api/v1/audit", headers=admin, params={"action": "admin", "target_type": "outbox"}
    ).json()["items"]
    assert len(audit) == 3 and {e["detail"]["op"] for e in audit} == {"retry"}


@pytest.mark.slow  # a CLI process per step
def test_the_status_command_and_a_destination_no_longer_configured(lite, monkeypatch):
    import os

    h = lite
    h.fhir.stop()
    sid = analysed_study(h)
    h.loop().run_once()
    env = {**os.environ}
    env.pop("MEDAI_FHIR_URL")  # the FHIR destination was removed from the configuration
    out = subprocess.run(
        [sys.executable, "-m", "medai.cli", "outbox", "status", "--json", "--failed"],
        env={**env, "MEDAI_DATABASE_URL": str(h.p.db.engine.url)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    status = {d["name"]: d for d in json.loads(out.stdout)["destinations"]}
    assert status["fhir"]["configured"] is False and status["fhir"]["counts"]["retrying"] == 1
    assert status["dicom"]["counts"]["skipped"] == 1 and MARKER not in out.stdout
    # a loop without that destination leaves its rows alone (kept, not failed)
    monkeypatch.delenv("MEDAI_FHIR_URL")
    from helpers.platform import reread_settings

    reread_settings(monkeypatch, h.p)  # the loop reads the platform's settings, as a restart
    h.clock.advance(CAP)
    assert h.loop().run_once() == {}
    assert h.rows(sid)[("analysed", 1, "fhir")].state == "queued"


def test_the_serve_loop_delivers_without_being_asked(
    tmp_path, tfidf_model_dir, tiny_imaging_dir, monkeypatch
):
    import time

    fhir = FhirServer().start()
    monkeypatch.setenv("MEDAI_FHIR_URL", fhir.url)
    try:
        with clinic("sqlite", tmp_path, tfidf_model_dir, tiny_imaging_dir, outbox_threads=1) as (
            app,
            client,
        ):
            assert "outbox" in app.state.job_pool
            h = Hospital(app, client, fhir, None, Clock())
            sid = analysed_study(h)
            end = time.monotonic() + 60
            while f"medai-report-{sid}" not in fhir.reports() and time.monotonic() < end:
                time.sleep(0.05)
            assert fhir.reports()[f"medai-report-{sid}"]["status"] == "preliminary"
    finally:
        fhir.stop()
