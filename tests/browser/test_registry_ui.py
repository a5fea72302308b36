"""The model registry section of the admin page, in a real ``medai serve`` (Chromium): the admin
sees every registered model with its state, registers a directory from MEDAI_MODELS_DIR, is
told that promotion needs site validation or an override, promotes with an override and a
reason (the served-models table shows the new hash at once: no restart), and rolls back to
the model the form names (never again to the one rolled back from) — in Turkish at desktop
width and in English on a phone, with no serious accessibility violation. Versions read with
a short content hash; a renamed copy or a reused version is refused saying why."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers.builders import make_imaging_model_dir
from helpers.platform import decided, ui_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("registry-ui")
    models_dir = home / "hospital-models"
    candidate = make_imaging_model_dir(models_dir / "cxr-site-2026-11", seed=11, version="2026-11")
    # the same files, renamed in the card only; other files under the candidate's version
    renamed = models_dir / "cxr-site-2026-11-renamed"
    shutil.copytree(candidate, renamed)
    card = json.loads((renamed / "model_card.json").read_text())
    card.update(name="cxr-site", version="2026-11b")
    (renamed / "model_card.json").write_text(json.dumps(card))
    make_imaging_model_dir(models_dir / "cxr-site-2026-11-other", seed=13, version="2026-11")
    with ui_server(
        home,
        {"admin": "admin", "rad1": "radiologist"},
        MEDAI_DATABASE_URL="",
        MEDAI_MODELS_DIR=str(models_dir),
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
    ) as base:
        yield base, candidate


def _hash(directory) -> str:
    return json.loads((directory / "model_card.json").read_text())["content_hash"]


def test_the_admin_registers_promotes_and_rolls_back_a_model(
    server, browser, shots, tiny_imaging_dir
):
    from helpers.browser import AXE, axe_violations, sign_in

    base, candidate = server
    ctx = browser.new_context(
        base_url=base, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    page = ctx.new_page()
    sign_in(page, "admin")
    page.goto("/admin")
    section = page.locator("#registry-section")
    section.locator("#registry tr[data-state='active']").nth(2).wait_for()
    assert section.locator("#registry tr[data-state='active']").count() == 3  # first start

    section.locator("summary").click()
    section.get_by_label("Model dizini").fill("cxr-site-2026-11")
    section.get_by_role("button", name="Aday olarak kaydet").click()
    row = section.locator("#registry tr[data-state='candidate']")
    row.wait_for()
    assert "aday olarak kaydedildi" in section.locator("#registry-message").inner_text()
    assert _hash(candidate)[:19] in row.inner_text()
    # the version cell tells models apart: the version and a short content hash
    assert row.locator("td.model-version").inner_text() == f"2026-11 · {_hash(candidate)[7:19]}"
    active_cxr = section.locator("#registry tr[data-state='active']").filter(
        has_text=_hash(tiny_imaging_dir)[:19]
    )
    assert (
        active_cxr.locator("td.model-version").inner_text()
        == f"test · {_hash(tiny_imaging_dir)[7:19]}"
    )
    cand_id = row.get_attribute("data-model")
    error = section.locator("#registry-error")
    for path, said in (
        ("cxr-site-2026-11-renamed", "başka bir model kartıyla zaten kayıtlı"),
        ("cxr-site-2026-11-other", "bu ad ve sürümle başka dosyalar"),
    ):
        section.get_by_label("Model dizini").fill(path)
        section.get_by_role("button", name="Aday olarak kaydet").click()
        page.wait_for_function(
            "(s) => document.getElementById('registry-error').innerText.includes(s)", arg=said
        )
        text = error.inner_text()
        assert f"#{cand_id}" in text and "2026-11" in text, text  # which model, in detail
    assert "model_card.json" in error.inner_text()
    assert section.locator("#registry tr[data-state='candidate']").count() == 1  # no new row

    row.get_by_role("button", name="Etkinleştir").click()
    section.get_by_label("Gerekçe (denetim kaydına yazılır)").fill("yeni cihaz verisi")
    section.get_by_role("button", name="Onayla").click()
    page.wait_for_function(
        "() => document.getElementById('registry-error').innerText"
        ".includes('saha değerlendirme kümesi yok')"
    )
    section.get_by_label("Saha doğrulaması olmadan", exact=False).check()
    section.get_by_role("button", name="Onayla").click()
    section.locator(
        f"#registry tr[data-state='active']:has-text('{_hash(candidate)[:19]}')"
    ).wait_for()
    served = page.locator("#models")
    page.wait_for_function(
        "(h) => document.getElementById('models').innerText.includes(h)", arg=_hash(candidate)[:23]
    )
    assert _hash(tiny_imaging_dir)[:23] not in served.inner_text()
    assert section.locator("#registry-error").is_hidden()  # the refusal is gone once done
    # a rollback is offered only where there is an earlier model to go back to
    assert section.get_by_role("button", name="Önceki modele dön").count() == 1
    if AXE.is_file():
        page.wait_for_load_state("networkidle")
        assert axe_violations(page) == []
    section.screenshot(path=str(shots / "admin-registry-tr-1280.png"))
    ctx.close()

    phone = browser.new_context(base_url=base, viewport={"width": 360, "height": 740})
    page = phone.new_page()
    sign_in(page, "admin")
    page.goto("/admin")
    page.get_by_role("link", name="English").click()
    section = page.locator("#registry-section")
    short = _hash(candidate)[:19]
    active = section.locator(f"#registry tr[data-state='active']:has-text('{short}')")
    active.wait_for()
    active.get_by_role("button", name="Roll back").click()
    # the form names what goes and what comes back (name, version, short hash) before Confirm
    title = section.locator("#registry-move-title").inner_text()
    assert f"tiny-efficientnet-lite0 test · {_hash(tiny_imaging_dir)[7:19]}" in title, title
    assert f"2026-11 · {short[7:]}" in title and "becomes active again" in title, title
    section.get_by_label("Reason (kept in the audit log)").fill("false positives on portable films")
    assert section.locator("#registry-override-row").is_hidden()  # a rollback needs none
    section.get_by_role("button", name="Confirm").click()
    section.locator(
        f"#registry tr[data-state='retired']:has-text('{_hash(candidate)[:19]}')"
    ).wait_for()
    page.wait_for_function(
        "(h) => document.getElementById('models').innerText.includes(h)",
        arg=_hash(tiny_imaging_dir)[:23],
    )
    # the served models table tells versions apart too
    assert f"test · {_hash(tiny_imaging_dir)[7:19]}" in page.locator("#models").inner_text()
    # back on the first model: nothing earlier to go to, and never forward to the candidate
    section.locator(
        f"#registry tr[data-state='active']:has-text('{_hash(tiny_imaging_dir)[:19]}')"
    ).wait_for()
    assert section.get_by_role("button", name="Roll back").count() == 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    section.screenshot(path=str(shots / "admin-registry-en-360.png"))
    phone.close()


def test_the_admin_starts_a_retraining_and_a_validation_and_reads_why_they_failed(
    server, browser, shots
):
    """From the page: a retraining with no signed studies fails, saying so in Turkish; the
    registry's Validate button starts a validation job, which fails because the task has no
    site set yet — each job's row says what happened. English on a phone."""
    import httpx

    from helpers.browser import AXE, axe_violations, sign_in
    from helpers.platform import http_login

    base, first = server
    fresh = make_imaging_model_dir(first.parent / "cxr-site-2026-12", seed=12, version="2026-12")
    r = httpx.post(
        f"{base}/api/v1/models/registry",
        headers=http_login(base, "admin"),
        json={"path": fresh.name},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    ctx = browser.new_context(
        base_url=base, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    page = ctx.new_page()
    sign_in(page, "admin")
    page.goto("/admin")
    jobs = page.locator("#jobs-section")
    jobs.get_by_label("Devir (epoch)").fill("2")
    jobs.get_by_role("button", name="Yeniden eğitimi başlat").click()
    failed = jobs.locator("tr[data-kind='retrain'][data-status='failed']")
    failed.wait_for(timeout=60_000)
    assert "yeterli imzalı çalışma yok" in failed.inner_text()
    candidate = page.locator(f"#registry tr[data-model='{r.json()['id']}']")
    candidate.get_by_role("button", name="Doğrula").click()
    checked = jobs.locator("tr[data-kind='validate'][data-status='failed']")
    checked.wait_for(timeout=60_000)
    assert "ayrılmış imzalı çalışma henüz yok" in checked.inner_text()  # why, in Turkish
    if AXE.is_file():
        page.wait_for_load_state("networkidle")
        assert axe_violations(page) == []
    jobs.screenshot(path=str(shots / "jobs-tr-1280.png"))
    ctx.close()

    phone = browser.new_context(base_url=base, viewport={"width": 360, "height": 740})
    page = phone.new_page()
    sign_in(page, "admin")
    page.goto("/admin?lang=en")
    page.locator("#model-jobs tr[data-kind='retrain']").first.wait_for()
    assert "Not enough signed studies" in page.locator("#jobs-section").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.locator("#jobs-section").screenshot(path=str(shots / "jobs-en-360.png"))
    phone.close()


def test_a_red_flag_engine_is_listed_as_a_record_and_promoting_it_says_why_not(
    server, browser, shots
):
    """Issue 27: the sealed red-flag engine registers as a record. Its row offers no move (no
    shadow, promote or validate button that would only be refused) and says "record only",
    with the reason on hover; the API still refuses a promotion with the reason (it serves
    from MEDAI_RED_FLAG_RULES). Turkish at desktop width and English on a phone, without
    overflowing."""
    import shutil

    import httpx

    from helpers.browser import sign_in
    from helpers.platform import http_login
    from medai.triage.red_flags.schema import DATA_DIR

    base, first = server
    engine = first.parent / "red-flags-2026-11"
    shutil.copytree(DATA_DIR, engine, ignore=shutil.ignore_patterns("__pycache__"))
    r = httpx.post(
        f"{base}/api/v1/models/registry",
        headers=http_login(base, "admin"),
        json={"path": engine.name},
        timeout=120,
    )
    assert r.status_code == 201, r.text
    assert r.json()["task"] == "red_flags" and r.json()["served"] is False
    refused = httpx.post(
        f"{base}/api/v1/models/registry/{r.json()['id']}/promote",
        headers=http_login(base, "admin"),
        json={"reason": "deneme", "override": True},
        timeout=60,
    )
    assert refused.status_code == 409 and "MEDAI_RED_FLAG_RULES" in refused.text
    for lang, width, record, said in (
        ("tr", 1280, "Yalnızca kayıt", "mühürlü klasörden sunulur"),
        ("en", 360, "Record only", "serves from the sealed folder"),
    ):
        ctx = browser.new_context(base_url=base, viewport={"width": width, "height": 900})
        page = ctx.new_page()
        sign_in(page, "admin")
        page.goto("/admin")
        if lang == "en":
            page.get_by_role("link", name="English").click()
        section = page.locator("#registry-section")
        row = section.locator(f"#registry tr[data-model='{r.json()['id']}']")
        row.wait_for()
        assert row.get_by_role("button").count() == 0
        note = row.get_by_text(record)
        assert note.is_visible() and said in note.get_attribute("title")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert row.get_attribute("data-state") == "candidate"
        section.screenshot(path=str(shots / f"admin-registry-red-flags-{lang}-{width}.png"))
        ctx.close()


MIN_STUDIES = 30  # validation.MIN_STUDIES: the documented minimum for a verdict


def test_a_validation_on_too_few_studies_reads_inconclusive_with_its_sample_size(
    server, browser, shots
):
    """Ten studies signed, three of them held out: the page's validation of a candidate is
    inconclusive — never "passed" — and the job row, the registry row and the refused
    promotion say so with the number of studies and the minimum, in Turkish at desktop width
    and in English on a phone."""
    import time

    import httpx

    from helpers.browser import sign_in
    from helpers.platform import http_login, png_bytes
    from medai.platform.lifecycle.site_sets import held_out

    base, first = server
    admin, rad = http_login(base, "admin"), http_login(base, "rad1")
    cand = make_imaging_model_dir(first.parent / "cxr-site-2027-01", seed=14, version="2027-01")
    r = httpx.post(
        f"{base}/api/v1/models/registry", headers=admin, json={"path": cand.name}, timeout=60
    )
    assert r.status_code == 201, r.text
    cand_id = r.json()["id"]
    ids = [
        httpx.post(
            f"{base}/api/v1/studies",
            headers=rad,
            data={"task": "cxr"},
            timeout=60,
            files={"file": ("x.png", png_bytes(300 + i), "image/png")},
        ).json()["id"]
        for i in range(10)
    ]
    held, end = 0, time.monotonic() + 300
    for sid in ids:
        while (study := httpx.get(f"{base}/api/v1/studies/{sid}", headers=rad, timeout=30).json())[
            "status"
        ] in ("received", "analysing"):
            assert time.monotonic() < end
            time.sleep(0.1)
        positive = held == 0 if held_out("cxr", sid, 0.3) else sid % 2 == 0
        held += held_out("cxr", sid, 0.3)
        version = httpx.get(f"{base}/api/v1/studies/{sid}/report", headers=rad, timeout=30).json()[
            "version"
        ]
        # a consistent set whatever the AI said (the normal label never beside a finding, nor
        # absent with nothing present: issue 67, a contradictory set is refused)
        labels = (
            {"Pneumonia": True, "No Finding": False}
            if positive
            else {"Pneumonia": False, "COVID-19": False, "No Finding": True}
        )
        r = httpx.post(
            f"{base}/api/v1/studies/{sid}/report/sign",
            headers=rad,
            timeout=60,
            json={"version": version, "labels": decided(httpx, rad, sid, labels, base=base)},
        )
        assert r.status_code == 200, (study["status"], r.text)
    assert 1 < held < MIN_STUDIES

    ctx = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    sign_in(page, "admin")
    page.goto("/admin")
    row = page.locator(f"#registry tr[data-model='{cand_id}']")
    row.get_by_role("button", name="Doğrula").click()
    done = page.locator("#jobs-section tr[data-kind='validate'][data-status='done']").first
    done.wait_for(timeout=120_000)
    said = f"yalnızca {held} çalışma değerlendirildi, karar için en az {MIN_STUDIES} gerekli"
    assert f"Doğrulama sonuçsuz (geçmedi): {said}" in done.inner_text()
    assert "geçti" not in done.inner_text().replace("geçmedi", "")
    note = row.locator("[data-outcome='inconclusive']")
    note.wait_for()
    assert f"saha doğrulaması sonuçsuz: {said}" in note.inner_text()
    row.get_by_role("button", name="Etkinleştir").click()
    page.get_by_label("Gerekçe (denetim kaydına yazılır)").fill("doğrulandı sanıyorum")
    page.get_by_role("button", name="Onayla").click()
    page.wait_for_function(
        "() => document.getElementById('registry-error').innerText.includes('sonuçsuz kaldı')"
    )
    error = page.locator("#registry-error").inner_text()
    assert f"only {held} studies" in error and f"at least {MIN_STUDIES}" in error  # detail
    assert row.get_attribute("data-state") == "candidate"
    page.locator("#registry-section").screenshot(
        path=str(shots / "registry-inconclusive-tr-1280.png")
    )
    ctx.close()

    phone = browser.new_context(base_url=base, viewport={"width": 360, "height": 740})
    page = phone.new_page()
    sign_in(page, "admin")
    page.goto("/admin?lang=en")
    done = page.locator("#jobs-section tr[data-kind='validate'][data-status='done']").first
    done.wait_for()
    assert (
        f"Validation inconclusive (not passed): only {held} studies evaluated; a verdict "
        f"needs at least {MIN_STUDIES}"
    ) in done.inner_text()
    note = page.locator(f"#registry tr[data-model='{cand_id}'] [data-outcome='inconclusive']")
    assert "site validation inconclusive" in note.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    phone.close()
