"""The diagnostic viewer in headless Chromium against a real ``medai serve``: the study page
opens the study in OHIF (served by medai under /viewer, reading medai's own DICOMweb with the
session cookie), in Turkish and English; the image is drawn from the DICOM values (a 12-bit
MONOCHROME1 CR), window/level changes the VOI on those values, and the viewer's CSP lets
OHIF's codecs run (no CSP violation) while medai's other pages keep theirs. A chest study
opens with its PA beside its lateral, each labelled by view; an MR with a prior opens beside
it, scrolling and window/level linked (medai's hanging protocols, ``web.viewer_hanging``)."""

from __future__ import annotations

import io
import re
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from helpers.browser import answer_undecided, login_page
from helpers.builders import answering_model
from helpers.dicom import make_dicom
from helpers.orthanc import OrthancUnavailable, running_orthanc
from helpers.platform import http_login, ui_server
from helpers.viewer import mr_series

pytestmark = [pytest.mark.server, pytest.mark.browser]


@pytest.fixture(scope="module")
def pacs():
    """The suite's real PACS (Orthanc) the server sends its results to, or None where Orthanc
    is not installed (only the test that looks in the PACS is then skipped)."""
    try:
        with running_orthanc() as server:
            yield server
    except OrthancUnavailable:
        yield None


@pytest.fixture(scope="module")
def site(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir, pacs):
    from medai.platform.web.viewer import installed

    if not installed():
        pytest.skip("OHIF is not installed (make viewer-deps installs it)")
    home = tmp_path_factory.mktemp("ohif-home")
    mri = answering_model(
        home / "mri",
        "mri",
        {"Glioma": 0.9, "Meningioma": 0.04, "Pituitary": 0.03, "No_Tumor": 0.03},
        {"min_confidence": 0.5},
    )
    env = {"MEDAI_MODELS": f"triage={tfidf_model_dir},cxr={tiny_imaging_dir},mri={mri}"}
    if pacs is not None:  # results and signed reports go to it by C-STORE, as to a PACS
        env["MEDAI_DICOM_SEND_TO"] = f"{pacs.aet}@127.0.0.1:{pacs.dicom_port}"
        env["MEDAI_OUTBOX_POLL_S"] = "0.2"
    with ui_server(home, {"rad1": "radiologist", "pat1": "patient"}, **env) as base:
        yield base, _study(base, home)


def _study(base: str, home, name: str = "cr", patient: str = "OHIF-P1") -> tuple[int, str]:
    """A 12-bit MONOCHROME1 CR (0.2 mm pixels) filed and analysed: (id, StudyInstanceUID)."""

    import numpy as np
    from pydicom import dcmread

    path = make_dicom(home / f"{name}.dcm", rows=256, cols=256, patient_id=patient)
    ds = dcmread(path)
    yy, xx = np.mgrid[0:256, 0:256]
    ds.PixelData = ((xx * 16 + yy) % 4096).astype("<u2").tobytes()
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.BitsStored, ds.HighBit = 12, 11
    ds.PixelSpacing = ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return _file(base, "cxr", [buf.getvalue()]), str(ds.StudyInstanceUID)


def _file(base: str, task: str, files: list[bytes]) -> int:
    """The instances uploaded (one study), analysed: the study's id."""
    rad = http_login(base, "rad1")
    sid = None
    for blob in files:
        r = httpx.post(
            f"{base}/api/v1/studies",
            headers=rad,
            timeout=60,
            data={"task": task},
            files={"file": ("i.dcm", blob, "application/dicom")},
        )
        assert r.status_code in (200, 201), r.text
        sid = sid or r.json()["id"]
    end = time.monotonic() + 300
    while httpx.get(f"{base}/api/v1/studies/{sid}", headers=rad, timeout=30).json()["status"] in (
        "received",
        "analysing",
    ):
        assert time.monotonic() < end
        time.sleep(0.2)
    return sid


