"""De-identification for export (PS3.15 Basic Profile via dicom-anonymizer, medai's HMAC UIDs
and pseudonyms): no PHI string in the written bytes, stable and linked UIDs, pixels kept."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest
from cryptography.fernet import Fernet
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from helpers.dicom import NAME, PATIENT_ID, make_dicom
from medai.platform.dicom.deid import (
    Deidentifier,
    DeidError,
    deidentify_files,
    pseudonym_of,
    site_secret,
)

KEY = Fernet.generate_key().decode()
PHI = [
    NAME,
    "YILMAZ",
    PATIENT_ID,
    "ACC-1001",
    "Ankara Sehir Hastanesi",
    "DEMIR^MEHMET",
    "OLD-ID-777",
    "19800317",
    "20251120",
    "ACME-SECRET-VALUE",
    "Dr Kaya chest follow-up",
    "KAYA^ZEYNEP",
]


def _phi_dicom(path: Path, study: str, series: str, seed: int = 0, sop: str | None = None):
    """make_dicom's patient plus more PHI: institution, physicians, other IDs, birth date,
    a description naming someone, a private tag, and a nested reference and operator."""
    make_dicom(
        path,
        study=study,
        series=series,
        seed=seed,
        sop=sop,
        InstitutionName="Ankara Sehir Hastanesi",
        ReferringPhysicianName="DEMIR^MEHMET",
        OtherPatientIDs="OLD-ID-777",
        PatientBirthDate="19800317",
        StudyDescription="Dr Kaya chest follow-up",
    )
    ds = pydicom.dcmread(path)
    ds.private_block(0x0011, "ACME", create=True).add_new(0x01, "LO", "ACME-SECRET-VALUE")
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ref.OperatorsName = "KAYA^ZEYNEP"  # PHI nested in a sequence the profile keeps
    ds.SourceImageSequence = Sequence([ref])
    ds.save_as(path, enforce_file_format=True)
    return pydicom.dcmread(path)


@pytest.fixture
def study(tmp_path) -> tuple[Path, list[Dataset]]:
    src = tmp_path / "src"
    src.mkdir()
    study_uid, series_uid = generate_uid(), generate_uid()
    originals = [_phi_dicom(src / f"i{i}.dcm", study_uid, series_uid, seed=i) for i in range(3)]
    return src, originals


def test_no_phi_left_and_uids_linked(study, tmp_path):
    src, originals = study
    deid = Deidentifier(site_secret([KEY]))
    report = deidentify_files([src], tmp_path / "out", deid)
    assert report["written"] == 3 and report["studies"] == 1
    files = sorted((tmp_path / "out").iterdir())
    assert [f.suffix for f in files] == [".dcm"] * 3 and len(files) == 3  # nothing else
    for f in files:
        raw = f.read_bytes()
        for text in PHI:
            assert text.encode() not in raw, text
        for ds0 in originals:  # no original UID survives anywhere either
            for uid in (ds0.StudyInstanceUID, ds0.SeriesInstanceUID, ds0.SOPInstanceUID):
                assert uid.encode() not in raw
        ds = pydicom.dcmread(f)
        assert f.stem == ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert "medai" in " ".join(ds.DeidentificationMethod)
        assert ds.PatientID == ds.PatientName == pseudonym_of(PATIENT_ID, site_secret([KEY]))
        assert ds.PatientID.startswith("ANON-") and len(ds.PatientID) == 17
        assert ds.PatientBirthDate == ds.StudyDate == ""  # Z: zero length (Table E.1-1)
        assert "InstitutionName" not in ds or ds.InstitutionName == "ANONYMIZED"
        assert not [e for e in ds.iterall() if e.tag.is_private]
        # the nested reference names this instance's new UID (linked, mapped once)
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
        nested = ds.SourceImageSequence[0]  # the profile reached into the sequence
        assert str(nested.get("OperatorsName", "")) in ("", "ANONYMIZED")
    new = [pydicom.dcmread(f) for f in files]
    assert len({d.StudyInstanceUID for d in new}) == 1  # one study, still one study
    assert len({d.SeriesInstanceUID for d in new}) == 1
    assert {d.StudyInstanceUID for d in new} == {deid.uid(originals[0].StudyInstanceUID)}
    new_by_sop = {d.SOPInstanceUID: d for d in new}
    for ds0 in originals:  # pixel data unchanged, instance by instance
        assert new_by_sop[deid.uid(ds0.SOPInstanceUID)].PixelData == ds0.PixelData


def test_same_export_twice_same_uids_other_secret_differs(study, tmp_path):
    src, _ = study
    a = deidentify_files([src], tmp_path / "a", Deidentifier(site_secret([KEY])))
    b = deidentify_files([src], tmp_path / "b", Deidentifier(site_secret([KEY])))
    assert [Path(f).name for f in a["files"]] == [Path(f).name for f in b["files"]]
    for fa, fb in zip(a["files"], b["files"], strict=True):
        assert Path(fa).read_bytes() == Path(fb).read_bytes()  # byte-identical
    other = Deidentifier(site_secret([Fernet.generate_key().decode()]))
    c = deidentify_files([src], tmp_path / "c", other)
    assert not set(map(lambda f: Path(f).name, a["files"])) & set(
        map(lambda f: Path(f).name, c["files"])
    )
    assert other.pseudonym(PATIENT_ID) != pseudonym_of(PATIENT_ID, site_secret([KEY]))
    assert pydicom.dcmread(c["files"][0]).PatientID == other.pseudonym(PATIENT_ID)


def test_threads_give_the_serial_result_and_leave_the_library_global_alone(tmp_path):
    from dicomanonymizer import simpledicomanonymizer as lib

    deid = Deidentifier(site_secret([KEY]))
    studies = [(generate_uid(), generate_uid()) for _ in range(4)]
    paths = [
        _phi_dicom(tmp_path / f"s{s}i{i}.dcm", *studies[s], seed=i) and tmp_path / f"s{s}i{i}.dcm"
        for s in range(4)
        for i in range(4)
    ]

    def one(path: Path) -> bytes:
        ds = deid.dataset(pydicom.dcmread(path))
        from io import BytesIO

        buf = BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        return buf.getvalue()

    serial = [one(p) for p in paths]
    before = dict(lib.dictionary)
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(one, paths * 3))
    assert threaded == serial * 3
    assert lib.dictionary == before  # medai never used the library's random UID table


def test_dciodvfy_finds_no_new_error(study, tmp_path):
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    src, _ = study
    out = deidentify_files([src / "i0.dcm"], tmp_path / "out", Deidentifier(site_secret([KEY])))

    def errors(path) -> set[str]:
        run = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
        return {
            line.split(" - ", 1)[-1]
            for line in (run.stdout + run.stderr).splitlines()
            if line.startswith("Error")
        }

    assert errors(out["files"][0]) <= errors(src / "i0.dcm")


def test_refuses_the_blob_store_and_a_named_non_dicom(tmp_path, study):
    src, _ = study
    home = tmp_path / "home"
    deid = Deidentifier(site_secret([KEY]))
    with pytest.raises(DeidError, match="blob store"):
        deidentify_files([src], home / "blobs" / "x", deid, forbidden=home / "blobs")
    assert not (home / "blobs").exists()
    junk = tmp_path / "notes.txt"
    junk.write_text(f"{NAME} {PATIENT_ID}")
    with pytest.raises(DeidError, match="not a readable DICOM"):
        deidentify_files([junk], tmp_path / "o", deid)
    (src / "readme.txt").write_text("x")  # inside a folder: skipped and counted
    make_dicom(src / "sc.dcm", BurnedInAnnotation="YES")  # names in the pixels: left out
    report = deidentify_files([src], tmp_path / "o2", deid)
    assert (report["skipped"], report["burned_in"], report["written"]) == (1, 1, 3)


@pytest.mark.slow  # a CLI process per step
def test_cli_deidentify_and_pseudonym(study, tmp_path):
    src, originals = study
    home = tmp_path / "home"
    env = {**os.environ, "MEDAI_HOME": str(home), "OMP_NUM_THREADS": "1"}
    env.pop("MEDAI_SECRET_KEYS", None)

    def medai(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "medai.cli", "dicom", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    run = medai("deidentify", str(src), "--out", str(tmp_path / "out"), "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["written"] == 3 and report["studies"] == 1
    secret = site_secret([(home / "secret.key").read_text().strip()])
    for f in report["files"]:
        ds = pydicom.dcmread(f)
        assert ds.PatientID == pseudonym_of(PATIENT_ID, secret)
        assert ds.StudyInstanceUID == Deidentifier(secret).uid(originals[0].StudyInstanceUID)
    assert NAME not in run.stdout + run.stderr and PATIENT_ID not in run.stdout + run.stderr
    run = medai("pseudonym", PATIENT_ID, "--json")
    assert run.returncode == 0 and json.loads(run.stdout)["pseudonym"] == pseudonym_of(
        PATIENT_ID, secret
    )
    refused = medai("deidentify", str(src), "--out", str(home / "blobs" / "ab"), "--json")
    assert refused.returncode == 2 and json.loads(refused.stdout)["error_type"] == "DeidError"
