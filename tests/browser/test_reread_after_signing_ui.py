"""A study read again after its report was signed (a late series), in headless Chromium against
a real ``medai serve``: the signer's "absent" was said of the earlier reading, so the page must
not call a finding of the new reading "rejected by the signing radiologist". It said so in the
urgent banner ("Gliom (imzalayan radyolog reddetti)") and in the findings table, beside the
notice that the AI read the study again; an urgent finding the signer never saw read as one
they had dismissed. Now: "not in the signed report". Turkish and English, desktop and a 360 px
phone; screenshots in ``MEDAI_SCREENSHOTS``."""

from __future__ import annotations

import json
import time

import pytest
from test_viewer_series_ui import no_overflow, open_page, upload

from helpers.browser import DESKTOP, PHONE, _shot
from helpers.paths import SRC
from helpers.viewer import mr_series, mri_ui_server

pytestmark = pytest.mark.slow

T = json.loads((SRC / "platform/web/messages.json").read_text(encoding="utf-8"))
GLIOMA = {"Glioma": 0.97, "Meningioma": 0.01, "Pituitary": 0.01, "No_Tumor": 0.01}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("reread-signed")
    with mri_ui_server(home, GLIOMA, tfidf_model_dir, tiny_imaging_dir) as base:
        yield base


def _wait(page, sid: int, done) -> dict:
    end = time.monotonic() + 240
    while time.monotonic() < end:
        s = page.request.get(f"/api/v1/studies/{sid}").json()
        if done(s):
            return s
        time.sleep(0.5)
    raise AssertionError(f"study {sid}: {s['status']}")


@pytest.fixture(scope="module")
def study(server, browser, tmp_path_factory):
    """A series read "glioma", signed by a radiologist who said no glioma; then a late series,
    read again ("glioma" once more)."""
    from pydicom.uid import generate_uid

    uid = generate_uid()
    ctx, page = open_page(browser, server, DESKTOP, "tr")
    first = mr_series(tmp_path_factory.mktemp("a"), 4, study=uid, accession="ACC-RR", size=64)
    sid = None
    for path, _sop, _z in first:
        filed = upload(page, path.name, path.read_bytes(), "application/dicom", "mri")["id"]
        sid = sid or filed
    _wait(page, sid, lambda s: s["status"] == "ai_drafted")
    draft = page.request.get(f"/api/v1/studies/{sid}/report").json()
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "medai_csrf")
    signed = page.request.post(
        f"/api/v1/studies/{sid}/report/sign",
        headers={"X-CSRF-Token": csrf},
        data={"version": draft["version"], "labels": {"Glioma": False, "No_Tumor": True}},
    )
    assert signed.status == 200, signed.text()
    late = mr_series(
        tmp_path_factory.mktemp("b"), 4, study=uid, accession="ACC-RR", size=64, description="FLAIR"
    )
    for path, _sop, _z in late:
        upload(page, path.name, path.read_bytes(), "application/dicom", "mri")
    _wait(page, sid, lambda s: s.get("reread") is not None)
    ctx.close()
    return sid


@pytest.mark.parametrize("lang", ["tr", "en"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_finding_of_a_reading_after_the_signature_is_not_called_rejected(
    server, browser, study, lang, viewport
):
    t = T[lang]
    ctx, page = open_page(browser, server, viewport, lang)
    page.goto(f"/studies/{study}?lang={lang}")
    page.locator("#study-reread").wait_for(state="visible")
    row = page.locator('#findings tr[data-label="Glioma"]')
    row.wait_for()
    verdict = row.locator("td.verdict-cell")
    assert verdict.get_attribute("data-verdict") == "not_in_report"
    assert verdict.inner_text().endswith(t["verdict_not_in_report"])
    why = page.locator("#study-urgent-why").inner_text()
    assert t["urgent_reason_finding_not_in_report"].split("{labels}")[1] in why
    assert t["urgent_reason_finding_rejected"].split("{labels}")[1] not in why
    no_overflow(page)
    _shot(page, f"reread-signed-{lang}-{'phone' if viewport == PHONE else 'desktop'}.png")
    ctx.close()
