"""The monitoring page in a real ``medai serve`` (Chromium): studies stream in through the API,
the last of them brighter films; the page shows the model's numbers and plots and the open
image-drift alert — in Turkish at desktop width and in English on a phone, with no serious
accessibility violation and no request to another host."""

from __future__ import annotations

import time

import httpx
import pytest

from helpers.lifecycle import film
from helpers.platform import decided, http_login, ui_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("monitoring-ui")
    with ui_server(
        home,
        {"admin": "admin", "rad1": "radiologist"},
        MEDAI_DATABASE_URL="",
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
        MEDAI_MONITOR_REFERENCE_N="20",
        MEDAI_MONITOR_WINDOW="10",
        MEDAI_MONITOR_MIN_WINDOW="8",
    ) as base:
        yield base


def dicom_film(directory, seed: int, age: str, lighter: bool = False) -> bytes:
    """``film`` as a 12-bit DICOM whose header names the patient's age; ``lighter`` lifts
    the mid-tones (gamma 0.3: a DICOM's range is rescaled, so an even lift would vanish)."""
    import io

    import numpy as np
    from PIL import Image
    from pydicom import dcmread

    from helpers.dicom import make_dicom

    path = make_dicom(
        directory / f"{seed}.dcm",
        rows=96,
        cols=80,
        PatientAge=age,
        PatientSex="F",
        Manufacturer="ACME",
    )
    ds = dcmread(path)
    pixels = np.asarray(Image.open(io.BytesIO(film(seed))), dtype=np.float64) / 255
    ds.PixelData = ((pixels**0.3 if lighter else pixels) * 4000).astype("<u2").tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _upload_all(base: str, images: list[bytes]) -> None:
    rad = http_login(base, "rad1")
    ids = [
        httpx.post(
            f"{base}/api/v1/studies",
            headers=rad,
            timeout=60,
            data={"task": "cxr"},
            files={"file": ("f.dcm", data, "application/dicom")},
        ).json()["id"]
        for data in images
    ]
    end = time.monotonic() + 300
    for sid in ids:
        while httpx.get(f"{base}/api/v1/studies/{sid}", headers=rad, timeout=30).json()[
            "status"
        ] in ("received", "analysing"):
            assert time.monotonic() < end
            time.sleep(0.1)


def test_the_admin_sees_drift_and_the_open_alert(server, browser, shots, tmp_path):
    """Adults' films first, then brighter films of children: image drift and an age-band
    shift, both alerting and both on the page."""
    from helpers.browser import AXE, axe_violations, sign_in

    _upload_all(
        server,
        [dicom_film(tmp_path, i, "054Y") for i in range(20)]
        + [dicom_film(tmp_path, 100 + i, "006Y", lighter=True) for i in range(10)],
    )
    admin = http_login(server, "admin")
    alerts = httpx.get(
        f"{server}/api/v1/models/alerts", headers=admin, params={"open": "true"}
    ).json()["items"]
    assert {("input", "mean"), ("metadata", "age_band")} <= {(a["kind"], a["key"]) for a in alerts}

    ctx = browser.new_context(
        base_url=server, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    page = ctx.new_page()
    sign_in(page, "admin")
    page.goto("/monitoring")
    page.locator("#open-alerts li[data-kind='input']").wait_for()
    assert "Görüntü kayması" in page.locator("#open-alerts").inner_text()
    card = page.locator(".monitor-model[data-task='cxr']")
    assert card.get_attribute("data-alerts") != "0"
    assert card.locator("svg.chart").count() == 2
    assert "30" in card.inner_text()  # analyses so far
    assert "Yaş grubu" in page.locator("#open-alerts").inner_text()
    ages = card.locator(".population[data-field='age_band']")
    assert "2-11" in ages.inner_text() and "40-64" in ages.inner_text()
    assert "Hotelling" in card.locator("#embedding-cxr").inner_text()
    if AXE.is_file():
        page.wait_for_load_state("networkidle")
        assert axe_violations(page) == []
    page.screenshot(path=str(shots / "monitoring-tr-1280.png"), full_page=True)
    ctx.close()

    phone = browser.new_context(base_url=server, viewport={"width": 360, "height": 740})
    page = phone.new_page()
    sign_in(page, "admin")
    page.goto("/monitoring?lang=en")
    page.locator("#open-alerts li[data-kind='input']").wait_for()
    assert "Image drift" in page.locator("#open-alerts").inner_text()
    assert "Age band" in page.locator("#open-alerts").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(shots / "monitoring-en-360.png"), full_page=True)
    phone.close()


