"""The web UI end to end in headless Chromium (Debian's, driven by Playwright through
``executable_path``) against a real `medai serve`: every role signs in, the triage banner, a
study from upload to signed report with its exports, what a clinician may not do, a phone-sized
viewport, accessibility (axe-core), and no request to any host but medai's.

Screenshots land in ``MEDAI_SCREENSHOTS`` (default: the test's temporary folder)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from helpers.browser import answer_undecided, axe_violations, new_page, sign_in
from helpers.paths import AXE
from helpers.platform import (
    PASSWORD,
    http_login,
    png_bytes,
    ui_server,
)

pytestmark = pytest.mark.slow
PHONE = {"width": 360, "height": 740}
URGENT_TEXT = "babam aniden konuşamıyor, ağzı bir tarafa kaydı, sağ kolunu kaldıramıyor"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("web-home")
    image = Path(os.environ["MEDAI_UI_IMAGE"]) if os.environ.get("MEDAI_UI_IMAGE") else None
    if image is None:
        image = home / "chest.png"
        image.write_bytes(png_bytes(42, (320, 320)))
    users = {"admin": "admin", "rad1": "radiologist", "clin": "clinician", "pat1": "patient"}
    triage = os.environ.get("MEDAI_UI_TRIAGE_MODEL", str(tfidf_model_dir))
    cxr = os.environ.get("MEDAI_UI_CXR_MODEL", str(tiny_imaging_dir))
    with ui_server(
        home, users, MEDAI_KIOSK_DAILY_QUOTA="50", MEDAI_MODELS=f"triage={triage},cxr={cxr}"
    ) as base:
        yield base, image


@pytest.fixture(scope="module")
def a_study(server) -> int:
    """One analysed study uploaded through the API, for the tests that need a worklist row or
    a study page (each runs alone too, not only after the upload test)."""
    import time

    import httpx

    base, image = server
    headers = http_login(base, "rad1")
    r = httpx.post(
        f"{base}/api/v1/studies",
        headers=headers,
        timeout=60,
        files={"file": ("fixture.png", image.read_bytes(), "image/png")},
        data={"task": "cxr", "patient_ref": "P-FIXTURE", "lang": "tr"},
    )
    assert r.status_code == 201, r.text
    study = r.json()
    for _ in range(900):
        study = httpx.get(
            f"{base}/api/v1/studies/{study['id']}", headers=headers, timeout=30
        ).json()
        if study["status"] not in ("received", "analysing"):
            return study["id"]
        time.sleep(0.1)
    raise AssertionError(f"study {study['id']} stayed {study['status']}")


@pytest.mark.parametrize(
    "next_, lands",
    [
        ("/\\evil.example/x", "/worklist"),
        ("//evil.example/x", "/worklist"),
        ("/%5Cevil.example/x", None),
        ("https://evil.example/", "/worklist"),
        ("/\t/evil.example/", "/worklist"),
        ("/studies/1?x=1", "/studies/1"),
    ],
)
def test_sign_in_follows_next_only_to_a_path_of_this_site(server, browser, next_, lands):
    from urllib.parse import quote

    base, _ = server
    ctx, page, watch = new_page(browser, base)
    page.goto("/login?next=" + quote(next_, safe=""))
    page.get_by_label("Kullanıcı adı").fill("rad1")
    page.get_by_label("Parola").fill(PASSWORD)
    page.get_by_role("button", name="Giriş").click()
    page.wait_for_url(lambda url: "/login" not in url)
    assert urlparse(page.url).netloc == urlparse(base).netloc, page.url
    assert lands is None or urlparse(page.url).path == lands
    assert watch.hosts == {urlparse(base).netloc}
    ctx.close()


@pytest.mark.parametrize(
    "username, home",
    [("admin", "/admin"), ("rad1", "/worklist"), ("clin", "/worklist"), ("pat1", "/triage")],
)
def test_each_role_signs_in_to_its_home_page(server, browser, username, home):
    base, _ = server
    ctx, page, watch = new_page(browser, base)
    sign_in(page, username)
    assert urlparse(page.url).path == home
    assert page.locator(".who").inner_text().startswith(username)
    page.get_by_role("button", name="Çıkış").click()
    page.wait_for_url("**/login")
    assert watch.hosts == {urlparse(base).netloc}
    ctx.close()


def test_a_request_answered_401_after_sign_out_leaves_the_browser_on_the_login_page(
    server, browser
):
    """CI saw a request of the admin page come back 401 after sign-out had ended the session,
    while sign-out's own navigation to "/login" was still loading, and send the browser to
    "/login?next=/admin" over it. Here the request and that navigation are both held, so the
    order CI met is the order every run meets: the session ends, "/login" is pending, then the
    late 401 arrives. It must not move the browser again."""
    from playwright.sync_api import Error as PlaywrightError

    base, _ = server
    ctx, page, _ = new_page(browser, base)
    sign_in(page, "admin")
    late, login = [], []
    page.route("**/api/v1/studies?held=1", lambda route: late.append(route))
    page.evaluate(
        "window.medai.api('/api/v1/studies?held=1').then(() => { window.lateDone = true; }); 0"
    )
    while not late:  # route handlers run while Playwright waits
        page.wait_for_timeout(20)
    page.route(
        "**/login", lambda route: login.append(route)
    )  # the bare path only: "/login?next=…" is not held
    # the button clicked from the page: Playwright's own click (1.65) waits for the navigation
    # it starts to finish, and that navigation is the one held here
    assert page.get_by_role("button", name="Çıkış").get_attribute("id") == "signout"
    page.evaluate("setTimeout(() => document.getElementById('signout').click(), 0); 0")
    while not login:
        page.wait_for_timeout(20)
    late[0].continue_()  # sent with the ended session's cookie: 401
    try:
        page.wait_for_function("window.lateDone === true", timeout=10_000)
    except PlaywrightError:
        pass  # the page navigated away on the 401: the assertion below names it
    try:
        login[0].continue_()
    except PlaywrightError:
        pass  # the late 401 cancelled sign-out's navigation
    page.wait_for_url(re.compile(r"/login"))
    page.wait_for_load_state()
    assert urlparse(page.url).path == "/login" and not urlparse(page.url).query, page.url
    ctx.close()


def test_kiosk_triage_shows_the_urgent_banner_on_a_phone(server, browser, shots):
    base, _ = server
    ctx, page, watch = new_page(browser, base, viewport=PHONE)
    page.goto("/triage")
    page.get_by_label("Şikâyetiniz (Türkçe)").fill(URGENT_TEXT)
    page.get_by_role("button", name="Bölüm öner").click()
    banner = page.locator("#triage-result .urgent-banner")
    banner.wait_for(state="visible")
    assert "ACİL" in banner.inner_text()
    box = banner.bounding_box()
    assert box["y"] >= 0 and box["y"] + 40 <= PHONE["height"]  # above the fold
    assert "yapay zekâ destekli" in page.locator("#triage-result .neutral-line").inner_text()
    assert page.locator("#triage-result .bars").count() == 0  # nothing contradicts it
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(shots / "triage-urgent-phone.png"), full_page=True)
    assert watch.hosts == {urlparse(base).netloc}
    ctx.close()


def test_language_switch_and_calm_triage(server, browser):
    base, _ = server
    ctx, page, _ = new_page(browser, base)
    page.goto("/triage")
    page.get_by_role("link", name="English").click()
    page.get_by_label("Complaint (in Turkish)").fill("iki haftadır kulağımda çınlama var")
    page.get_by_role("button", name="Suggest a department").click()
    page.locator("#triage-result .bars li").first.wait_for()
    assert page.locator(".urgent-banner").count() == 0
    assert page.locator("#triage-result .bars li").count() >= 1
    assert "not a diagnosis" in page.locator("#triage-result .disclosure").inner_text()
    ctx.close()


@pytest.mark.parametrize("path", ["/login", "/triage"])
def test_a_form_cannot_be_sent_before_its_script_has_wired_it(server, browser, path):
    """A click on a form's button before the page's deferred scripts ran made the browser
    submit the form itself: a GET that put the password (login) or the complaint (triage) in
    the address, the server's access log and the browser's history, and lost what was typed
    (CI saw the calm-triage test wait on a reloaded page). The scripts are held here until
    the button has been tried: it is disabled until they have run, then it works."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    base, _ = server
    ctx, page, _ = new_page(browser, base)
    held = []
    page.route("**/ui/*.js", lambda route: held.append(route))
    page.goto(path, wait_until="commit")
    secret = "gizli-sifre-123" if path == "/login" else "iki haftadır kulağımda çınlama var"
    if path == "/login":
        page.get_by_label("Kullanıcı adı").fill("rad1")
        page.get_by_label("Parola").fill(secret)
        button = page.get_by_role("button", name="Giriş")
    else:
        page.get_by_label("Şikâyetiniz (Türkçe)").fill(secret)
        button = page.get_by_role("button", name="Bölüm öner")
    assert button.is_disabled()
    with pytest.raises(PlaywrightTimeout):
        button.click(timeout=1_000)  # nothing is sent while the scripts are not there
    assert "?" not in page.url
    for route in held:
        route.continue_()
    page.unroute("**/ui/*.js")
    if path == "/login":
        page.get_by_label("Parola").fill(PASSWORD)
        button.click()
        page.wait_for_url(lambda url: "/login" not in url)
    else:
        button.click()
        page.locator("#triage-result .bars li").first.wait_for()
    assert "gizli" not in page.url and "text=" not in page.url
    ctx.close()


