"""The study page reads the series (issue 58), in headless Chromium against a real ``medai
serve``: a 7-slice brain MRI series filed in shuffled order opens on its first key slice
("4 / 7", marked as a key slice), scrolls with the mouse wheel and the arrow keys (Home, End,
"k" for the next key slice), with the buttons and the slider on a 360 px phone; the strip marks
the slices the AI read and its key slices; the heatmap shows on its own slice only, and from any
other slice the page says where it is and goes there. An uploaded single image shows as before.
Turkish and English, desktop and phone, no serious accessibility violation; screenshots in
``MEDAI_SCREENSHOTS``."""

from __future__ import annotations

import json
import random
import time

import pytest

from helpers.browser import DESKTOP, PHONE, _axe, _shot
from helpers.paths import SRC
from helpers.platform import PASSWORD, png_bytes
from helpers.viewer import mr_series, mri_ui_server, served_platform, settled, store_read

pytestmark = pytest.mark.slow

T = json.loads((SRC / "platform/web/messages.json").read_text(encoding="utf-8"))
GLIOMA = {"Glioma": 0.9, "Meningioma": 0.04, "Pituitary": 0.03, "No_Tumor": 0.03}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("viewer-series")
    with mri_ui_server(home, GLIOMA, tfidf_model_dir, tiny_imaging_dir) as base:
        yield base, home


def open_page(browser, base, viewport, lang):
    # bypass_csp: only so that axe-core can be injected (the CSP is tested elsewhere)
    ctx = browser.new_context(base_url=base, viewport=viewport, bypass_csp=True)
    page = ctx.new_page()
    page.goto(f"/login?lang={lang}")
    page.locator("#username").fill("rad1")
    page.locator("#password").fill(PASSWORD)
    page.locator("#login-form button[type=submit]").click()
    page.wait_for_url(lambda url: "/login" not in url)
    return ctx, page


def upload(page, name: str, data: bytes, mime: str, task: str) -> dict:
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "medai_csrf")
    r = page.request.post(
        "/api/v1/studies",
        headers={"X-CSRF-Token": csrf},
        multipart={
            "file": {"name": name, "mimeType": mime, "buffer": data},
            "task": task,
            "lang": "tr",
        },
    )
    assert r.status in (200, 201), r.text()
    return r.json()


@pytest.fixture(scope="module")
def series_study(server, browser, tmp_path_factory):
    """The series, filed slice by slice in shuffled order; the AI's ``read``: every slice read,
    slices 4 and 5 the key slices, the heatmap of slice 4."""
    from pydicom.uid import generate_uid

    base, home = server
    slices = mr_series(
        tmp_path_factory.mktemp("mr"), 7, study=generate_uid(), accession="ACC-VIEW", size=128
    )
    files = [path for path, _sop, _z in slices]
    random.Random(7).shuffle(files)
    ctx, page = open_page(browser, base, DESKTOP, "tr")
    sid = None
    for path in files:
        filed = upload(page, path.name, path.read_bytes(), "application/dicom", "mri")["id"]
        sid = sid or filed
        assert filed == sid
    ctx.close()
    sops = [sop for _path, sop, _z in slices]
    with served_platform(home) as p:
        settled(p, sid)
        from medai.platform.records.tables import Study
        from medai.platform.worklist import listing

        with p.db.reader() as db:
            series_uid = listing.instances(db, [sid])[sid][0].series_uid
            assert db.get(Study, sid).status == "ai_drafted"
        store_read(
            p,
            sid,
            series_uid=series_uid,
            read=sops,
            key=[sops[3], sops[4]],
            heatmap_instance=sops[3],
        )
    return sid, sops


def counter(page) -> str:
    return page.locator("#slice-counter").inner_text()


def no_overflow(page) -> None:
    assert page.evaluate("document.scrollingElement.scrollWidth") <= page.viewport_size["width"]


def shown_is(page, sid: int, sop: str) -> bool:
    """The picture on screen is that slice's rendition (the same bytes as the API's)."""
    return page.evaluate(
        """async ([sid, sop]) => {
          const img = document.getElementById("image");
          const a = await (await fetch(img.src)).arrayBuffer();
          const b = await (await fetch(`/api/v1/studies/${sid}/instances/${sop}/image`)).arrayBuffer();
          if (a.byteLength !== b.byteLength) return false;
          const x = new Uint8Array(a), y = new Uint8Array(b);
          return x.every((v, i) => v === y[i]);
        }""",
        [sid, sop],
    )


