"""Issue 67's series failures end to end: a modality sends the series over DICOM (dcmtk's
storescu into the node), the platform reads it in the background and the API answers with the
result and the draft. The MRI model is the real ``ImagingPredictor`` over the brightness network
(``helpers.series``), so each slice's reading is known."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pydicom
import pytest

from helpers.dicom import need_dcmtk, storescu
from helpers.platform import bearer, clinic, wait_status
from helpers.series import brightness_predictor, mr_slice

STUDY = "1.2.826.0.1.3680043.8.498.67"


@pytest.fixture(scope="module")
def node(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir, tiny_mri_dir):
    need_dcmtk()
    from medai.settings import get_settings

    home = tmp_path_factory.mktemp("series-cstore")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDAI_DICOM_ALLOW", '["MODALITY"]')
        # read once the series has stopped arriving, as a PACS-facing node does (the suite's
        # default, 0, reads at once and again as instances come)
        mp.setenv("MEDAI_STUDY_STABLE_S", "4")
        with clinic(
            "sqlite",
            home,
            tfidf_model_dir,
            tiny_imaging_dir,
            models={"mri": str(tiny_mri_dir)},
            dicom_port=0,
        ) as (app, client):
            models, mri = app.state.platform.models, brightness_predictor()
            served = models.get
            mp.setattr(models, "get", lambda task: mri if task == "mri" else served(task))
            files = home / "sent"
            files.mkdir()
            yield SimpleNamespace(
                app=app,
                client=client,
                port=app.state.dicom_node.port,
                files=files,
                rad=bearer(client, "rad1"),
            )
    get_settings.cache_clear()


def _write(node, blob: bytes, name: str, **attrs):
    ds = pydicom.dcmread(io.BytesIO(blob))
    ds.PatientID, ds.PatientName, ds.StudyDate = "TC-22222222220", "KAYA^EMRE", "20261128"
    for key, value in attrs.items():
        setattr(ds, key, value)
    if "SOPInstanceUID" in attrs:
        ds.file_meta.MediaStorageSOPInstanceUID = attrs["SOPInstanceUID"]
    path = node.files / name
    ds.save_as(path, enforce_file_format=True)
    return path


def _series(node, labels, study: str, series: str, accession: str, number: int = 3):
    return [
        _write(
            node,
            mr_slice(lab, i, series),
            f"{series}-{i}.dcm",
            StudyInstanceUID=study,
            AccessionNumber=accession,
            SeriesNumber=number,
        )
        for i, lab in enumerate(labels)
    ]


def _read(node, accession: str) -> dict:
    r = node.client.get("/api/v1/studies", headers=node.rad, params={"accession": accession})
    assert r.status_code == 200 and r.json()["total"] == 1, r.text
    sid = r.json()["items"][0]["id"]
    done = wait_status(node.client, node.rad, sid, {"ai_drafted", "refused"})
    assert done["status"] == "ai_drafted", done
    report = node.client.get(f"/api/v1/studies/{sid}/report", headers=node.rad)
    assert report.status_code == 200, report.text
    return done | {"report": report.json()}


def test_copies_sent_over_dicom_count_once_and_a_two_slice_tumour_is_said(node):
    series = f"{STUDY}.1"
    labels = ["No_Tumor"] * 9 + ["Glioma"] * 2 + ["No_Tumor"] * 9
    paths = _series(node, labels, f"{STUDY}.100", series, "MR-67-1")
    copies = [
        _write(node, paths[i].read_bytes(), f"copy-{i}.dcm", SOPInstanceUID=f"{series}.{i + 1}.5")
        for i in (9, 10)
    ]
    assert storescu(node.port, *paths, *copies).returncode == 0
    done = _read(node, "MR-67-1")
    result = done["ai_result"]
    assert result["decision"]["state"] == "indeterminate", result["decision"]
    assert result["decision"]["indeterminate_reason"] == "small_lesion"
    assert result["read"]["undecided_slices"]["numbers"] == [10, 11]
    assert len(result["read"]["duplicates"]) == 2
    findings = done["report"]["sections"]["findings"]
    assert "2 komşu kesitte (10–11) gliom lehine görünüm" in findings, findings
    assert any("karar kuralı için yetersiz" in line for line in done["report"]["ai_note"])


def test_a_study_of_two_series_is_read_whole_over_dicom(node):
    study = f"{STUDY}.200"
    glioma, normal = f"{STUDY}.2", f"{STUDY}.3"
    paths = _series(node, ["Glioma"] * 10, study, glioma, "MR-67-2", number=3)
    paths += _series(node, ["No_Tumor"] * 12, study, normal, "MR-67-2", number=4)
    assert storescu(node.port, *paths).returncode == 0
    done = _read(node, "MR-67-2")
    result = done["ai_result"]
    assert result["decision"]["primary"] == "Glioma" and result["read"]["series_uid"] == glioma
    assert sorted(a["series_uid"] for a in result["read"]["series"] if a["read"]) == [
        glioma,
        normal,
    ]
    assert any("2 serisinden 2 seriyi" in line for line in done["report"]["ai_note"])
