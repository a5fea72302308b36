"""Who signed (issue 59, item 5): an account carries a full name and a title, set by the
administrator (``medai users add … --full-name --title``, ``medai users profile``) or by its
own user (``PATCH /api/v1/users/{name}/profile``; another account's: 403 ``not_own_account``),
and every signed document — the PDF, the FHIR Practitioner, the report DICOM SR's verifying
observer, the HL7 OBR-32 — names the signer by them, the user name only when no full name is
set. The name a version was signed under stays with it.

SQLite; the PACS is down, so the SR and the HL7 message are built from the outbox row as the
delivery loop builds them, and read here, never sent."""

from __future__ import annotations

import io
import json
import os

import pytest
from sqlalchemy import select

from helpers.dicom import make_dicom
from helpers.platform import bearer, clinic, decided, refusing_port, users_cli, wait_status

FULL, TITLE = "Ayşe Nur Yılmaz", "Uzm. Dr."


@pytest.fixture(scope="module")
def hosp(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("signers")
    with pytest.MonkeyPatch.context() as mp, refusing_port() as pacs_port:
        mp.setenv("MEDAI_DICOM_SEND_TO", f"PACS@127.0.0.1:{pacs_port}")
        with clinic("sqlite", home, tfidf_model_dir, tiny_imaging_dir, outbox_threads=0) as (
            app,
            client,
        ):
            yield app, client, home


def profile(client, headers, name: str, **body):
    return client.patch(f"/api/v1/users/{name}/profile", headers=headers, json=body)


def signed_study(client, home, seed: int, who: str = "rad1") -> dict:
    """A DICOM chest film analysed, its AI draft signed by ``who``: the signed report."""
    path = make_dicom(
        home / f"cr{seed}.dcm", "CR", seed=seed, rows=96, cols=80, accession=f"ACC-S{seed}"
    )
    rad = bearer(client, who)
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr", "lang": "tr"},
        files={"file": ("cr.dcm", path.read_bytes(), "application/dicom")},
    )
    assert r.status_code == 201, r.text
    sid = wait_status(client, rad, r.json()["id"], {"ai_drafted"})["id"]
    draft = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    body = {"version": draft["version"], "labels": decided(client, rad, sid)}
    r = client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def pdf_text(client, sid: int) -> str:
    from pypdf import PdfReader

    r = client.get(f"/api/v1/studies/{sid}/report/pdf", headers=bearer(client, "rad1"))
    assert r.status_code == 200
    return " ".join(
        " ".join((page.extract_text() or "").split())
        for page in PdfReader(io.BytesIO(r.content)).pages
    )


def practitioner(client, sid: int) -> tuple[dict, dict]:
    r = client.get(f"/api/v1/studies/{sid}/report/fhir", headers=bearer(client, "rad1"))
    assert r.status_code == 200, r.text
    res = [e["resource"] for e in r.json()["entry"]]
    (prac,) = [x for x in res if x["resourceType"] == "Practitioner"]
    (dr,) = [x for x in res if x["resourceType"] == "DiagnosticReport"]
    return prac, dr


def outbox_parts(app, sid: int, version: int):
    """The SR and the parts (study, report) the delivery loop builds for the signed version."""
    from medai.platform.delivery import payloads
    from medai.platform.records.tables import OutboxItem

    p = app.state.platform
    with p.db.reader() as db:
        item = db.scalar(
            select(OutboxItem).where(
                OutboxItem.study_id == sid,
                OutboxItem.event == "signed",
                OutboxItem.report_version == version,
                OutboxItem.destination == "dicom",
            )
        )
        assert item is not None, "no SR queued for the signed version"
    parts = payloads.gather(p, item)
    (sr, *_keys) = payloads.dicom_objects(p, item, parts)
    return sr, parts


