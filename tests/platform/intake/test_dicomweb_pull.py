"""Pulling studies from a real PACS (Debian's Orthanc with its DICOMweb plugin) over QIDO-RS
and WADO-RS: new instances are fetched, filed, routed and analysed; a second pass fetches
nothing; a series added later joins its study; a PACS that is down is a named error; the
command line does the same once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import pytest

from helpers.dicom import make_dicom
from helpers.orthanc import orthanc  # noqa: F401 (the fixture)
from helpers.platform import bearer, clinic, refusing_port, wait_status

DAY = date(2025, 11, 21)  # the test studies are of 2025-11-20: inside a one-day look-back


def _put(pacs, path) -> None:
    pacs.rest("/instances", "POST", path.read_bytes())


@pytest.fixture(scope="module")
def site(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("pull")
    with clinic("sqlite", home, tfidf_model_dir, tiny_imaging_dir) as (app, client):
        yield app, client, bearer(client, "rad1"), home


def _by_accession(client, rad, accession: str) -> list[dict]:
    r = client.get("/api/v1/studies", headers=rad, params={"accession": accession})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_new_studies_are_pulled_once_filed_and_analysed(site, orthanc, tmp_path):  # noqa: F811
    from pydicom.uid import generate_uid

    from medai.platform.intake.dicomweb_pull import Puller

    app, client, rad, _ = site
    study = generate_uid()
    _put(orthanc, make_dicom(tmp_path / "a.dcm", study=study, accession="PULL-1", seed=1))
    _put(
        orthanc,
        make_dicom(
            tmp_path / "u.dcm", "CR", body_part="ABDOMEN", view=None, accession="PULL-2", seed=2
        ),
    )
    p = app.state.platform
    puller = Puller(p, orthanc.dicomweb_url, app.state.dispatch, today=lambda: DAY)
    first = puller.pull()
    assert (first.studies, first.fetched, first.known, first.refused) == (2, 2, 0, {})
    (chest,) = _by_accession(client, rad, "PULL-1")
    assert chest["task"] == "cxr"
    assert wait_status(client, rad, chest["id"], {"ai_drafted"})["status"] == "ai_drafted"
    (other,) = _by_accession(client, rad, "PULL-2")
    assert other["status"] != "ai_drafted"  # no model reads an abdomen: never forced through one

    again = puller.pull()
    assert (again.fetched, again.known) == (0, 2)

    series = generate_uid()  # a series the PACS gains later joins the study
    _put(
        orthanc,
        make_dicom(tmp_path / "b.dcm", study=study, series=series, accession="PULL-1", seed=3),
    )
    third = puller.pull()
    assert (third.fetched, third.known) == (1, 2)
    assert [s["id"] for s in _by_accession(client, rad, "PULL-1")] == [chest["id"]]

    old = Puller(p, orthanc.dicomweb_url, None, today=lambda: date(2026, 3, 1))
    assert old.pull().studies == 0  # outside the look-back: not asked for


def test_a_pacs_that_is_down_is_a_named_error(site):
    from medai.platform.intake.dicomweb_pull import Puller, PullError

    app, *_ = site
    with refusing_port() as port:
        down = Puller(
            app.state.platform, f"http://127.0.0.1:{port}/dicom-web", timeout_s=2, today=lambda: DAY
        )
        with pytest.raises(PullError, match=r"127\.0\.0\.1"):
            down.pull()


def test_an_instance_declaring_too_many_pixels_is_not_fetched():
    from medai.platform.intake.dicomweb_pull import declares_too_much

    def qido(rows, cols, frames=None):
        item = {"00280010": {"Value": [rows]}, "00280011": {"Value": [cols]}}
        if frames:
            item["00280008"] = {"Value": [frames]}
        return item

    assert not declares_too_much(qido(2500, 2000))
    assert declares_too_much(qido(60_000, 60_000))
    assert declares_too_much(qido(2000, 2000, frames=500))
    assert not declares_too_much({})  # the PACS did not say: the filing checks the header


def test_the_command_pulls_once_and_says_what_it_did(site, orthanc, tmp_path):  # noqa: F811
    _, client, rad, home = site
    _put(orthanc, make_dicom(tmp_path / "c.dcm", accession="PULL-CLI", seed=4))
    env = {
        **os.environ,
        "MEDAI_HOME": str(home),
        "MEDAI_DATABASE_URL": f"sqlite:///{home / 'medai.db'}",
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "medai.cli",
            "dicom",
            "pull",
            "--url",
            orthanc.dicomweb_url,
            "--lookback-days",
            "400",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["fetched"] >= 1 and out["refused"] == {}
    assert _by_accession(client, rad, "PULL-CLI")
    bad = subprocess.run(
        [sys.executable, "-m", "medai.cli", "dicom", "pull", "--url", "ftp://pacs", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and "error" in json.loads(bad.stdout)
