"""Triage labels (issue 26): every triage answer carries its record number; a clinician opens
the triage by that number and records the department the patient was actually sent to; the
export writes them as the complaints file ``medai triage train`` reads (names and national ids
masked when de-identified); staff disagreeing with the model raises a department agreement
alert."""

from __future__ import annotations

import csv

import pytest

from helpers.platform import bearer, clinic

pytestmark = pytest.mark.slow
TEXT = "Ahmet Yılmaz, TC 10000000146, iki haftadır kulağım ağrıyor ve akıntı var"


@pytest.fixture()
def site(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as (app, client):
        yield app, client


def test_a_clinician_records_where_the_patient_was_sent(site, tmp_path):
    app, client = site
    clin, pat = bearer(client, "clin"), bearer(client, "pat1")
    r = client.post("/api/v1/triage", headers=pat, json={"text": TEXT})
    assert r.status_code == 200, r.text
    record = r.json()["record_id"]
    assert isinstance(record, int)
    assert client.get(f"/api/v1/triage/{record}", headers=pat).status_code == 403
    shown = client.get(f"/api/v1/triage/{record}", headers=clin).json()
    assert shown["complaint"] == TEXT and shown["outcome"] is None
    assert shown["result"]["departments"]
    r = client.post(
        f"/api/v1/triage/{record}/outcome",
        headers=clin,
        json={"department": "kulak burun", "urgent": False},
    )
    assert r.status_code == 422 and "ent" in r.json()["detail"]
    r = client.post(
        f"/api/v1/triage/{record}/outcome", headers=clin, json={"department": "neurology"}
    )
    assert r.status_code == 200 and r.json()["outcome"]["department"] == "neurology"
    r = client.post(
        f"/api/v1/triage/{record}/outcome",
        headers=clin,
        json={"department": "ent", "urgent": False},
    )  # corrected: the latest wins
    assert r.json()["outcome"] == {**r.json()["outcome"], "department": "ent"}
    assert client.get("/api/v1/triage/999999", headers=clin).status_code == 404
    assert client.get("/api/v1/triage/history", headers=pat).status_code == 200

    from medai.platform.lifecycle import dataset

    sheet = dataset.export(app.state.platform, "triage", tmp_path / "plain")
    with (tmp_path / "plain" / "complaints.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [{"text": TEXT, "label": "ent"}] and sheet["label_counts"] == {"ent": 1}
    dataset.export(app.state.platform, "triage", tmp_path / "deid", deidentify=True)
    masked = (tmp_path / "deid" / "complaints.csv").read_text()
    assert "10000000146" not in masked and "kulağım ağrıyor" in masked


def test_staff_disagreeing_with_the_model_raises_a_department_alert(site):
    _app, client = site
    clin, pat = bearer(client, "clin"), bearer(client, "pat1")
    for i in range(22):
        r = client.post(
            "/api/v1/triage",
            headers=pat,
            json={"text": f"{i + 2} gündür kulağım ağrıyor ve çınlıyor"},
        )
        record, result = r.json()["record_id"], r.json()
        suggested = (result["departments"] or [{"id": "ent"}])[0]["id"]
        sent = "psychiatry" if suggested != "psychiatry" else "ent"  # never the suggestion
        assert (
            client.post(
                f"/api/v1/triage/{record}/outcome", headers=clin, json={"department": sent}
            ).status_code
            == 200
        )
    admin = bearer(client, "admin")
    report = client.get(
        "/api/v1/models/monitoring", headers=admin, params={"task": "triage"}
    ).json()["models"][0]
    assert report["triage"]["n"] == 22 and report["triage"]["department"][0] == 0.0
    alerts = client.get("/api/v1/models/alerts", headers=admin, params={"open": "true"}).json()
    assert ("agreement", "department") in {(a["kind"], a["key"]) for a in alerts["items"]}
