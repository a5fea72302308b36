"""The same DICOM image in another transfer syntax is the same image; other pixels, another
pixel description, or a file past the comparison's limits are not (``same_dicom_content``)."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest

from medai.imaging.same_image import same_dicom_content


def _dataset(seed: int = 0, rows: int = 64, cols: int = 64, frames: int = 1):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.6"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, "1.2.3.4.5.6"
    ds.PatientName, ds.PatientID, ds.Modality = "ŞAHİN^GÜLŞEN", "PID-1", "DX"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.Rows, ds.Columns = rows, cols
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    rng = np.random.default_rng(seed)
    ds.PixelData = rng.integers(0, 4096, (frames, rows, cols), dtype="<u2").tobytes()
    return ds


def _bytes(ds, syntax: str | None = None) -> bytes:
    from pydicom.uid import UID

    ds = copy.deepcopy(ds)
    if syntax is not None:
        ds.file_meta.TransferSyntaxUID = UID(syntax)
    uid = ds.file_meta.TransferSyntaxUID
    if not uid.is_little_endian and "PixelData" in ds:  # pydicom writes OW bytes as given
        ds.PixelData = np.frombuffer(ds.PixelData, "<u2").astype(">u2").tobytes()
    out = io.BytesIO()
    ds.save_as(
        out,
        implicit_vr=uid.is_implicit_VR,
        little_endian=uid.is_little_endian,
        enforce_file_format=True,
    )
    return out.getvalue()


IMPLICIT = "1.2.840.10008.1.2"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"


@pytest.mark.parametrize("syntax", [IMPLICIT, BIG_ENDIAN, DEFLATED])
def test_the_same_image_in_another_uncompressed_syntax_is_the_same(syntax):
    ds = _dataset()
    explicit = _bytes(ds)
    other = _bytes(ds, syntax)
    assert other != explicit
    assert same_dicom_content(explicit, other) and same_dicom_content(other, explicit)


def test_the_same_image_compressed_losslessly_is_the_same():
    from pydicom.uid import RLELossless

    ds = _dataset(frames=2)
    rle = copy.deepcopy(ds)
    rle.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    packed = _bytes(rle)
    assert same_dicom_content(_bytes(ds), packed)
    assert same_dicom_content(packed, _bytes(rle))  # the same codestreams
    assert same_dicom_content(_bytes(ds, IMPLICIT), packed)


def test_other_pixels_or_another_description_are_not_the_same():
    from pydicom.uid import RLELossless

    ds = _dataset()
    assert not same_dicom_content(_bytes(ds), _bytes(_dataset(seed=1), IMPLICIT))
    other = _dataset(seed=1)
    other.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    assert not same_dicom_content(_bytes(ds), _bytes(other))
    wider = copy.deepcopy(ds)
    wider.BitsStored, wider.HighBit = 16, 15  # the same bytes, other values
    assert not same_dicom_content(_bytes(ds), _bytes(wider))
    assert not same_dicom_content(_bytes(ds), b"\0" * 128 + b"DICM" + b"\x02\x00")  # unreadable
    header_only = copy.deepcopy(ds)
    del header_only.PixelData
    assert not same_dicom_content(_bytes(ds), _bytes(header_only))


def test_a_decode_past_the_limit_is_not_shown_the_same():
    from pydicom.uid import RLELossless

    ds = _dataset(frames=2)
    rle = copy.deepcopy(ds)
    rle.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    assert same_dicom_content(_bytes(ds), _bytes(rle))
    assert not same_dicom_content(_bytes(ds), _bytes(rle), max_pixels=64 * 64)  # two frames
    # an uncompressed pair needs no decode: its bytes are compared within the file limits
    assert same_dicom_content(_bytes(ds), _bytes(ds, IMPLICIT), max_pixels=64 * 64)


def test_objects_without_pixel_data_compare_every_element():
    ds = _dataset()
    del ds.PixelData
    ds.ContentDate = "20251120"
    same = _bytes(ds, IMPLICIT)
    assert same_dicom_content(_bytes(ds), same)
    edited = copy.deepcopy(ds)
    edited.ContentDate = "20251121"
    assert not same_dicom_content(_bytes(ds), _bytes(edited, IMPLICIT))


@pytest.mark.parametrize(
    ("keyword", "before", "after"),
    [
        ("ImageLaterality", "L", "R"),
        ("ViewPosition", "PA", "AP"),
        ("BodyPartExamined", "CHEST", "ABDOMEN"),
        ("PixelSpacing", [0.2, 0.2], [0.1, 0.1]),
        ("PatientSex", "F", "M"),
    ],
)
def test_a_corrected_header_is_a_difference_named_not_a_duplicate(keyword, before, after):
    """The same pixels re-sent with a corrected laterality, view, body part, spacing or sex:
    a correction for a person to see, named by its keyword (issue 57 review: it was dropped
    as a duplicate, the stale copy kept)."""
    from medai.imaging.same_image import dicom_differences

    ds = _dataset()
    setattr(ds, keyword, before)
    corrected = copy.deepcopy(ds)
    setattr(corrected, keyword, after)
    assert dicom_differences(_bytes(ds), _bytes(corrected, IMPLICIT)) == [keyword]
    assert not same_dicom_content(_bytes(ds), _bytes(corrected))
    added = _dataset()  # an element one copy has and the other lacks
    setattr(added, keyword, after)
    assert dicom_differences(_bytes(_dataset()), _bytes(added)) == [keyword]


def test_what_the_caller_compares_itself_and_the_character_set_are_left_out():
    """A name re-cased by a PACS (compared by the identity's Turkish-aware rule, not here) and
    the same text in another character set are the same instance; private elements, whose
    type an implicit-VR copy loses, are not compared."""
    from medai.imaging.same_image import dicom_differences

    ds = _dataset()
    ds.add_new(0x00091010, "LO", "vendor")  # a private element (no creator: read back as UN)
    recased = copy.deepcopy(ds)
    recased.PatientName, recased.SpecificCharacterSet = "şahin^gülşen", "ISO_IR 148"
    assert dicom_differences(_bytes(ds), _bytes(recased, IMPLICIT)) == ["PatientName"]
    assert dicom_differences(_bytes(ds), _bytes(recased, IMPLICIT), ignore=("PatientName",)) == []
