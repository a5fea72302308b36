"""Issue 59, items 5 and 6, in a real ``medai serve`` (Chromium, Turkish, 360 and 1280 px).

A radiologist opens "Hesabım" from the header, sets their full name and title, and sees how
signed reports will name them. The admin's audit log shows the newest events first, a page at
a time of the total, its actions and targets in Turkish ("Kullanıcı: rad1", never "user 2"),
each event about a study linked to that study's page, and a filter by study."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from helpers.browser import DESKTOP, PHONE, new_page, sign_in
from helpers.platform import PASSWORD, png_bytes, ui_server

SHOTS = "MEDAI_SCREENSHOTS"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    with ui_server(
        tmp_path_factory.mktemp("audit-ui"),
        {"admin": "admin", "rad1": "radiologist"},
        MEDAI_DATABASE_URL="",
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
    ) as base:
        yield base


def _token(base: str, user: str) -> dict:
    r = httpx.post(f"{base}/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _study(base: str, rad: dict, seed: int) -> int:
    r = httpx.post(
        f"{base}/api/v1/studies",
        headers=rad,
        timeout=60,
        data={"task": "cxr"},
        files={"file": ("x.png", png_bytes(seed), "image/png")},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_radiologist_sets_the_name_reports_sign_with(server, browser, shots):
    for viewport, width in ((PHONE, 360), (DESKTOP, 1280)):
        ctx, page, _ = new_page(browser, server, viewport, bypass_csp=True)
        sign_in(page, "rad1")
        page.locator("header a.who").click()  # "rad1 (Radyolog)" in the header opens the page
        page.wait_for_url("**/account")
        assert page.locator("h1").inner_text() == "Hesabım"
        if width == 360:  # no full name yet: reports name the user name
            assert page.locator("#account-signs-as").inner_text() == "rad1"
        page.get_by_label("Unvan").fill("Uzm. Dr.")
        page.get_by_label("Ad soyad").fill("Ayşe  Nur Yılmaz")
        assert page.locator("#account-signs-as").inner_text() == "Uzm. Dr. Ayşe Nur Yılmaz"
        page.get_by_role("button", name="Kaydet").click()
        page.locator("#account-done").wait_for()
        assert "Kaydedildi" in page.locator("#account-done").inner_text()
        assert page.get_by_label("Ad soyad").input_value() == "Ayşe Nur Yılmaz"
        page.reload()
        assert page.get_by_label("Unvan").input_value() == "Uzm. Dr."
        assert page.locator("#account-signs-as").inner_text() == "Uzm. Dr. Ayşe Nur Yılmaz"
        # the header names the person as their signature does (issue 69: "dr.ayse (Radyolog)")
        assert page.locator("header a.who").inner_text() == "Uzm. Dr. Ayşe Nur Yılmaz (Radyolog)"
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(shots / f"account-tr-{width}.png"), full_page=True)
        if width == 360:  # a wrong value says what is valid, in Turkish
            page.get_by_label("Ad soyad").fill("Ayşe^Yılmaz")
            page.get_by_role("button", name="Kaydet").click()
            error = page.locator("#account-error")
            error.wait_for()
            assert "2–60 karakter" in error.inner_text()
        ctx.close()


def test_the_audit_log_shows_the_newest_first_in_turkish_with_pages(server, browser, shots):
    rad = _token(server, "rad1")
    httpx.patch(
        f"{server}/api/v1/users/rad1/profile",
        headers=rad,
        json={"full_name": "Ayşe Nur Yılmaz", "title": "Uzm. Dr."},
    )
    first, second = _study(server, rad, 3), _study(server, rad, 4)
    for sid in (first, second):  # analysed and drafted (each poll is a view of the study)
        end = time.monotonic() + 180
        while httpx.get(f"{server}/api/v1/studies/{sid}", headers=rad).json()["status"] != (
            "ai_drafted"
        ):
            assert time.monotonic() < end, "no draft"
            time.sleep(0.3)
    assert httpx.get(f"{server}/api/v1/studies/{first}/report", headers=rad).status_code == 200
    for _ in range(60):  # more events than one page holds
        httpx.get(f"{server}/api/v1/studies", headers=rad)
    httpx.get(f"{server}/api/v1/studies/{second}", headers=rad)  # the newest event

    for viewport, width in ((DESKTOP, 1280), (PHONE, 360)):
        ctx, page, _ = new_page(browser, server, viewport, bypass_csp=True)
        sign_in(page, "admin")
        page.goto("/admin")
        rows = page.locator("#audit tbody tr")
        rows.first.wait_for()
        assert rows.count() == 50
        top = rows.first
        # rad1's newest event (viewing the second study) comes first but for the admin's own
        # (signing in, opening this page), above the sixty worklist views before it
        texts = rows.all_inner_texts()
        first_rad = next(i for i, t in enumerate(texts) if "rad1" in t)
        assert all("admin" in t for t in texts[:first_rad]) and "Görüntüleme" in texts[first_rad]
        link = rows.nth(first_rad).get_by_role("link", name=f"Tetkik {second}")
        assert link.get_attribute("href") == f"/studies/{second}"
        assert "İş listesi" in texts[first_rad + 1]
        times = [rows.nth(i).locator("time").get_attribute("datetime") for i in range(50)]
        assert times == sorted(times, reverse=True)
        rng = page.locator("#audit-range").inner_text()
        m = re.fullmatch(r"1–50 / ([\d.]+) kayıt", rng)
        assert m, rng
        total = int(m.group(1).replace(".", ""))
        assert total > 60
        table = page.locator("#audit").inner_text()
        for english in ("study", "report", "worklist", "user 2", "view"):
            assert not re.search(rf"\b{english}\b", table), english
        assert "İş listesi" in table
        if width == 1280:
            page.locator("#audit").scroll_into_view_if_needed()
            page.locator("#audit").locator("xpath=ancestor::section").screenshot(
                path=str(shots / "admin-audit-tr-1280.png")
            )
            newest = top.get_attribute("data-id")
            page.get_by_role("button", name="Daha eski ›").click()
            page.wait_for_function(
                "document.querySelector('#audit-range').textContent.startsWith('51–')"
            )
            assert int(rows.first.get_attribute("data-id")) < int(newest) - 49
            assert page.get_by_role("button", name="‹ Daha yeni").is_enabled()
            page.get_by_role("button", name="‹ Daha yeni").click()
            page.wait_for_function(
                "document.querySelector('#audit-range').textContent.startsWith('1–')"
            )
            assert rows.first.get_attribute("data-id") == newest  # held still by until_id

            # the profile change: who changed whose name, the account by its name
            page.locator("#a-action").select_option("profile")
            page.get_by_role("button", name="Uygula").click()
            page.wait_for_function(
                "document.querySelector('#audit-range').textContent.includes('/ 1 kayıt')"
            )
            cells = rows.first.locator("td").all_inner_texts()
            assert cells[2] == "Ad ve unvan değişikliği" and cells[3] == "Kullanıcı: rad1"
            page.locator("#a-action").select_option("")
        # one study's events, each linked to it
        page.locator("#a-study").fill(str(first))
        page.get_by_role("button", name="Uygula").click()
        page.wait_for_function(
            f"[...document.querySelectorAll('#audit tbody tr')].every("
            f"r => r.querySelector('a[href=\"/studies/{first}\"]'))"
        )
        text = page.locator("#audit").inner_text()
        assert f"Rapor · Tetkik {first}" in text and f"Tetkik {second}" not in text
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        if width == 360:
            page.locator("#audit").locator("xpath=ancestor::section").screenshot(
                path=str(shots / "admin-audit-tr-360.png")
            )
        ctx.close()
