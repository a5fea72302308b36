"""The study page says each finding's one state, in headless Chromium against a real ``medai
serve`` whose tiny models answer fixed probabilities (their last layer is the answer):

- an undecided brain MRI (Pituitary 40.8 % vs Meningioma 36.1 %, the top class under its
  minimum confidence) shows both as undecided — in the findings table, the line above it and
  the labels card — never "hayır"/"absent" for the runner-up;
- a chest film whose model marked "No Finding" and bacterial pneumonia together says so above
  the table, and once a radiologist signs it corrected ("Normal akciğer grafisi", the pneumonia
  rejected) the page shows what was signed: the signer's verdict beside each AI finding, the
  heatmap caption says the finding was rejected;
- the header names the patient (DICOM name as a person's name, patient ID, reference), the
  accession number, the clinical question and why the study is urgent, in Turkish and English,
  at 360 px and 1280 px without sideways scrolling.

Screenshots land in ``MEDAI_SCREENSHOTS`` (default: the test's temporary folder)."""

from __future__ import annotations

import json
import time

import pytest

from helpers.browser import csrf, login_page
from helpers.builders import answering_model
from helpers.dicom import PATIENT_ID, make_dicom
from helpers.paths import SRC
from helpers.platform import png_bytes, ui_server

pytestmark = pytest.mark.slow