@pytest.fixture(scope="module")
def quiet_server(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    """A server whose CXR model has analysed three films (its reference is 20): the latest
    window is still empty."""
    home = tmp_path_factory.mktemp("monitoring-ui-quiet")
    with ui_server(
        home,
        {"admin": "admin", "rad1": "radiologist"},
        MEDAI_DATABASE_URL="",
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
        MEDAI_MONITOR_REFERENCE_N="20",
        MEDAI_MONITOR_WINDOW="10",
        MEDAI_MONITOR_MIN_WINDOW="8",
    ) as base:
        yield base, home


def _legacy_labels(home, study_id: int, model_hash: str) -> None:
    """Labels as signatures stored them before a label the model does not read was kept
    without an AI state: the model's Pneumonia called and confirmed, and a pneumothorax the
    radiologist added (the model never outputs it) stored as the AI's "absent"."""
    import os

    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from helpers.platform import use_home
    from medai.platform.records.tables import StudyLabel, User

    # the labels are sealed at rest (issue 57): under the server's key, its home's key file
    before = os.environ["MEDAI_HOME"]
    use_home(home)
    engine = create_engine(f"sqlite:///{home / 'medai.db'}")
    try:
        with Session(engine) as db, db.begin():
            rad = db.scalar(select(User.id).where(User.username == "rad1"))
            for label, ai in (("Pneumonia", True), ("Pneumothorax", False)):
                db.add(
                    StudyLabel(
                        study_id=study_id,
                        report_version=2,
                        label=label,
                        present=True,
                        ai_positive=ai,
                        source="added",
                        model_hash=model_hash,
                        decided_by=rad,
                    )
                )
    finally:
        engine.dispose()
        use_home(before)


def test_an_empty_window_says_no_data_and_agreement_shows_only_the_models_labels(
    quiet_server, browser, shots, tmp_path
):
    """Three analyses, all reference: no label row, image statistic or mix reads "PSI 0.000 /
    KS p 1.0000" (no drift) — each says it has no data, with n = 0. A radiologist signs a
    pneumothorax the model never outputs (and older signatures stored one as the AI's
    "absent"): agreement lists the model's labels only."""
    from helpers.browser import sign_in

    base, home = quiet_server
    _upload_all(base, [dicom_film(tmp_path, i, "054Y") for i in range(3)])
    rad = http_login(base, "rad1")
    items = httpx.get(f"{base}/api/v1/studies", headers=rad, timeout=30).json()["items"]
    sid = items[0]["id"]
    version = httpx.get(f"{base}/api/v1/studies/{sid}/report", headers=rad, timeout=30).json()[
        "version"
    ]
    r = httpx.post(
        f"{base}/api/v1/studies/{sid}/report/sign",
        headers=rad,
        timeout=60,
        json={
            "version": version,
            # the film then not normal, whatever the AI said (a contradiction otherwise)
            "labels": decided(
                httpx, rad, sid, {"Pneumothorax": True, "No Finding": False}, base=base
            ),
        },
    )
    assert r.status_code == 200, r.text
    other = httpx.get(f"{base}/api/v1/studies/{items[1]['id']}", headers=rad, timeout=30).json()
    _legacy_labels(home, other["id"], other["ai_result"]["model"]["content_hash"])
    for lang, width, no_data, pneumo, pneumonia in (
        ("tr", 1280, "— (veri yok, n = 0)", "Pnömotoraks", "Pnömoni"),
        ("en", 360, "— (no data, n = 0)", "Pneumothorax", "Pneumonia"),
    ):
        ctx = browser.new_context(base_url=base, viewport={"width": width, "height": 900})
        page = ctx.new_page()
        sign_in(page, "admin")
        page.goto(f"/monitoring?lang={lang}")
        card = page.locator(".monitor-model[data-task='cxr']")
        card.locator("svg.chart").first.wait_for()
        text = card.inner_text()
        assert no_data in text, text
        assert "1.0000" not in text and "PSI 0.000" not in text, text  # no "no drift" numbers
        rows = card.locator("table").nth(1).locator("tbody tr")  # the output drift table
        assert rows.count() == 3  # Pneumonia, COVID-19, No Finding
        for row in rows.all():
            cells = row.locator("td").all_inner_texts()
            assert cells == ["0", no_data, "—"], cells  # n, PSI, KS p
        agreement = card.locator("table").last
        assert pneumonia in agreement.inner_text(), agreement.inner_text()
        assert pneumo not in agreement.inner_text()  # a label the model never outputs
        assert agreement.locator("tbody tr").count() == 1
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(
            path=str(shots / f"monitoring-empty-window-{lang}-{width}.png"), full_page=True
        )
        ctx.close()
