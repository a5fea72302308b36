"""The node as hospitals run it: ``medai dicom listen`` on its own and ``medai serve
--dicom-port`` inside the API process, real processes on free ports, dcmtk as the modality."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers.dicom import echoscu, make_dicom, need_dcmtk, storescu
from helpers.platform import cli_add_user, free_port, http_login, server_log, start_serve

pytestmark = [pytest.mark.server, pytest.mark.dcmtk]


def _env(home, **more) -> dict:
    return {**os.environ, "MEDAI_HOME": str(home), "OMP_NUM_THREADS": "1", **more}


def _listen(env, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "medai.cli", "dicom", "listen", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def _rows(home) -> list[tuple]:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{home / 'medai.db'}")
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT status, task, accession, source FROM studies")))
    finally:
        engine.dispose()


def test_dicom_listen_files_studies_until_stopped(tmp_path):
    need_dcmtk()
    env = _env(tmp_path, MEDAI_JOB_THREADS="0")  # analysis left to a serve on the same db
    proc = _listen(
        env, "--port", "0", "--ae-title", "MEDAI", "--allow", "MODALITY", "--allow", "PACS"
    )
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        started = json.loads(line)
        assert started["listening"] and started["allow"] == ["MODALITY", "PACS"]
        assert started["analysis"] == "medai serve"
        port = started["port"]
        assert echoscu(port).returncode == 0
        sent = storescu(port, make_dicom(tmp_path / "cr.dcm", accession="CLI-1"))
        assert sent.returncode == 0, sent.stderr
        assert storescu(port, tmp_path / "cr.dcm", aet="OTHER").returncode != 0
        assert _rows(tmp_path) == [("received", "cxr", "CLI-1", "dicom")]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    err = proc.stderr.read()
    assert "C-STORE from MODALITY: study 1 new" in err and "YILMAZ" not in err


def test_dicom_listen_names_a_bad_ae_title_and_a_taken_port(tmp_path):
    env = _env(tmp_path)
    bad = subprocess.run(
        [sys.executable, "-m", "medai.cli", "dicom", "listen", "--json", "--allow", "BAD\\TITLE"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "1 to 16 characters" in json.loads(bad.stdout)["error"]
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = subprocess.run(
            [
                sys.executable,
                "-m",
                "medai.cli",
                "dicom",
                "listen",
                "--json",
                "--port",
                str(taken.getsockname()[1]),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert busy.returncode == 1 and "cannot listen" in json.loads(busy.stdout)["error"]


@pytest.mark.slow
def test_serve_with_a_dicom_port_analyses_what_arrives(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    need_dcmtk()
    env = _env(
        tmp_path,
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
        MEDAI_DICOM_ALLOW='["MODALITY"]',
    )
    cli_add_user(env, "rad1", "radiologist")
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "medai.cli",
            "serve",
            "--workers",
            "2",
            "--dicom-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert refused.returncode == 2 and "one process" in refused.stderr
    dicom_port = free_port()
    proc, base = start_serve(env, free_port(), extra=("--dicom-port", str(dicom_port)))
    try:
        assert echoscu(dicom_port).returncode == 0
        sent = storescu(dicom_port, make_dicom(tmp_path / "cr.dcm", accession="SERVE-1"))
        assert sent.returncode == 0, sent.stderr
        import httpx

        rad = http_login(base, "rad1")
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            items = httpx.get(
                f"{base}/api/v1/studies", headers=rad, timeout=30, params={"accession": "SERVE-1"}
            ).json()["items"]
            if items and items[0]["status"] == "ai_drafted":
                break
            time.sleep(0.2)
        assert items and items[0]["status"] == "ai_drafted", items
        assert items[0]["dicom"]["patient_name"] == "YILMAZ^AYSE^NUR"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    log = server_log(proc)
    assert "DICOM node MEDAI listening" in log and "YILMAZ" not in log
