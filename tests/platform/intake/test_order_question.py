"""The clinical question of a study sent over DICOM (issue 69 §3): the modality copies the
order's question into the header, and every study it sent read "Klinik soru: Belirtilmemiş".

The header is read where modalities put it (``dicom.identity.QUESTION``: the reason for the
requested procedure first, in the dataset or its Request Attributes Sequence); the question is
kept as the upload form's is (sealed), ranks the study when it raises a red flag (a history
does not), and the study and its PDF state it."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from helpers.dicom import make_dicom, stow
from helpers.platform import bearer, clinic

ACUTE = "Bugün yeni gelişen sağ hemiparezi ve konuşma bozukluğu"
HISTORY = "Sol hemiparezi öyküsü, kontrol"


def _identity(tmp_path, name: str, **header):
    from medai.platform.dicom import identity

    path = make_dicom(tmp_path / f"{name}.dcm", SpecificCharacterSet="ISO_IR 192", **header)
    return identity.from_dataset(dcmread(path, stop_before_pixels=True))


def test_the_question_is_read_where_a_modality_puts_it(tmp_path):
    assert _identity(tmp_path, "none").clinical_question == ""
    got = _identity(
        tmp_path,
        "top",
        ReasonForTheRequestedProcedure="Pnömotoraks?",
        RequestedProcedureDescription="AKCIGER PA",
    )
    assert got.clinical_question == "Pnömotoraks?"  # the reason, not the procedure's name
    request = Dataset()
    request.ReasonForTheRequestedProcedure = "Ateş, öksürük; pnömoni?"
    request.RequestedProcedureID = "RP-1"
    inside = _identity(tmp_path, "seq", RequestAttributesSequence=[request])
    assert inside.clinical_question == "Ateş, öksürük; pnömoni?"
    many = _identity(tmp_path, "dx", AdmittingDiagnosesDescription=["J18.9 Pnömoni", "Ateş"])
    assert many.clinical_question == "J18.9 Pnömoni; Ateş"
    only = _identity(tmp_path, "proc", RequestedProcedureDescription="AKCIGER PA")
    assert only.clinical_question == "AKCIGER PA"  # better than nothing: what was asked for
    # what a reader cannot see but a renderer obeys is dropped (a bidi override reorders)
    spoof = _identity(tmp_path, "bidi", ReasonForTheRequestedProcedure="ALI\u202eZEM öksürük")
    assert spoof.clinical_question == "ALIZEM öksürük"


def test_a_dicom_study_states_its_order_question_and_is_ranked_by_it(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    from medai.platform.reading.analysis import analyse_study

    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as (app, client):
        rad = bearer(client, "rad1")

        def sent(accession: str, question: str, seed: int) -> dict:
            blob = make_dicom(
                tmp_path / f"{accession}.dcm",
                accession=accession,
                patient_id=f"P-{accession}",
                seed=seed,
                # a Turkish modality's Latin-5, and UTF-8
                SpecificCharacterSet="ISO_IR 148" if seed == 1 else "ISO_IR 192",
                ReasonForTheRequestedProcedure=question,
            ).read_bytes()
            stow(client, rad, blob)
            (found,) = client.get(
                "/api/v1/studies", headers=rad, params={"accession": accession}
            ).json()["items"]
            return found

        acute, history = sent("ORD-1", ACUTE, 1), sent("ORD-2", HISTORY, 2)
        assert acute["clinical_question"] == ACUTE and history["clinical_question"] == HISTORY
        assert [r["rule"] for r in acute["urgent_because"]] == ["stroke"]
        assert not history["urgent"] and not history["urgent_because"]
        flagged = client.get("/api/v1/studies", headers=rad, params={"red_flag": True}).json()
        assert [s["id"] for s in flagged["items"]] == [acute["id"]]

        # drafted with it (the drafter's prompt and retrieval read it), the draft's technique
        # opens with its clinical information line (issue 69), and the PDF prints it
        assert analyse_study(app.state.platform, acute["id"]) == "ai_drafted"
        report = client.get(f"/api/v1/studies/{acute['id']}/report", headers=rad).json()
        assert report["sections"]["technique"].startswith(f"Klinik bilgi: {ACUTE}")
        if shutil.which("pdftotext") is None:
            pytest.skip("poppler-utils' pdftotext is not installed")
        pdf = client.get(f"/api/v1/studies/{acute['id']}/report/pdf", headers=rad)
        assert pdf.status_code == 200
        words = subprocess.run(
            ["pdftotext", "-layout", "-", "-"], input=pdf.content, capture_output=True, check=True
        ).stdout.decode()
        flat = " ".join(words.split())
        assert "Klinik soru" in flat and ACUTE in flat

        # kept sealed, as the upload form's question is
        from sqlalchemy import text

        with app.state.platform.db.reader() as db:
            raw = db.execute(
                text("SELECT clinical_question FROM studies WHERE id = :i"), {"i": acute["id"]}
            ).scalar_one()
        assert "hemiparezi" not in str(raw)