LENGTH = """() => {
  const t = window.cornerstoneTools, cs = window.cornerstone;
  const a = t.annotation.state.getAllAnnotations().find((x) => x.metadata.toolName === "Length");
  if (!a || !a.data.cachedStats) return null;
  const imageId = a.metadata.referencedImageId;
  const [p, q] = a.data.handles.points.map((w) => cs.utilities.worldToImageCoords(imageId, w));
  const stats = Object.values(a.data.cachedStats)[0];
  return {length: stats.length, unit: stats.unit, pixels: Math.hypot(p[0] - q[0], p[1] - q[1])};
}"""


VOI = """() => {
  const cs = window.cornerstone;
  if (!cs) return null;
  const el = cs.getEnabledElements ? cs.getEnabledElements() : [];
  for (const e of el) {
    const vp = e.viewport;
    const img = vp && vp.getImageData ? vp.getImageData() : null;
    if (img && vp.getProperties && vp.getProperties().voiRange) {
      const v = vp.getProperties().voiRange;
      return {lower: v.lower, upper: v.upper, id: vp.id};
    }
  }
  return null;
}"""


def _until(read, done, timeout: float = 30.0, pause: float = 0.5):
    """``read()`` again until ``done(value)`` or ``timeout`` seconds: its last value."""
    end = time.monotonic() + timeout
    value = read()
    while not done(value) and time.monotonic() < end:
        time.sleep(pause)
        value = read()
    return value


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_the_study_opens_in_ohif_with_window_level_on_dicom_values(site, browser, lang, shots):
    base, (sid, uid) = site
    ctx, page = login_page(browser, base, lang=lang)
    try:
        page.goto(f"/studies/{sid}")
        link = page.locator("#ohif-link")
        link.wait_for(state="visible", timeout=60_000)
        assert link.get_attribute("href") == f"/viewer/study/{sid}"
        violations: list[str] = []
        with ctx.expect_page() as opened:
            link.click()
        ohif = opened.value
        ohif.wait_for_url("**/viewer/viewer?**")
        assert f"StudyInstanceUIDs={uid}" in ohif.url  # a single film: OHIF's own layout
        assert "hangingProtocolId" not in ohif.url
        ohif.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )
        voi = _until(lambda: ohif.evaluate(VOI), lambda v: v is not None, timeout=120, pause=1)
        ohif.screenshot(path=str(shots / f"ohif-{lang}.png"))
        assert voi is not None, "OHIF drew no image from medai's DICOMweb"
        # the AI's findings SR and heatmap are series of their own, named as the AI's
        ohif.get_by_text(re.compile(r"^medai AI findings")).first.wait_for()
        ohif.get_by_text(re.compile(r"^medai AI heatmap")).first.wait_for()
        # the VOI is on the DICOM values (12-bit: 0..4095), the header's window first
        assert 0 <= voi["lower"] < voi["upper"] <= 4096 + 1, voi
        changed = ohif.evaluate(
            """(id) => { const cs = window.cornerstone;
              const vp = cs.getEnabledElements().find((e) => e.viewport.id === id).viewport;
              vp.setProperties({voiRange: {lower: 1000, upper: 1500}}); vp.render();
              const v = vp.getProperties().voiRange; return {lower: v.lower, upper: v.upper}; }""",
            voi["id"],
        )
        assert changed == {"lower": 1000, "upper": 1500}
        # OHIF's STOW-RS (saving a measurement report) carries medai's CSRF token: a POST from
        # the viewer's page is read (an empty body: 400), never refused as a forgery (403)
        status, body = ohif.evaluate(
            """() => new Promise((ok) => { const x = new XMLHttpRequest();
              x.open("POST", "/api/v1/dicomweb/studies");
              x.setRequestHeader("Content-Type", 'multipart/related; type="application/dicom"; boundary=b');
              x.onload = () => ok([x.status, x.responseText]); x.send("--b--\\r\\n"); })"""
        )
        assert status != 403 and 400 <= status < 500, (status, body)

        # a length drawn with OHIF's Length tool is in millimetres from the pixel spacing
        drawn = _draw_length(ohif, voi["id"])
        assert drawn is not None, "OHIF made no length measurement"
        assert drawn["pixels"] > 20
        assert drawn["length"] == pytest.approx(drawn["pixels"] * 0.2, abs=0.01), drawn
        # saved from OHIF's measurement panel ("Create SR": its TID 1500 SR over STOW-RS)
        saved = _save_measurements(ohif, page, sid)
        assert [(i["kind"], i["mine"]) for i in saved["items"]] == [("length", True)], saved
        assert saved["items"][0]["value"] == pytest.approx(drawn["length"], abs=0.01)
        assert saved["items"][0]["spacing"] == "PixelSpacing"
        # ... and the study page writes it into the report's Measurements section, unsaved
        # (back on the study page: the window gets the focus again, as the radiologist's
        # click on it gives it; headless Chromium does not move the focus by itself)
        page.bring_to_front()
        page.evaluate("window.dispatchEvent(new Event('focus'))")
        field = page.locator("#sec-measurements")
        expect_line = saved["lines"][0]
        assert re.fullmatch(r"(Lezyon \d+(,\d)? mm|Lesion \d+(\.\d)? mm)\.", expect_line)
        assert _until(field.input_value, lambda v: v == expect_line, pause=0.3) == expect_line
        assert page.locator("#measurements-note").is_visible()
        assert page.locator("#unsaved").is_visible()
        field.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"study-measurements-{lang}-1280.png"), full_page=True)
        page.set_viewport_size({"width": 360, "height": 740})
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 360
        field.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"study-measurements-{lang}-360.png"))
        assert not violations, violations
    finally:
        ctx.close()