def test_pages_load_app_js_by_the_releases_address(server):
    """After an upgrade the old service worker answers /ui/app.js from its cache: an app.js
    from before the submit buttons' data-until-ready would leave them disabled. Pages ask for
    app.js by an address carrying the release's static digest, which no older cache holds."""
    import httpx

    from medai.platform.web.routes import static_version

    base, _ = server
    page = httpx.get(f"{base}/login", timeout=30).text
    address = f"/ui/app.js?v={static_version()}"
    assert f'src="{address}"' in page
    script = httpx.get(base + address, timeout=30)
    assert script.status_code == 200 and "data-until-ready" in script.text


def test_study_from_upload_to_signed_report_and_exports(server, browser, shots):
    base, image = server
    ctx, page, watch = new_page(browser, base)
    sign_in(page, "rad1")
    page.locator("#upload-panel summary").click()
    page.get_by_label("Görüntü (PNG, JPEG veya DICOM)").set_input_files(str(image))
    page.get_by_label("Hasta referansı (takma ad)").fill("P-UI-1")
    page.get_by_role("button", name="Yükle").click()
    done = page.locator("#upload-done")  # the upload says where the study went
    done.wait_for()
    assert re.fullmatch(
        r"Tetkik \d+ yüklendi; YZ analizi şimdi çalışıyor\. Tetkiki aç", done.inner_text()
    ), done.inner_text()
    row = page.locator("#worklist tbody tr").filter(has_text="P-UI-1").first
    row.locator("[data-status='ai_drafted']").wait_for(timeout=90_000)  # live updates
    page.screenshot(path=str(shots / "worklist-desktop.png"))
    row.get_by_role("link").click()
    page.wait_for_url("**/studies/*")
    page.locator("#findings tbody tr").first.wait_for()
    assert "sha256:" in page.locator("#model-line").inner_text()  # the exact model is named
    assert page.locator("#study-urgent").is_hidden()  # no urgent question, no urgent finding
    page.get_by_label("Isı haritası", exact=True).check()
    heat = page.locator("#heatmap")
    heat.wait_for(state="visible")
    # a function, not an expression: an expression string is eval, which the CSP refuses
    page.wait_for_function("() => document.getElementById('heatmap').naturalWidth > 0")
    page.get_by_role("slider", name="Yakınlaştır").fill("2")
    page.locator("#sec-impression").wait_for()
    page.locator("#sec-impression").fill("Radyolog tarafından düzenlendi.")
    page.get_by_role("button", name="Kaydet").click()
    page.locator("#report-message").filter(has_text="Kaydedildi").wait_for()
    page.get_by_role("button", name="İmzala", exact=True).click()
    answer_undecided(page)  # the radiologist decides each label the AI left undecided
    page.get_by_role("button", name="Bu metni imzala").click()  # confirms the text on screen
    page.locator("#report-status[data-status='final']").wait_for()
    page.get_by_role("button", name="Farkları göster").first.click()
    assert "+ Radyolog tarafından düzenlendi." in page.locator("#diff").inner_text()
    page.screenshot(path=str(shots / "study-desktop.png"), full_page=True)
    with page.expect_download() as pdf:
        page.get_by_role("link", name="PDF indir").click()
    assert Path(pdf.value.path()).read_bytes()[:5] == b"%PDF-"
    with page.expect_download() as fhir:
        page.get_by_role("link", name="FHIR JSON indir").click()
    bundle = json.loads(Path(fhir.value.path()).read_text())
    report = bundle["entry"][0]["resource"]
    assert report["resourceType"] == "DiagnosticReport" and report["status"] == "final"
    assert watch.hosts == {urlparse(base).netloc}
    ctx.close()


