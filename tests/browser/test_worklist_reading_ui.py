"""The worklist ranked by what the AI found (issue 59), in headless Chromium, in Turkish, against
a real ``medai serve`` whose tiny models answer fixed probabilities: a chest model that finds
none of its findings, a brain MRI model that finds a glioma (an urgent label of the task).

Three studies arrive: an old chest film, a chest film whose request raises a red flag, and —
last — the glioma. The glioma is read first ("görüntü: Gliom …"), then the film with the red
flag ("istem: İnme (felç) belirtileri"), then the old film; each reason is said apart, and the
filters for an urgent AI finding and for a red flag in the request each keep their rows. At
360 px and 1280 px, without sideways scrolling.

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

T = json.loads((SRC / "platform/web/messages.json").read_text(encoding="utf-8"))["tr"]
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
STROKE = "hasta aniden konuşamıyor, yüzünün bir tarafı kaydı"  # triage's "stroke" rule
CXR = {"Pneumothorax": 0.05, "Effusion": 0.05, "No Finding": 0.9}
MRI = {"Glioma": 0.86, "Meningioma": 0.06, "Pituitary": 0.04, "No_Tumor": 0.04}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir):
    home = tmp_path_factory.mktemp("worklist-reading")
    cxr = answering_model(home / "cxr-model", "cxr", CXR, {"thresholds": dict.fromkeys(CXR, 0.5)})
    mri = answering_model(home / "mri-model", "mri", MRI, {"min_confidence": 0.5})
    with ui_server(
        home,
        {"rad1": "radiologist"},
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={cxr},mri={mri}",
    ) as base:
        yield base


def upload(page, seed: int, **form: str) -> int:
    r = page.request.post(
        "/api/v1/studies",
        headers=csrf(page),
        multipart={
            "file": {"name": "x.png", "mimeType": "image/png", "buffer": png_bytes(seed)},
            "lang": "tr",
            **form,
        },
    )
    assert r.status == 201, r.text()
    study = r.json()
    for _ in range(900):
        study = page.request.get(f"/api/v1/studies/{study['id']}").json()
        if study["status"] not in ("received", "analysing"):
            assert study["status"] == "ai_drafted", study
            return study["id"]
        time.sleep(0.1)
    raise AssertionError(f"study {study['id']} stayed {study['status']}")


@pytest.fixture(scope="module")
def studies(server, browser) -> dict[str, int]:
    ctx, page = login_page(browser, server, DESKTOP)
    made = {
        "old_film": upload(page, 1, task="cxr", patient_ref="P-ESKI"),
        "flagged_film": upload(
            page, 2, task="cxr", patient_ref="P-ISTEM", clinical_question=STROKE
        ),
        "glioma": upload(page, 3, task="mri", patient_ref="P-GLIOM"),
    }
    ctx.close()
    return made


def rows(page) -> list[int]:
    return [
        int(i)
        for i in page.locator("#worklist tbody tr").evaluate_all("rs => rs.map(r => r.dataset.id)")
    ]


def wait_rows(page, want: list[int]) -> None:
    for _ in range(100):
        if rows(page) == want:
            return
        time.sleep(0.1)
    assert rows(page) == want


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["360", "1280"])
def test_the_worklist_reads_an_urgent_ai_finding_first_then_a_red_flag_each_said_apart(
    server, studies, browser, shots, viewport
):
    ctx, page = login_page(browser, server, viewport)
    page.goto("/worklist")
    ranked = [studies["glioma"], studies["flagged_film"], studies["old_film"]]
    wait_rows(page, ranked)

    def row(name):
        return page.locator(f"#worklist tbody tr[data-id='{studies[name]}']")

    glioma, flagged, old = row("glioma"), row("flagged_film"), row("old_film")
    assert glioma.get_attribute("data-rank") == "ai_urgent"
    assert flagged.get_attribute("data-rank") == "red_flag"
    assert old.get_attribute("data-rank") == "rest"
    # the image's reason and the request's, each apart
    image = glioma.locator(".reason-image")
    assert image.inner_text().startswith("görüntü: Gliom %86")
    assert glioma.locator(".reason-request").count() == 0
    request = flagged.locator(".reason-request")
    assert request.inner_text() == "istem: İnme (felç) belirtileri"
    assert flagged.locator(".reason-image").count() == 0
    assert old.locator(".reason").count() == 0
    # the AI column: the glioma with its probability, the films with none of their findings
    assert glioma.locator("td.ai-cell").get_attribute("data-ai-state") == "finding"
    assert "Gliom" in glioma.locator("td.ai-cell").inner_text()
    for film in (flagged, old):
        assert film.locator("td.ai-cell").inner_text().strip() == T["ai_state_normal"]
    assert "%100" not in page.locator("#worklist").inner_text()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= viewport["width"]
    page.screenshot(path=str(shots / f"worklist-{viewport['width']}-tr.png"), full_page=True)

    # a filter for each reason: an urgent AI finding, a red flag in the request
    page.locator("#f-ai").select_option("urgent")
    wait_rows(page, [studies["glioma"]])
    page.screenshot(path=str(shots / f"worklist-{viewport['width']}-tr-urgent.png"), full_page=True)
    page.locator("#f-ai").select_option("")
    page.locator("#f-red-flag").check()
    wait_rows(page, [studies["flagged_film"]])
    page.locator("#f-red-flag").uncheck()
    wait_rows(page, ranked)
    ctx.close()


@pytest.mark.parametrize(
    "viewport, lang", [(PHONE, "tr"), (DESKTOP, "en")], ids=["360-tr", "1280-en"]
)
def test_a_glioma_on_the_signed_prior_is_known_and_the_default_list_holds_no_signed_study(
    server, studies, browser, shots, viewport, lang
):
    """Issue 69: row 1 of the reading day was a glioma already reported on a signed prior,
    above a new request with a red flag. The same patient's new glioma now says "bilinen" /
    "known" and lists after the red flag; the signed prior is not in the default list, and the
    "signed" filter shows it."""
    from medai.core.task_registry import get as get_task

    ctx, page = login_page(browser, server, viewport, lang=lang)
    ref = f"P-BILINEN-{viewport['width']}"
    prior = upload(page, 4, task="mri", patient_ref=ref)
    r = page.request.post(
        f"/api/v1/studies/{prior}/report/sign",
        headers={**csrf(page), "Content-Type": "application/json"},
        data=json.dumps({"version": 1, "labels": {"Glioma": True}}),
    )
    assert r.status == 200, r.text()
    today = upload(page, 5, task="mri", patient_ref=ref)
    page.goto(f"/worklist?lang={lang}")
    row = page.locator(f"#worklist tbody tr[data-id='{today}']")
    row.wait_for()
    words = json.loads((SRC / "platform/web/messages.json").read_text(encoding="utf-8"))[lang]
    name = get_task("mri").label_name("Glioma", lang)
    assert row.locator(".reason-known").inner_text() == words["reason_known"].format(finding=name)
    assert row.get_attribute("data-rank") == "rest" and row.locator(".reason-image").count() == 0
    order = rows(page)
    assert prior not in order  # signed: not in the list to read
    assert order.index(studies["flagged_film"]) < order.index(today)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= viewport["width"]
    # issue 69: on a phone the first study's link was below the first screen, and a small
    # number; now the link is on it, named as its page is, and a thumb's size
    first = page.locator("#worklist tbody tr").first.locator("a.study-link")
    box = first.bounding_box()
    assert box["y"] + box["height"] <= viewport["height"], box
    if viewport is PHONE:  # "Tetkik 12": the word is drawn before the number (CSS)
        prefix = first.evaluate("a => getComputedStyle(a, '::before').content")
        assert words["study_title"] in prefix
        assert box["height"] >= 44 and box["width"] >= 44
    page.screenshot(
        path=str(shots / f"worklist-known-{viewport['width']}-{lang}.png"), full_page=True
    )
    page.locator("#f-status").select_option("signed")
    for _ in range(100):
        if rows(page) and prior in rows(page):
            break
        time.sleep(0.1)
    assert prior in rows(page) and today not in rows(page)
    ctx.close()