def test_a_user_sets_their_own_name_and_not_anothers(hosp):
    _app, client, _home = hosp
    rad = bearer(client, "rad1")
    r = profile(client, rad, "rad1", full_name="  Ayşe   Nur Yılmaz ", title="Uzm. Dr.")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "username": "rad1",
        "role": "radiologist",
        "full_name": FULL,  # spaces collapsed
        "title": TITLE,
        "signs_as": f"{TITLE} {FULL}",
    }
    me = client.get("/api/v1/auth/me", headers=rad).json()
    assert (me["full_name"], me["title"]) == (FULL, TITLE)

    r = profile(client, rad, "clin", full_name="Mehmet Kaya")
    assert r.status_code == 403 and r.json()["code"] == "not_own_account", r.text
    r = profile(client, bearer(client, "clin"), "rad1", full_name="Mehmet Kaya")
    assert r.status_code == 403 and r.json()["code"] == "not_own_account"

    # an administrator may set anyone's; the audit log names the fields, never the values
    admin = bearer(client, "admin")
    r = profile(client, admin, "clin", full_name="Mehmet Kaya", title="Dr.")
    assert r.status_code == 200 and r.json()["signs_as"] == "Dr. Mehmet Kaya"
    users = {u["username"]: u for u in client.get("/api/v1/users", headers=admin).json()}
    assert (users["clin"]["full_name"], users["clin"]["title"]) == ("Mehmet Kaya", "Dr.")
    log = client.get("/api/v1/audit", headers=admin, params={"action": "profile"}).json()
    assert [e["detail"]["fields"] for e in log["items"]] == [["full_name", "title"]] * 2
    assert "Kaya" not in json.dumps(log) and "Yılmaz" not in json.dumps(log)
    denied = client.get("/api/v1/audit", headers=admin, params={"action": "denied"}).json()
    assert any(e["detail"].get("needed") == "profile" for e in denied["items"])


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"full_name": "A" * 61}, "full name: 2–60 characters"),
        ({"full_name": "Ayşe^Yılmaz"}, "letters, spaces"),
        ({"full_name": "Ayşe Yılmaz", "title": "Uzm. Dr. " * 4}, "title: 1–24 characters"),
        ({"title": "Dr."}, "a title alone names nobody"),
        (
            {
                "full_name": "Ayşe Nur Yılmazoğlu Karadeniz Ekinci Sevim Tunç",
                "title": "Prof. Dr. Uzm.",
            },
            "together: at most 60",
        ),
    ],
)
def test_a_wrong_name_is_refused_saying_what_is_valid(hosp, body, says):
    _app, client, _home = hosp
    r = profile(client, bearer(client, "rad2"), "rad2", **body)
    assert r.status_code == 422, r.text
    assert says in r.json()["detail"]


def test_the_signed_documents_name_the_signer_by_full_name_and_title(hosp):
    app, client, home = hosp
    rad = bearer(client, "rad1")
    assert profile(client, rad, "rad1", full_name=FULL, title=TITLE).status_code == 200
    signed = signed_study(client, home, seed=31)
    sid, version = signed["study_id"], signed["version"]

    text = pdf_text(client, sid)  # the PDF: "İmzalayan Uzm. Dr. Ayşe Nur Yılmaz"
    assert f"{TITLE} {FULL}" in text
    assert "rad1" not in text  # the user name is nowhere, the disclosure sentence included

    prac, dr = practitioner(client, sid)
    assert prac["name"] == [
        {
            "use": "official",
            "text": f"{TITLE} {FULL}",
            "family": "Yılmaz",
            "given": ["Ayşe", "Nur"],
            "prefix": [TITLE],
        }
    ]
    assert prac["identifier"] == [{"system": "urn:medai:user", "value": "rad1"}]
    assert dr["resultsInterpreter"][0]["display"] == f"{TITLE} {FULL}"

    sr, parts = outbox_parts(app, sid, version)
    assert str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == "Yılmaz^Ayşe Nur^^Uzm. Dr."
    observer = [
        i.PersonName
        for i in sr.ContentSequence
        if i.ValueType == "PNAME"
        and i.ConceptNameCodeSequence[0].CodeMeaning == "Person Observer Name"
    ]
    assert [str(n) for n in observer] == ["Yılmaz^Ayşe Nur^^Uzm. Dr."]

    from hl7apy.parser import parse_message

    from medai.platform.documents.hl7.oru import oru_r01

    er7 = oru_r01(parts.study, parts.report, control_id="T59")
    obr = next(s for s in er7.split("\r") if s.startswith("OBR|"))
    assert obr.split("|")[32] == "rad1&Yılmaz&Ayşe Nur&&&Uzm. Dr."
    msg = parse_message(er7, find_groups=False)
    assert msg.obr.obr_32.obr_32_1.to_er7() == "rad1&Yılmaz&Ayşe Nur&&&Uzm. Dr."

    # a later change of name or title rewrites no copy of what was signed
    assert profile(client, rad, "rad1", full_name=FULL, title="Doç. Dr.").status_code == 200
    assert f"{TITLE} {FULL}" in pdf_text(client, sid)
    assert practitioner(client, sid)[0]["name"][0]["prefix"] == [TITLE]


