import pytest
from fastapi.testclient import TestClient

from medai.server.app import create_app


@pytest.fixture(scope="module")
def client(tfidf_model_dir):
    return TestClient(create_app(triage_model=str(tfidf_model_dir)))


def test_triage_endpoint(client):
    r = client.post("/api/v1/triage", json={"text": "Yüzümde sivilce ve akne var, kaşıntı da var",
                                            "top_k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ai_suggestion"
    assert body["departments"][0]["id"] == "dermatology" and len(body["departments"]) == 2
    assert body["urgent"] is False and "disclaimer_tr" in body


def test_triage_endpoint_red_flag(client):
    r = client.post("/api/v1/triage", json={"text": "intihar etmeyi düşünüyorum, uyuyamıyorum"})
    body = r.json()
    assert body["urgent"] is True and body["recommendation"]["kind"] == "emergency"
    (flag,) = [f for f in body["red_flags"] if f["id"] == "suicidal"]
    assert flag["level"] == body["urgency_level"] == "call_112"
    assert flag["advice_en"] and flag["evidence"][0]["text"] and flag["detectors"]
    assert body["out_of_scope"] is False and body["out_of_scope_probability"] is None


def test_triage_endpoint_history_note_is_not_urgent(client):
    r = client.post("/api/v1/triage", json={
        "text": "3 yıl önce felç geçirdim, şimdi fizik tedavi görüyorum, bel ağrım var"})
    body = r.json()
    assert r.status_code == 200 and body["urgent"] is False
    assert [h["id"] for h in body["red_flag_history"]] == ["stroke"]


@pytest.mark.parametrize("payload", [{"text": ""}, {"text": "   "}, {"text": "a" * 30_000},
                                     {"text": "ok"[:0] + "\x00\x01"}, {}, {"text": 5},
                                     {"text": "kulak", "top_k": 0}])
def test_bad_requests_get_422(client, payload):
    r = client.post("/api/v1/triage", json=payload)
    assert r.status_code == 422
    assert "detail" in r.json()


def test_non_utf8_body_is_rejected(client):
    r = client.post("/api/v1/triage", content='{"text": "kulağım"}'.encode("iso-8859-9"),
                    headers={"content-type": "application/json"})
    assert r.status_code == 400  # FastAPI: "There was an error parsing the body"


def test_openapi_and_health(client):
    spec = client.get("/openapi.json").json()
    assert "/api/v1/triage" in spec["paths"]
    assert client.get("/docs").status_code == 200
    health = client.get("/api/v1/health").json()
    assert health["status"] == "ok" and health["triage_model"]["model_type"] == "tfidf"


def test_health_reports_a_missing_model(tmp_path):
    c = TestClient(create_app(triage_model=str(tmp_path)))
    assert c.get("/api/v1/health").json()["status"] == "degraded"
