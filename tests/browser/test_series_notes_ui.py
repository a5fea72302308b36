"""The study page says what the series reading found beyond its decision (issue 67), in
headless Chromium against a real ``medai serve``: a series left undecided for a small lesion
names its slices as the viewer numbers them and why the AI did not decide; a study of several
series says how many the AI read, which one decided and each one it did not read, with why.
Turkish and English, desktop and a 360 px phone, no serious accessibility violation;
screenshots in ``MEDAI_SCREENSHOTS``."""

from __future__ import annotations

import json

import pytest
from test_viewer_series_ui import no_overflow, open_page, upload

from helpers.browser import DESKTOP, PHONE, _axe, _shot
from helpers.paths import SRC
from helpers.viewer import mr_series, mri_ui_server, served_platform, settled, store_read

pytestmark = pytest.mark.slow

T = json.loads((SRC / "platform/web/messages.json").read_text(encoding="utf-8"))
NORMAL = {"Glioma": 0.02, "Meningioma": 0.01, "Pituitary": 0.01, "No_Tumor": 0.96}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("series-notes")
    with mri_ui_server(home, NORMAL, tfidf_model_dir, tiny_imaging_dir) as base:
        yield base, home


def _small_lesion(payload: dict) -> dict:
    """The stored reading made what the series reader gives for a 2-slice glioma."""
    from medai.imaging.decision import Decision
    from medai.imaging.series_rule import _small_lesion as undecided

    decision = undecided(Decision.model_validate(payload["decision"]), "Glioma", "No_Tumor")
    rows = {r.label: r for r in decision.labels}
    findings = [f | rows[f["label"]].model_dump(mode="json") for f in payload["findings"]]
    return payload | {
        "decision": decision.model_dump(mode="json"),
        "primary": None,
        "findings": findings,
    }


@pytest.fixture(scope="module")
def study(server, browser, tmp_path_factory):
    from pydicom.uid import generate_uid

    base, home = server
    slices = mr_series(
        tmp_path_factory.mktemp("mr"), 7, study=generate_uid(), accession="ACC-NOTE", size=96
    )
    ctx, page = open_page(browser, base, DESKTOP, "tr")
    sid = None
    for path, _sop, _z in slices:
        filed = upload(page, path.name, path.read_bytes(), "application/dicom", "mri")["id"]
        sid = sid or filed
    ctx.close()
    sops = [sop for _path, sop, _z in slices]
    with served_platform(home) as p:
        settled(p, sid)
        from medai.platform.worklist import listing

        with p.db.reader() as db:
            series_uid = listing.instances(db, [sid])[sid][0].series_uid
        store_read(
            p,
            sid,
            series_uid=series_uid,
            read=sops,
            key=[sops[3], sops[4]],
            heatmap_instance=sops[3],
            read_extra={
                "undecided_slices": {
                    "label": "Glioma",
                    "instances": [sops[3], sops[4]],
                    "numbers": [4, 5],
                    "needed": 3,
                    "min_probability": 0.95,
                },
                "series": [
                    {
                        "series_uid": "1.2.3.1",
                        "series_number": 1,
                        "description": "LOC",
                        "slices": 3,
                        "read": False,
                        "reason": "localizer",
                    },
                    {
                        "series_uid": series_uid,
                        "series_number": 3,
                        "description": "AX T2",
                        "slices": 7,
                        "read": True,
                        "state": "indeterminate",
                        "decides": True,
                    },
                    {
                        "series_uid": "1.2.3.9",
                        "series_number": 9,
                        "description": "DWI",
                        "slices": 7,
                        "read": False,
                        "reason": "out_of_distribution",
                    },
                ],
            },
            update=_small_lesion,
        )
    return sid


@pytest.mark.parametrize("lang", ["tr", "en"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_page_names_the_small_lesions_slices_and_every_series(
    server, browser, study, lang, viewport
):
    base, _home = server
    ctx, page = open_page(browser, base, viewport, lang)
    page.goto(f"/studies/{study}?lang={lang}")
    note = page.locator("#small-lesion-note")
    note.wait_for(state="visible")
    text = note.inner_text()
    if lang == "tr":
        assert text.startswith("2 komşu kesitte (4–5) gliom lehine bulgu"), text
        assert "radyolog değerlendirmeli" in text
    else:
        assert "2 neighbouring slices (4–5)" in text and "did not decide" in text, text
    series = page.locator("#series-note").inner_text()
    assert "LOC" in series and "DWI" in series and "AX T2" in series, series
    assert (T["tr"] if lang == "tr" else T["en"])["read_why_localizer"] in series
    # the decision line says the AI did not decide, and why
    undecided = page.locator("#decision-note").inner_text()
    assert undecided and ("small" not in undecided or lang == "en")
    no_overflow(page)
    assert [v for v in _axe(page) if v["impact"] in ("serious", "critical")] == []
    _shot(page, f"series-notes-{lang}-{viewport['width']}.png")
    ctx.close()
