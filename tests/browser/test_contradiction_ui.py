"""The sign dialog says what the API says (issue 67, item 8), in Chromium, in Turkish and
English: answering every question "absent" (the normal label included) on a film the AI could
not decide is a contradiction — the dialog names it and keeps Sign off until it is resolved;
a refusal by the server (the dialog's check bypassed) is named in the reader's language, and
nothing is signed; a consistent answer signs and is stored exactly as given."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers.browser import answer_undecided, csrf, login_page
from helpers.builders import answering_model
from helpers.platform import png_bytes, ui_server

pytestmark = pytest.mark.slow

# "No Finding" and COVID-19 both above their thresholds: the AI cannot decide between them
CXR = {
    "No Finding": 0.8,
    "COVID-19": 0.5,
    "Viral_Pneumonia": 0.3,
    "Pneumonia": 0.4,
    "Bacterial_Pneumonia": 0.05,
}
POLICY = {
    "thresholds": {
        "Pneumonia": 0.584,
        "COVID-19": 0.089,
        "Viral_Pneumonia": 0.737,
        "Bacterial_Pneumonia": 0.41,
        "No Finding": 0.699,
    }
}
WORDS = {
    "tr": {
        "clash": "“Bulgu yok” geçerli değil, ama hiçbir bulgu var işaretli değil",
        "refused": "İmzalanmadı: bulgu kararlarınız birbiriyle çelişiyor.",
    },
    "en": {
        "clash": "“No finding” does not apply, yet no finding is marked present",
        "refused": "Not signed: your finding decisions contradict each other.",
    },
}
SHOTS = Path(os.environ.get("MEDAI_SCREENSHOTS") or "/tmp/medai-shots") / "contradiction"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir):
    home = tmp_path_factory.mktemp("contradiction-ui")
    cxr = answering_model(home / "cxr-model", "cxr", CXR, POLICY)
    with ui_server(
        home,
        {"rad1": "radiologist"},
        MEDAI_TIMEZONE="Europe/Istanbul",
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={cxr}",
    ) as base:
        yield base


def _upload(page, seed: int) -> int:
    import time

    r = page.request.post(
        "/api/v1/studies",
        headers=csrf(page),
        multipart={
            "file": {"name": "f.png", "mimeType": "image/png", "buffer": png_bytes(seed)},
            "task": "cxr",
            "patient_ref": f"P-CONTRA-{seed}",
        },
    )
    assert r.ok, r.text()
    sid = r.json()["id"]
    for _ in range(1200):
        if page.request.get(f"/api/v1/studies/{sid}").json()["status"] == "ai_drafted":
            return sid
        time.sleep(0.1)
    raise AssertionError("not drafted")


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def _open_dialog(page) -> None:
    page.locator("#sign").click()
    page.locator("#sign-dialog").wait_for(state="visible")
    page.locator("#sign-undecided fieldset").first.wait_for()


def _normal(page, present: bool) -> None:
    value = "true" if present else "false"
    page.locator(
        f"#sign-undecided fieldset[data-label='No Finding'] input[value='{value}']"
    ).check()


def _strip_contradictions(route) -> None:
    """The labels' answer without its contradictions: the dialog cannot see one coming."""
    response = route.fetch()
    body = response.json()
    body["contradictions"] = []
    route.fulfill(response=response, body=json.dumps(body))


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_the_dialog_names_a_contradiction_and_the_servers_refusal_in_the_readers_language(
    server, browser, lang
):
    words = WORDS[lang]
    ctx, page = login_page(browser, server, lang=lang)
    sid = _upload(page, 70 + len(lang))
    page.goto(f"/studies/{sid}")
    page.locator("#labels-card tr[data-label='COVID-19']").wait_for()
    confirm, clash = page.locator("#sign-confirm"), page.locator("#sign-contradiction")

    # every question answered absent, the normal label included: named, Sign stays off
    _open_dialog(page)
    assert clash.is_hidden()
    assert answer_undecided(page, present=False)
    clash.wait_for(state="visible")
    assert words["clash"] in clash.inner_text()
    assert confirm.is_disabled()
    SHOTS.mkdir(parents=True, exist_ok=True)
    clash.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"sign-dialog-{lang}-contradiction.png"))
    _normal(page, True)  # the film is normal: consistent
    clash.wait_for(state="hidden")
    expect(confirm).to_be_enabled()
    page.locator("#sign-cancel").click()

    # the server is the judge: with the dialog's check bypassed, its refusal is named
    page.route("**/labels/suggest", _strip_contradictions)
    _open_dialog(page)
    answer_undecided(page, present=False)
    expect(confirm).to_be_enabled()
    confirm.click()
    message = page.locator("#report-message")
    expect(message).to_contain_text(words["refused"])
    assert words["clash"] in message.inner_text()
    page.screenshot(path=str(SHOTS / f"sign-refused-{lang}.png"))
    report = page.request.get(f"/api/v1/studies/{sid}/report").json()
    assert report["signed_by"] is None and report["status"] == "preliminary"
    page.unroute("**/labels/suggest")

    # a consistent answer signs, and is stored exactly as given
    _open_dialog(page)
    answer_undecided(page, present=False)
    _normal(page, True)
    expect(confirm).to_be_enabled()
    assert clash.is_hidden()
    confirm.click()
    page.locator("#report-status[data-status='final']").wait_for()
    stored = page.request.get(f"/api/v1/studies/{sid}/labels").json()["labels"]
    said = {x["label"]: x["present"] for x in stored}
    assert said["No Finding"] is True and not any(v for k, v in said.items() if k != "No Finding")
    ctx.close()
