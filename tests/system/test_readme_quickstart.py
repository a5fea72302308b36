"""The README's quick start, followed as written against a real `medai serve` on a fresh home:
the first admin, a radiologist who enrols and is approved, sign-in, an
upload, the AI draft, the signature and the FHIR export (issue 46: without `medai users approve`
the first upload was a 403). Only the host's port and the venv's path are put in, and a wait for
the background analysis ("once the background analysis has run")."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.paths import ROOT
from helpers.platform import png_bytes, serving

README = ROOT / "README.md"
pytestmark = pytest.mark.slow


def _quick_start() -> str:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return next(b for b in blocks if "users add admin" in b)


def test_the_quick_start_works_as_written(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path / "home"
    keep = ("MEDAI_PASSWORD_HASH", "MEDAI_PASSWORD_HASH_INSECURE_OK")  # the suite's fast hash
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDAI_") or k in keep}
    # the tiny test models stand in for the bundled ones (a noise PNG is no chest film to the
    # bundled modality gate); every command is the README's
    env.update(
        MEDAI_HOME=str(home),
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
    )
    (tmp_path / "chest.png").write_bytes(png_bytes(7))
    medai = str(Path(sys.executable).parent / "medai")
    with serving(env) as base:
        host = base.removeprefix("http://127.0.0.1:")
        script = (
            _quick_start()
            .replace(".venv/bin/medai", medai)
            .replace("localhost:8000", f"localhost:{host}")
        )
        upload = next(line for line in script.splitlines() if "-F file=@chest.png" in line)
        wait = (
            f'for _ in $(seq 600); do r=$(curl -s -H "Authorization: Bearer $TOKEN" '
            f"localhost:{host}/api/v1/studies/1); "
            'case "$r" in *\'"status":"ai_drafted"\'*) break;; *\'"code":\'*) '
            'echo "$r" >&2; exit 3;; esac; sleep 0.5; done'
        )
        script = script.replace(upload, upload + "\necho\n" + wait)
        script = script.replace("/report\n", "/report\necho\n").replace(
            "/report/sign\n", "/report/sign\necho\n"
        )
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert run.returncode == 0, run.stderr[-2000:]
    answers = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    study, report, signed, fhir = answers[-4:]
    assert study["id"] == 1 and study["status"] == "received", study
    assert report["status"] == "preliminary" and report["source"] == "ai", report
    assert signed["status"] == "final" and signed["signed_by"] == "dr.ayse", signed
    assert fhir["resourceType"] == "Bundle"
    # the signature's verdicts travel: one final Observation per stored label (issue 67)
    (dr,) = [
        e["resource"] for e in fhir["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"
    ]
    finals = {
        e["resource"]["id"]
        for e in fhir["entry"]
        if e["resource"]["resourceType"] == "Observation" and e["resource"]["status"] == "final"
    }
    assert dr["result"] and {r["reference"].split("/", 1)[1] for r in dr["result"]} == finals
