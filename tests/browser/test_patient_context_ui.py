"""The patient's context on the study page, in headless Chromium against a real ``medai serve``
(Turkish, 360 px and 1280 px): the header says "Kadın, 54 yaş · doğum 12.03.1971" from the DICOM
header; the prior studies card lists the same patient's signed prior with its date and signed
impression, never another patient's study of the same name; "Yan yana karşılaştır" opens the
prior's image beside today's, each captioned, and closes again.

Screenshots land in ``MEDAI_SCREENSHOTS`` (default: the test's temporary folder)."""

from __future__ import annotations

import re
import time

import pytest

from helpers.browser import csrf, login_page
from helpers.builders import answering_model
from helpers.dicom import make_dicom
from helpers.platform import ui_server

pytestmark = pytest.mark.slow

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
CXR = {"Pneumothorax": 0.9, "Cardiomegaly": 0.85, "Effusion": 0.1, "No Finding": 0.05}
CXR_POLICY = {
    "thresholds": {"Pneumothorax": 0.5, "Cardiomegaly": 0.5, "Effusion": 0.5, "No Finding": 0.5}
}
PID, OTHER = "TC-55566677788", "TC-12312312312"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir):
    home = tmp_path_factory.mktemp("patient-context-ui")
    cxr = answering_model(home / "cxr-model", "cxr", CXR, CXR_POLICY)
    with ui_server(
        home,
        {"rad1": "radiologist"},
        MEDAI_TIMEZONE="Europe/Istanbul",
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={cxr}",
    ) as base:
        yield base, home


def upload(page, path, **form) -> dict:
    r = page.request.post(
        "/api/v1/studies",
        headers=csrf(page),
        multipart={
            "file": {
                "name": path.name,
                "mimeType": "application/dicom",
                "buffer": path.read_bytes(),
            },
            "task": "cxr",
            "lang": "tr",
            **form,
        },
    )
    assert r.status in (200, 201), r.text()
    study = r.json()
    for _ in range(900):
        study = page.request.get(f"/api/v1/studies/{study['id']}").json()
        if study["status"] not in ("received", "analysing"):
            return study
        time.sleep(0.1)
    raise AssertionError(f"study {study['id']} stayed {study['status']}")


def shoot(page, name: str) -> None:
    import os
    from pathlib import Path

    out = Path(os.environ.get("MEDAI_SCREENSHOTS") or "/tmp/medai-shots")
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / name), full_page=True)


@pytest.fixture(scope="module")
def studies(server, browser):
    base, home = server
    ctx, page = login_page(browser, base, DESKTOP)
    files = home / "files"
    files.mkdir(exist_ok=True)
    who = {"PatientSex": "F", "PatientBirthDate": "19710312"}
    prior = upload(
        page,
        make_dicom(
            files / "prior.dcm", patient_id=PID, accession="UI-PRIOR", StudyDate="20240105", **who
        ),
    )
    r = page.request.post(
        f"/api/v1/studies/{prior['id']}/report/sign",
        headers=csrf(page),
        data={
            "version": 1,
            "labels": {"Pneumothorax": True, "Cardiomegaly": False, "Effusion": True},
        },
    )
    assert r.status == 200, r.text()
    stranger = upload(  # the same name and birth date, another PatientID
        page,
        make_dicom(
            files / "other.dcm", patient_id=OTHER, accession="UI-OTHER", StudyDate="20250101", **who
        ),
    )
    today = upload(
        page,
        make_dicom(
            files / "today.dcm",
            patient_id=PID,
            accession="UI-TODAY",
            StudyDate="20251120",
            seed=3,
            **who,
        ),
        clinical_question="Nefes darlığı; kontrol",
    )
    ctx.close()
    return prior, stranger, today


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["360", "1280"])
def test_the_study_page_shows_the_patient_and_the_prior_side_by_side(
    server, browser, studies, viewport
):
    base, _home = server
    prior, stranger, today = studies
    ctx, page = login_page(browser, base, viewport)
    page.goto(f"/studies/{today['id']}")
    line = page.locator("#study-facts dd[data-field=patient_context]")
    line.wait_for()
    assert line.inner_text() == "Kadın, 54 yaş · doğum 12.03.1971"
    items = page.locator("#priors-list li")
    items.first.wait_for()
    assert items.count() == 1  # the stranger of the same name is not this patient
    item = page.locator(f"#priors-list li[data-prior='{prior['id']}']")
    assert page.locator(f"#priors-list li[data-prior='{stranger['id']}']").count() == 0
    assert "05.01.2024" in item.inner_text()
    assert item.locator("a").get_attribute("href") == f"/studies/{prior['id']}"
    impression = page.request.get(f"/api/v1/studies/{prior['id']}/report").json()["sections"][
        "impression"
    ]
    assert impression.strip() in item.locator(".prior-impression").inner_text()
    # the draft names the prior and what changed since its signature
    from playwright.sync_api import expect

    findings = page.locator("#sec-findings")
    expect(findings).to_have_value(re.compile("Önceki tetkik"))  # the page's CSP: no eval
    text = findings.input_value()
    assert "Önceki tetkik (05.01.2024) ile karşılaştırıldı" in text and "düzelen:" in text
    width = viewport["width"]
    shoot(page, f"study-context-{width}.png")
    item.get_by_role("button", name="Yan yana karşılaştır").click()
    figure = page.locator("#prior-view .prior-frame")
    figure.wait_for(state="visible")
    loaded = "(() => { const i = document.getElementById('prior-image');"
    loaded += " return i.complete && i.naturalWidth > 0; })()"
    for _ in range(100):
        if page.evaluate(loaded):
            break
        time.sleep(0.1)
    assert page.evaluate(loaded)
    assert "05.01.2024" in page.locator("#prior-caption").inner_text()
    assert "20.11.2025" in page.locator("#today-caption").inner_text()
    today_box = page.locator("#viewer").bounding_box()
    prior_box = page.locator(".prior-frame").bounding_box()
    assert prior_box["x"] > today_box["x"] + today_box["width"] - 1  # beside it, not below
    assert abs(prior_box["y"] - today_box["y"]) < 40
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
    page.locator("#viewer-pair").scroll_into_view_if_needed()
    shoot(page, f"study-compare-{width}.png")
    page.get_by_role("button", name="Karşılaştırmayı kapat").click()
    figure.wait_for(state="hidden")
    ctx.close()


def test_the_upload_form_takes_sex_and_birth_date_for_an_image(server, browser, tmp_path):
    from helpers.platform import png_bytes

    base, _home = server
    ctx, page = login_page(browser, base, PHONE)
    page.goto("/worklist")
    page.locator("#upload-panel summary").click()
    image = tmp_path / "film.png"
    image.write_bytes(png_bytes(11))
    page.locator("#file").set_input_files(str(image))
    page.get_by_label("Cinsiyet").select_option("M")
    page.get_by_label("Doğum tarihi").fill("1960-07-01")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    shoot(page, "upload-form-360.png")
    page.locator("#upload-form button[type=submit]").click()
    done = page.locator("#upload-done a")
    done.wait_for()
    sid = done.get_attribute("href").rsplit("/", 1)[1]
    patient = page.request.get(f"/api/v1/studies/{sid}").json()["patient"]
    assert patient["sex"] == "M" and patient["birth_date"] == "1960-07-01"
    assert patient["age_years"] >= 65
    ctx.close()