def test_the_viewer_is_for_clinical_accounts_and_keeps_its_own_csp(site):
    base, _ = site
    page = httpx.get(f"{base}/viewer/viewer", follow_redirects=False, timeout=30)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert httpx.get(f"{base}/viewer/app-config.js", timeout=30).status_code == 401
    pat = http_login(base, "pat1")
    assert httpx.get(f"{base}/viewer/app-config.js", headers=pat, timeout=30).status_code == 401
    rad = http_login(base, "rad1")
    config = httpx.get(f"{base}/viewer/app-config.js", headers=rad, timeout=30)
    assert config.status_code == 200 and '"qidoRoot": "/api/v1/dicomweb"' in config.text
    index = httpx.get(f"{base}/viewer/viewer", headers=rad, timeout=30)
    csp = index.headers["content-security-policy"]
    assert "'wasm-unsafe-eval'" in csp and "worker-src 'self' blob:" in csp
    assert 'window.PUBLIC_URL="/viewer/"' in index.text and "init-service-worker" not in index.text
    # medai's own pages keep the strict policy
    assert "wasm" not in httpx.get(f"{base}/login", timeout=30).headers["content-security-policy"]


VIEWPORTS = """() => {
  const cs = window.cornerstone;
  if (!cs || !cs.getEnabledElements) return [];
  return cs.getEnabledElements().map((e) => {
    const vp = e.viewport, id = vp.getCurrentImageId ? vp.getCurrentImageId() : null;
    const voi = vp.getProperties ? vp.getProperties().voiRange : null;
    const general = id ? cs.metaData.get("generalSeriesModule", id) : null;
    const position = id ? cs.metaData.get("imagePlaneModule", id) : null;
    const rect = e.viewport.element.getBoundingClientRect();
    return {id: vp.id, imageId: id, index: vp.getCurrentImageIdIndex ? vp.getCurrentImageIdIndex() : null,
      study: general ? general.studyInstanceUID : null,
      z: position && position.imagePositionPatient ? position.imagePositionPatient[2] : null,
      voi: voi ? [voi.lower, voi.upper] : null, left: rect.left, top: rect.top};
  }).filter((v) => v.imageId).sort((a, b) => a.left - b.left);
}"""


