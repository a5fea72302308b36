"""One API face, one contract: every route served once by the platform on the HTTP kernel;
what the OpenAPI document promises is what the server sends (error shape, statuses, Allow,
limits that agree); ids are bounded and NUL is refused before the database, on SQLite and on
PostgreSQL; stateless job calls are audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpers.platform import bearer, clinic, png_bytes, wait_status

ID_ROUTES = [
    ("GET", "/api/v1/studies/{id}"),
    ("GET", "/api/v1/studies/{id}/image"),
    ("GET", "/api/v1/studies/{id}/series"),
    ("GET", "/api/v1/studies/{id}/instances/1.2.3.4/image"),
    ("GET", "/api/v1/studies/{id}/heatmap"),
    ("GET", "/api/v1/studies/{id}/report"),
    ("GET", "/api/v1/studies/{id}/report/versions"),
    ("GET", "/api/v1/studies/{id}/report/fhir"),
    ("GET", "/api/v1/studies/{id}/report/pdf"),
    ("POST", "/api/v1/studies/{id}/conversations"),
    ("GET", "/api/v1/conversations/{id}"),
    ("DELETE", "/api/v1/auth/tokens/{id}"),
]
HUGE_IDS = [2**31, 2**63 - 1, 2**63, 2**64 + 5, 10**30]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(request, tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    with clinic(
        request.param, tmp_path_factory.mktemp("face"), tfidf_model_dir, tiny_imaging_dir
    ) as (app, client):
        rad = bearer(client, "rad1")
        sid = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "cxr"},
            files={"file": ("x.png", png_bytes(3), "image/png")},
        ).json()["id"]
        wait_status(client, rad, sid, {"ai_drafted"})
        yield app, client, rad, sid


@pytest.mark.parametrize("huge", HUGE_IDS)
def test_ids_beyond_any_row_are_not_found(env, huge):
    _, client, rad, _ = env
    for method, path in ID_ROUTES:
        r = client.request(method, path.format(id=huge), headers=rad)
        assert r.status_code == 404, (method, path, huge, r.status_code, r.text)
        assert r.json()["code"] == "not_found"
    admin = bearer(client, "admin")
    for path in ("/api/v1/admin/kiosks/{id}/revoke", "/api/v1/admin/kiosks/{id}/enrolment"):
        assert client.post(path.format(id=huge), headers=admin).status_code == 404


def test_nul_and_control_characters_are_refused_before_the_database(env):
    _, client, rad, sid = env
    r = client.post("/api/v1/auth/login", json={"username": "rad\x001", "password": "x"})
    assert r.status_code == 422 and r.json()["code"] == "invalid"
    r = client.post("/api/v1/auth/tokens", headers=rad, json={"name": "ci\x00"})
    assert r.status_code == 422
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr", "clinical_question": "öksürük\x00"},
        files={"file": ("x.png", png_bytes(4), "image/png")},
    )
    assert r.status_code == 422
    admin = bearer(client, "admin")
    for query in ("actor=rad%001", "target_id=%00", "action=login%1b"):
        r = client.get(f"/api/v1/audit?{query}", headers=admin)
        assert r.status_code == 422 and r.json()["code"] == "invalid", query
    r = client.post("/api/v1/users/no%00body/disable", headers=admin)
    assert r.status_code == 422
    r = client.put(
        f"/api/v1/studies/{sid}/report",
        headers=rad,
        json={"version": 1, "sections": {"findings": "a\x00b"}},
    )
    assert r.status_code == 422
    # line breaks and tabs are what people type in a report
    current = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    r = client.put(
        f"/api/v1/studies/{sid}/report",
        headers=rad,
        json={
            "version": current["version"],
            "sections": {**current["sections"], "findings": "Satır 1\n\tSatır 2\r\n"},
        },
    )
    assert r.status_code == 200, r.text


def test_a_report_at_the_schemas_limits_is_accepted_not_413(env):
    _, client, rad, sid = env
    current = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    long = "ğüşıöç Ü" * 2500  # 20,000 characters, 2 bytes each mostly
    body = {
        "version": current["version"],
        "sections": {k: long for k in ("technique", "findings", "impression", "recommendation")},
    }
    r = client.put(f"/api/v1/studies/{sid}/report", headers=rad, json=body)
    assert r.status_code == 200, r.text[:200]
    body["sections"]["findings"] += "x"  # one character over: the schema's 422, not a 413
    body["version"] = r.json()["version"]
    r = client.put(f"/api/v1/studies/{sid}/report", headers=rad, json=body)
    assert r.status_code == 422


def test_405_names_every_method_the_path_serves(env):
    _, client, rad, sid = env
    r = client.delete(f"/api/v1/studies/{sid}/report", headers=rad)
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
    assert set(r.headers["allow"].split(", ")) >= {"GET", "PUT"}
    assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"]


def test_every_error_has_the_security_headers_and_one_shape(env):
    _, client, rad, _ = env
    client.cookies.clear()  # signing in for a bearer token also set a session cookie
    answers = [
        client.get("/api/v1/studies/abc", headers=rad),
        client.get("/api/v1/health/live", headers={"host": "evil.example"}),
        client.post(
            "/api/v1/triage", content=b"{not json", headers={"content-type": "application/json"}
        ),
        client.post(
            "/api/v1/triage", content=b" " * 70_000, headers={"content-type": "application/json"}
        ),
        client.get("/api/v1/studies"),
        client.get("/api/v1/nothing-here"),
    ]
    assert [r.status_code for r in answers] == [422, 400, 422, 413, 401, 404]
    for r in answers:
        assert r.headers["content-security-policy"] and r.headers["cache-control"] == "no-store"
        assert r.headers["content-type"].startswith("application/json"), r.text
        assert {"detail", "code"} <= set(r.json())


def test_stateless_job_calls_are_audited(env):
    app, client, rad, _ = env
    from medai.platform.records.tables import AuditEvent

    files = {"file": ("x.png", png_bytes(5), "image/png")}
    assert client.post("/api/v1/imaging/cxr/predict", headers=rad, files=files).status_code == 200
    assert client.post("/api/v1/imaging/cxr/heatmap", headers=rad, files=files).status_code == 200
    assert (
        client.post(
            "/api/v1/reports/draft", headers=rad, data={"findings": '["Pneumonia"]'}
        ).status_code
        == 200
    )
    with app.state.platform.db.session() as db:
        events = db.scalars(
            select(AuditEvent).where(AuditEvent.target_type == "upload").order_by(AuditEvent.id)
        ).all()
        seen = [(e.action, e.actor, (e.detail or {}).get("output")) for e in events][-3:]
    assert seen == [
        ("predict", "rad1", None),
        ("predict", "rad1", "heatmap"),
        ("draft", "rad1", None),
    ]


def _spec():
    import os
    import tempfile

    from medai.platform.app import create_platform_app

    os.environ.setdefault("MEDAI_HOME", tempfile.mkdtemp())
    app = create_platform_app(database_url="sqlite://", preload=False, job_threads=0)
    return app.openapi()


def test_the_document_describes_the_error_body_the_server_sends():
    spec = _spec()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            assert {"400", "503"} <= set(responses), (method, path)
            if method in ("post", "put", "patch"):
                assert {"413", "422"} <= set(responses), (method, path)
            for status, response in responses.items():
                if (path, status) == ("/api/v1/dicomweb/studies", "409"):  # STOW-RS's own
                    assert set(response["content"]) == {"application/dicom+json"}
                    continue
                if status[0] in "45":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (path, status)


def _worst_bytes(schema: dict, spec: dict) -> int:
    """The most bytes a JSON value valid under ``schema`` can take (every character of a
    string escaped as a 12-byte surrogate pair)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _worst_bytes(spec["components"]["schemas"][name], spec)
    if "anyOf" in schema:
        return max(_worst_bytes(s, spec) for s in schema["anyOf"])
    kind = schema.get("type")
    if "enum" in schema:
        return max(len(str(v)) + 2 for v in schema["enum"])
    if kind == "string":
        assert "maxLength" in schema, f"an unbounded string: {schema}"
        return 12 * schema["maxLength"] + 2
    if kind == "object":
        props = schema.get("properties", {})
        return 2 + sum(len(k) + 4 + _worst_bytes(v, spec) for k, v in props.items())
    if kind == "array":
        assert "maxItems" in schema, f"an unbounded array: {schema}"
        return 2 + schema["maxItems"] * (_worst_bytes(schema["items"], spec) + 1)
    return 32  # a number, a boolean or null


def test_every_json_body_the_schema_allows_fits_the_body_limit():
    from medai.server.kernel import body_limit

    spec = _spec()
    checked = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                worst = _worst_bytes(content["application/json"]["schema"], spec)
                assert worst <= body_limit(path), (method, path, worst, body_limit(path))
                checked += 1
    assert checked >= 10


def test_the_kernel_serves_no_route_of_its_own():
    from medai.server.kernel import Face, build_app

    paths = set(build_app(Face(), preload=False).openapi()["paths"])
    assert paths == {"/api/v1/health/live", "/api/v1/health/ready", "/api/v1/health"}
