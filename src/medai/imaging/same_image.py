"""Whether two DICOM files hold the same image, whatever transfer syntax each was written in.

A modality or PACS that sends a stored instance again may send it in another syntax (dcmtk's
``storescu -xi`` converts to implicit VR; a node re-encodes the file meta; a browser upload
carries the modality's original file): the bytes differ, the instance does not. What decides
is the pixel description and the pixel values:

- both uncompressed and little endian: the raw pixel bytes (what every such syntax stores
  alike), read from the files without decoding;
- both encapsulated in the same syntax with the same frames: the codestreams;
- otherwise the decoded frames, one at a time, each frame's limits checked first as for an
  analysis (``limits.dicom_header``, ``check_encapsulated_frame``), and only while the whole
  object stays within ``MAX_PIXELS`` pixels: a larger one is not proven the same (the caller
  treats it as different and a person decides);
- and, with pixel data or without (a structured report, a header-only object), every other
  element of the dataset must be equal too (``_header_differences``): a modality re-sending
  an instance with its laterality, view, body part or pixel spacing corrected sends a
  correction, never a duplicate to drop. Left out of that comparison: the file meta (it is
  the transfer syntax's), group lengths, private elements (their VR, and so their value, is
  unknown once written in implicit VR) and what a re-encoding of the pixels may rewrite
  (``TRANSCODED``).

Anything that cannot be read or decoded is "not the same": this answers "may the copy be
ignored", and a doubt keeps it for a person. ``dicom_differences`` names what differs (the
header's keywords, ``PixelData`` for the image or a doubt), for the conflict a person sees.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from medai.imaging.limits import (
    MAX_PIXELS,
    check_dicom_file,
    check_encapsulated_frame,
    dicom_header,
)

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
DESCRIPTION = (
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
)
BIG_ENDIAN = "1.2.840.10008.1.2.2"
# what re-encoding the pixels may legitimately rewrite (the pixels themselves are compared)
TRANSCODED = (
    "PlanarConfiguration",
    "LossyImageCompression",
    "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
    "DataSetTrailingPadding",
    "SpecificCharacterSet",  # the values are compared decoded, whatever their character set
)


def _read(data: bytes) -> Any:
    import pydicom

    check_dicom_file(io.BytesIO(data))  # a deflated dataset is inflated within bounds
    return pydicom.dcmread(io.BytesIO(data))


def _syntax(ds: Any) -> Any:
    return getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)


def _value(ds: Any, keyword: str) -> Any:
    value = ds.get(keyword)
    if keyword == "NumberOfFrames":
        return int(value or 1)
    return str(value).strip() if isinstance(value, str) else value


def _compared(ds: Any, ignore: tuple[str, ...] = ()) -> dict[Any, Any]:
    """The dataset's elements the header comparison reads (see the module's docstring)."""
    skip = set(PIXEL_KEYWORDS) | set(TRANSCODED) | set(ignore)
    return {
        elem.tag: elem
        for elem in ds
        if elem.tag.element != 0 and not elem.tag.is_private and elem.keyword not in skip
    }


def _same_value(x: Any, y: Any) -> bool:
    if x.VR == "SQ" or y.VR == "SQ":
        items_x, items_y = list(x.value or []), list(y.value or [])
        return len(items_x) == len(items_y) and all(
            not _header_differences(i, j) for i, j in zip(items_x, items_y, strict=True)
        )
    return x.value == y.value


def _header_differences(a: Any, b: Any, ignore: tuple[str, ...] = ()) -> list[str]:
    """The keywords (or tags) of the compared elements that differ between two datasets: one
    holds an element the other lacks, or their values differ (sequences item by item);
    ``ignore``: top-level keywords the caller compares by rules of its own."""
    ea, eb = _compared(a, ignore), _compared(b, ignore)
    out = []
    for tag in sorted(set(ea) | set(eb)):
        if tag not in ea or tag not in eb or not _same_value(ea[tag], eb[tag]):
            elem = ea[tag] if tag in ea else eb[tag]  # elements are never falsy
            out.append(elem.keyword or str(tag))
    return out


def _raw_bytes(ds: Any, frames: int) -> bytes | None:
    """The uncompressed little-endian pixel bytes the description declares (odd-length
    padding aside); None when the element is shorter than that."""
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    size = math.ceil(int(ds.Rows) * int(ds.Columns) * frames * samples * bits / 8)
    raw = ds.PixelData
    return bytes(raw[:size]) if len(raw) >= size else None


def _codestreams(ds: Any, frames: int) -> list[bytes]:
    from pydicom.encaps import generate_frames

    return list(generate_frames(ds.PixelData, number_of_frames=frames))


def _frame(ds: Any, index: int, frames: int) -> np.ndarray:
    from pydicom.pixels import pixel_array

    syntax = _syntax(ds)
    if syntax is not None and syntax.is_encapsulated:
        from pydicom.encaps import get_frame

        frame = get_frame(ds.PixelData, index, number_of_frames=frames)
        check_encapsulated_frame(frame, int(ds.Rows), int(ds.Columns))
        del frame
    return pixel_array(ds, index=index)


def same_dicom_content(a: bytes, b: bytes, max_pixels: int = MAX_PIXELS) -> bool:
    """True when the DICOM files ``a`` and ``b`` carry the same instance: the same header
    and the same image (see the module's docstring); False when they differ or that cannot be
    shown within the limits."""
    return not dicom_differences(a, b, max_pixels)


def dicom_differences(
    a: bytes, b: bytes, max_pixels: int = MAX_PIXELS, ignore: tuple[str, ...] = ()
) -> list[str]:
    """What differs between the DICOM files ``a`` and ``b`` (empty: the same instance): the
    header's differing keywords (but ``ignore``'s: what the caller compares by rules of its
    own, such as a name's case), and ``PixelData`` when the image differs or cannot be shown
    the same (unreadable, past the limits)."""
    try:
        da, db = _read(a), _read(b)
        header = _header_differences(da, db, ignore)
    except Exception:  # broad: pydicom's many types; the answer says it (PixelData differs)
        return ["PixelData"]
    try:
        same = _same_pixels(da, db, max_pixels)
    except Exception:  # broad: a limit, decoders' many types: answered as differing
        same = False
    return header if same else [*header, "PixelData"]


def _same_pixels(da: Any, db: Any, max_pixels: int) -> bool:
    has_a = [k for k in PIXEL_KEYWORDS if k in da]
    has_b = [k for k in PIXEL_KEYWORDS if k in db]
    if has_a != has_b:
        return False
    if not has_a:
        return True  # no image on either side: the header said everything
    if any(_value(da, k) != _value(db, k) for k in DESCRIPTION):
        return False
    for ds in (da, db):
        dicom_header(ds)  # what an analysis would refuse to allocate, refused here too
    frames = _value(da, "NumberOfFrames")
    sa, sb = _syntax(da), _syntax(db)
    packed_a = sa is not None and sa.is_encapsulated
    packed_b = sb is not None and sb.is_encapsulated
    if has_a != ["PixelData"]:  # float pixel data: never encapsulated; its raw bytes
        return (
            str(sa) != BIG_ENDIAN
            and str(sb) != BIG_ENDIAN
            and all(bytes(da[k].value) == bytes(db[k].value) for k in has_a)
        )
    same_layout = _value(da, "PlanarConfiguration") == _value(db, "PlanarConfiguration")
    if not packed_a and not packed_b and same_layout and BIG_ENDIAN not in (str(sa), str(sb)):
        raw_a, raw_b = _raw_bytes(da, frames), _raw_bytes(db, frames)
        return raw_a is not None and raw_a == raw_b
    if packed_a and packed_b and sa == sb and _codestreams(da, frames) == _codestreams(db, frames):
        return True
    rows, cols = int(da.Rows), int(da.Columns)
    if rows * cols * frames * int(da.get("SamplesPerPixel", 1) or 1) > max_pixels:
        return False  # not decoded whole to compare: a person decides
    return all(np.array_equal(_frame(da, i, frames), _frame(db, i, frames)) for i in range(frames))


__all__ = ["dicom_differences", "same_dicom_content"]
