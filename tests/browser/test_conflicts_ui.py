"""Identity conflicts in the browser (headless Chromium against a real `medai serve`): a
radiologist uploads a DICOM of another patient carrying a study's UID and is told, in Turkish on
a 360 px phone, that it was kept aside; the worklist shows both identities side by side; the
study page says why its report cannot be exported; the radiologist makes it a separate study.
An admin, in English at desktop width, sees the conflicts masked. axe-core (serious/critical)."""

from __future__ import annotations

import httpx
import pytest

from helpers.browser import PHONE, _axe, _shot, _sign_in
from helpers.dicom import make_dicom
from helpers.platform import http_login, ui_server

pytestmark = pytest.mark.slow
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    with ui_server(
        tmp_path_factory.mktemp("conflicts-home"),
        {"admin": "admin", "rad1": "radiologist"},
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
    ) as base:
        yield base


def test_a_radiologist_sees_and_decides_a_conflict_and_an_admin_sees_it_masked(
    server, browser, tmp_path
):
    from pydicom.uid import generate_uid

    base = server
    study_uid = generate_uid()
    first = make_dicom(
        tmp_path / "a.dcm",
        "DX",
        study=study_uid,
        accession="ACC-UI-1",
        name="YILMAZ^AYSE",
        patient_id="PID-A-111",
    )
    other = make_dicom(
        tmp_path / "b.dcm",
        "DX",
        study=study_uid,
        accession="ACC-UI-2",
        name="KAYA^MEHMET",
        patient_id="PID-B-222",
        seed=4,
    )
    rad = http_login(base, "rad1")
    r = httpx.post(
        f"{base}/api/v1/studies",
        headers=rad,
        timeout=60,
        data={"task": "cxr"},
        files={"file": ("a.dcm", first.read_bytes(), "application/dicom")},
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]

    ctx, page = _sign_in(browser, base, "rad1", "tr")
    page.locator("#upload-panel summary").click()
    page.locator("#file").set_input_files(str(other))
    page.locator("#upload-form button[type=submit]").click()
    error = page.locator("#upload-error")
    error.wait_for(state="visible")
    assert "farklı bir hastayı" in error.inner_text()
    section = page.locator("#conflicts")
    section.wait_for(state="visible")
    card = section.locator("li.conflict")
    assert card.count() == 1
    text = card.inner_text()
    assert "PID-A-111" in text and "PID-B-222" in text
    assert "YILMAZ, AYSE" in text and "KAYA, MEHMET" in text
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert _axe(page) == []
    _shot(page, "conflicts-worklist-tr-360.png")

    page.goto(f"/studies/{sid}")
    banner = page.locator("#study-conflict")
    banner.wait_for(state="visible")
    assert "dışa aktarılmaz" in banner.inner_text()
    _shot(page, "conflicts-study-tr-360.png")
    ctx.close()

    ctx = browser.new_context(base_url=base, viewport=DESKTOP, bypass_csp=True)
    page = ctx.new_page()
    page.goto("/login?lang=en")
    page.locator("#username").fill("admin")
    from helpers.platform import PASSWORD

    page.locator("#password").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_url("**/admin")
    masked = page.locator("#conflicts")
    masked.wait_for(state="visible")
    shown = masked.inner_text()
    assert "PID-B-222" not in shown and "KAYA" not in shown and "Identities are masked" in shown
    assert masked.get_by_role("button").count() == 0
    _shot(page, "conflicts-admin-en-1280.png")
    ctx.close()

    ctx, page = _sign_in(browser, base, "rad1", "en")
    section = page.locator("#conflicts")
    section.wait_for(state="visible")
    section.get_by_role("button", name="make a separate study").click()
    page.locator("#conflicts-status").get_by_text("the image is now study").wait_for()
    assert section.locator("li.conflict").count() == 0
    _shot(page, "conflicts-decided-en-360.png")
    ctx.close()
    r = httpx.get(f"{base}/api/v1/studies/{sid}", headers=rad, timeout=30)
    assert r.json()["identity_conflicts"] == []