def _viewports(page, n: int, timeout: float = 120.0) -> list[dict]:
    end = time.monotonic() + timeout
    got: list[dict] = []
    while time.monotonic() < end:
        got = page.evaluate(VIEWPORTS)
        if len(got) >= n and all(v["voi"] for v in got):
            return got
        time.sleep(1)
    raise AssertionError(f"OHIF showed {len(got)} image viewports, not {n}")


def test_a_chest_hangs_pa_beside_lateral_and_an_mr_beside_its_prior_linked(site, browser, shots):
    base, _ = site
    folder = Path(tempfile.mkdtemp(prefix="medai-hang-"))
    study = generate_uid()

    def blob(path) -> bytes:
        return Path(path).read_bytes()

    pa = make_dicom(
        folder / "pa.dcm",
        study=study,
        series=generate_uid(),
        view="PA",
        accession="HANG-1",
        patient_id="HANG-P1",
        rows=128,
        cols=128,
    )
    lat = make_dicom(
        folder / "lat.dcm",
        study=study,
        series=generate_uid(),
        view="LL",
        accession="HANG-1",
        patient_id="HANG-P1",
        rows=128,
        cols=128,
        seed=3,
    )
    chest = _file(base, "cxr", [blob(pa), blob(lat)])
    prior_uid, today_uid = generate_uid(), generate_uid()
    prior = [
        blob(p)
        for p, _sop, _z in mr_series(folder / "prior", 5, study=prior_uid, accession="HANG-MR-0")
    ]
    _file(base, "mri", prior)
    today = [
        blob(p)
        for p, _sop, _z in mr_series(folder / "today", 5, study=today_uid, accession="HANG-MR-1")
    ]
    mr = _file(base, "mri", today)
    assert dcmread(io.BytesIO(prior[0])).PatientID == dcmread(io.BytesIO(today[0])).PatientID

    ctx, page = login_page(browser, base, lang="tr")
    try:
        page.set_viewport_size({"width": 1600, "height": 900})
        page.goto(f"/viewer/study/{chest}")
        assert "hangingProtocolId=%40medai%2Fchest-pa-lateral" in page.url
        left, right = _viewports(page, 2)
        assert left["imageId"] != right["imageId"] and left["top"] == right["top"]
        text = page.locator("body").inner_text()
        assert "PA" in text and "LL" in text  # each viewport names its view
        assert page.locator(".shepherd-element").count() == 0  # no onboarding tour over it
        page.screenshot(path=str(shots / "ohif-pa-lateral-tr.png"))

        page.goto(f"/viewer/study/{mr}")
        assert f"StudyInstanceUIDs={today_uid}%2C{prior_uid}" in page.url.replace(",", "%2C")
        assert "hangingProtocolId=%40medai%2Fcompare" in page.url
        current, before = _viewports(page, 2)
        assert (current["study"], before["study"]) == (today_uid, prior_uid)
        # scrolling today's series (the mouse wheel over it) moves the prior to the same position
        page.mouse.move(current["left"] + 200, current["top"] + 300)
        for _ in range(3):
            page.mouse.wheel(0, 120)
            time.sleep(0.3)
        now = _until(
            lambda: {v["id"]: v for v in page.evaluate(VIEWPORTS)},
            lambda now: (
                now[current["id"]]["index"] != current["index"]
                and now[before["id"]]["z"] == now[current["id"]]["z"]
            ),
        )
        assert now[current["id"]]["z"] != current["z"], "today's series did not scroll"
        assert now[before["id"]]["z"] == now[current["id"]]["z"], now
        # window/level on today's changes the prior's too
        page.evaluate(
            """(id) => { const e = window.cornerstone.getEnabledElements().find((x) => x.viewport.id === id);
              e.viewport.setProperties({voiRange: {lower: 100, upper: 900}}); e.viewport.render(); }""",
            current["id"],
        )
        now = _until(
            lambda: {v["id"]: v for v in page.evaluate(VIEWPORTS)},
            lambda now: now[before["id"]]["voi"] == [100, 900],
        )
        assert now[before["id"]]["voi"] == [100, 900], now
        page.screenshot(path=str(shots / "ohif-compare-tr.png"))
    finally:
        ctx.close()


