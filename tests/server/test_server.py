"""The triage API, health, and the HTTP kernel's contract (on the one API face, signed in):
bounded bodies, one error shape, no patient text echoed or logged, security headers,
documentation served offline."""

import json
import logging

import pytest

from helpers.platform import signed_in

PATIENT = "Adım Ayşe Yılmaz TC 12345678901 tel 05321234567 göğsüm çok ağrıyor"


@pytest.fixture(scope="module")
def client(tfidf_model_dir, tmp_path_factory):
    with signed_in(
        tmp_path_factory.mktemp("server"), "clinician", models={"triage": str(tfidf_model_dir)}
    ) as (_app, c):
        yield c


def test_triage_endpoint(client):
    r = client.post(
        "/api/v1/triage", json={"text": "Yüzümde sivilce ve akne var, kaşıntı da var", "top_k": 2}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ai_suggestion" and body["schema_version"] == "1"
    assert body["departments"][0]["id"] == "dermatology" and len(body["departments"]) == 2
    assert body["urgent"] is False and "disclaimer_tr" in body
    assert body["model"]["name"] == "tiny-tfidf"
    assert body["model"]["content_hash"].startswith("sha256:")


def test_triage_endpoint_red_flag(client):
    r = client.post("/api/v1/triage", json={"text": "intihar etmeyi düşünüyorum, uyuyamıyorum"})
    body = r.json()
    assert body["urgent"] is True and body["recommendation"]["kind"] == "emergency"
    (flag,) = [f for f in body["red_flags"] if f["id"] == "suicidal"]
    assert flag["level"] == body["urgency_level"] == "call_112"
    assert flag["advice_en"] and flag["evidence"][0]["text"] and flag["detectors"]
    assert body["out_of_scope"] is False and body["out_of_scope_probability"] is None


def test_triage_endpoint_history_note_is_not_urgent(client):
    r = client.post(
        "/api/v1/triage",
        json={"text": "3 yıl önce felç geçirdim, şimdi fizik tedavi görüyorum, bel ağrım var"},
    )
    body = r.json()
    assert r.status_code == 200 and body["urgent"] is False
    assert [h["id"] for h in body["red_flag_history"]] == ["stroke"]


@pytest.mark.parametrize(
    "payload",
    [
        {"text": ""},
        {"text": "   "},
        {"text": "a" * 5001},
        {"text": "\x00\x01"},
        {},
        {"text": 5},
        {"text": "kulak", "top_k": 0},
        {"text": "kulak", "top_k": True},
        {"text": "kulak", "min_confidence": False},
        {"text": "kulak", "min_confidence": "0.5"},
        {"text": "kulak", "min_confidence": 1.5},
        {"text": "kulak", "unknown_field": 1},
    ],
)
def test_bad_requests_get_422_with_one_error_shape(client, payload):
    r = client.post("/api/v1/triage", json=payload)
    assert r.status_code == 422, r.text
    body = r.json()
    assert isinstance(body["detail"], str) and body["code"] == "invalid"
    assert all({"loc", "msg", "type"} <= set(e) for e in body.get("errors") or [])


@pytest.mark.parametrize(
    "raw",
    [
        '{"text": "kulak", "min_confidence": NaN}',
        '{"text": "kulak", "min_confidence": Infinity}',
        '{"text": "kulak", "min_confidence": -Infinity}',
    ],
)
def test_nan_and_infinity_are_refused(client, raw):
    r = client.post("/api/v1/triage", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_non_utf8_and_deeply_nested_bodies_are_4xx(client):
    r = client.post(
        "/api/v1/triage",
        content='{"text": "kulağım"}'.encode("iso-8859-9"),
        headers={"content-type": "application/json"},
    )
    assert r.status_code in (400, 422)
    deep = '{"text": "kulak", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    r = client.post("/api/v1/triage", content=deep, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500


def test_errors_never_echo_the_input_and_logs_never_hold_it(client, caplog):
    caplog.set_level(logging.DEBUG)
    long_text = (PATIENT + " ") * 400  # > 20,000 characters
    raw = json.dumps({"text": long_text})[:-1] + ', "min_confidence": NaN}'
    r = client.post("/api/v1/triage", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and len(r.content) < 4000
    assert "12345678901" not in r.text
    r = client.post("/api/v1/triage", json={"text": PATIENT})
    assert r.status_code == 200
    assert "12345678901" not in caplog.text and "Yılmaz" not in caplog.text


def test_body_limits_are_enforced_before_reading(client):
    big = json.dumps({"text": "a" * 200_000})
    r = client.post("/api/v1/triage", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "too_large"

    def chunks():  # no Content-Length: counted while streaming (see test_serve_process for
        for _ in range(64):  # a real socket that shows the server stops reading)
            yield b" " * 16_384

    r = client.post(
        "/api/v1/triage", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_security_headers_trusted_hosts_and_no_server_banner(client):
    r = client.get("/api/v1/health/live")
    assert r.status_code == 200 and r.json()["status"] == "alive"
    h = r.headers
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer"
    assert "server" not in h and "strict-transport-security" not in h
    assert client.get("/api/v1/health/live", headers={"host": "evil.example"}).status_code == 400
    tls = client.get("https://localhost/api/v1/health/live")
    assert "max-age" in tls.headers["strict-transport-security"]


def test_docs_are_served_without_any_external_asset(client):
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        urls = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert urls and all(u.startswith("/") for u in urls), urls
        for u in urls:
            assert client.get(u).status_code == 200, u
    spec = client.get("/openapi.json").json()
    triage = spec["components"]["schemas"]["TriageRequest"]["properties"]["text"]
    from medai.core.text import MAX_TEXT_CHARS

    assert triage["maxLength"] == MAX_TEXT_CHARS


def test_readiness_reports_every_model(client):
    r = client.get("/api/v1/health/ready")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ready", body
    assert set(body["models"]) == {"triage", "cxr", "mri"}
    assert body["models"]["triage"]["model"]["name"] == "tiny-tfidf"
    assert body["models"]["cxr"]["runtime"] in ("onnx", "torch")


def test_readiness_names_the_red_flag_engine_and_an_unsealed_one_is_not_ready(
    client, tfidf_model_dir, tmp_path, monkeypatch
):
    """Issue 27: hospital IT sees which engine reads every complaint; an engine folder that
    was never sealed makes triage not ready (503 with a code), never triage without flags."""
    from medai.settings import get_settings
    from medai.triage.red_flags import engine as engine_module

    engine = client.get("/api/v1/health/ready").json()["models"]["triage"]["red_flag_engine"]
    assert engine["sealed"] and engine["content_hash"].startswith("sha256:")
    assert engine["detectors"] == ["rules", "embedding", "classifier"]
    unsealed = tmp_path / "rules"
    unsealed.mkdir()
    monkeypatch.setenv("MEDAI_RED_FLAG_RULES", str(unsealed))
    get_settings.cache_clear()
    monkeypatch.setattr(engine_module, "_DEFAULT", {})
    try:
        with signed_in(tmp_path / "home", "clinician", models={"triage": str(tfidf_model_dir)}) as (
            _app,
            c,
        ):
            r = c.get("/api/v1/health/ready")
            assert r.status_code == 503 and r.json()["models"]["triage"]["ready"] is False
            assert "seal-red-flags" in r.json()["models"]["triage"]["error"]
            t = c.post("/api/v1/triage", json={"text": "nefes alamıyorum"})
            assert t.status_code == 503 and t.json()["code"] == "unavailable"
    finally:
        get_settings.cache_clear()


def test_readiness_fails_when_a_configured_model_is_missing(tmp_path):
    with signed_in(tmp_path / "home", models={"triage": str(tmp_path / "nope")}) as (_app, c):
        assert c.get("/api/v1/health/live").status_code == 200
        r = c.get("/api/v1/health/ready")
        assert r.status_code == 503
        assert r.json()["models"]["triage"]["ready"] is False
        assert "nope" in r.json()["models"]["triage"]["error"]
        t = c.post("/api/v1/triage", json={"text": "kulağım ağrıyor"})
        assert t.status_code == 503 and t.json()["code"] == "unavailable"


def test_readiness_shows_no_filesystem_path_but_to_an_admin(tmp_path, tfidf_model_dir):
    """Issue 45: anonymous ``/health`` named every served model's absolute path (and a missing
    one's in its error). Anyone but an admin reads names, versions and hashes only."""
    import re

    with signed_in(
        tmp_path / "home",
        "admin",
        models={"triage": str(tfidf_model_dir), "cxr": str(tmp_path / "nowhere" / "nope")},
    ) as (_app, c):
        admin = c.get("/api/v1/health").json()["models"]
        assert admin["triage"]["path"].startswith("/") and str(tmp_path) in admin["cxr"]["error"]
        del c.headers["Authorization"]
        c.cookies.clear()  # signing in also set the session cookie
        for url in ("/api/v1/health", "/api/v1/health/ready"):
            for headers in ({}, {"Authorization": "Bearer not-a-token"}):
                r = c.get(url, headers=headers)
                assert r.status_code == 503 and r.json()["detail"] == "not ready: cxr"
                assert not re.search(r"(?<![\w:])/[\w.~-]+/", r.text), r.text
                models = r.json()["models"]
                assert "path" not in models["triage"] and "path" not in models["mri"]
                assert models["triage"]["model"]["name"] == "tiny-tfidf"
                assert models["triage"]["model"]["content_hash"].startswith("sha256:")
                assert "'nope'" in models["cxr"]["error"]  # the name the operator gave


def test_a_full_inference_queue_answers_503_with_retry_after(tfidf_model_dir, tmp_path):
    import asyncio

    from medai.services.runtime import InferenceLane, Overloaded

    lane = InferenceLane(concurrency=1, queue=0, timeout_s=0.2)

    async def scenario():
        async with lane.slot():
            with pytest.raises(Overloaded):
                async with lane.slot():
                    pass
        async with lane.slot():  # free again
            return True

    assert asyncio.run(scenario())
    with signed_in(tmp_path / "home", models={"triage": str(tfidf_model_dir)}) as (app, c):
        app.state.triage_lane = lane

        async def busy():
            async with lane.slot():
                return await asyncio.to_thread(
                    c.post, "/api/v1/triage", json={"text": "kulağım ağrıyor"}
                )

        r = asyncio.run(busy())
    assert r.status_code == 503 and r.json()["code"] == "overloaded"
    assert int(r.headers["retry-after"]) >= 1
