"""The deliveries section of the admin page, in a real ``medai serve`` whose delivery loop sends
to a FHIR server that refuses and an HL7 receiver that is down: the admin sees each
destination's counts, the next attempt and the reason (no patient data), retries the failed
delivery with a button once the server accepts, and the page has no serious accessibility
violation (Chromium, Turkish)."""

from __future__ import annotations

import time

import httpx
import pytest

from helpers.outbox_peers import FhirServer, MllpServer
from helpers.platform import PASSWORD, decided, png_bytes, ui_server

MARKER = "Deniz-Aksoy-9931"


@pytest.fixture(scope="module")
def peers():
    fhir, hl7 = FhirServer(reject=True).start(), MllpServer()  # the HL7 receiver is down
    yield fhir, hl7
    fhir.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, peers, tfidf_model_dir, tiny_imaging_dir):
    fhir, hl7 = peers
    home = tmp_path_factory.mktemp("outbox-ui")
    with ui_server(
        home,
        {"admin": "admin", "rad1": "radiologist"},
        MEDAI_DATABASE_URL="",
        MEDAI_FHIR_URL=fhir.url,
        MEDAI_HL7_MLLP=f"127.0.0.1:{hl7.port}",
        MEDAI_OUTBOX_POLL_S="0.2",
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
    ) as base:
        yield base


def _token(base: str, user: str) -> dict:
    r = httpx.post(f"{base}/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _until(check, timeout: float = 120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_the_admin_sees_deliveries_and_retries_a_failed_one(server, peers, browser, shots):
    from helpers.browser import AXE, axe_violations, sign_in

    fhir, _ = peers
    rad, admin = _token(server, "rad1"), _token(server, "admin")
    sid = httpx.post(
        f"{server}/api/v1/studies",
        headers=rad,
        timeout=60,
        data={"task": "cxr", "patient_ref": MARKER},
        files={"file": ("x.png", png_bytes(3), "image/png")},
    ).json()["id"]
    _until(
        lambda: (
            httpx.get(f"{server}/api/v1/studies/{sid}", headers=rad).json()["status"]
            == "ai_drafted"
        )
    )
    r = httpx.post(
        f"{server}/api/v1/studies/{sid}/report/sign",
        headers=rad,
        json={"version": 1, "labels": decided(httpx, rad, sid, base=server)},
        timeout=60,
    )
    assert r.status_code == 200, r.text

    def counts():
        view = httpx.get(f"{server}/api/v1/admin/outbox", headers=admin).json()
        d = {x["name"]: x["counts"] for x in view["destinations"]}
        return d if d["fhir"]["failed"] == 2 and d["hl7"]["retrying"] == 1 else None

    _until(counts)
    ctx = browser.new_context(
        base_url=server, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    page = ctx.new_page()
    sign_in(page, "admin")
    page.goto("/admin")
    section = page.locator("#outbox-section")
    fhir_row = section.locator("#outbox-destinations tr[data-destination='fhir']")
    fhir_row.wait_for()
    cells = fhir_row.locator("td").all_inner_texts()
    assert cells[3] == "2"  # failed
    # the destination's refusal, in words never used for a radiologist's rejection (issue 59)
    assert "Hedef kabul etmedi: HTTP 422" in cells[-1] and "reddetti" not in cells[-1]
    assert "fhir · http://127.0.0.1" in fhir_row.locator("th").inner_text()
    hl7_row = section.locator("#outbox-destinations tr[data-destination='hl7']")
    assert hl7_row.locator("td").nth(1).inner_text() == "1"  # retrying
    assert hl7_row.locator("td").nth(5).inner_text() != ""  # its next attempt
    assert "Yeniden denenecek" in section.locator("#outbox-items").inner_text()
    assert MARKER not in section.inner_text()
    if AXE.is_file():
        page.wait_for_load_state("networkidle")
        assert axe_violations(page) == []
    section.screenshot(path=str(shots / "admin-outbox-tr-1280.png"))

    fhir.reject = False
    buttons = section.get_by_role("button", name="Yeniden gönder")
    assert buttons.count() == 2
    buttons.first.click()  # the newest: the signed report
    _until(lambda: fhir.reports().get(f"medai-report-{sid}", {}).get("status") == "final", 60)
    _until(lambda: buttons.count() == 1, 30)
    buttons.first.click()  # the preliminary one: a newer version is there, so not sent

    def fhir_counts():
        view = httpx.get(f"{server}/api/v1/admin/outbox", headers=admin).json()
        return next(x["counts"] for x in view["destinations"] if x["name"] == "fhir")

    # the delivery loop decides it in its own time: the page is refreshed once it has
    _until(lambda: fhir_counts()["skipped"] == 1, 60)
    page.get_by_role("button", name="Yenile").click()
    _until(lambda: fhir_row.locator("td").nth(4).inner_text() == "1", 30)  # skipped
    assert fhir_row.locator("td").nth(2).inner_text() == "1"  # delivered
    assert fhir.reports()[f"medai-report-{sid}"]["status"] == "final"
    ctx.close()
