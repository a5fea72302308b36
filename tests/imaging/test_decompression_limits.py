"""Decompression limits on every decoder path (issue 24): PNG, JPEG, DICOM native, compressed,
deflated and multi-frame images that declare more than the limits are refused from their
headers (``ImageTooLarge``) before a pixel is decoded."""

from __future__ import annotations

import io
import struct
import tracemalloc

import numpy as np
import pytest
from PIL import Image, ImageFile

from helpers.imaging import bomb_png
from medai.imaging import limits
from medai.imaging.io import ImageTooLarge, check_limits, load_image


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any pixel decoder runs (Pillow's load, pydicom's pixel_array)."""
    import pydicom.pixels

    def refuse(*_a, **_k):
        raise AssertionError("a decoder ran on an image the header should have refused")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(pydicom.pixels, "pixel_array", refuse)


def test_the_bomb_png_is_refused_before_decoding(no_decoding, tmp_path):
    data = bomb_png()
    assert len(data) < 400_000
    tracemalloc.start()
    with pytest.raises(ImageTooLarge, match="too large to decode"):
        load_image(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 2**20, peak
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(ImageTooLarge):  # the upload check reads the header only
        check_limits(path)


def test_the_largest_plain_radiograph_is_still_accepted_from_its_header(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(bomb_png(depth=16, colour=0))  # 6000×6600 16-bit gray: 79 MB decoded
    check_limits(path)


def test_a_progressive_jpeg_is_charged_its_full_coefficient_buffer(no_decoding):
    small = io.BytesIO()
    Image.new("RGB", (64, 64)).save(small, format="JPEG", progressive=True)
    data = bytearray(small.getvalue())
    sof = data.index(b"\xff\xc2")  # progressive frame header: claim 5000×5000
    data[sof + 5 : sof + 9] = struct.pack(">HH", 5000, 5000)
    with pytest.raises(ImageTooLarge):  # 25 M pixels × 3 samples × 2 bytes of coefficients
        load_image(bytes(data))


def _dicom(
    rows: int,
    cols: int,
    frames: int = 1,
    samples: int = 1,
    pixel_bytes: bytes = b"",
    syntax=None,
    encapsulated: list[bytes] | None = None,
) -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
    ds.Modality, ds.Rows, ds.Columns, ds.NumberOfFrames = "DX", rows, cols, frames
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "YBR_FULL_422"
    if samples > 1:
        ds.PlanarConfiguration = 0
    bits = 8 if encapsulated is not None or samples > 1 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if encapsulated is not None:
        ds.PixelData = encapsulate(encapsulated)
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = pixel_bytes or b"\0" * 128
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_a_dicom_declaring_huge_rows_and_columns_is_refused_before_pixel_array(no_decoding):
    with pytest.raises(ImageTooLarge, match="too large"):
        load_image(_dicom(30000, 30000))


def test_a_dicom_frame_too_large_in_bytes_is_refused_before_pixel_array(no_decoding):
    # 3000 × 3000 colour: 9 M pixels (under the pixel limit) but converted through float32
    with pytest.raises(ImageTooLarge, match="too large to decode"):
        load_image(_dicom(3000, 3000, samples=3))


def test_a_multi_frame_dicom_declaring_too_many_frames_is_refused_before_decoding(no_decoding):
    with pytest.raises(ImageTooLarge, match="frames"):
        load_image(_dicom(1024, 1024, frames=1000))


def _jpeg_frame(width: int, height: int, claim: tuple[int, int] | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.tile(np.arange(width, dtype=np.uint8), (height, 1))).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    if claim:
        sof = data.index(b"\xff\xc0")
        data[sof + 5 : sof + 9] = struct.pack(">HH", claim[1], claim[0])
    return bytes(data)


def test_a_compressed_frame_declaring_more_than_its_header_is_refused(no_decoding):
    from pydicom.uid import JPEGBaseline8Bit

    frame = _jpeg_frame(64, 64, claim=(20000, 20000))
    with pytest.raises(ImageTooLarge, match="compressed frame declares 20000×20000"):
        load_image(_dicom(64, 64, syntax=JPEGBaseline8Bit, encapsulated=[frame]))


def test_a_compressed_frame_of_the_declared_size_still_decodes():
    from pydicom.uid import JPEGBaseline8Bit

    img = load_image(_dicom(64, 64, syntax=JPEGBaseline8Bit, encapsulated=[_jpeg_frame(64, 64)]))
    assert img.pixels.shape == (64, 64)


def test_a_deflated_dicom_is_inflated_within_the_byte_limit(monkeypatch):
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    pixels = b"\0" * (512 * 512 * 2)  # 512 KB of zeros: a few hundred bytes deflated
    data = _dicom(512, 512, pixel_bytes=pixels, syntax=DeflatedExplicitVRLittleEndian)
    assert len(data) < 10_000
    assert load_image(data).pixels.shape == (512, 512)  # within the limit: read as before
    monkeypatch.setattr(limits, "MAX_BYTES", 256 * 1024)
    calls = []
    monkeypatch.setattr("pydicom.dcmread", lambda *a, **k: calls.append(a))
    with pytest.raises(ImageTooLarge, match="inflates to more than"):
        load_image(data)
    assert not calls  # refused before the reader inflates it whole


def test_codestream_sizes():
    assert limits.codestream_size(_jpeg_frame(80, 48)) == (80, 48)
    siz = b"\xff\x4f\xff\x51" + struct.pack(">HHIIIIIIII", 41, 0, 700, 500, 0, 0, 0, 0, 0, 0)
    assert limits.codestream_size(siz) == (700, 500)
    assert limits.codestream_size(b"\0" * 64) is None
