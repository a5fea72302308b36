"""Labels from every signature (issue 26): on sign-off each label of the study is stored as
present or absent for the signed version — the radiologist's click where they confirmed or
rejected an AI finding or added a missing one, else what the signed text says — and an
amendment stores its own. A wrong label name is refused and nothing is signed."""

from __future__ import annotations

import pytest

from platform_helpers import bearer, clinic, png_bytes, urgent_cxr_dir, wait_status  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture()
def study(tmp_path, tfidf_model_dir, urgent_cxr_dir):  # noqa: F811
    """A drafted study whose model calls Pneumothorax on every image."""
    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, urgent_cxr_dir,
                job_threads=1) as (_app, client):
        rad = bearer(client, "rad1")
        sid = client.post("/api/v1/studies", headers=rad, data={"task": "cxr"}, files={
            "file": ("x.png", png_bytes(6), "image/png")}).json()["id"]
        wait_status(client, rad, sid, {"ai_drafted"})
        yield client, rad, sid


def _by_label(body: dict) -> dict[str, tuple[bool, str]]:
    return {x["label"]: (x["present"], x["source"]) for x in body["labels"]}


def test_the_signature_stores_the_radiologists_labels_and_an_amendment_its_own(study):
    client, rad, sid = study
    text = {"findings": "Sağ hemitoraksta plevral efüzyon izlenmektedir. Pnömotoraks yoktur.",
            "impression": "Sağ plevral efüzyon."}
    suggested = client.post(f"/api/v1/studies/{sid}/labels/suggest", headers=rad,
                            json={"sections": text}).json()
    by = _by_label(suggested)
    assert suggested["report_version"] is None
    assert by["Pneumothorax"] == (False, "text")  # the AI called it, the text denies it
    assert by["Effusion"] == (True, "text")  # stated, though the AI did not call it
    assert by["No Finding"] == (False, "text")
    ai = {x["label"]: x["ai_positive"] for x in suggested["labels"]}
    assert ai["Pneumothorax"] is True and ai["Effusion"] is False
    assert client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json()["labels"] == []

    version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    r = client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad, json={
        "version": version, "sections": text, "labels": {"Pneumothorax": False}})
    assert r.status_code == 200, r.text
    signed = client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json()
    assert signed["report_version"] == r.json()["version"]
    by = _by_label(signed)
    assert by["Pneumothorax"] == (False, "rejected")  # one click: the AI finding rejected
    assert by["Effusion"] == (True, "text")

    # an amendment: the radiologist now confirms the pneumothorax, and adds a nodule
    amended = {"findings": text["findings"].replace("Pnömotoraks yoktur.",
                                                    "Apikal küçük pnömotoraks izlenmektedir."),
               "impression": "Sağ plevral efüzyon ve apikal pnömotoraks."}
    r = client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad, json={
        "version": r.json()["version"], "sections": amended,
        "labels": {"Pneumothorax": True, "Nodule": True}})
    assert r.status_code == 200 and r.json()["status"] == "amended"
    again = client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json()
    assert again["report_version"] == r.json()["version"] > signed["report_version"]
    by = _by_label(again)
    assert by["Pneumothorax"] == (True, "confirmed")
    assert by["Nodule"] == (True, "added")
    assert by["No Finding"] == (False, "text")


def test_an_unknown_label_is_refused_and_nothing_is_signed(study):
    client, rad, sid = study
    version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    r = client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad, json={
        "version": version, "labels": {"Unicorn": True}})
    assert r.status_code == 422 and r.json()["code"] == "invalid_labels"
    assert "Pneumothorax" in r.json()["detail"]  # the valid ones are listed
    report = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    assert report["signed_by"] is None and report["version"] == version
    assert client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json()["labels"] == []


def test_without_clicks_the_signed_text_decides(study):
    client, rad, sid = study
    report = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
    r = client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad,
                    json={"version": report["version"]})  # the AI draft, signed as it is
    assert r.status_code == 200
    by = _by_label(client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json())
    # the draft states the decided finding, so signing it unchanged confirms it
    assert by["Pneumothorax"] == (True, "text")
    assert by["No Finding"] == (False, "text")


def test_a_turkish_list_the_text_denies_is_absent_and_a_normal_text_is_normal(study):
    """The draft of a normal film lists every disease it did not see; none of them is present
    (the English reader never reads a Turkish sentence: "COVID-19" there has no English "no")."""
    client, rad, sid = study
    text = {"findings": "Viral pnömoni paterni, COVID-19 pnömonisi paterni, pnömoni ve "
                        "bakteriyel pnömoni paterni izlenmedi. Pnömotoraks izlenmedi.",
            "impression": "Akciğerler temizdir."}
    by = _by_label(client.post(f"/api/v1/studies/{sid}/labels/suggest", headers=rad,
                               json={"sections": text}).json())
    assert {lab for lab, (present, _) in by.items() if present} == {"No Finding"}


def test_a_text_that_decides_nothing_teaches_nothing(study):
    """"Değerlendirilemedi" with no finding marked is not a normal study: the card shows every
    label absent and the signature stores no labels at all."""
    client, rad, sid = study
    text = {"findings": "Çekim tekniği yetersiz.", "impression": "Değerlendirilemedi."}
    by = _by_label(client.post(f"/api/v1/studies/{sid}/labels/suggest", headers=rad,
                               json={"sections": text}).json())
    assert not any(present for present, _ in by.values())
    version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
    r = client.post(f"/api/v1/studies/{sid}/report/sign", headers=rad,
                    json={"version": version, "sections": text})
    assert r.status_code == 200, r.text
    assert client.get(f"/api/v1/studies/{sid}/labels", headers=rad).json()["labels"] == []
