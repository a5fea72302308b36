"""Identity and access: every route × every role (table-driven, and the table must cover every
route), CSRF on cookie sessions, login throttling, disabled users, ownership of histories and
chats, the kiosk quota, and `medai users`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from helpers.platform import PASSWORD, USERS, bearer, clinic, png_bytes, wait_status

ROLES = ["admin", "radiologist", "clinician", "patient"]
ROLE_USER = {"admin": "admin", "radiologist": "rad1", "clinician": "clin", "patient": "pat1"}
PUBLIC, SIGNED_IN, KIOSK = "public", "signed_in", "kiosk"
DEVICE = "device"  # a registered kiosk's own credential only: 401 for every user
CLINICAL = {"radiologist", "clinician"}

# (method, path) -> who may call it: PUBLIC, SIGNED_IN (any role), KIOSK (anyone; anonymous
# within the quota) or the set of roles
TABLE: dict[tuple[str, str], object] = {
    ("GET", "/api/v1/health/live"): PUBLIC,
    ("GET", "/api/v1/health/ready"): PUBLIC,
    ("GET", "/api/v1/health"): PUBLIC,
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): SIGNED_IN,
    ("POST", "/api/v1/auth/enrol"): PUBLIC,
    ("GET", "/api/v1/auth/me"): SIGNED_IN,
    ("POST", "/api/v1/auth/tokens"): SIGNED_IN,
    ("GET", "/api/v1/auth/tokens"): SIGNED_IN,
    ("DELETE", "/api/v1/auth/tokens/{token_id}"): SIGNED_IN,
    ("POST", "/api/v1/triage"): KIOSK,
    ("POST", "/api/v1/kiosk/enrol"): PUBLIC,
    ("GET", "/api/v1/kiosk"): DEVICE,
    ("GET", "/api/v1/admin/kiosks"): {"admin"},
    ("GET", "/api/v1/report-templates"): {"radiologist", "clinician"},
    ("GET", "/api/v1/admin/report-templates"): {"admin"},
    ("POST", "/api/v1/admin/report-templates"): {"admin"},
    ("GET", "/api/v1/admin/report-templates/history"): {"admin"},
    ("POST", "/api/v1/admin/kiosks"): {"admin"},
    ("PATCH", "/api/v1/admin/kiosks/{kiosk_id}"): {"admin"},
    ("POST", "/api/v1/admin/kiosks/{kiosk_id}/enrolment"): {"admin"},
    ("POST", "/api/v1/admin/kiosks/{kiosk_id}/revoke"): {"admin"},
    ("GET", "/api/v1/triage/history"): SIGNED_IN,
    ("POST", "/api/v1/imaging/{task}/predict"): CLINICAL,
    ("POST", "/api/v1/imaging/{task}/heatmap"): CLINICAL,
    ("POST", "/api/v1/reports/draft"): CLINICAL,
    ("POST", "/api/v1/dicomweb/studies"): CLINICAL,
    # DICOMweb read (QIDO-RS / WADO-RS): the study page's readers
    ("GET", "/api/v1/dicomweb/studies"): CLINICAL,
    ("GET", "/api/v1/dicomweb/studies/{study}/series"): CLINICAL,
    ("GET", "/api/v1/dicomweb/studies/{study}/instances"): CLINICAL,
    ("GET", "/api/v1/dicomweb/studies/{study}/series/{series}/instances"): CLINICAL,
    ("GET", "/api/v1/dicomweb/studies/{study}/metadata"): CLINICAL,
    ("GET", "/api/v1/dicomweb/studies/{study}/series/{series}/metadata"): CLINICAL,
    ("GET", "/api/v1/dicomweb/studies/{study}/series/{series}/instances/{sop}/metadata"): CLINICAL,
    (
        "GET",
        "/api/v1/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/{numbers}",
    ): CLINICAL,
    (
        "GET",
        "/api/v1/dicomweb/studies/{study}/series/{series}/instances/{sop}/bulk/{tag}",
    ): CLINICAL,
    ("GET", "/api/v1/dicomweb/studies/{study}/series/{series}/instances/{sop}/rendered"): CLINICAL,
    (
        "GET",
        "/api/v1/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/rendered",
    ): CLINICAL,
    ("POST", "/api/v1/studies"): CLINICAL,
    ("GET", "/api/v1/studies"): CLINICAL,
    ("GET", "/api/v1/studies/{study_id}"): CLINICAL,
    ("GET", "/api/v1/studies/{study_id}/image"): CLINICAL,
    ("GET", "/api/v1/studies/{study_id}/series"): CLINICAL,
    ("GET", "/api/v1/studies/{study_id}/instances/{sop_uid}/image"): CLINICAL,
    ("GET", "/api/v1/studies/{study_id}/heatmap"): CLINICAL,
    ("GET", "/api/v1/studies/{study_id}/report"): CLINICAL,
    ("PUT", "/api/v1/studies/{study_id}/report"): {"radiologist"},
    ("GET", "/api/v1/studies/{study_id}/report/versions"): CLINICAL,
    ("POST", "/api/v1/studies/{study_id}/report/sign"): {"radiologist"},
    ("POST", "/api/v1/studies/{study_id}/retract"): {"radiologist"},
    ("POST", "/api/v1/studies/{study_id}/reanalyse"): CLINICAL,
    ("GET", "/api/v1/studies/{study_id}/report/fhir"): CLINICAL,
    ("GET", "/api/v1/studies/{study_id}/report/pdf"): CLINICAL,
    ("POST", "/api/v1/studies/{study_id}/conversations"): CLINICAL,
    ("GET", "/api/v1/conversations"): CLINICAL,
    ("GET", "/api/v1/conversations/{conv_id}"): CLINICAL,
    ("POST", "/api/v1/conversations/{conv_id}/messages"): CLINICAL,
    ("GET", "/api/v1/users"): {"admin"},
    ("POST", "/api/v1/users"): {"admin"},
    ("POST", "/api/v1/users/{username}/disable"): {"admin"},
    ("POST", "/api/v1/users/{username}/enable"): {"admin"},
    ("POST", "/api/v1/users/{username}/reset"): {"admin"},
    ("PATCH", "/api/v1/users/{username}"): {"admin"},
    # anyone's own account ("nobody" is no one's: 403 not_own_account), or an admin for anyone
    ("PATCH", "/api/v1/users/{username}/profile"): {"admin"},
    ("GET", "/api/v1/users/pending"): {"radiologist"},
    ("POST", "/api/v1/users/{username}/approve"): {"radiologist"},
    ("GET", "/api/v1/audit/role-grants"): {"admin"},
    ("GET", "/api/v1/models"): {"admin"},
    ("GET", "/api/v1/models/registry"): {"admin"},
    ("GET", "/api/v1/models/jobs"): {"admin"},
    ("POST", "/api/v1/models/jobs"): {"admin"},
    ("GET", "/api/v1/models/jobs/{job_id}"): {"admin"},
    ("POST", "/api/v1/models/jobs/{job_id}/cancel"): {"admin"},
    ("POST", "/api/v1/models/registry"): {"admin"},
    ("GET", "/api/v1/models/registry/{model_id}"): {"admin"},
    ("POST", "/api/v1/models/registry/{model_id}/promote"): {"admin"},
    ("POST", "/api/v1/models/registry/{model_id}/shadow"): {"admin"},
    ("POST", "/api/v1/models/registry/{model_id}/retire"): {"admin"},
    ("POST", "/api/v1/models/rollback"): {"admin"},
    ("POST", "/api/v1/models/site-sets"): {"admin"},
    ("GET", "/api/v1/models/registry/{model_id}/shadow"): {"admin"},
    ("GET", "/api/v1/studies/{study_id}/labels"): CLINICAL,
    ("GET", "/api/v1/studies/{study_id}/measurements"): CLINICAL,
    ("POST", "/api/v1/studies/{study_id}/labels/suggest"): {"radiologist"},
    ("GET", "/api/v1/models/history"): {"admin"},
    ("GET", "/api/v1/models/monitoring"): {"admin"},
    ("GET", "/api/v1/triage/{record_id}"): CLINICAL,
    ("POST", "/api/v1/triage/{record_id}/outcome"): CLINICAL,
    ("GET", "/api/v1/models/alerts"): {"admin"},
    ("GET", "/api/v1/audit"): {"admin"},
    ("GET", "/api/v1/admin/outbox"): {"admin"},
    ("POST", "/api/v1/admin/outbox/{item_id}/retry"): {"admin"},
    # identity conflicts: a radiologist decides; an admin sees them masked
    ("GET", "/api/v1/conflicts"): {"admin", "radiologist"},
    ("GET", "/api/v1/conflicts/{conflict_id}"): {"admin", "radiologist"},
    ("POST", "/api/v1/conflicts/{conflict_id}/reassign"): {"radiologist"},
    ("POST", "/api/v1/conflicts/{conflict_id}/reject"): {"radiologist"},
}


@pytest.fixture(scope="module")
def env(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    os.environ["MEDAI_KIOSK_DAILY_QUOTA"] = "3"
    try:
        with clinic(
            "sqlite", tmp_path_factory.mktemp("access"), tfidf_model_dir, tiny_imaging_dir
        ) as (app, client):
            rad = bearer(client, "rad1")
            sid = client.post(
                "/api/v1/studies",
                headers=rad,
                data={"task": "cxr"},
                files={"file": ("x.png", png_bytes(1), "image/png")},
            ).json()["id"]
            wait_status(client, rad, sid, {"ai_drafted"})
            conv = client.post(
                f"/api/v1/studies/{sid}/conversations", headers=bearer(client, "clin")
            ).json()["id"]
            yield app, client, {"study_id": sid, "conv_id": conv}
    finally:
        os.environ.pop("MEDAI_KIOSK_DAILY_QUOTA", None)


def _request(client, method: str, path: str, ids: dict, headers: dict):
    url = path.format(
        task="cxr",
        token_id=999999,
        username="nobody",
        kiosk_id=999999,
        item_id=999999,
        model_id=999999,
        record_id=999999,
        job_id=999999,
        conflict_id=999999,
        sop_uid="1.2.3.999999",
        # DICOMweb: UIDs no study has (404 for a reader, refused before the lookup otherwise)
        study="1.2.3.999997",
        series="1.2.3.999998",
        sop="1.2.3.999999",
        numbers="1",
        frame=1,
        tag="7FE00010",
        **ids,
    )
    files = {"file": ("x.png", png_bytes(2), "image/png")}
    body = {
        ("POST", "/api/v1/auth/login"): {"json": {"username": "pat2", "password": PASSWORD}},
        ("POST", "/api/v1/auth/tokens"): {"json": {"name": "ci"}},
        ("POST", "/api/v1/kiosk/enrol"): {"json": {"code": "NOSUCHCODE"}},
        ("POST", "/api/v1/admin/kiosks"): {"json": {"name": "Giriş 1"}},
        ("PATCH", "/api/v1/admin/kiosks/{kiosk_id}"): {"json": {"daily_quota": 10}},
        ("POST", "/api/v1/triage"): {"json": {"text": "boğazım ağrıyor"}},
        ("PUT", "/api/v1/studies/{study_id}/report"): {"json": {"version": 0, "sections": {}}},
        ("POST", "/api/v1/studies/{study_id}/report/sign"): {"json": {"version": 1000}},
        # a reason no retraction has: the shared study is never retracted here (422)
        ("POST", "/api/v1/studies/{study_id}/retract"): {"json": {"reason": "none"}},
        # a type no task has: the shared study is never re-analysed here (422)
        ("POST", "/api/v1/studies/{study_id}/reanalyse"): {"json": {"task": "no-such-task"}},
        ("POST", "/api/v1/conversations/{conv_id}/messages"): {"json": {"text": "?"}},
        ("POST", "/api/v1/users"): {"json": {"username": "x", "role": "nurse"}},
        ("PATCH", "/api/v1/users/{username}"): {"json": {"role": "clinician"}},
        ("PATCH", "/api/v1/users/{username}/profile"): {"json": {"full_name": "Ayşe Yılmaz"}},
        ("POST", "/api/v1/auth/enrol"): {"json": {"code": "NOSUCHCODE", "password": PASSWORD}},
        ("POST", "/api/v1/studies"): {"files": files, "data": {"task": "cxr"}},
        ("POST", "/api/v1/imaging/{task}/predict"): {"files": files},
        ("POST", "/api/v1/imaging/{task}/heatmap"): {"files": files},
        ("POST", "/api/v1/reports/draft"): {"data": {"findings": '["Pneumonia"]'}},
        ("POST", "/api/v1/models/registry"): {"json": {"path": "no-such-model"}},
        ("POST", "/api/v1/models/jobs"): {"json": {"kind": "validate", "model_id": 999999}},
        ("POST", "/api/v1/models/registry/{model_id}/promote"): {"json": {"reason": "r"}},
        ("POST", "/api/v1/models/registry/{model_id}/shadow"): {"json": {"reason": "r"}},
        ("POST", "/api/v1/models/registry/{model_id}/retire"): {"json": {"reason": "r"}},
        ("POST", "/api/v1/models/rollback"): {"json": {"task": "cxr", "reason": "r"}},
        ("POST", "/api/v1/models/site-sets"): {"json": {"task": "cxr"}},
        ("POST", "/api/v1/studies/{study_id}/labels/suggest"): {"json": {"sections": {}}},
        ("POST", "/api/v1/triage/{record_id}/outcome"): {"json": {"department": "ent"}},
    }.get((method, path), {})
    return client.request(method, url, headers=headers, **body)


def test_the_table_covers_every_route(env):
    app, _, _ = env
    routes = {
        (method.upper(), path)
        for path, ops in app.openapi()["paths"].items()
        for method in ops
        if path.startswith("/api/")
    }
    assert routes == set(TABLE)


@pytest.mark.parametrize("role", [*ROLES, None])
def test_every_route_for_every_role(env, role):
    _, client, ids = env
    for (method, path), who in TABLE.items():
        headers = bearer(client, ROLE_USER[role]) if role else {}
        if path == "/api/v1/auth/logout" or role is None:
            client.cookies.clear()
        r = _request(client, method, path, ids, headers)
        if who == DEVICE:
            assert r.status_code == 401, (role, method, path, r.status_code)
            continue
        if who == PUBLIC or (who == KIOSK and role is None):
            allowed = True
        elif role is None:
            assert r.status_code == 401, (method, path, r.status_code)
            continue
        else:
            allowed = who in (SIGNED_IN, KIOSK) or role in who
        if allowed:
            assert r.status_code not in (401, 403), (role, method, path, r.status_code, r.text)
            assert r.status_code < 500, (role, method, path, r.text)
        else:
            assert r.status_code == 403, (role, method, path, r.status_code)
            mine = "not_own_account" if path.endswith("/profile") else "forbidden"
            assert r.json()["code"] == mine


def test_refusals_are_audited(env):
    _, client, ids = env
    clin = bearer(client, "clin")
    client.post(f"/api/v1/studies/{ids['study_id']}/report/sign", headers=clin, json={"version": 1})
    events = client.get(
        "/api/v1/audit",
        headers=bearer(client, "admin"),
        params={"action": "denied", "actor": "clin"},
    ).json()["items"]
    assert any(e["detail"].get("needed") == "report_sign" for e in events)


def test_cookie_sessions_need_the_csrf_token_on_unsafe_methods(env):
    _, client, ids = env
    client.cookies.clear()
    login = client.post("/api/v1/auth/login", json={"username": "clin", "password": PASSWORD})
    cookies = login.cookies
    assert "medai_session" in cookies and "medai_csrf" in cookies
    set_cookie = login.headers.get_list("set-cookie")
    session = next(c for c in set_cookie if c.startswith("medai_session="))
    assert "HttpOnly" in session and "SameSite=strict" in session.replace("Strict", "strict")
    url = f"/api/v1/studies/{ids['study_id']}/conversations"
    assert client.get("/api/v1/auth/me").json()["via"] == "session"
    assert client.post(url).status_code == 403
    assert client.post(url, headers={"X-CSRF-Token": "forged"}).status_code == 403
    ok = client.post(url, headers={"X-CSRF-Token": login.json()["csrf_token"]})
    assert ok.status_code == 201
    client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": login.json()["csrf_token"]})
    client.cookies.set("medai_session", cookies["medai_session"])
    assert client.get("/api/v1/auth/me").status_code == 401  # revoked on logout
    client.cookies.clear()
    tls = client.post(
        "https://localhost/api/v1/auth/login", json={"username": "clin", "password": PASSWORD}
    )
    assert all("Secure" in c for c in tls.headers.get_list("set-cookie"))
    assert not any("Secure" in c for c in set_cookie)  # plain HTTP (e.g. localhost)
    client.cookies.clear()


def test_login_is_throttled_after_repeated_failures(env):
    app, client, _ = env
    from medai.platform.access import accounts

    with app.state.platform.db.session() as db:
        accounts.create_user(
            db,
            "victim",
            PASSWORD,
            "clinician",
            hash_profile=app.state.platform.settings.auth.password_hash,
        )
    for _ in range(5):
        r = client.post("/api/v1/auth/login", json={"username": "victim", "password": "wrong"})
        assert r.status_code == 401
    r = client.post("/api/v1/auth/login", json={"username": "victim", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_passwords_are_argon2_hashes_and_disabled_users_lose_their_tokens(env):
    app, client, _ = env
    with app.state.platform.db.session() as db:
        hashes = db.execute(text("SELECT password_hash FROM users")).scalars().all()
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert all(PASSWORD not in h for h in hashes)
    admin = bearer(client, "admin")
    code = client.post(
        "/api/v1/users", headers=admin, json={"username": "temp", "role": "clinician"}
    ).json()["enrol_code"]
    assert (
        client.post("/api/v1/auth/enrol", json={"code": code, "password": PASSWORD}).status_code
        == 200
    )
    temp = bearer(client, "temp")
    assert client.get("/api/v1/auth/me", headers=temp).status_code == 200
    assert client.post("/api/v1/users/temp/disable", headers=admin).json()["active"] is False
    assert client.get("/api/v1/auth/me", headers=temp).status_code == 401
    r = client.post("/api/v1/auth/login", json={"username": "temp", "password": PASSWORD})
    assert r.status_code == 401


def test_revoked_tokens_stop_working(env):
    _, client, _ = env
    clin = bearer(client, "clin")
    made = client.post("/api/v1/auth/tokens", headers=clin, json={"name": "pacs-bridge"}).json()
    machine = {"Authorization": f"Bearer {made['token']}"}
    assert client.get("/api/v1/auth/me", headers=machine).status_code == 200
    other = bearer(client, "rad1")
    assert client.delete(f"/api/v1/auth/tokens/{made['id']}", headers=other).status_code == 404
    assert client.delete(f"/api/v1/auth/tokens/{made['id']}", headers=clin).status_code == 200
    assert client.get("/api/v1/auth/me", headers=machine).status_code == 401


def test_patients_see_only_their_own_triage_history(env):
    app, client, _ = env
    p1, p2 = bearer(client, "pat1"), bearer(client, "pat2")
    client.post("/api/v1/triage", headers=p1, json={"text": "cildimde kaşıntı var"})
    client.post("/api/v1/triage", headers=p2, json={"text": "kulağım çınlıyor"})
    h1 = [i["complaint"] for i in client.get("/api/v1/triage/history", headers=p1).json()["items"]]
    h2 = [i["complaint"] for i in client.get("/api/v1/triage/history", headers=p2).json()["items"]]
    assert h1[0] == "cildimde kaşıntı var" and h2 == ["kulağım çınlıyor"]
    assert "kulağım çınlıyor" not in h1
    with app.state.platform.db.session() as db:  # stored encrypted, never as text
        raw = db.execute(text("SELECT complaint FROM triage_requests")).scalars().all()
    assert raw and not any(b"kula" in bytes(r) or b"cildimde" in bytes(r) for r in raw)


def test_nobody_reads_another_users_conversation(env):
    _, client, ids = env
    rad = bearer(client, "rad1")
    assert client.get(f"/api/v1/conversations/{ids['conv_id']}", headers=rad).status_code == 404
    assert (
        client.post(
            f"/api/v1/conversations/{ids['conv_id']}/messages", headers=rad, json={"text": "?"}
        ).status_code
        == 404
    )
    mine = client.get(f"/api/v1/conversations/{ids['conv_id']}", headers=bearer(client, "clin"))
    assert mine.status_code == 200


def test_a_chat_answer_is_in_the_language_asked_for(env):
    """The page sends the reader's language: an English reader of a study drafted in Turkish
    got a Turkish answer."""
    _, client, ids = env
    clin = bearer(client, "clin")
    url = f"/api/v1/conversations/{ids['conv_id']}/messages"
    en = client.post(url, headers=clin, json={"text": "What is this?", "lang": "en"})
    tr = client.post(url, headers=clin, json={"text": "Bu nedir?", "lang": "tr"})
    assert en.status_code == tr.status_code == 200
    assert "No language model is configured" in en.json()["text"]
    assert "dil modeli yok" in tr.json()["text"]
    bad = client.post(url, headers=clin, json={"text": "?", "lang": "xx"})
    assert bad.status_code == 422


def test_a_record_sealed_under_a_lost_key_is_a_named_503_not_a_500(env):
    """A chat message the configured keys cannot open (a removed key, an altered row): the
    API names it (503 record_undecryptable) instead of an unhandled 500."""
    app, client, ids = env
    from sqlalchemy import select

    from medai.platform.records.tables import Message

    clin = bearer(client, "clin")
    conv = client.post(f"/api/v1/studies/{ids['study_id']}/conversations", headers=clin).json()
    assert (
        client.post(
            f"/api/v1/conversations/{conv['id']}/messages", headers=clin, json={"text": "?"}
        ).status_code
        == 200
    )
    with app.state.platform.db.session() as db:
        row = db.scalars(select(Message).where(Message.conversation_id == conv["id"])).first()
        row.body = b"gAAAAAB" + b"x" * 80  # a token no key opens
    r = client.get(f"/api/v1/conversations/{conv['id']}", headers=clin)
    assert r.status_code == 503 and r.json()["code"] == "record_undecryptable", r.text
    assert "MEDAI_SECRET_KEYS" in r.json()["detail"]


def test_the_kiosk_allows_a_daily_quota_per_client(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with clinic("sqlite", tmp_path, tfidf_model_dir, tiny_imaging_dir) as (_app, client):
        for _ in range(3):
            assert client.post("/api/v1/triage", json={"text": "başım ağrıyor"}).status_code == 200
        r = client.post("/api/v1/triage", json={"text": "başım ağrıyor"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
        assert (
            client.post(
                "/api/v1/triage", headers=bearer(client, "pat1"), json={"text": "başım ağrıyor"}
            ).status_code
            == 200
        )


def _cli(env, *args, stdin=""):
    return subprocess.run(
        [sys.executable, "-m", "medai.cli", *args],
        input=stdin,
        text=True,
        capture_output=True,
        env=env,
        timeout=120,
    )


@pytest.mark.slow  # a CLI process per step (~1 s each)
def test_users_cli(tmp_path):
    env = {**os.environ, "MEDAI_HOME": str(tmp_path)}
    r = _cli(
        env,
        "users",
        "add",
        "boss",
        "--role",
        "admin",
        "--password-stdin",
        "--json",
        stdin=PASSWORD + "\n",
    )
    assert r.returncode == 0 and json.loads(r.stdout)["role"] == "admin"
    assert (
        _cli(
            env,
            "users",
            "add",
            "boss",
            "--role",
            "admin",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        ).returncode
        == 2
    )
    bad = _cli(
        env,
        "users",
        "add",
        "x",
        "--role",
        "nurse",
        "--password-stdin",
        "--json",
        stdin=PASSWORD + "\n",
    )
    assert bad.returncode == 2 and "radiologist" in json.loads(bad.stdout)["error"]
    last = _cli(env, "users", "disable", "boss", "--json")  # the only admin (issue 45)
    assert last.returncode == 2 and json.loads(last.stdout)["code"] == "last_admin"
    assert (
        _cli(
            env,
            "users",
            "add",
            "deputy",
            "--role",
            "admin",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        ).returncode
        == 0
    )
    assert _cli(env, "users", "disable", "boss", "--json").returncode == 0
    listed = json.loads(_cli(env, "users", "list", "--json").stdout)["users"]
    assert listed[0] == {
        "id": 1,
        "username": "boss",
        "role": "admin",
        "active": False,
        "enrolled": True,
        "approval_pending": False,
        "full_name": None,
        "title": None,
    }
    out = tmp_path / "audit.jsonl"
    assert _cli(env, "audit", "export", "--out", str(out)).returncode == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(e["action"], e["detail"].get("op")) for e in events] == [
        ("admin", "create"),
        ("role", "grant"),
        ("admin", "create"),
        ("role", "grant"),
        ("admin", "disable"),
    ]


def test_every_role_has_a_user_in_the_fixtures():
    assert set(USERS.values()) == set(ROLES)


def test_admins_see_the_models_in_use_with_their_cards(env):
    _, client, _ = env
    models = client.get("/api/v1/models", headers=bearer(client, "admin")).json()
    cxr = models["cxr"]
    assert cxr["ready"] and cxr["model"]["content_hash"].startswith("sha256:")
    assert cxr["card"]["labels"] and "metrics" in cxr["card"]
    assert "training_command" not in cxr["card"]  # holds local paths


def test_concurrent_kiosk_requests_cannot_exceed_the_quota(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    import threading

    with clinic("sqlite", tmp_path, tfidf_model_dir, tiny_imaging_dir) as (_app, client):
        codes: list[int] = []
        barrier = threading.Barrier(8)

        def ask():
            barrier.wait()
            codes.append(client.post("/api/v1/triage", json={"text": "başım ağrıyor"}).status_code)

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(codes) == [200] * 3 + [429] * 5
        assert client.post("/api/v1/triage", json={"text": "?!"}).status_code in (422, 429)
