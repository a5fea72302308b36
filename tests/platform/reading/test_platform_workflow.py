"""The clinical workflow end to end, on SQLite and on the real PostgreSQL server: upload →
background analysis → AI draft → edit (stale version → 409) → sign (radiologists only; two at
once → one wins) → amend → FHIR and PDF exports → audit."""

from __future__ import annotations

import io
import threading

import pytest

from helpers.platform import bearer, clinic, decided, png_bytes, refused_study, wait_status

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="module", params=BACKENDS)
def env(request, tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp(f"clinic-{request.param}")
    with clinic(request.param, home, tfidf_model_dir, tiny_imaging_dir) as (app, client):
        yield app, client


def upload(client, headers, seed=0, **form):
    files = {"file": ("x.png", png_bytes(seed), "image/png")}
    return client.post(
        "/api/v1/studies", headers=headers, files=files, data={"task": "cxr", **form}
    )


def test_upload_is_analysed_in_the_background_into_an_ai_draft(env):
    _app, client = env
    rad = bearer(client, "rad1")
    r = upload(client, rad, patient_ref="P-001", lang="en")
    assert r.status_code == 201, r.text
    study = r.json()
    assert study["status"] in ("received", "analysing", "ai_drafted")
    done = wait_status(client, rad, study["id"], {"ai_drafted"})
    result = done["ai_result"]
    assert result["status"] == "ai_suggestion" and result["findings"]
    model = result["model"]
    assert (
        model["name"] == "tiny-efficientnet-lite0"
        and model["content_hash"].startswith("sha256:")
        and model["version"]
    )
    assert result["has_heatmap"]
    heat = client.get(f"/api/v1/studies/{study['id']}/heatmap", headers=rad)
    assert heat.status_code == 200 and heat.content[:8] == b"\x89PNG\r\n\x1a\n"
    report = client.get(f"/api/v1/studies/{study['id']}/report", headers=rad).json()
    assert report["version"] == 1 and report["status"] == "preliminary"
    assert report["source"] == "ai" and set(report["sections"]) == {
        "technique",
        "findings",
        "measurements",  # the radiologist's, from the viewer: empty in the AI's draft
        "impression",
        "recommendation",
    }
    assert report["sections"]["measurements"] == ""
    assert {f["label"] for f in report["findings"]} == {f["label"] for f in result["findings"]}


def test_edit_sign_amend_and_versions(env):
    _app, client = env
    rad, clin = bearer(client, "rad1"), bearer(client, "clin")
    sid = upload(client, clin, seed=1).json()["id"]
    wait_status(client, rad, sid, {"ai_drafted"})
    url = f"/api/v1/studies/{sid}/report"
    sections = {
        "technique": "PA",
        "findings": "Akciğerler normal.",
        "impression": "Normal.",
        "recommendation": "",
    }
    stale = client.put(url, headers=rad, json={"version": 0, "sections": sections})
    assert stale.status_code == 409 and stale.json()["code"] == "conflict"
    assert (
        client.put(url, headers=clin, json={"version": 1, "sections": sections}).status_code == 403
    )
    v2 = client.put(url, headers=rad, json={"version": 1, "sections": sections})
    assert v2.status_code == 200 and v2.json()["version"] == 2
    assert v2.json()["status"] == "preliminary" and v2.json()["author"] == "rad1"
    assert client.post(f"{url}/sign", headers=clin, json={"version": 2}).status_code == 403
    assert client.post(f"{url}/sign", headers=rad, json={"version": 1}).status_code == 409
    signed = client.post(
        f"{url}/sign", headers=rad, json={"version": 2, "labels": decided(client, rad, sid)}
    )
    assert signed.status_code == 200
    assert signed.json()["status"] == "final" and signed.json()["signed_by"] == "rad1"
    assert client.get(f"/api/v1/studies/{sid}", headers=rad).json()["status"] == "final"
    again = client.post(f"{url}/sign", headers=rad, json={"version": 3})
    assert again.status_code == 409
    amended = client.put(
        url,
        headers=rad,
        json={"version": 3, "sections": {**sections, "impression": "Düzeltme: normal."}},
    )
    assert amended.json()["status"] == "amended" and amended.json()["signed_by"] is None
    resigned = client.post(f"{url}/sign", headers=bearer(client, "rad2"), json={"version": 4})
    assert resigned.json()["status"] == "amended" and resigned.json()["signed_by"] == "rad2"
    versions = client.get(f"{url}/versions", headers=clin).json()["items"]
    assert [(v["version"], v["status"]) for v in versions] == [
        (1, "preliminary"),
        (2, "preliminary"),
        (3, "final"),
        (4, "amended"),
        (5, "amended"),
    ]
    assert versions[0]["sections"] != versions[1]["sections"]  # the AI draft is kept as it was


def test_signing_with_an_unsaved_edit_saves_and_signs_that_text(env):
    _app, client = env
    rad = bearer(client, "rad1")
    sid = upload(client, rad, seed=5).json()["id"]
    wait_status(client, rad, sid, {"ai_drafted"})
    url = f"/api/v1/studies/{sid}/report"
    ai = client.get(url, headers=rad).json()
    screen = {**ai["sections"], "impression": "Radyoloğun düzelttiği izlenim."}
    stale = client.post(f"{url}/sign", headers=rad, json={"version": 0 + 2, "sections": screen})
    assert stale.status_code == 409  # a stale version signs nothing and saves nothing
    assert client.get(url, headers=rad).json()["version"] == 1
    signed = client.post(
        f"{url}/sign",
        headers=rad,
        json={"version": 1, "sections": screen, "labels": decided(client, rad, sid)},
    )
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert body["sections"]["impression"] == "Radyoloğun düzelttiği izlenim."
    assert body["status"] == "final" and body["signed_by"] == "rad1" and body["version"] == 2
    assert body["signed_at_local"].endswith("(Europe/Istanbul)")  # as people read the time
    versions = client.get(f"{url}/versions", headers=rad).json()["items"]
    assert [(v["version"], v["source"], v["author"], v["signed_by"]) for v in versions] == [
        (1, "ai", None, None),
        (2, "human", "rad1", "rad1"),
    ]  # the text on screen, signed
    assert versions[0]["sections"] == ai["sections"]  # the AI draft is kept as it was
    # the same text as the version: no extra version, a plain signature
    sid2 = upload(client, rad, seed=6).json()["id"]
    wait_status(client, rad, sid2, {"ai_drafted"})
    url2 = f"/api/v1/studies/{sid2}/report"
    same = client.get(url2, headers=rad).json()["sections"]
    plain = client.post(
        f"{url2}/sign",
        headers=rad,
        json={"version": 1, "sections": same, "labels": decided(client, rad, sid2)},
    )
    assert plain.json()["version"] == 2 and plain.json()["signed_by"] == "rad1"
    bad = client.post(
        f"{url2}/sign", headers=rad, json={"version": 2, "sections": {"impression": "x" * 20_001}}
    )
    assert bad.status_code == 422
    admin = bearer(client, "admin")
    edits = client.get(
        "/api/v1/audit", headers=admin, params={"action": "edit", "target_id": str(sid)}
    ).json()["items"]
    assert [e["outcome"] for e in edits] == ["ok"]
    # an amendment of a signed report, typed and signed at once: one transaction
    amended = client.post(
        f"{url}/sign",
        headers=rad,
        json={"version": 2, "sections": {**screen, "impression": "Düzeltme."}},
    ).json()
    assert (amended["version"], amended["status"], amended["signed_by"]) == (3, "amended", "rad1")
    assert amended["sections"]["impression"] == "Düzeltme."
    again = client.post(
        f"{url}/sign", headers=rad, json={"version": 3, "sections": amended["sections"]}
    )
    assert again.status_code == 409  # the same text, already signed


def test_an_amendment_is_one_signed_version_and_the_history_shows_its_change(env):
    """Amending signed version 2 makes one version (the amended text and the signature), not a
    draft and an identical signed copy; a version signed as it was names its author (the
    signer, for the AI draft); each signed version is read against the previous signed one, so
    no signature shows an empty difference."""
    _app, client = env
    rad1, rad2 = bearer(client, "rad1"), bearer(client, "rad2")
    sid = upload(client, rad1, seed=7).json()["id"]
    wait_status(client, rad1, sid, {"ai_drafted"})
    url = f"/api/v1/studies/{sid}/report"
    ai = client.get(url, headers=rad1).json()
    v2 = client.post(
        f"{url}/sign", headers=rad1, json={"version": 1, "labels": decided(client, rad1, sid)}
    ).json()
    assert (v2["version"], v2["status"], v2["signed_by"]) == (2, "final", "rad1")
    assert v2["author"] == "rad1"  # the AI draft signed as it was: the signer took it as theirs
    amended = {**ai["sections"], "impression": "Düzeltme: sağ alt zonda konsolidasyon."}
    v3 = client.post(f"{url}/sign", headers=rad1, json={"version": 2, "sections": amended})
    assert v3.status_code == 200, v3.text
    v3 = v3.json()
    assert (v3["version"], v3["status"], v3["author"], v3["signed_by"]) == (
        3,
        "amended",
        "rad1",
        "rad1",
    )
    assert v3["sections"] == amended
    # saved first by one radiologist, signed by another: a draft, then its signed copy
    again = {**amended, "recommendation": "Kontrol grafisi önerilir."}
    assert (
        client.put(url, headers=rad1, json={"version": 3, "sections": again}).json()["status"]
        == "amended"
    )
    v5 = client.post(f"{url}/sign", headers=rad2, json={"version": 4}).json()
    assert (v5["version"], v5["author"], v5["signed_by"]) == (5, "rad1", "rad2")
    items = client.get(f"{url}/versions", headers=rad1).json()["items"]
    assert [
        (v["version"], v["status"], v["author"], v["signed_by"], v["compare_to"]) for v in items
    ] == [
        (1, "preliminary", None, None, None),  # the AI draft
        (2, "final", "rad1", "rad1", 1),
        (3, "amended", "rad1", "rad1", 2),  # one amended version
        (4, "amended", "rad1", None, 3),
        (5, "amended", "rad1", "rad2", 3),
    ]  # vs the last signed
    text = {v["version"]: v["sections"] for v in items}
    assert text[3] != text[2] and text[5] != text[3]  # every signed change shows
    assert text[5] == text[4]  # (its draft's text: against which the difference was empty)


def test_a_report_written_by_hand_is_saved_and_signed_at_once(env):
    app, client = env
    rad = bearer(client, "rad1")
    sid = refused_study(app, client, rad)
    url = f"/api/v1/studies/{sid}/report"
    empty = client.post(f"{url}/sign", headers=rad, json={"version": 0, "sections": {}})
    assert empty.status_code == 422 and client.get(url, headers=rad).status_code == 404
    hand = {
        "technique": "PA akciğer grafisi.",
        "findings": "Sağ alt zonda konsolidasyon.",
        "impression": "Pnömoni ile uyumlu.",
        "recommendation": "",
    }
    signed = client.post(f"{url}/sign", headers=rad, json={"version": 0, "sections": hand})
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert (body["version"], body["status"], body["source"]) == (1, "final", "human")
    assert body["author"] == "rad1" and body["ai_edited"] is None
    # a Turkish study: written by hand, said in Turkish, claiming no AI assistance
    assert body["ai_assisted"] is False and "elle yazılmış" in body["ai_disclosure"]
    assert "desteğiyle" not in body["ai_disclosure"] and "tanı değil" not in body["ai_disclosure"]
    assert client.get(f"/api/v1/studies/{sid}", headers=rad).json()["status"] == "final"


def test_two_radiologists_signing_at_once_exactly_one_wins(env):
    _app, client = env
    rad1, rad2 = bearer(client, "rad1"), bearer(client, "rad2")
    sid = upload(client, rad1, seed=2).json()["id"]
    wait_status(client, rad1, sid, {"ai_drafted"})
    results: list[int] = []
    labels = decided(client, rad1, sid)
    barrier = threading.Barrier(2)

    def sign(headers):
        barrier.wait()
        results.append(
            client.post(
                f"/api/v1/studies/{sid}/report/sign",
                headers=headers,
                json={"version": 1, "labels": labels},
            ).status_code
        )

    threads = [threading.Thread(target=sign, args=(h,)) for h in (rad1, rad2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 409]
    versions = client.get(f"/api/v1/studies/{sid}/report/versions", headers=rad1).json()
    assert [v["status"] for v in versions["items"]] == ["preliminary", "final"]
    admin = bearer(client, "admin")
    events = client.get(
        "/api/v1/audit", headers=admin, params={"action": "sign", "target_id": str(sid)}
    ).json()["items"]
    assert sorted(e["outcome"] for e in events) == ["conflict", "ok"]


def test_fhir_and_pdf_exports_of_a_signed_report(env):
    from fhir.resources.R4B.bundle import Bundle
    from pypdf import PdfReader

    _app, client = env
    rad = bearer(client, "rad1")
    sid = upload(client, rad, seed=3, patient_ref="P-77").json()["id"]
    wait_status(client, rad, sid, {"ai_drafted"})
    client.post(
        f"/api/v1/studies/{sid}/report/sign",
        headers=rad,
        json={"version": 1, "labels": decided(client, rad, sid)},
    )
    r = client.get(f"/api/v1/studies/{sid}/report/fhir", headers=bearer(client, "clin"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate(r.json())
    resources = {e.resource.get_resource_type(): e.resource for e in bundle.entry}
    report = resources["DiagnosticReport"]
    assert report.status == "final"
    assert report.resultsInterpreter[0].display == "rad1"
    device = resources["Device"]
    study = client.get(f"/api/v1/studies/{sid}", headers=rad).json()
    assert device.identifier[0].value == study["ai_result"]["model"]["content_hash"]
    observations = [
        e.resource for e in bundle.entry if e.resource.get_resource_type() == "Observation"
    ]
    ai = [o for o in observations if o.status == "preliminary"]
    assert len(ai) == len(study["ai_result"]["findings"])
    assert all(o.device.reference == f"Device/{device.id}" for o in ai)
    # signing endorsed the decided findings: the signer's are the result, the AI's are not
    finals = [o for o in observations if o.status == "final"]
    assert len(finals) == len(study["ai_result"]["findings"])
    assert sorted(x.reference for x in report.result) == sorted(
        f"Observation/{o.id}" for o in finals
    )
    assert resources["Patient"].identifier[0].value == "P-77"
    pdf = client.get(f"/api/v1/studies/{sid}/report/pdf", headers=rad)
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"
    text = " ".join(
        " ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf.content)).pages
    )
    # a Turkish study: a Turkish PDF naming the signer and the local time of signature
    assert "rad1" in text and "Yapay zekâ" in text and "tanı değil" in text
    assert "İmza zamanı" in text and "(Europe/Istanbul)" in text
    assert "İMZALANMAMIŞ TASLAK" not in text and "not a diagnosis" not in text
    assert study["ai_result"]["model"]["name"] in text


def test_worklist_pagination_filters_and_urgent_first(env):
    _app, client = env
    rad = bearer(client, "rad1")
    calm = upload(client, rad, seed=10).json()["id"]
    urgent = upload(
        client, rad, seed=11, clinical_question="hasta aniden konuşamıyor, yüzünün bir tarafı kaydı"
    ).json()
    assert urgent["urgent"] is True
    wait_status(client, rad, urgent["id"], {"ai_drafted"})
    wait_status(client, rad, calm, {"ai_drafted"})
    page = client.get("/api/v1/studies", headers=rad, params={"limit": 2}).json()
    assert page["items"][0]["id"] == urgent["id"] and page["total"] >= 2
    assert len(page["items"]) == 2
    only = client.get("/api/v1/studies", headers=rad, params={"urgent": True}).json()
    assert all(s["urgent"] for s in only["items"]) and only["total"] >= 1
    drafted = client.get("/api/v1/studies", headers=rad, params={"status": "final"}).json()
    assert all(s["status"] == "final" for s in drafted["items"])


def test_unusable_upload_is_refused_not_failed(env):
    _app, client = env
    rad = bearer(client, "rad1")
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        files={"file": ("x.png", b"not an image at all", "image/png")},
        data={"task": "cxr"},
    )
    assert r.status_code == 201
    done = wait_status(client, rad, r.json()["id"], {"refused", "failed"})
    assert done["status"] == "refused" and done["reason"]
    # reported by hand, its PDF names the model and says it assessed nothing (it read as if
    # the model had)
    import io

    from pypdf import PdfReader

    by_hand = {
        "technique": "PA akciğer grafisi.",
        "findings": "Değerlendirilemedi.",
        "impression": "Tekrar çekim önerilir.",
        "recommendation": "",
    }
    assert (
        client.put(
            f"/api/v1/studies/{done['id']}/report",
            headers=rad,
            json={"version": 0, "sections": by_hand},
        ).status_code
        == 200
    )
    pdf = client.get(f"/api/v1/studies/{done['id']}/report/pdf", headers=rad)
    assert pdf.status_code == 200, pdf.text
    text = " ".join(
        " ".join((page.extract_text() or "").split())
        for page in PdfReader(io.BytesIO(pdf.content)).pages
    )
    assert "Yapay zekâ modeli" in text and "bu görüntüyü değerlendirmedi" in text, text
    assert (
        client.post(
            "/api/v1/studies",
            headers=rad,
            files={"file": ("e.png", b"", "image/png")},
            data={"task": "cxr"},
        ).status_code
        == 422
    )
