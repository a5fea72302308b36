"""The DICOM identity on screen, in headless Chromium against a real ``medai serve`` with a
``medai dicom listen`` beside it on the same database (as a hospital may run them): the
worklist shows and finds the accession number, the study page shows the patient, order and
series in Turkish and English, and a study no model reads says so and is reported by hand."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers.dicom import PATIENT_ID, make_dicom, need_dcmtk, storescu
from helpers.paths import AXE, SRC
from helpers.platform import PASSWORD, ui_server

pytestmark = [pytest.mark.server, pytest.mark.dcmtk]

PHONE = {"width": 360, "height": 740}
T = json.loads((SRC / "platform/web/messages.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def site(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    """serve (analysing) and the node (filing only), one MEDAI_HOME; the node's port."""
    need_dcmtk()
    home = tmp_path_factory.mktemp("dicom-web-home")
    env = {"MEDAI_MODELS": f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}"}
    with ui_server(home, {"rad1": "radiologist"}, **env) as base:
        node = subprocess.Popen(
            [sys.executable, "-m", "medai.cli", "dicom", "listen", "--json", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            env={**os.environ, "MEDAI_HOME": str(home), "MEDAI_JOB_THREADS": "0", **env},
        )
        try:
            port = json.loads(node.stdout.readline())["port"]
            yield base, port, home
        finally:
            os.killpg(node.pid, signal.SIGTERM)
            node.wait(timeout=60)


def sign_in(browser, base, lang):
    # bypass_csp: only so that axe-core can be injected (the CSP is tested elsewhere)
    ctx = browser.new_context(base_url=base, viewport=PHONE, bypass_csp=True)
    page = ctx.new_page()
    page.goto(f"/login?lang={lang}")
    page.locator("#username").fill("rad1")
    page.locator("#password").fill(PASSWORD)
    page.locator("#login-form button[type=submit]").click()
    page.wait_for_url(lambda url: "/login" not in url)
    return ctx, page


def axe_violations(page) -> list[dict]:
    if not AXE.is_file():  # make browser-deps installs it; the rest of the test still runs
        return []
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def wait_for(page, accession: str, statuses: set[str]) -> dict:
    for _ in range(1200):
        items = page.request.get(f"/api/v1/studies?accession={accession}").json()["items"]
        if items and items[0]["status"] in statuses:
            return items[0]
        time.sleep(0.1)
    raise AssertionError(f"{accession}: {items}")


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["tr", "en"])
def test_the_worklist_and_the_study_page_show_the_dicom_identity(site, browser, shots, lang):
    base, port, home = site
    t = T[lang]
    accession = f"WEB-{lang.upper()}-1"
    cr = make_dicom(home / f"{accession}.dcm", accession=accession, description="PA chest")
    us = make_dicom(
        home / f"{accession}-us.dcm",
        "US",
        body_part="ABDOMEN",
        view=None,
        accession=f"WEB-{lang.upper()}-US",
    )
    assert storescu(port, cr, us).returncode == 0
    ctx, page = sign_in(browser, base, lang)
    wait_for(page, accession, {"ai_drafted"})
    page.goto("/worklist")
    page.locator("#f-accession").fill(accession)
    row = page.locator("#worklist tbody tr")
    page.wait_for_function(
        "(a) => { const r = document.querySelectorAll('#worklist tbody tr');"
        " return r.length === 1 && r[0].innerText.includes(a); }",
        arg=accession,
    )
    text = row.inner_text()
    assert "YILMAZ, AYSE NUR" in text and PATIENT_ID in text and "CR" in text
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    assert axe_violations(page) == []
    page.screenshot(path=str(shots / f"dicom-worklist-{lang}-phone.png"), full_page=True)
    row.locator("a").click()
    page.wait_for_url("**/studies/*")
    box = page.locator("#dicom-identity")
    box.wait_for(state="visible")
    assert page.locator("#dicom-title").inner_text() == t["dicom_title"]
    fields = {
        k: page.locator(f"#dicom-fields dd[data-field={k}]").inner_text()
        for k in (
            "patient_name",
            "patient_id",
            "accession",
            "study_date",
            "modality",
            "view",
            "body_part",
            "series_description",
            "source",
        )
    }
    assert fields == {
        "patient_name": "YILMAZ, AYSE NUR",
        "patient_id": PATIENT_ID,
        "accession": accession,
        "modality": "CR",
        "study_date": "20.11.2025" if lang == "tr" else "2025-11-20",
        "view": "PA",
        "body_part": "CHEST",
        "series_description": "PA chest",
        "source": t["dicom_source_dicom"],
    }
    assert t["dicom_patient_name"] in box.inner_text()
    assert axe_violations(page) == []
    page.screenshot(path=str(shots / f"dicom-study-{lang}-phone.png"), full_page=True)
    # a study no model reads: marked in the worklist, explained, reported by hand
    us_row = wait_for(page, f"WEB-{lang.upper()}-US", {"no_model"})
    page.goto(f"/studies/{us_row['id']}")
    page.locator("#no-ai").wait_for(state="visible")
    assert page.locator("#study-status").inner_text() == t["status_no_model"]
    assert page.locator("#no-ai-reason").inner_text() == t["reason_no_route"].replace(
        "{what}", "US · ABDOMEN"
    )
    page.locator("#manual-report").wait_for(state="visible")
    assert axe_violations(page) == []
    page.screenshot(path=str(shots / f"dicom-no-model-{lang}-phone.png"), full_page=True)
    ctx.close()
