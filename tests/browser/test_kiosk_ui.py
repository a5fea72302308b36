"""The triage and kiosk screens in headless Chromium against a real `medai serve` whose triage
model has an out-of-scope gate: one outcome leads and nothing contradicts it (urgent → the
banner only; out of scope, unsure or not Turkish → the desk, no bars; else the department with
its bars), the patient's history shows what the screen showed, each patient starts on a clean
screen (idle time on Playwright's fake clock, "New patient", nothing left in the DOM or in
browser storage), and a kiosk registered on the admin page enrols by its one-time code.

Screenshots (Turkish and English, 360 px and desktop) land in ``MEDAI_SCREENSHOTS``."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import pytest

from helpers.paths import AXE
from helpers.platform import (
    PASSWORD,
    ui_server,
)

pytestmark = pytest.mark.slow
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
IDLE_S = 60
URGENT = "babam aniden konuşamıyor, ağzı bir tarafa kaydı, sağ kolunu kaldıramıyor"
CALM = "Yüzümde sivilce ve akne var, kaşıntı da var"
OTHER_DEPARTMENT = "dişim 3 gündür sızlıyor, dolgu mu kanal tedavisi mi"
ENGLISH = "I have had itchy red patches on my arms for two weeks"
OTHER = [  # complaints of departments the model does not learn (its scope gate's negatives)
    "{n} haftalık hamileyim, kasıklarımda hafif çekilme oluyor normal mi",
    "adet gecikmem var, gebelik testi negatif, ne yapmalıyım",
    "çocuğum {n} yaşında, aşı takvimini sormak istiyorum",
    "kalp ritmim bazen hızlanıyor, holter taktırmalı mıyım, tansiyonum {n}",
    "prostat ilacımı {n} yıldır kullanıyorum, idrar sıklığı arttı",
    "dişim {n} gündür sızlıyor, dolgu mu kanal tedavisi mi",
    "kolesterolüm {n} çıktı, hangi ilacı kullanmalıyım",
    "gözümde uçuşan siyah noktalar var, gözlük numaram {n}",
]


@pytest.fixture(scope="module")
def gated_model(tmp_path_factory, complaints_csv) -> Path:
    from medai.triage.train import TrainOptions, train

    other = tmp_path_factory.mktemp("oos") / "other.csv"
    labels = ["Kadın Hastalıkları ve Doğum", "Pediatri", "Kardiyoloji", "Üroloji"]
    with other.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for n in range(12):
            for i, t in enumerate(OTHER):
                w.writerow([t.format(n=n + 2), labels[i % len(labels)]])
    out = tmp_path_factory.mktemp("models") / "gated"
    train(TrainOptions(data=complaints_csv, out=out, out_of_scope=other, name="gated"))
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory, gated_model, tiny_imaging_dir):
    import httpx

    home = tmp_path_factory.mktemp("kiosk-home")
    with ui_server(
        home,
        {"admin": "admin", "pat1": "patient"},
        MEDAI_DATABASE_URL="",
        MEDAI_KIOSK_DAILY_QUOTA="200",
        MEDAI_KIOSK_IDLE_S=str(IDLE_S),
        MEDAI_MODELS=f"triage={gated_model},cxr={tiny_imaging_dir}",
    ) as base:
        # the first complaint loads the red-flag detectors: not in a page's wait
        httpx.post(f"{base}/api/v1/triage", json={"text": CALM}, timeout=300)
        yield base


@pytest.fixture
def page_for(browser, server):
    contexts = []

    def make(viewport=DESKTOP, clock=False, bypass_csp=False):
        ctx = browser.new_context(base_url=server, viewport=viewport, bypass_csp=bypass_csp)
        contexts.append(ctx)
        page = ctx.new_page()
        if clock:
            page.clock.install()
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def ask(page, text: str, lang: str = "tr", path: str = "/triage") -> None:
    page.goto(f"{path}?lang={lang}")
    page.locator("#complaint").fill(text)
    page.locator("#triage-form button[type=submit]").click()
    page.locator("#triage-result .triage-outcome").wait_for(timeout=90_000)


def outcome(page) -> str:
    return page.locator("#triage-result .triage-outcome").get_attribute("data-outcome")


def assert_clean(page, *gone: str) -> None:
    """Nothing of the last patient: empty text box, no result, banner or error in the DOM,
    nothing in browser storage."""
    assert page.locator("#complaint").input_value() == ""
    assert page.locator("#triage-result").is_hidden()
    assert page.locator("#triage-result *").count() == 0
    assert page.locator(".urgent-banner").count() == 0 and page.locator("#triage-error").is_hidden()
    assert page.locator("#new-patient").is_hidden()
    html = page.content()
    assert not any(g in html for g in gone)
    stored = page.evaluate("""async () => {
        const urls = [];
        for (const k of await caches.keys()) {
            for (const r of await (await caches.open(k)).keys()) urls.push(r.url);
        }
        return {local: localStorage.length, session: sessionStorage.length,
                api: urls.filter((u) => u.includes('/api/'))}; }""")
    assert stored == {"local": 0, "session": 0, "api": []}


@pytest.mark.parametrize(
    "lang, viewport", [("tr", PHONE), ("en", PHONE), ("tr", DESKTOP), ("en", DESKTOP)]
)
def test_an_urgent_complaint_shows_only_the_banner(page_for, shots, lang, viewport):
    page = page_for(viewport)
    ask(page, URGENT, lang)
    assert outcome(page) == "emergency"
    banner = page.locator("#triage-result .urgent-banner")
    assert banner.get_attribute("role") == "alert"
    assert ("ACİL" if lang == "tr" else "EMERGENCY") in banner.inner_text()
    assert ("İnme" if lang == "tr" else "stroke") in banner.inner_text()
    first = page.locator("#triage-result .triage-outcome > *").first
    assert first.get_attribute("class") == "urgent-banner"  # it leads
    assert page.locator("#triage-result .bars, #triage-result .referral").count() == 0
    shown = page.locator("#triage-result").inner_text()
    for contradiction in ("Emin değil", "not sure", "genel triyaj", "general triage", "%"):
        assert contradiction not in shown
    box = banner.bounding_box()
    assert box["y"] >= 0 and box["y"] + 40 <= viewport["height"]  # above the fold
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    page.screenshot(path=str(shots / f"urgent-{lang}-{viewport['width']}.png"), full_page=True)


@pytest.mark.parametrize(
    "lang, viewport", [("tr", PHONE), ("en", PHONE), ("tr", DESKTOP), ("en", DESKTOP)]
)
def test_a_complaint_outside_the_departments_sends_to_the_desk_without_bars(
    page_for, shots, lang, viewport
):
    page = page_for(viewport)
    ask(page, OTHER_DEPARTMENT, lang)
    assert outcome(page) == "out_of_scope"
    shown = page.locator("#triage-result").inner_text()
    assert ("danışma masasına" if lang == "tr" else "general triage desk") in shown
    assert page.locator("#triage-result .bars, #triage-result .urgent-banner").count() == 0
    assert "%" not in shown
    assert page.locator("#triage-result .ai-label").is_visible()
    page.screenshot(
        path=str(shots / f"out-of-scope-{lang}-{viewport['width']}.png"), full_page=True
    )


@pytest.mark.parametrize(
    "lang, viewport", [("tr", PHONE), ("en", PHONE), ("tr", DESKTOP), ("en", DESKTOP)]
)
def test_a_department_is_suggested_with_its_bars_labelled_as_ai(page_for, shots, lang, viewport):
    page = page_for(viewport)
    ask(page, CALM, lang)
    assert outcome(page) == "department"
    assert page.locator("#triage-result .bars li").count() >= 1
    heading = page.locator("#triage-result h2").inner_text()
    assert heading.startswith("Önerilen bölüm: " if lang == "tr" else "Suggested department: ")
    assert page.locator("#triage-result .ai-label").inner_text() == (
        "Yapay zekâ önerisi" if lang == "tr" else "AI suggestion"
    )
    assert page.locator("#triage-result .urgent-banner").count() == 0
    # each bar as long as its probability, in both languages (issue 46: "%97,7", the Turkish
    # way to write a percentage, is no CSS width, so every Turkish bar was full); a probability
    # is never shown as 100 % or 0 % (issue 59): ">%99,9" / "<%0,1" bound it instead
    for item in page.locator("#triage-result .bars li").all():
        shown = item.locator(".bar-value").inner_text()
        written = re.fullmatch(r"([<>]?)%(\d+,\d)" if lang == "tr" else r"([<>]?)(\d+\.\d)%", shown)
        assert written, shown
        bound, number = written.group(1), float(written.group(2).replace(",", "."))
        assert not bound or number == (99.9 if bound == ">" else 0.1), shown
        assert 0 < number < 100, shown
        low, high = {">": (number, 100), "<": (0, number)}.get(
            bound, (number - 0.05, number + 0.05)
        )
        track = item.locator(".bar-track").bounding_box()["width"]
        bar = item.locator(".bar").bounding_box()["width"]
        assert low / 100 * track - 2 <= bar <= high / 100 * track + 2, (shown, bar, track)
    page.screenshot(path=str(shots / f"department-{lang}-{viewport['width']}.png"), full_page=True)


def test_an_unsure_model_says_so_without_bars(page_for, shots):
    page = page_for(PHONE)
    # the same server, asked with a threshold no answer reaches (the API's min_confidence)
    page.route(
        "**/api/v1/triage",
        lambda route: route.continue_(
            post_data=json.dumps({**json.loads(route.request.post_data), "min_confidence": 1.0})
        ),
    )
    ask(page, CALM)
    assert outcome(page) == "low_confidence"
    shown = page.locator("#triage-result").inner_text()
    assert "emin değil" in shown and "%" not in shown
    assert page.locator("#triage-result .bars").count() == 0
    page.screenshot(path=str(shots / "low-confidence-tr-360.png"), full_page=True)


def test_the_screen_clears_itself_after_the_idle_time(page_for, shots):
    page = page_for(PHONE, clock=True)
    ask(page, URGENT)
    # an installed clock still flows with real time: stop it, so that a slow answer on a busy
    # machine cannot eat into the idle time the test measures. Python's pause_at reads a
    # number as seconds: the page's Date.now() (milliseconds) given as is jumped the clock
    # 55,000 years ahead and fired the idle timer at once (the "early clear" of issue 23).
    # Paused a second ahead of the time read: the clock flows between the read and the pause,
    # and pausing at a time it has passed is refused ("Cannot fast-forward to the past", seen
    # with the suite in two processes); the second is well inside the 5 s the checks leave
    now = datetime.fromtimestamp(page.evaluate("Date.now()") / 1000 + 1, tz=UTC)
    page.clock.pause_at(now)
    assert page.locator("#triage-result .urgent-banner").is_visible()
    page.clock.run_for((IDLE_S - 5) * 1000)
    assert page.locator("#triage-result .urgent-banner").is_visible()  # not yet
    # a touch restarts the wait: a tap on the banner (a wheel event is not delivered while
    # Playwright's clock is paused: Chromium routes it through a frame that never comes)
    box = page.locator("#triage-result .urgent-banner").bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    page.mouse.down()
    page.mouse.up()
    page.clock.run_for((IDLE_S - 5) * 1000)
    assert page.locator("#triage-result .urgent-banner").is_visible()
    page.clock.run_for(6 * 1000)
    assert_clean(page, URGENT, "İnme")
    page.screenshot(path=str(shots / "cleared-after-idle-tr-360.png"), full_page=True)


def test_new_patient_clears_at_once_and_an_abandoned_text_goes_too(page_for):
    page = page_for(DESKTOP, clock=True)
    ask(page, CALM)
    page.get_by_role("button", name="Yeni hasta / New patient").click()
    assert_clean(page, CALM)
    assert page.evaluate("document.activeElement.id") == "complaint"
    page.locator("#complaint").fill("yarım kalmış bir şikâyet")
    page.clock.run_for((IDLE_S + 1) * 1000)
    assert_clean(page, "yarım kalmış")


def test_a_screen_left_in_english_starts_the_next_patient_in_turkish(page_for):
    page = page_for(PHONE, clock=True)
    ask(page, CALM, lang="en")
    page.get_by_role("button", name="New patient / Yeni hasta").click()
    page.wait_for_url("**/triage?lang=tr")
    assert page.locator("label[for=complaint]").inner_text() == "Şikâyetiniz (Türkçe)"
    assert_clean(page, CALM)


def sign_in(page, username: str) -> None:
    page.goto("/login")
    page.get_by_label("Kullanıcı adı").fill(username)
    page.get_by_label("Parola").fill(PASSWORD)
    page.get_by_role("button", name="Giriş").click()
    page.wait_for_url(lambda url: "/login" not in url)


# what a reader sees of each element: its text, colours and whether it shows
LOOKS = """(root) => [...root.querySelectorAll('*')].map((n) => {
    const s = getComputedStyle(n);
    return [n.tagName, n.className, n.childElementCount ? '' : n.textContent, s.color,
            s.backgroundColor, s.display, s.visibility]; })"""


def test_the_history_shows_exactly_what_the_screen_showed(page_for, shots):
    page = page_for(DESKTOP)
    sign_in(page, "pat1")
    screens = []
    for text in (URGENT, OTHER_DEPARTMENT, CALM):
        ask(page, text)
        screens.append(page.locator("#triage-result .triage-outcome").evaluate(LOOKS))
        assert page.locator("#new-patient").inner_text() == "Yeni şikâyet"
    page.goto("/history")
    page.locator("#history li .triage-outcome").nth(2).wait_for()
    shown = [page.locator("#history > li .triage-outcome").nth(i).evaluate(LOOKS) for i in range(3)]
    assert shown == screens[::-1]  # newest first, the same elements, text and colours
    assert page.locator("#history li .urgent-banner[role=alert]").count() == 0
    page.screenshot(path=str(shots / "history-tr-1280.png"), full_page=True)


def test_a_kiosk_registered_on_the_admin_page_enrols_by_its_code(page_for, shots):
    admin = page_for(DESKTOP)
    sign_in(admin, "admin")
    admin.goto("/admin")
    admin.get_by_label("Kiosk adı").fill("Acil giriş 1")
    admin.get_by_role("button", name="Kiosk ekle").click()
    code = admin.locator("#kiosk-secret .code").inner_text()
    assert len(code) == 11 and admin.locator("#kiosk-token").input_value()
    admin.locator("#kiosks-section").screenshot(path=str(shots / "admin-kiosks-tr-1280.png"))
    admin.get_by_role("button", name="Tamam, not aldım").click()
    assert admin.locator("#kiosk-secret").is_hidden() and admin.locator(".code").count() == 0

    kiosk = page_for(PHONE)
    kiosk.goto("/kiosk")
    kiosk.screenshot(path=str(shots / "kiosk-enrol-tr-360.png"), full_page=True)
    kiosk.get_by_label("Kayıt kodu").fill(code.lower())
    kiosk.get_by_role("button", name="Kiosku kaydet").click()
    kiosk.locator("#triage-screen[data-mode=kiosk]").wait_for()
    assert kiosk.get_by_role("link", name="Giriş").count() == 0  # no sign-in on a kiosk
    cookies = {c["name"]: c for c in kiosk.context.cookies()}
    assert cookies["medai_kiosk"]["httpOnly"] and cookies["medai_kiosk"]["sameSite"] == "Strict"
    assert code.replace("-", "") not in kiosk.url
    ask(kiosk, CALM, path="/kiosk")
    kiosk.screenshot(path=str(shots / "kiosk-department-tr-360.png"), full_page=True)

    admin.reload()
    row = admin.locator("#kiosks tbody tr[data-kiosk='Acil giriş 1']")
    assert row.locator("td").nth(1).inner_text() == "1"  # used today (of 500)
    admin.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name="İptal et: Acil giriş 1").click()
    row.get_by_text("İptal edildi").wait_for()
    kiosk.locator("#complaint").fill(CALM)
    kiosk.locator("#triage-form button[type=submit]").click()
    kiosk.get_by_text("Bu kiosk artık kayıtlı değil").wait_for()
    kiosk.goto("/kiosk")
    assert "iptal edildi" in kiosk.locator(".enrol").inner_text()
    assert urlparse(kiosk.url).path == "/kiosk"


def test_an_english_complaint_is_checked_for_red_flags_but_gets_no_department(
    page_for, shots, server
):
    import httpx

    body = httpx.post(f"{server}/api/v1/triage", json={"text": ENGLISH}, timeout=120).json()
    if "language" not in body:
        pytest.skip("the triage result does not name the complaint's language yet")
    page = page_for(PHONE)
    ask(page, ENGLISH, lang="en")
    assert outcome(page) == "not_turkish"
    shown = page.locator("#triage-result").inner_text()
    assert "read complaints written in Turkish" in shown and "yalnızca Türkçe" in shown
    assert page.locator("#triage-result .bars").count() == 0 and "%" not in shown
    page.screenshot(path=str(shots / "not-turkish-real-en-360.png"), full_page=True)


@pytest.mark.parametrize("urgent", [False, True])
def test_a_complaint_not_in_turkish_says_so_in_both_languages(page_for, shots, urgent):
    """The result fields ``language`` and ``abstain_reason`` (the red-flag engine's side) are
    set on the real server's answer here, so that the screen's reading of them is tested
    whatever that engine decides for this text."""
    page = page_for(PHONE)

    def as_english(route):
        response = route.fetch()
        body = response.json()
        body.update(
            language="en",
            abstain_reason=None if body["urgent"] else "not_turkish",
            abstained=not body["urgent"],
        )
        route.fulfill(response=response, json=body)

    page.route("**/api/v1/triage", as_english)
    ask(page, URGENT if urgent else CALM)
    shown = page.locator("#triage-result").inner_text()
    if urgent:
        assert outcome(page) == "emergency"
        assert "İnme" in shown and "Signs of stroke" in shown  # the flag in both languages
        line = page.locator("#triage-result .neutral-line").inner_text()  # and the line below
        assert "Bölüm önerisi gösterilmiyor" in line and "No department is suggested" in line
        assert page.locator("#triage-result .bars").count() == 0
    else:
        assert outcome(page) == "not_turkish"
        assert "yalnızca Türkçe" in shown and "read complaints written in Turkish" in shown
        assert page.locator("#triage-result [lang=en]").count() >= 1
        assert page.locator("#triage-result .bars").count() == 0 and "%" not in shown
    page.screenshot(
        path=str(shots / f"not-turkish-{'urgent' if urgent else 'calm'}-360.png"), full_page=True
    )


@pytest.mark.parametrize("text", [URGENT, OTHER_DEPARTMENT, CALM])
def test_result_screens_have_no_serious_accessibility_violations(page_for, text):
    axe = AXE
    if not axe.is_file():
        pytest.skip("axe-core is not installed (make browser-deps runs npm ci)")
    page = page_for(PHONE, bypass_csp=True)  # to inject axe itself
    ask(page, text)
    page.add_script_tag(path=str(axe))
    found = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    assert [
        (v["id"], len(v["nodes"]))
        for v in found["violations"]
        if v["impact"] in ("serious", "critical")
    ] == []