def test_a_clinician_sees_no_sign_button_and_the_api_refuses(server, browser):
    base, _ = server
    ctx, page, _ = new_page(browser, base)
    sign_in(page, "clin")
    page.locator("#worklist tbody tr a").first.wait_for()
    page.locator("#worklist tbody tr a").first.click()
    page.locator("#report-form").wait_for()
    assert page.locator("#sign").count() == 0
    study_id = page.locator("#study").get_attribute("data-study-id")
    status = page.evaluate(
        """async (id) => {
        const r = await window.medai.api(`/api/v1/studies/${id}/report/sign`,
                                         {method: 'POST', json: {version: 1}});
        return r.status; }""",
        study_id,
    )
    assert status == 403
    ctx.close()


def test_phone_worklist_has_no_horizontal_scroll(server, a_study, browser, shots):
    base, _ = server
    ctx, page, _ = new_page(browser, base, viewport=PHONE)
    sign_in(page, "rad1")
    page.locator("#worklist tbody tr").first.wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(shots / "worklist-phone.png"), full_page=True)
    ctx.close()


@pytest.mark.parametrize(
    "username, path",
    [
        (None, "/triage"),
        (None, "/kiosk"),
        (None, "/login"),
        ("rad1", "/worklist"),
        ("rad1", "/studies/{id}"),
        ("clin", "/chat?study={id}"),
        ("admin", "/admin"),
        ("pat1", "/history"),
    ],
)
def test_pages_have_no_serious_accessibility_violations(
    server, a_study, browser, shots, username, path
):
    if not AXE.is_file():
        pytest.skip("axe-core is not installed (make browser-deps runs npm ci)")
    base, _ = server
    ctx, page, _ = new_page(browser, base, bypass_csp=True)  # to inject axe itself
    if username:
        sign_in(page, username)
    page.goto(path.format(id=a_study))
    page.wait_for_load_state("networkidle")
    assert axe_violations(page) == []
    if username == "admin":
        page.screenshot(path=str(shots / "admin-desktop.png"), full_page=True)
    ctx.close()


def test_the_app_is_installable_and_caches_no_patient_data(server, browser):
    base, _ = server
    ctx, page, _ = new_page(browser, base)
    page.goto("/triage")
    manifest = page.evaluate("fetch('/manifest.webmanifest').then(r => r.json())")
    assert manifest["display"] == "standalone" and {i["sizes"] for i in manifest["icons"]} >= {
        "192x192",
        "512x512",
    }
    page.wait_for_function(
        "navigator.serviceWorker.controller !== null || "
        "navigator.serviceWorker.ready.then(() => true)"
    )
    page.reload()
    cached = page.evaluate("""async () => {
        const keys = await caches.keys(); const urls = [];
        for (const k of keys) {
            for (const r of await (await caches.open(k)).keys()) urls.push(r.url);
        }
        return urls; }""")
    assert cached and all("/api/" not in u for u in cached)
    ctx.close()


def test_the_catalogue_has_every_key_in_both_languages():
    from medai.platform.web.i18n import missing_keys

    assert missing_keys() == {}
