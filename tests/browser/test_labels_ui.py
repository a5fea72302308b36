"""The radiologist's verdict on each finding, in the study page of a real ``medai serve``
(Chromium): each label starts from the AI's decision, one click rejects the AI's finding,
one adds a missing finding, the sign dialog shows what will be stored, and after signing the
card shows the stored labels — which the API returns as the study's labels. Turkish at desktop
width, English on a phone, no serious accessibility violation."""

from __future__ import annotations

import httpx
import pytest

from helpers.platform import http_login, png_bytes, ui_server, urgent_cxr_dir  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir, urgent_cxr_dir):  # noqa: F811
    home = tmp_path_factory.mktemp("labels-ui")
    with ui_server(
        home,
        {"rad1": "radiologist"},
        MEDAI_DATABASE_URL="",
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={urgent_cxr_dir}",
    ) as base:
        yield base


def _study(base: str, seed: int) -> int:
    import time

    headers = http_login(base, "rad1")
    sid = httpx.post(
        f"{base}/api/v1/studies",
        headers=headers,
        timeout=60,
        data={"task": "cxr", "patient_ref": f"P-LBL-{seed}"},
        files={"file": ("x.png", png_bytes(seed), "image/png")},
    ).json()["id"]
    for _ in range(900):
        if (
            httpx.get(f"{base}/api/v1/studies/{sid}", headers=headers, timeout=30).json()["status"]
            == "ai_drafted"
        ):
            return sid
        time.sleep(0.1)
    raise AssertionError("not drafted")


def test_the_radiologist_rejects_one_finding_adds_one_and_signs(server, browser, shots):
    from helpers.browser import AXE, axe_violations, sign_in

    sid = _study(server, 21)
    ctx = browser.new_context(
        base_url=server, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    page = ctx.new_page()
    sign_in(page, "rad1")
    page.goto(f"/studies/{sid}")
    card = page.locator("#labels-card")
    row = card.locator("tr[data-label='Pneumothorax']")
    # the AI decided it: signing endorses it (issue 59: never read from the text)
    card.locator("tr[data-label='Pneumothorax'][data-present='true']").wait_for()
    assert "YZ kararı" in row.inner_text()
    row.get_by_role("button").click()  # one click: the AI finding rejected
    card.locator("tr[data-label='Pneumothorax'][data-source='rejected']").wait_for()
    assert "reddettiniz" in card.locator("tr[data-label='Pneumothorax']").inner_text()
    effusion = card.locator("tr[data-label='Effusion']")  # a label the model reads, AI: no
    assert effusion.get_attribute("data-present") == "false"
    effusion.get_by_role("button").click()  # one click adds it
    card.locator("tr[data-label='Effusion'][data-source='added']").wait_for()
    card.get_by_label("Eksik bulgu ekle").select_option("Nodule")  # one the model does not read
    card.get_by_role("button", name="Ekle", exact=True).click()
    card.locator("tr[data-label='Nodule'][data-source='added']").wait_for()
    if AXE.is_file():
        page.wait_for_load_state("networkidle")
        assert axe_violations(page) == []
    card.screenshot(path=str(shots / "study-labels-tr-1280.png"))

    page.get_by_role("button", name="İmzala", exact=True).click()
    stored_line = page.locator("#sign-labels")
    assert "Plevral efüzyon" in stored_line.inner_text()
    assert "Nodül" in stored_line.inner_text()
    assert "Pnömotoraks" not in stored_line.inner_text()
    page.get_by_role("button", name="Bu metni imzala").click()
    page.locator("#report-status[data-status='final']").wait_for()
    card.locator("#labels-note").filter(has_text="İmzalı sürüm").wait_for()
    labels = httpx.get(
        f"{server}/api/v1/studies/{sid}/labels", headers=http_login(server, "rad1")
    ).json()
    by = {x["label"]: (x["present"], x["source"]) for x in labels["labels"]}
    assert by["Pneumothorax"] == (False, "rejected")
    assert by["Effusion"] == (True, "added")
    assert by["Nodule"] == (True, "added")
    assert by["No Finding"] == (False, "endorsed")
    ctx.close()

    phone = browser.new_context(base_url=server, viewport={"width": 360, "height": 740})
    page = phone.new_page()
    sign_in(page, "rad1")
    page.goto(f"/studies/{sid}")
    page.get_by_role("link", name="English").click()
    card = page.locator("#labels-card")
    card.locator("#labels-note").filter(has_text="signed version").wait_for()
    assert "you rejected" in card.locator("tr[data-label='Pneumothorax']").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    card.screenshot(path=str(shots / "study-labels-en-360.png"))
    phone.close()