def wait_counter(page, text: str) -> None:
    page.locator("#slice-counter", has_text=text).wait_for()
    assert counter(page) == text


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_the_viewer_opens_on_the_key_slice_and_scrolls_the_series(
    server, browser, series_study, lang
):
    base, _home = server
    sid, sops = series_study
    t = T[lang]
    ctx, page = open_page(browser, base, DESKTOP, lang)
    page.goto(f"/studies/{sid}")
    page.locator("#series-bar").wait_for()
    wait_counter(page, "4 / 7")  # opened on the first key slice, in anatomical order
    state = page.locator("#slice-state")
    assert t["viewer_slice_key"] in state.inner_text()
    assert t["viewer_slice_read"] in state.inner_text()
    assert page.locator("#slice-badge").inner_text().split("\n") == [
        "4 / 7",
        t["viewer_slice_key_short"],
    ]
    page.wait_for_function("document.getElementById('image').src.startsWith('blob:')")
    assert shown_is(page, sid, sops[3])
    ticks = page.locator("#slice-strip .tick")
    assert ticks.count() == 7
    assert [i for i in range(7) if "key" in (ticks.nth(i).get_attribute("class") or "")] == [3, 4]
    assert "here" in ticks.nth(3).get_attribute("class")
    summary = page.locator("#series-read").inner_text()
    assert summary == t["viewer_read_all"].format(read=7, keys="4, 5")
    assert page.locator("#slice").get_attribute("aria-valuetext").startswith("4 / 7")

    # the wheel: one notch a slice, down is the next
    page.locator("#viewer").hover()
    page.mouse.wheel(0, 100)
    wait_counter(page, "5 / 7")
    page.mouse.wheel(0, -100)
    page.mouse.wheel(0, -100)
    wait_counter(page, "3 / 7")
    assert t["viewer_slice_key"] not in state.inner_text()
    assert t["viewer_slice_read"] in state.inner_text()
    page.wait_for_function("document.getElementById('image').src.startsWith('blob:')")
    assert shown_is(page, sid, sops[2])
    # Ctrl + wheel zooms the slice instead
    page.keyboard.down("Control")
    page.mouse.wheel(0, -100)
    page.keyboard.up("Control")
    assert counter(page) == "3 / 7" and float(page.locator("#zoom").input_value()) > 1
    page.locator("#reset-view").click()

    # the keys: ↓ ↑, End, Home, k (the next key slice)
    page.locator("#viewer").focus()
    page.keyboard.press("ArrowDown")
    wait_counter(page, "4 / 7")
    page.keyboard.press("End")
    wait_counter(page, "7 / 7")
    page.keyboard.press("ArrowDown")  # the last slice stays the last
    wait_counter(page, "7 / 7")
    page.keyboard.press("Home")
    wait_counter(page, "1 / 7")
    page.keyboard.press("ArrowUp")
    wait_counter(page, "1 / 7")
    page.keyboard.press("k")
    wait_counter(page, "4 / 7")
    page.keyboard.press("k")
    wait_counter(page, "5 / 7")

    # the heatmap is of slice 4: shown there only; elsewhere the page says where it is
    heat_on = page.locator("#heatmap-on")
    heat_on.check()
    assert page.locator("#heatmap").is_hidden()
    elsewhere = page.locator("#heatmap-elsewhere")
    assert elsewhere.is_visible()
    assert t["viewer_heatmap_elsewhere"].format(n=4) in elsewhere.inner_text()
    page.get_by_role("button", name=t["viewer_heatmap_go"]).click()
    wait_counter(page, "4 / 7")
    page.locator("#heatmap").wait_for()
    assert elsewhere.is_hidden() and page.locator("#heatmap-caption").is_visible()
    assert t["viewer_slice_heatmap"] in state.inner_text()
    assert _axe(page) == []
    _shot(page, f"viewer-series-{lang}-desktop.png")
    ctx.close()


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_a_phone_scrolls_the_series_with_buttons_and_the_slider(
    server, browser, series_study, lang
):
    base, _home = server
    sid, _sops = series_study
    t = T[lang]
    ctx, page = open_page(browser, base, PHONE, lang)
    page.goto(f"/studies/{sid}")
    page.locator("#series-bar").wait_for()
    wait_counter(page, "4 / 7")
    page.get_by_role("button", name=t["viewer_slice_next"]).click()
    wait_counter(page, "5 / 7")
    page.get_by_role("button", name=t["viewer_slice_prev"]).click()
    page.get_by_role("button", name=t["viewer_slice_prev"]).click()
    wait_counter(page, "3 / 7")
    page.get_by_role("button", name=t["viewer_slice_key_next"]).click()
    wait_counter(page, "4 / 7")
    slider = page.get_by_label(t["viewer_slice"], exact=True)
    slider.fill("7")
    wait_counter(page, "7 / 7")
    slider.focus()
    page.keyboard.press("ArrowLeft")  # the slider's own keys
    wait_counter(page, "6 / 7")
    for name in ("slice-prev", "slice-next"):  # big enough to touch
        box = page.locator(f"#{name}").bounding_box()
        assert box["width"] >= 44 and box["height"] >= 44
    no_overflow(page)
    assert _axe(page) == []
    page.get_by_role("button", name=t["viewer_slice_key_next"]).click()
    wait_counter(page, "4 / 7")
    page.locator("#viewer").scroll_into_view_if_needed()
    _shot(page, f"viewer-series-{lang}-phone.png")
    ctx.close()


def test_an_uploaded_image_shows_as_before(server, browser):
    base, _home = server
    ctx, page = open_page(browser, base, DESKTOP, "tr")
    study = upload(page, "film.png", png_bytes(3, (256, 256)), "image/png", "cxr")
    for _ in range(900):
        if page.request.get(f"/api/v1/studies/{study['id']}").json()["status"] == "ai_drafted":
            break
        time.sleep(0.1)
    page.goto(f"/studies/{study['id']}")
    page.locator("#findings tbody tr").first.wait_for()
    assert page.locator("#image").get_attribute("src") == f"/api/v1/studies/{study['id']}/image"
    assert page.locator("#series-bar").is_hidden() and page.locator("#slice-badge").is_hidden()
    page.locator("#viewer").hover()
    page.mouse.wheel(0, -100)  # the wheel zooms a single image, as before
    assert float(page.locator("#zoom").input_value()) > 1
    ctx.close()
