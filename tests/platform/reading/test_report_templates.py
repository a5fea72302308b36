"""Report templates and macros (issue 69 §2): radiologists write from a normal template and
change what differs. A site's admin edits them (versioned, audited, never overwriting another
admin's newer save), the AI's draft starts from the template of its result, and nothing of the
AI's text is lost in a template that does not place it."""

from __future__ import annotations

import pytest

from helpers.builders import answering_model
from helpers.dicom import make_dicom
from helpers.platform import bearer, clinic, wait_status

MRI = {"Glioma": 0.8, "Meningioma": 0.1, "Pituitary": 0.05, "No_Tumor": 0.05}


def test_the_built_in_ones_are_valid_and_a_template_never_loses_the_ais_text():
    from medai.reporting.report_templates import (
        BUILT_IN,
        NORMAL,
        SLOT,
        Template,
        check,
        render,
        result_of,
        slots,
    )

    for t in BUILT_IN:
        check(t.kind, t.task, t.name, t.lang, t.sections)
    keys = {t.key for t in BUILT_IN}
    assert len(keys) == len(BUILT_IN)  # one per key
    for lang in ("tr", "en"):  # what the issue names: per task and result, in both languages
        for task, name in (
            ("cxr", NORMAL),
            ("cxr", "COVID-19"),
            ("mri", NORMAL),
            ("mri", "Glioma"),
        ):
            assert ("template", task, name, lang) in keys
        assert ("macro", "cxr", ".normal", lang) in keys
    ai = {"technique": "PA akciğer grafisi.", "findings": "Bulgu (YZ önerisi).", "impression": "X."}
    glioma = next(t for t in BUILT_IN if t.key == ("template", "mri", "Glioma", "tr"))
    assert slots(render(glioma, ai)) == 0  # a new tumour: nothing to fill, signs as drafted
    follow = next(t for t in BUILT_IN if t.key == ("template", "mri", "Glioma+followup", "tr"))
    out = render(follow, ai)  # a follow-up: today's size and the prior's, to measure
    assert out["findings"] == "Bulgu (YZ önerisi)." and out["impression"] == "X."
    assert slots(out) == 5 and SLOT in out["measurements"]
    # a site's template that does not place the AI's findings: they follow its own text
    site = Template("template", "cxr", NORMAL, "tr", "t", {"findings": "Sinüsler açık."})
    assert render(site, ai)["findings"] == "Sinüsler açık.\nBulgu (YZ önerisi)."
    assert render(None, ai) == ai
    for bad in (
        ("template", "cxr", NORMAL, "tr", {"findings": "{kalp}"}),  # unknown placeholder
        ("template", "cxr", NORMAL, "tr", {"sonuç": "x"}),  # unknown section
        ("template", "", NORMAL, "tr", {}),  # no task
        ("macro", "", "normal", "tr", {"text": "x"}),  # a macro's name starts with a dot
        ("macro", "", ".normal", "de", {"text": "x"}),
    ):
        with pytest.raises(ValueError):
            check(*bad)
    assert result_of({"state": "normal", "primary": "No Finding"}) == NORMAL
    assert result_of({"state": "abnormal", "primary": "Glioma"}) == "Glioma"
    assert result_of({"state": "abnormal", "primary": "Glioma", "conflict": ["x"]}) is None
    assert result_of({"state": "indeterminate", "primary": None}) is None


