"""Image input on files the tests build: PNG/JPEG modes, DICOM variants, and bad input."""

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medai.imaging.gate import check_modality
from medai.imaging.io import ImageInputError, load_image
from medai.imaging.labels import resolve, space


def png_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def gradient(w=64, h=48) -> np.ndarray:
    return np.tile(np.linspace(0, 255, w, dtype=np.uint8), (h, 1))


def dicom_bytes(
    pixels: np.ndarray,
    photometric="MONOCHROME2",
    modality="CR",
    bits=16,
    window=None,
    with_pixels=True,
    rescale=None,
) -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    if rescale:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if with_pixels:
        ds.PixelData = pixels.astype(np.uint16 if bits == 16 else np.uint8).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "LA", "1"])
def test_png_modes_become_gray_unit_range(mode):
    base = Image.fromarray(gradient())
    img = (
        base.convert(mode)
        if mode != "I;16"
        else Image.fromarray(gradient().astype(np.uint16) * 257)
    )
    out = load_image(png_bytes(img))
    assert out.pixels.shape == (48, 64) and out.pixels.dtype == np.float32
    assert out.pixels.min() >= 0.0 and out.pixels.max() <= 1.0
    if mode not in ("1",):
        assert out.pixels[:, -1].mean() > out.pixels[:, 0].mean()  # the gradient survives


def test_jpeg_and_16bit_keep_contrast():
    out = load_image(png_bytes(Image.fromarray(gradient()), "JPEG"))
    assert out.source_format == "jpeg" and out.pixels.max() > 0.9


def test_dicom_monochrome2_and_monochrome1_are_the_same_picture():
    px = (np.tile(np.linspace(0, 4095, 64), (40, 1))).astype(np.uint16)
    m2 = load_image(dicom_bytes(px, "MONOCHROME2"))
    m1 = load_image(dicom_bytes(4095 - px, "MONOCHROME1"))
    assert m2.source_format == "dicom" and m2.metadata["modality"] == "CR"
    assert np.allclose(m1.pixels, m2.pixels, atol=1e-3)


def test_dicom_window_is_applied():
    px = (np.tile(np.linspace(0, 4095, 64), (40, 1))).astype(np.uint16)
    wide = load_image(dicom_bytes(px))
    narrow = load_image(dicom_bytes(px, window=(2048, 400)))
    # a narrow window saturates both ends: many more pure black/white pixels
    assert (narrow.pixels <= 0.001).mean() + (narrow.pixels >= 0.999).mean() > 0.8
    assert (wide.pixels <= 0.001).mean() < 0.1


def test_dicom_without_pixel_data():
    with pytest.raises(ImageInputError, match="no pixel data"):
        load_image(dicom_bytes(np.zeros((40, 40)), with_pixels=False))


def test_dicom_odd_photometric():
    with pytest.raises(ImageInputError, match="photometric"):
        load_image(dicom_bytes(np.zeros((40, 40)), photometric="HSV"))


def test_malformed_dicom():
    good = dicom_bytes(np.zeros((40, 40)))
    with pytest.raises(ImageInputError):
        load_image(good[:200])


@pytest.mark.parametrize(
    "data,needle",
    [
        (b"", "empty"),
        (b"merhaba, bu bir metin dosyasi\n" * 20, "not an image"),
    ],
)
def test_not_images(data, needle):
    with pytest.raises(ImageInputError, match=needle):
        load_image(data)