def test_without_a_full_name_the_documents_name_the_user_name(hosp):
    app, client, home = hosp
    rad2 = bearer(client, "rad2")  # a name set and cleared again ("" is none)
    assert profile(client, rad2, "rad2", full_name="Can Demir", title="Dr.").status_code == 200
    r = profile(client, rad2, "rad2", full_name="", title="")
    assert r.status_code == 200 and r.json()["signs_as"] == "rad2" and r.json()["full_name"] is None
    signed = signed_study(client, home, seed=32, who="rad2")
    sid = signed["study_id"]
    assert "rad2" in pdf_text(client, sid)
    prac, _dr = practitioner(client, sid)
    assert prac["name"] == [{"text": "rad2"}]
    sr, parts = outbox_parts(app, sid, signed["version"])
    assert (
        str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == "rad2^"
    )  # the user name, as a family name

    from medai.platform.documents.hl7.oru import oru_r01

    obr = next(
        s
        for s in oru_r01(parts.study, parts.report, control_id="T60").split("\r")
        if s.startswith("OBR|")
    )
    assert obr.split("|")[32] == "rad2"


@pytest.mark.slow  # a CLI process per step
def test_users_add_and_profile_at_the_console(tmp_path):
    env = {**os.environ, "MEDAI_HOME": str(tmp_path)}
    env.pop("MEDAI_DATABASE_URL", None)

    def cli(*args):
        r = users_cli(env, *args, "--json")
        return r.returncode, json.loads(r.stdout) if r.stdout.strip() else {}

    rc, out = cli("add", "ayse", "--role", "radiologist", "--full-name", FULL, "--title", TITLE)
    assert rc == 0, out
    assert (out["username"], out["full_name"], out["title"]) == ("ayse", FULL, TITLE)
    assert out["enrol_code"]  # a radiologist still chooses their own password
    rc, out = cli("list")
    (ayse,) = [u for u in out["users"] if u["username"] == "ayse"]
    assert (ayse["full_name"], ayse["title"]) == (FULL, TITLE)

    rc, out = cli("profile", "ayse", "--title", "Doç. Dr.")  # the name is kept
    assert rc == 0 and out["signs_as"] == f"Doç. Dr. {FULL}"
    rc, out = cli("profile", "ayse", "--full-name", "", "--title", "")
    assert rc == 0 and out["signs_as"] == "ayse"

    rc, out = cli("add", "bad", "--role", "radiologist", "--full-name", "X" * 61)
    assert rc == 2 and out["code"] == "invalid" and "2–60 characters" in out["error"]
    rc, out = cli("list")
    assert "bad" not in {u["username"] for u in out["users"]}  # nothing half-made
