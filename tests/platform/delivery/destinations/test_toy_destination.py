"""A destination kind medai has never heard of, added from outside it (issue 70 §4), the way a
hospital adds its own: a package on the path with one ``medai.destinations`` entry point, and a
destinations file naming its kind. No file of medai changes for it.

The package here (``toy_archive``, written into a temporary folder with its ``dist-info``) files
each signed report as a JSON file in a folder. A real ``medai serve`` started with that folder
on ``PYTHONPATH`` reads the destinations file, finds the kind through the entry point, and its
delivery loop sends a signed report there; the outbox lists the row under the toy kind. A file
naming a kind that no entry point registers is refused at start, listing the valid kinds, the
toy one among them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.platform import PASSWORD, cli_add_user, png_bytes, serving

pytestmark = [
    pytest.mark.server
]  # a real ``medai serve`` process: make test runs it, not test-fast

PACKAGE = '''
"""A hospital's own destination: each signed report as a JSON file in a folder."""
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from medai.platform.delivery.destinations import register
from medai.platform.delivery.destinations.registry import DestinationKind


class ArchiveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    kind: Literal["toy_archive"]
    events: tuple[Literal["analysed", "signed"], ...] = ("signed",)
    timeout_s: float = 5.0
    folder: str

    @property
    def where(self) -> str:
        return self.folder


class Archive(DestinationKind):
    kind = "toy_archive"
    config = ArchiveConfig

    def build(self, p, item, parts, dest, *, correction):
        return {"study": item.study_id, "version": item.report_version,
                "status": parts.report["status"], "impression": parts.report["sections"].get(
                    "impression", "")}

    def send(self, payload, dest):
        out = Path(dest.folder) / f"{payload['study']}-v{payload['version']}.json"
        out.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
        return 1


def register_kinds():
    register(Archive())
'''


def _package(root: Path) -> Path:
    """The plug-in as pip would leave it: the module and its dist-info with the entry point."""
    (root / "toy_archive").mkdir(parents=True)
    (root / "toy_archive" / "__init__.py").write_text(PACKAGE, encoding="utf-8")
    info = root / "toy_archive-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-archive\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[medai.destinations]\ntoy_archive = toy_archive:register_kinds\n"
    )
    return root


def test_a_kind_from_a_package_outside_medai_is_configured_and_delivers(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    import httpx

    plugin = _package(tmp_path / "site")
    folder = tmp_path / "archive"
    folder.mkdir()
    dests = tmp_path / "destinations.yaml"
    dests.write_text(
        f"destinations:\n  - {{name: archive, kind: toy_archive, folder: '{folder}'}}\n"
    )
    env = {
        **os.environ,
        "MEDAI_HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")]),
        "MEDAI_DESTINATIONS_FILE": str(dests),
        "MEDAI_OUTBOX_POLL_S": "0.5",
        "MEDAI_MODELS": f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
    }
    cli_add_user(env, "rad1", "radiologist")
    cli_add_user(env, "admin1", "admin")
    with serving(env) as base, httpx.Client(base_url=base, timeout=60) as http:

        def bearer(user: str) -> dict[str, str]:
            r = http.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
            assert r.status_code == 200, r.text
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        rad = bearer("rad1")
        r = http.post(
            "/api/v1/studies",
            headers=rad,
            files={"file": ("film.png", png_bytes(), "image/png")},
            data={"task": "cxr", "patient_ref": "P-TOY"},
        )
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        for _ in range(600):
            study = http.get(f"/api/v1/studies/{sid}", headers=rad).json()
            if study["status"] not in ("received", "analysing"):
                break
            time.sleep(0.1)
        assert study["status"] == "ai_drafted", study["status"]
        report = http.get(f"/api/v1/studies/{sid}/report", headers=rad).json()
        choices = {
            f["label"]: f["label"] == "No Finding"
            for f in study["ai_result"]["findings"]
            if f["state"] == "indeterminate"
        }
        signed = http.post(
            f"/api/v1/studies/{sid}/report/sign",
            headers=rad,
            json={
                "version": report["version"],
                "sections": {**report["sections"], "impression": "Aktif patoloji izlenmedi."},
                "labels": choices,
            },
        )
        assert signed.status_code == 200, signed.text
        sent = folder / f"{sid}-v{signed.json()['version']}.json"
        for _ in range(300):
            if sent.is_file():
                break
            time.sleep(0.1)
        assert sent.is_file(), sorted(p.name for p in folder.iterdir())
        assert json.loads(sent.read_text(encoding="utf-8")) == {
            "study": sid,
            "version": signed.json()["version"],
            "status": "final",
            "impression": "Aktif patoloji izlenmedi.",
        }
        rows = http.get("/api/v1/admin/outbox", headers=bearer("admin1")).json()["items"]
        assert rows, "the outbox lists nothing"
        assert [(r["destination"], r["kind"], r["state"]) for r in rows] == [
            ("archive", "toy_archive", "delivered")
        ]

    # a kind no entry point registers is refused at start, the valid kinds listed
    dests.write_text("destinations:\n  - {name: x, kind: ftp_archive, folder: '/tmp'}\n")
    check = subprocess.run(  # what serve, the worker and every command read first
        [sys.executable, "-c", "from medai.settings import Settings; Settings()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = check.stdout + check.stderr
    assert check.returncode != 0, said
    assert "unknown kind 'ftp_archive'" in said, said
    assert "valid: dicom, dicomweb, fhir, hl7, toy_archive" in said, said