REGION = """() => {
  const t = window.cornerstoneTools, cs = window.cornerstone;
  const segs = t.segmentation.state.getSegmentations();
  return segs.map((x) => {
    const ids = (x.representationData.Labelmap || {}).imageIds || [];
    let filled = 0, total = 0;
    for (const id of ids) {
      const img = cs.cache.getImage(id);
      if (!img) continue;
      const px = img.getPixelData();
      total += px.length;
      for (let i = 0; i < px.length; i++) if (px[i]) filled++;
    }
    return {label: x.label, segments: Object.values(x.segments || {}).map((s) => s.label),
      filled, total};
  });
}"""


def test_the_ai_heatmap_region_lies_over_the_film(site, browser, shots):
    base, (sid, _uid) = site
    ctx, page = login_page(browser, base, lang="en")
    try:
        page.set_viewport_size({"width": 1600, "height": 900})
        page.goto(f"/viewer/study/{sid}")
        _viewports(page, 1)
        # a film has no patient geometry for a Parametric Map: its saliency region is a SEG,
        # which OHIF lays over the film it references (double-clicked, then confirmed)
        series = page.get_by_text(re.compile(r"^medai AI heatmap region")).first
        series.wait_for(timeout=60_000)
        series.dblclick()
        page.get_by_role("button", name="Yes").click(timeout=60_000)
        regions = _until(lambda: page.evaluate(REGION), lambda r: r and r[0]["filled"], timeout=60)
        assert len(regions) == 1, regions
        (region,) = regions
        assert region["label"].startswith("medai AI heatmap region")
        assert region["segments"] == [region["segments"][0]]
        assert region["segments"][0].startswith("AI saliency (suggestion)")
        # the region is part of the film, not all of it nor none
        assert 0 < region["filled"] < region["total"] == 256 * 256, region
        page.screenshot(path=str(shots / "ohif-heatmap-region-en.png"))
    finally:
        ctx.close()


def _draw_length(ohif, viewport: str) -> dict:
    """A line drawn with OHIF's Length tool across ``viewport``: its statistics once they are
    of the line's last position."""
    ohif.locator("[data-cy='MeasurementTools-split-button-primary']").first.click()
    left, top, width, height = ohif.evaluate(
        """(id) => { const r = window.cornerstone.getEnabledElements()
          .find((e) => e.viewport.id === id).viewport.element.getBoundingClientRect();
          return [r.left, r.top, r.width, r.height]; }""",
        viewport,
    )
    x0, y0 = left + width * 0.3, top + height * 0.5
    ohif.mouse.move(x0, y0)
    ohif.mouse.down()
    for k in range(1, 11):
        ohif.mouse.move(x0 + 20 * k, y0 + 6 * k)
        time.sleep(0.05)
    ohif.mouse.up()
    # the tool's statistics are computed at its next render: read until they are of the
    # handles' last position (a read in between gives the length one mouse move behind,
    # 9/10 of the line drawn)
    return _until(
        lambda: ohif.evaluate(LENGTH),
        lambda d: d and abs(d["length"] - d["pixels"] * 0.2) <= 0.01,
        timeout=10,
        pause=0.2,
    )


def _save_measurements(ohif, page, sid: int) -> dict:
    """OHIF's measurement panel's "Create SR" (its TID 1500 SR over STOW-RS), then medai's
    measurements of the study once it has filed them (``GET …/measurements``)."""
    ohif.locator("[data-cy='trackedMeasurements-btn']").click()
    ohif.locator("button").filter(has_text=re.compile(r"SR\s*$")).first.click()
    ohif.locator("[data-cy=input-dialog-save-button] button").click()
    return _until(
        lambda: page.request.get(f"/api/v1/studies/{sid}/measurements").json(),
        lambda saved: saved["items"],
        timeout=60,
    )


