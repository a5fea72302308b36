"""Retracting a study in the browser (headless Chromium against a real `medai serve`): on a
360 px phone, in Turkish, a radiologist opens a study, presses "Geri çek", chooses the reason
and writes a note in the confirmation dialog; the page then says the study was retracted, by
whom and why, the report can no longer be saved or signed and the action is gone; the worklist
lists the study only under the "hatalı giriş" filter, greyed. axe-core (serious/critical)."""

from __future__ import annotations

import httpx
import pytest

from helpers.browser import PHONE, _axe, _shot, _sign_in
from helpers.dicom import make_dicom
from helpers.platform import PASSWORD, http_login, ui_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    with ui_server(
        tmp_path_factory.mktemp("retraction-home"),
        {"admin": "admin", "rad1": "radiologist"},
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
    ) as base:
        yield base


def test_a_radiologist_retracts_a_study_from_its_page(server, browser, tmp_path):
    from pydicom.uid import generate_uid

    base = server
    path = make_dicom(tmp_path / "a.dcm", "DX", study=generate_uid(), accession="ACC-RT-1")
    rad = http_login(base, "rad1")
    r = httpx.post(
        f"{base}/api/v1/studies",
        headers=rad,
        timeout=60,
        data={"task": "cxr"},
        files={"file": ("a.dcm", path.read_bytes(), "application/dicom")},
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]

    ctx, page = _sign_in(browser, base, "rad1", "tr")
    page.goto(f"/studies/{sid}")
    page.locator("#report-form").wait_for(state="visible")
    button = page.locator("#retract")
    assert button.inner_text() == "Geri çek"
    button.click()
    dialog = page.locator("#retract-dialog")
    dialog.wait_for(state="visible")
    assert "Geri alınamaz" in dialog.inner_text()
    assert _axe(page) == []
    dialog.get_by_label("Hasta güvenliği").check()
    page.locator("#retract-note").fill("Kontrast reaksiyonu şüphesi")
    page.locator("#retract-confirm").click()
    banner = page.locator("#study-retracted")
    banner.wait_for(state="visible")
    said = banner.inner_text()
    assert "rad1" in said and "hasta güvenliği" in said.lower() and "Kontrast" in said
    assert page.locator("#study-status").inner_text() == "hatalı giriş (geri çekildi)"
    assert button.is_hidden() and page.locator("#save").is_hidden()
    assert page.locator("#sign").is_hidden()
    assert page.locator("#sec-findings").get_attribute("readonly") is not None
    page.locator("#labels-card").wait_for(state="hidden")  # nothing to sign, nothing to label
    page.reload()
    page.locator("#study-retracted").wait_for(state="visible")
    assert page.locator("#labels-card").is_hidden() and page.locator("#retract").is_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert _axe(page) == []
    _shot(page, "retraction-study-tr-360.png")

    page.goto("/")
    page.locator("#worklist tbody").wait_for(state="attached")
    page.wait_for_load_state("networkidle")
    assert page.locator(f'#worklist tr[data-id="{sid}"]').count() == 0
    page.locator("#f-status").select_option("entered_in_error")
    row = page.locator(f'#worklist tr[data-id="{sid}"]')
    row.wait_for(state="visible")
    assert "is-retracted" in (row.get_attribute("class") or "")
    assert _axe(page) == []
    _shot(page, "retraction-worklist-tr-360.png")
    ctx.close()

    # a colleague at a desk, in English: the banner says what happened, nothing is offered
    ctx = browser.new_context(
        base_url=base, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    page = ctx.new_page()
    page.goto("/login?lang=en")
    page.locator("#username").fill("rad1")
    page.locator("#password").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_url("**/worklist")
    page.goto(f"/studies/{sid}")
    banner = page.locator("#study-retracted")
    banner.wait_for(state="visible")
    said = banner.inner_text()
    assert "retracted by rad1" in said and "Patient safety" in said, said
    assert page.locator("#retract").is_hidden() and page.locator("#sign").is_hidden()
    assert page.locator("#labels-card").is_hidden()
    assert _axe(page) == []
    _shot(page, "retraction-study-en-1280.png")
    ctx.close()
