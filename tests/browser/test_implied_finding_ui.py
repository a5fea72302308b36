"""A label is never "var" because of another label (issue 69 §6): a chest film the model reads
as COVID-19 (76 %) implies the broader classes above it, viral pneumonia and pneumonia, whose
own outputs are low (1.3 %, 20 %). The study page's findings table, the labels card and the
heatmap caption say "COVID-19 kapsamında" for them, never "var" beside 1.3 %, and only
COVID-19 is bold as a finding; the PDF says the same. Headless Chromium against a real
``medai serve``, Turkish at 360 px and 1280 px, English at 1280 px.

Screenshots land in ``MEDAI_SCREENSHOTS`` (default: the test's temporary folder)."""

from __future__ import annotations

import json
import time

import pytest

from helpers.browser import csrf, login_page
from helpers.builders import answering_model
from helpers.paths import SRC
from helpers.platform import png_bytes, ui_server

pytestmark = pytest.mark.slow

T = json.loads((SRC / "platform/web/messages.json").read_text(encoding="utf-8"))
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
VIEWS = [("tr", PHONE), ("tr", DESKTOP), ("en", DESKTOP)]
CXR = {
    "COVID-19": 0.76,
    "Pneumonia": 0.20,
    "No Finding": 0.02,
    "Viral_Pneumonia": 0.013,
    "Bacterial_Pneumonia": 0.01,
}
POLICY = {
    "thresholds": {
        "COVID-19": 0.3,
        "Pneumonia": 0.5,
        "No Finding": 0.55,
        "Viral_Pneumonia": 0.7,
        "Bacterial_Pneumonia": 0.4,
    },
}
COVERED = {"tr": "COVID-19 kapsamında", "en": "included in COVID-19"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir):
    home = tmp_path_factory.mktemp("implied")
    cxr = answering_model(home / "cxr-model", "cxr", CXR, POLICY)
    with ui_server(
        home, {"rad1": "radiologist"}, MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={cxr}"
    ) as base:
        yield base


def analysed(page, lang: str) -> dict:
    r = page.request.post(
        "/api/v1/studies",
        headers=csrf(page),
        multipart={
            "file": {"name": "covid.png", "mimeType": "image/png", "buffer": png_bytes()},
            "lang": lang,
            "task": "cxr",
            "patient_ref": f"P-IMPLIED-{lang}",
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


@pytest.mark.parametrize("lang, viewport", VIEWS)
def test_a_parent_class_reads_as_included_in_its_sub_finding_never_present(
    server, browser, shots, lang, viewport
):
    t = T[lang]
    ctx, page = login_page(browser, server, viewport, lang)
    study = analysed(page, lang)
    findings = {f["label"]: f for f in study["ai_result"]["findings"]}
    # the decision keeps the hierarchy (a COVID-19 pneumonia is a viral pneumonia) ...
    assert findings["Viral_Pneumonia"]["basis"] == "implied"
    assert findings["Viral_Pneumonia"]["implied_by"] == "COVID-19"
    page.goto(f"/studies/{study['id']}")
    row = page.locator("#findings tbody tr[data-label='Viral_Pneumonia']")
    row.wait_for()
    # ... but the page never says "var" of it beside its own 1.3 %
    cell = row.locator("td.state").inner_text()
    assert cell.strip() == COVERED[lang], cell
    assert t["state_present"] not in cell
    assert "positive" not in (row.get_attribute("class") or "")
    covid = page.locator("#findings tbody tr[data-label='COVID-19']")
    assert "positive" in (covid.get_attribute("class") or "")
    assert covid.locator("td.state .state-word").inner_text() == t["state_present"]
    # the labels card (what the signer will sign) says the same of it
    card = page.locator("#labels-card tr[data-label='Viral_Pneumonia']")
    card.wait_for()
    assert card.locator("td").first.inner_text() == COVERED[lang]
    assert page.evaluate("document.scrollingElement.scrollWidth") <= viewport["width"]
    name = "360" if viewport is PHONE else "1280"
    page.screenshot(path=str(shots / f"study-implied-{lang}-{name}.png"), full_page=True)
    # the PDF's decision cell says the same (the study's language is the upload's)
    pdf = page.request.get(f"/api/v1/studies/{study['id']}/report/pdf")
    assert pdf.status == 200, pdf.text()
    (shots / f"study-implied-{lang}-{name}.pdf").write_bytes(pdf.body())
    from helpers.pdf_table import read_table
    from medai.platform.documents.words import report_words as rw

    words = rw.words(lang)
    heads = [words[k] for k in ("col_finding", "col_probability", "col_threshold", "col_decision")]
    rows = {r[0]: r[3] for r in read_table(pdf.body(), heads, len(findings))}
    assert rows[rw.label_name("cxr", "Viral_Pneumonia", lang)] == COVERED[lang], rows
    assert rows["COVID-19"] == words["present"], rows
    ctx.close()
