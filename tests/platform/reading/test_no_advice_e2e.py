"""Through the platform (issue 67, item 5): a post-contrast MR series ("AX T1 POST GD") and a
chest film, filed as a hospital would, are drafted with no test or treatment advice ("kontrastlı
MR önerilir", RT-PCR, isolation) and an impression that asserts no diagnosis, in the report the
radiologist opens and in the passages it cites."""

from __future__ import annotations

import re

import pytest
from pydicom.uid import generate_uid

from helpers.platform import bearer, clinic, png_bytes, wait_status
from helpers.viewer import mr_series
from medai.reporting.safety import advice_in

ASSERTS = re.compile(r"ile uyumlu|consistent with", re.I)


@pytest.fixture(scope="module")
def hosp(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir, tiny_mri_dir):
    home = tmp_path_factory.mktemp("no-advice")
    with clinic(
        "sqlite", home, tfidf_model_dir, tiny_imaging_dir, models={"mri": str(tiny_mri_dir)}
    ) as (_app, client):
        yield client


def _report(client, rad, sid) -> dict:
    wait_status(client, rad, sid, {"ai_drafted", "refused"})
    r = client.get(f"/api/v1/studies/{sid}/report", headers=rad)
    assert r.status_code == 200, r.text
    return r.json()


def _check(report: dict) -> None:
    sections = report["sections"]
    text = " ".join(str(v) for v in sections.values())
    assert advice_in(text) == [], sections
    assert "kontrastlı" not in text.lower() and "RT-PCR" not in text, sections
    assert not ASSERTS.search(sections["impression"]), sections["impression"]
    for cited in report.get("citations") or []:
        assert advice_in(cited.get("text") or "") == [], cited


def test_a_post_contrast_mr_series_is_drafted_with_no_advice(hosp, tmp_path):
    client = hosp
    rad = bearer(client, "rad1")
    slices = mr_series(
        tmp_path / "gd", 6, study=generate_uid(), accession="ACC-GD", description="AX T1 POST GD"
    )
    sid = None
    for path, _sop, _z in slices:
        r = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "mri"},
            files={"file": (path.name, path.read_bytes(), "application/dicom")},
        )
        assert r.status_code in (200, 201), r.text
        sid = sid or r.json()["id"]
    _check(_report(client, rad, sid))


def test_a_chest_film_is_drafted_with_no_advice(hosp):
    client = hosp
    rad = bearer(client, "rad1")
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr"},
        files={"file": ("film.png", png_bytes(), "image/png")},
    )
    assert r.status_code in (200, 201), r.text
    _check(_report(client, rad, r.json()["id"]))