T = json.loads((SRC / "platform/web/messages.json").read_text(encoding="utf-8"))
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
# Turkish at both widths (the clinicians' language), English at desktop width (its longer words
# are the ones that overflow a table cell)
VIEWS = [("tr", PHONE), ("tr", DESKTOP), ("en", DESKTOP)]
STROKE = "hasta aniden konuşamıyor, yüzünün bir tarafı kaydı"  # a red flag: urgent
MRI = {"Pituitary": 0.408, "Meningioma": 0.361, "Glioma": 0.131, "No_Tumor": 0.1}
CXR = {
    "Bacterial_Pneumonia": 0.80,
    "Pneumonia": 0.75,
    "No Finding": 0.62,
    "Viral_Pneumonia": 0.10,
    "COVID-19": 0.05,
}
CXR_POLICY = {
    "thresholds": {
        "No Finding": 0.55,
        "Pneumonia": 0.5,
        "Bacterial_Pneumonia": 0.4,
        "Viral_Pneumonia": 0.7,
        "COVID-19": 0.3,
    },
    "normal_conflict": "finding",
}
NAMES = {
    "tr": {
        "Pituitary": "Hipofiz tümörü",
        "Meningioma": "Menenjiom",
        "Bacterial_Pneumonia": "Bakteriyel pnömoni",
        "No Finding": "Bulgu yok",
    },
    "en": {
        "Pituitary": "Pituitary tumour",
        "Meningioma": "Meningioma",
        "Bacterial_Pneumonia": "Bacterial pneumonia",
        "No Finding": "No finding",
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir):
    home = tmp_path_factory.mktemp("study-states")
    mri = answering_model(home / "mri-model", "mri", MRI, {"min_confidence": 0.5})
    cxr = answering_model(home / "cxr-model", "cxr", CXR, CXR_POLICY)
    with ui_server(
        home,
        {"rad1": "radiologist"},
        MEDAI_TIMEZONE="Europe/Istanbul",
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={cxr},mri={mri}",
    ) as base:
        yield base, home


def open_page(browser, base, viewport, lang):
    return login_page(browser, base, viewport, lang, bypass_csp=True)  # axe-core injected


def upload(page, name: str, data: bytes, mime: str, **form: str) -> dict:
    """Upload through the API with the page's session; wait until the analysis is over."""
    r = page.request.post(
        "/api/v1/studies",
        headers=csrf(page),
        multipart={"file": {"name": name, "mimeType": mime, "buffer": data}, "lang": "tr", **form},
    )
    assert r.status in (200, 201), r.text()
    study = r.json()
    for _ in range(900):
        study = page.request.get(f"/api/v1/studies/{study['id']}").json()
        if study["status"] not in ("received", "analysing"):
            return study
        time.sleep(0.1)
    raise AssertionError(f"study {study['id']} stayed {study['status']}")


def no_overflow(page) -> None:
    assert page.evaluate("document.scrollingElement.scrollWidth") <= page.viewport_size["width"]


def accessible(page) -> None:
    from helpers.browser import AXE, axe_violations

    if AXE.is_file():  # make browser-deps installs it; the rest of the test still runs
        page.wait_for_load_state("networkidle")
        assert axe_violations(page) == []


def decision_cell(page, label: str):
    return page.locator(f"#findings tbody tr[data-label='{label}'] td.state")


@pytest.mark.parametrize("lang, viewport", VIEWS)
def test_an_undecided_mri_shows_both_candidates_undecided_with_who_and_why(
    server, browser, shots, lang, viewport
):
    base, home = server
    t, names = T[lang], NAMES[lang]
    accession = f"MR-{lang.upper()}-{viewport['width']}"
    dcm = make_dicom(
        home / f"{accession}.dcm",
        "MR",
        body_part="BRAIN",
        view=None,
        accession=accession,
        description="T1 brain axial",
        rows=128,
        cols=128,
    )
    ctx, page = open_page(browser, base, viewport, lang)
    study = upload(
        page,
        f"{accession}.dcm",
        dcm.read_bytes(),
        "application/dicom",
        task="mri",
        patient_ref=f"P-{accession}",
        clinical_question=STROKE,
    )
    assert study["status"] == "ai_drafted" and study["urgent"] is True
    # the question's red flag, named by the rule that fired (issue 59)
    assert [(r["code"], r["label"], r["rule"]) for r in study["urgent_because"]] == [
        ("question_red_flag", None, "stroke")
    ]
    assert study["ai_result"]["decision"]["candidates"] == ["Pituitary", "Meningioma"]
    page.goto(f"/studies/{study['id']}")
    page.locator("#findings tbody tr").first.wait_for()
    # both candidates undecided, with why; the runner-up is never "no"/"absent"
    for label in ("Pituitary", "Meningioma"):
        row = page.locator("#findings tbody tr").filter(
            has=page.locator("th", has_text=names[label])
        )
        cells = row.locator("td").all_inner_texts()
        assert t["no"] not in cells and t["state_absent"] not in cells, cells
        assert f"{t['state_indeterminate']}\n{t['basis_candidate']}" in cells, cells
        assert decision_cell(page, label).get_attribute("data-state") == "indeterminate"
    assert decision_cell(page, "Glioma").inner_text().startswith(t["state_absent"])
    note = page.locator("#decision-note")
    assert note.is_visible()
    assert names["Pituitary"] in note.inner_text() and names["Meningioma"] in note.inner_text()
    assert t["decision_why_low_confidence"] in note.inner_text()
    assert page.locator("#conflict-note").is_hidden()
    assert page.locator("#exclusive-note").is_visible()
    # the labels card reads the same state: the runner-up is undecided there too
    card = page.locator("#labels-card tr[data-label='Meningioma']")
    card.wait_for()
    assert card.get_attribute("data-ai-state") == "indeterminate"
    assert card.locator("td").first.inner_text() == t["state_indeterminate"]
    # the header: patient, accession, the clinical question and why it is urgent
    facts = {
        k: page.locator(f"#study-facts dd[data-field={k}]").inner_text()
        for k in ("patient", "accession", "study_date", "question")
    }
    assert facts == {
        "patient": f"YILMAZ, AYSE NUR · {PATIENT_ID} · "
        f"{t['study_patient_ref'].format(ref='P-' + accession)}",
        "accession": accession,
        "question": STROKE,
        "study_date": "20.11.2025" if lang == "tr" else "2025-11-20",
    }
    head = page.locator("#study-head").inner_text()
    for key in ("study_patient", "study_accession", "study_question"):
        assert t[key] in head
    why = page.locator("#study-urgent-why")
    assert why.is_visible() and t["urgent_reason_question"] in why.inner_text()
    # the red-flag rule that fired, by name, as the worklist's "istem: …" names it
    assert ("İnme (felç) belirtileri" if lang == "tr" else "Signs of stroke") in why.inner_text()
    assert why.inner_text().startswith(t["urgent"])
    no_overflow(page)
    accessible(page)
    name = "360" if viewport is PHONE else "1280"
    page.screenshot(path=str(shots / f"study-undecided-mri-{lang}-{name}.png"), full_page=True)
    ctx.close()


@pytest.mark.parametrize("lang, viewport", VIEWS)
def test_a_conflicting_cxr_signed_corrected_shows_what_the_signer_said(
    server, browser, shots, lang, viewport
):
    base, _home = server
    t, names = T[lang], NAMES[lang]
    ctx, page = open_page(browser, base, viewport, lang)
    ref = f"P-CXR-{lang}-{viewport['width']}"
    study = upload(
        page,
        "film.png",
        png_bytes(5, (320, 320)),
        "image/png",
        task="cxr",
        patient_ref=ref,
        clinical_question="Ateş ve öksürük; pnömoni?",
    )
    assert study["status"] == "ai_drafted" and study["urgent"] is False
    assert study["urgent_because"] == []
    assert study["ai_result"]["decision"]["conflict"] == [
        "Bacterial_Pneumonia",
        "Pneumonia",
        "No Finding",
    ]
    page.goto(f"/studies/{study['id']}")
    page.locator("#findings tbody tr").first.wait_for()
    conflict = page.locator("#conflict-note")
    assert conflict.is_visible()
    text = conflict.inner_text()
    assert text.startswith(t["decision_conflict"].split("{labels}")[0])
    assert names["No Finding"] in text and names["Bacterial_Pneumonia"] in text
    assert page.locator("#col-signer").is_hidden()  # nothing signed yet
    # the normal label reads "geçerli değil" / "does not apply", never a double negative
    assert decision_cell(page, "No Finding").inner_text().startswith(t["state_normal_absent"])
    assert t["basis_conflict"] in decision_cell(page, "No Finding").inner_text()
    # signed corrected on the page: a normal film, the AI's pneumonia rejected in the labels card
    sections = {
        "technique": "PA akciğer grafisi.",
        "findings": "Akciğer alanları temiz.",
        "impression": "Normal akciğer grafisi.",
        "recommendation": "",
    }
    page.locator("#report-form").wait_for()

    def reread(response) -> bool:  # the labels card asked about the text as typed
        if not response.url.endswith(f"/api/v1/studies/{study['id']}/labels/suggest"):
            return False
        asked = (response.request.post_data_json or {}).get("sections") or {}
        typed = {k: v for k, v in sections.items() if v}
        return {k: v for k, v in asked.items() if v} == typed  # the empty ones left out

    with page.expect_response(reread):  # the card re-reads the text once typing stops
        for key, text in sections.items():
            page.get_by_label(t["section_" + key], exact=True).fill(text)
    card = page.locator("#labels-card")
    for label, present in (
        ("Bacterial_Pneumonia", "false"),
        ("Pneumonia", "false"),
        ("No Finding", "true"),
    ):
        row = card.locator(f"tr[data-label='{label}']")
        if row.get_attribute("data-present") != present:
            # the radiologist's own toggle, not the suggestion the text offers beside it
            row.locator("button.label-toggle").click()
        card.locator(f"tr[data-label='{label}'][data-present='{present}']").wait_for()
    page.get_by_role("button", name=t["report_sign"], exact=True).click()
    page.locator("#sign-dialog").wait_for(state="visible")
    rejected = page.locator("#sign-labels-rejected")  # the dialog says what is rejected
    assert names["Bacterial_Pneumonia"] in rejected.inner_text()
    assert names["No Finding"] in page.locator("#sign-labels").inner_text()
    name = "360" if viewport is PHONE else "1280"
    page.locator("#sign-dialog").screenshot(path=str(shots / f"sign-dialog-cxr-{lang}-{name}.png"))
    page.get_by_role("button", name=t["sign_confirm_ok"]).click()
    page.locator("#report-status[data-status='final']").wait_for()
    labels = page.request.get(f"/api/v1/studies/{study['id']}/labels").json()
    assert {x["label"]: x["present"] for x in labels["labels"]}["Bacterial_Pneumonia"] is False
    page.locator("#findings tbody tr[data-verdict]").first.wait_for()  # shown once signed
    page.goto(f"/studies/{study['id']}")  # and after a reload
    page.locator("#findings tbody tr[data-verdict]").first.wait_for()
    assert page.locator("#col-signer").is_visible() or viewport is PHONE
    row = page.locator("#findings tbody tr[data-label='Bacterial_Pneumonia']")
    assert row.get_attribute("data-verdict") == "rejected"
    assert row.locator("td.verdict-cell").inner_text().endswith(t["verdict_rejected"])
    assert row.locator("td.state").inner_text().startswith(t["state_present"])  # the AI's word
    assert (
        page.locator("#findings tbody tr[data-label='Pneumonia']").get_attribute("data-verdict")
        == "rejected"
    )
    normal = page.locator("#findings tbody tr[data-label='No Finding']")
    assert normal.get_attribute("data-verdict") == "added"
    assert normal.get_attribute("class") == "signed-present"  # what holds: the signer's word
    assert row.get_attribute("class") is None
    note = page.locator("#signed-note")
    note.filter(has_text="rad1").wait_for()
    assert note.inner_text().startswith(t["findings_signed_note"].split("{version}")[0])
    page.locator("#heatmap-on").check()
    caption = page.locator("#heatmap-caption")
    assert page.locator("#heatmap-label").input_value() == "Bacterial_Pneumonia"
    assert t["heatmap_state_rejected"] in caption.inner_text()
    # a passage the draft cited about the rejected finding is said not to support the report
    cited = page.locator("#citations li[data-label='Bacterial_Pneumonia'] .citation-rejected")
    cited.first.wait_for()
    assert cited.first.inner_text().startswith(t["citation_rejected"].split("{label}")[0])
    assert (
        page.locator("#citations li[data-label='No Finding'] .citation-rejected:visible").count()
        == 0
    )
    # the header of an upload: its reference and question, no accession, not urgent
    assert page.locator("#study-facts dd[data-field=patient]").inner_text() == ref
    assert page.locator("#study-facts dd[data-field=accession]").count() == 0
    assert page.locator("#study-urgent-why").is_hidden()
    no_overflow(page)
    accessible(page)
    page.screenshot(
        path=str(shots / f"study-signed-corrected-cxr-{lang}-{name}.png"), full_page=True
    )
    wrap = page.locator("#findings-wrap")  # the five columns fit: no sideways scroll inside
    assert wrap.evaluate("(w) => w.scrollWidth <= w.clientWidth"), wrap.evaluate(
        "(w) => [w.scrollWidth, w.clientWidth]"
    )
    ctx.close()