def test_truncated_png():
    data = png_bytes(
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8))
    )
    with pytest.raises(ImageInputError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_tiny_image_refused():
    with pytest.raises(ImageInputError, match="too small"):
        load_image(png_bytes(Image.new("L", (1, 1))))


def _png_header_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose header claims a huge size (a decompression bomb shape)."""
    data = bytearray(png_bytes(Image.new("L", (64, 64))))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def test_giant_image_refused_before_decoding():
    with pytest.raises(ImageInputError, match="too large"):
        load_image(_png_header_claiming(20000, 20000))


def test_byte_limit(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(b"\0" * 2000)
    with pytest.raises(ImageInputError, match="too large"):
        load_image(path, max_bytes=1000)


def test_modality_check():
    photo = np.zeros((48, 64, 3), dtype=np.uint8)
    photo[..., 0] = 200  # a red photo
    photo[::2, :, 2] = 180
    refusal = check_modality(load_image(png_bytes(Image.fromarray(photo))), space("cxr"))
    assert refusal.code == "colour_photo" and "colour photograph" in refusal.message
    mr = load_image(dicom_bytes(np.zeros((40, 40)), modality="MR"))
    wrong = check_modality(mr, space("cxr"))
    assert wrong.code == "wrong_modality" and wrong.params["modality"] == "MR"
    assert "MR" in wrong.message and check_modality(mr, space("mri")) is None
    assert check_modality(load_image(png_bytes(Image.fromarray(gradient()))), space("cxr")) is None


@pytest.mark.parametrize(
    "task,raw,label",
    [
        ("cxr", "Pleural Effusion", "Effusion"),
        ("cxr", "Pneumonia (viral)", "Viral_Pneumonia"),
        ("cxr", "Pneumonia (bacterial)", "Bacterial_Pneumonia"),
        ("cxr", "normal", "No Finding"),
        ("mri", "No tumour", "No_Tumor"),
        ("mri", "glioma_tumor", "Glioma"),
        ("cxr", "Support Devices", None),
        ("mri", "Astrocytoma?", None),
    ],
)
def test_label_synonyms(task, raw, label):
    assert resolve(task, raw) == label


@settings(max_examples=100, deadline=None)
@given(
    st.binary(max_size=3000),
    st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"\0" * 128 + b"DICM"]),
)
def test_arbitrary_bytes_never_crash(blob, prefix):
    try:
        out = load_image(prefix + blob)
    except ImageInputError as exc:
        assert str(exc)
        return
    assert out.pixels.ndim == 2 and np.isfinite(out.pixels).all()


def _recompress(data: bytes, syntax) -> bytes:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    ds.compress(syntax)  # pydicom encodes RLE Lossless itself; other syntaxes need plugins
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_dicom_rle_lossless_decodes_to_the_same_image():
    from pydicom.uid import RLELossless

    px = (np.tile(np.linspace(0, 4095, 64), (40, 1))).astype(np.uint16)
    plain = load_image(dicom_bytes(px))
    rle = load_image(_recompress(dicom_bytes(px), RLELossless))
    assert rle.metadata["transfer_syntax"] == RLELossless
    assert np.allclose(plain.pixels, rle.pixels)


def test_dicom_jpeg_baseline_decodes_with_pillow():
    """JPEG Baseline (the commonest compressed syntax for 8-bit radiographs): pydicom decodes it
    with Pillow, which medai already needs."""
    from pydicom import dcmread
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    px = (np.tile(np.linspace(0, 255, 64), (40, 1))).astype(np.uint8)
    ds = dcmread(io.BytesIO(dicom_bytes(px, bits=8)))
    jpeg = io.BytesIO()
    Image.fromarray(px).save(jpeg, format="JPEG", quality=95)
    ds.PixelData = encapsulate([jpeg.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    loaded = load_image(buf.getvalue())
    assert loaded.metadata["transfer_syntax"] == JPEGBaseline8Bit
    assert np.abs(loaded.pixels - px / 255.0).max() < 0.05  # lossy, but the same picture


def test_dicom_syntax_without_a_decoder_says_what_to_install():
    """JPEG-LS needs pyjpegls or pylibjpeg: without one, a clear error naming the fix."""
    import importlib.util

    from pydicom import dcmread
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    if importlib.util.find_spec("jpeg_ls") or importlib.util.find_spec("pylibjpeg"):
        pytest.skip("a JPEG-LS decoder is installed here")
    ds = dcmread(io.BytesIO(dicom_bytes(np.zeros((40, 40)), bits=8)))
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + b"\0" * 64])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    with pytest.raises(ImageInputError, match="install a decoder"):
        load_image(buf.getvalue())