@pytest.fixture
def site(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    mri = answering_model(tmp_path / "mri-model", "mri", MRI, {"min_confidence": 0.5})
    with clinic(
        "sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir, models={"mri": str(mri)}
    ) as (app, client):
        yield app, client, tmp_path


def test_an_admin_saves_versions_and_the_draft_starts_from_the_template_of_its_result(site):
    _app, client, tmp_path = site
    admin, rad = bearer(client, "admin"), bearer(client, "rad1")
    body = {
        "kind": "template",
        "task": "mri",
        "name": "Glioma",
        "lang": "tr",
        "title": "Gliom takibi (hastane)",
        "sections": {
            "technique": "Kontrastlı beyin MR. {technique}",
            "findings": "{findings}",
            "measurements": "En büyük çap: […] mm.",
            "impression": "{impression}",
        },
        "base_version": 0,
    }
    r = client.post("/api/v1/admin/report-templates", headers=admin, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1 and r.json()["saved_by"] == "admin"
    # a second admin's edit made from the built-in one, after the first saved: refused
    stale = client.post("/api/v1/admin/report-templates", headers=admin, json=body)
    assert stale.status_code == 409 and stale.json()["code"] == "conflict"
    bad = client.post(
        "/api/v1/admin/report-templates",
        headers=admin,
        json={**body, "base_version": 1, "sections": {"findings": "{kalp}"}},
    )
    assert bad.status_code == 422 and "{kalp}" in bad.json()["detail"]
    wrong = client.post(  # a chest film's result for a brain MRI: the valid ones listed
        "/api/v1/admin/report-templates",
        headers=admin,
        json={**body, "base_version": 1, "name": "COVID-19"},
    )
    assert wrong.status_code == 422 and "Glioma" in wrong.json()["detail"]
    assert client.post("/api/v1/admin/report-templates", headers=rad, json=body).status_code == 403

    listed = client.get("/api/v1/report-templates", headers=rad, params={"lang": "tr"}).json()
    mine = next(
        t for t in listed if (t["kind"], t["task"], t["name"]) == ("template", "mri", "Glioma")
    )
    assert mine["version"] == 1 and not mine["built_in"]
    assert any(t["name"] == ".normal" and t["kind"] == "macro" for t in listed)

    # the AI's glioma draft starts from it: the site's text, the AI's sentences in place
    path = make_dicom(tmp_path / "g.dcm", "MR", body_part="BRAIN", view=None, accession="TPL-1")
    up = client.post(
        "/api/v1/studies",
        headers=rad,
        files={"file": ("g.dcm", path.read_bytes(), "application/dicom")},
        data={"task": "mri"},
    )
    assert up.status_code == 201, up.text
    wait_status(client, rad, up.json()["id"], {"ai_drafted"})
    report = client.get(f"/api/v1/studies/{up.json()['id']}/report", headers=rad).json()
    assert report["sections"]["technique"].startswith("Kontrastlı beyin MR. ")
    assert report["sections"]["measurements"] == "En büyük çap: […] mm."
    assert "(YZ önerisi)" in report["sections"]["impression"]

    # withdrawn: the built-in one is in use again; the history keeps every version
    off = client.post(
        "/api/v1/admin/report-templates",
        headers=admin,
        json={**body, "base_version": 1, "active": False},
    )
    assert off.status_code == 201, off.text
    history = client.get(
        "/api/v1/admin/report-templates/history",
        headers=admin,
        params={"kind": "template", "task": "mri", "name": "Glioma", "lang": "tr"},
    ).json()
    assert [(h["version"], h["active"]) for h in history] == [(2, False), (1, True), (0, True)]
    again = client.get("/api/v1/report-templates", headers=rad, params={"kind": "template"}).json()
    glioma = next(t for t in again if (t["task"], t["name"], t["lang"]) == ("mri", "Glioma", "tr"))
    assert glioma["built_in"] and glioma["version"] == 0
    events = client.get(
        "/api/v1/audit", headers=admin, params={"action": "template", "limit": 10}
    ).json()
    assert len(events["items"]) == 2
    assert {e["detail"]["version"] for e in events["items"]} == {1, 2}


def test_a_tumour_with_a_signed_prior_is_drafted_from_its_follow_up_template(site):
    _app, client, tmp_path = site
    rad = bearer(client, "rad1")

    def glioma(name: str, day: str) -> int:
        path = make_dicom(
            tmp_path / f"{name}.dcm",
            "MR",
            body_part="BRAIN",
            view=None,
            accession=name,
            patient_id="P-TAKIP",
            StudyDate=day,
        )
        r = client.post(
            "/api/v1/studies",
            headers=rad,
            files={"file": (path.name, path.read_bytes(), "application/dicom")},
            data={"task": "mri"},
        )
        assert r.status_code == 201, r.text
        return wait_status(client, rad, r.json()["id"], {"ai_drafted"})["id"]

    first = glioma("TAKIP-1", "20251001")
    report = client.get(f"/api/v1/studies/{first}/report", headers=rad).json()
    assert "[…]" not in str(report["sections"])  # a new tumour: no slot to fill
    r = client.post(
        f"/api/v1/studies/{first}/report/sign",
        headers=rad,
        json={"version": report["version"], "labels": {"Glioma": True}},
    )
    assert r.status_code == 200, r.text
    second = glioma("TAKIP-2", "20251101")
    follow = client.get(f"/api/v1/studies/{second}/report", headers=rad).json()
    assert "Önceki tetkikte: […] × […] mm." in follow["sections"]["measurements"]
