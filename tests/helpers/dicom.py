"""Tiny DICOM files built here with pydicom (a CR chest PA, an MR brain slice, a US abdomen,
…) and dcmtk's storescu/echoscu as the sending modality."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

STORESCU = shutil.which("storescu")
ECHOSCU = shutil.which("echoscu")
SOP_CLASSES = {
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "CT": "1.2.840.10008.5.1.4.1.1.2",
}
NAME = "YILMAZ^AYSE^NUR"  # a patient name that must never be stored or logged in clear text
PATIENT_ID = "TC-48213950172"


def need_dcmtk() -> None:
    if STORESCU is None or ECHOSCU is None:
        pytest.skip(
            "dcmtk's storescu/echoscu are not installed (apt-get install dcmtk; "
            "make test installs it when it can)"
        )


def make_dicom(
    path: Path,
    modality: str = "CR",
    *,
    body_part: str | None = "CHEST",
    view: str | None = "PA",
    study: str | None = None,
    series: str | None = None,
    sop: str | None = None,
    accession: str | None = "ACC-1001",
    name: str = NAME,
    patient_id: str = PATIENT_ID,
    description: str | None = None,
    rows: int = 64,
    cols: int = 64,
    seed: int = 0,
    drop: tuple[str, ...] = (),
    **extra,
) -> Path:
    """A small valid instance (16-bit MONOCHROME2, explicit VR little endian); ``drop``
    removes attributes after it is built, ``extra`` sets more."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop = sop or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASSES[modality]
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SOP_CLASSES[modality], sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study or generate_uid(), series or generate_uid()
    ds.PatientName, ds.PatientID, ds.StudyDate = name, patient_id, "20251120"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, 1, 1
    for keyword, value in (
        ("AccessionNumber", accession),
        ("BodyPartExamined", body_part),
        ("ViewPosition", view),
        ("SeriesDescription", description),
    ):
        if value is not None:
            setattr(ds, keyword, value)
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    rng = np.random.default_rng(seed)
    base = rng.random((rows // 8 + 1, cols // 8 + 1))
    img = np.kron(base, np.ones((8, 8)))[:rows, :cols]
    ds.PixelData = (img * 4000).astype("<u2").tobytes()
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    for keyword in drop:
        delattr(ds, keyword)
    ds.save_as(path, enforce_file_format=True)
    return path


def storescu(
    port: int,
    *files: Path,
    aet: str = "MODALITY",
    aec: str = "MEDAI",
    options: tuple[str, ...] = (),
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """Send files in one association; dcmtk exits with the failure status's high byte
    (0xA7 → 167) or 1 when the association is rejected. ``options``: e.g. ``("-xy",)`` to
    propose JPEG baseline (storescu otherwise converts to an uncompressed syntax)."""
    return subprocess.run(
        [
            STORESCU,
            "-v",
            "-aet",
            aet,
            "-aec",
            aec,
            *options,
            "127.0.0.1",
            str(port),
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def echoscu(port: int, aet: str = "MODALITY", aec: str = "MEDAI") -> subprocess.CompletedProcess:
    return subprocess.run(
        [ECHOSCU, "-aet", aet, "-aec", aec, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def stow(client, headers, blob: bytes) -> None:
    """Store one instance over STOW-RS (``POST /api/v1/dicomweb/studies``, multipart/related)
    with a TestClient, as a gateway does; the answer must be 200."""
    import uuid

    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + blob
        + f"\r\n--{boundary}--\r\n".encode()
    )
    r = client.post(
        "/api/v1/dicomweb/studies",
        content=body,
        headers={
            **headers,
            "content-type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        },
    )
    assert r.status_code == 200, r.text