def _in_pacs(pacs, study_uid: str) -> list:
    """Every instance Orthanc holds in the study, read back as DICOM."""
    import json
    import urllib.request

    ids = pacs.rest(
        "/tools/find",
        "POST",
        json.dumps({"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}}).encode(),
    )
    out = []
    for i in ids:
        with urllib.request.urlopen(f"{pacs.url}/instances/{i}/file", timeout=10) as resp:
            out.append(dcmread(io.BytesIO(resp.read())))
    return out


def test_after_sign_off_the_pacs_holds_the_length_drawn_in_ohif(site, pacs, browser, shots):
    """The whole path in the browser: a length drawn in OHIF and saved ("Create SR"), written
    into the report's Measurements section, signed on the study page; then the suite's real
    Orthanc holds the signer's measurement SR (that very length) beside the signed report SR,
    whose text has the section."""
    if pacs is None:
        pytest.skip("Orthanc is not installed (make integration-deps installs it)")
    base, _ = site
    sid, uid = _study(base, Path(tempfile.mkdtemp(prefix="medai-sign-")), "signed", "OHIF-P2")
    ctx, page = login_page(browser, base, lang="tr")
    try:
        page.goto(f"/studies/{sid}")
        link = page.locator("#ohif-link")
        link.wait_for(state="visible", timeout=60_000)
        with ctx.expect_page() as opened:
            link.click()
        ohif = opened.value
        voi = _until(lambda: ohif.evaluate(VOI), lambda v: v is not None, timeout=120, pause=1)
        assert voi is not None, "OHIF drew no image from medai's DICOMweb"
        drawn = _draw_length(ohif, voi["id"])
        assert drawn and drawn["pixels"] > 20, drawn
        saved = _save_measurements(ohif, page, sid)
        (line,) = saved["lines"]
        page.bring_to_front()
        page.evaluate("window.dispatchEvent(new Event('focus'))")
        field = page.locator("#sec-measurements")
        assert _until(field.input_value, lambda v: v == line, pause=0.3) == line

        # signed on the study page, the filled section with the rest
        page.get_by_role("button", name="İmzala", exact=True).click()
        answer_undecided(page)
        page.get_by_role("button", name="Bu metni imzala").click()
        page.locator("#report-status[data-status='final']").wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "ohif-signed-measurements-tr.png"), full_page=True)

        def delivered() -> tuple[list, list]:
            held = _in_pacs(pacs, uid)
            reports = [ds for ds in held if ds.get("VerificationFlag") == "VERIFIED"]
            # the viewer's own SR: an SR in the study that medai did not make
            lengths = [
                ds
                for ds in held
                if str(ds.SOPClassUID).startswith("1.2.840.10008.5.1.4.1.1.88")
                and ds.get("Manufacturer") != "medai"
            ]
            return reports, lengths

        reports, lengths = _until(delivered, lambda got: got[0] and got[1], timeout=90)
        assert len(reports) == 1 and len(lengths) == 1, (reports, lengths)
        # the measurement SR is the one the viewer saved, with the length drawn
        numbers = [
            float(item.MeasuredValueSequence[0].NumericValue)
            for item in _content(lengths[0])
            if item.get("ValueType") == "NUM" and "MeasuredValueSequence" in item
        ]
        assert any(abs(n - drawn["length"]) < 0.01 for n in numbers), (numbers, drawn)
        # and the signed report SR states the Measurements section as signed
        texts = [str(i.TextValue) for i in _content(reports[0]) if i.get("ValueType") == "TEXT"]
        assert any(line.rstrip(".") in t for t in texts), texts
    finally:
        ctx.close()


def _content(ds):
    """Every content item of an SR, depth first."""
    for item in ds.get("ContentSequence") or []:
        yield item
        yield from _content(item)
