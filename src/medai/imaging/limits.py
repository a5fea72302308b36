"""Decompression limits, read from headers before any pixel is decoded.

A 300 KB PNG can declare 6000 × 6600 16-bit RGBA (317 MB decoded); a DICOM header can declare
thousands of frames, a compressed frame whose own codestream is larger than the header says,
or a deflated dataset that inflates to gigabytes. Each decoder path checks what it is about to
allocate here first, and refuses with ``ImageTooLarge`` (the API's 413 ``image_too_large``).
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

from medai.core.errors import MedaiError

MAX_BYTES = 64 * 1024 * 1024  # a stored file, and a deflated DICOM dataset once inflated
MAX_PIXELS = 40_000_000  # one frame, e.g. 6000 × 6600: larger than any plain radiograph
MAX_FRAME_BYTES = 96 * 1024 * 1024
"""One decoded frame as its header declares it: 6000 × 6600 16-bit gray (79 MB) fits, the same
size in 16-bit RGBA (317 MB) or a palette image expanded to 16-bit RGB does not."""
MAX_TOTAL_PIXELS = 400_000_000  # frames × rows × columns × samples of a multi-frame object
MIN_SIDE = 32
DEFLATED = "1.2.840.10008.1.2.1.99"


class ImageInputError(MedaiError, ValueError):
    """An image that cannot be used, with the reason in words a radiologist understands;
    ``refusal_code`` and ``params`` are the refusal a study gets for it (the faces translate
    them)."""

    status, code = 422, "unusable_image"

    refusal_code = "unreadable"

    def __init__(self, message: str = "", params: dict | None = None) -> None:
        super().__init__(message)
        self.params = dict(params or {})


class ImageTooSmall(ImageInputError):
    """Fewer pixels a side than any model reads (a thumbnail or an icon, not a study)."""

    refusal_code = "too_small"

    def __init__(self, message: str, width: int, height: int, minimum: int) -> None:
        super().__init__(message, {"width": width, "height": height, "min": minimum})


class NoPixelData(ImageInputError):
    """A DICOM object with no pixel data (a structured report, a presentation state, a
    header-only instance): nothing in it to analyse, though a later instance of its study may
    bring the image (the platform then analyses that one)."""

    refusal_code = "no_image"


class ImageTooLarge(ImageInputError):
    """The header declares more pixels or bytes than the limits allow: refused before
    decoding (a decompression bomb, or a scan far larger than any radiograph)."""

    code = "image_too_large"


def check_frame(
    width: int, height: int, decoded_bytes: int, max_pixels: int = MAX_PIXELS, what: str = "image"
) -> None:
    """Refuse a frame whose declared size or decoded bytes exceed the limits (or that is too
    small to read)."""
    pixels = width * height
    if pixels > max_pixels:
        raise ImageTooLarge(
            f"{what} is too large ({width}×{height} = {pixels:,} pixels; limit {max_pixels:,})"
        )
    if decoded_bytes > MAX_FRAME_BYTES:
        raise ImageTooLarge(
            f"{what} is too large to decode ({width}×{height} declares "
            f"{decoded_bytes / 2**20:,.0f} MiB; limit "
            f"{MAX_FRAME_BYTES / 2**20:,.0f} MiB)"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageTooSmall(
            f"image is too small ({width}×{height}); need at least {MIN_SIDE} pixels a side",
            width,
            height,
            MIN_SIDE,
        )


def pillow_decoded_bytes(img, declared: tuple[int, int]) -> int:
    """Bytes a Pillow image allocates when loaded at its current (possibly drafted) size:
    1 a pixel for L/1, 2 for 16-bit, 4 for every other mode (Pillow pads RGB to 4; palette
    images are expanded to RGBA). A progressive JPEG also holds every DCT coefficient of the
    declared size (2 bytes a sample), whatever the draft scale."""
    mode = img.mode
    depth = 1 if mode in ("L", "1") else 2 if mode.startswith("I;16") else 4
    decoded = img.width * img.height * depth
    if (img.format or "").upper() == "JPEG" and (
        img.info.get("progressive") or img.info.get("progression")
    ):
        decoded += declared[0] * declared[1] * 2 * len(img.getbands())
    return decoded


def dicom_header(ds, max_pixels: int = MAX_PIXELS) -> tuple[int, int, int, int, int, str]:
    """Rows, columns, frames, samples, bits allocated and photometric interpretation from a
    DICOM header, checked against the limits before ``pixel_array``."""
    try:
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.get("BitsAllocated", 16) or 16)
    except Exception as exc:  # broad: pydicom raises many types (ImageInputError)
        raise ImageInputError(f"malformed DICOM image size ({exc})") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if frames < 1 or samples < 1 or bits < 1:
        raise ImageInputError(
            f"malformed DICOM header ({frames} frames, {samples} samples, {bits} bits)"
        )
    if frames * rows * cols * samples > MAX_TOTAL_PIXELS:
        raise ImageTooLarge(
            f"DICOM object is too large ({frames} frames of {cols}×{rows}; "
            f"limit {MAX_TOTAL_PIXELS:,} pixels in all)"
        )
    # one frame is decoded; a palette becomes 16-bit RGB, a YBR/RGB frame is converted through
    # float32
    per_pixel = 6 if photometric == "PALETTE COLOR" else 12 if samples > 1 else -(-bits // 8)
    check_frame(cols, rows, rows * cols * per_pixel, max_pixels, what="DICOM image")
    return rows, cols, frames, samples, bits, photometric


def check_encapsulated_frame(frame: bytes, rows: int, cols: int) -> None:
    """A compressed frame's own codestream (JPEG, JPEG-LS, JPEG 2000) states its size, and the
    decoder allocates what it says, not what the DICOM header says: it must not be larger."""
    size = codestream_size(frame)
    if size is not None and size[0] * size[1] > max(rows * cols, 1):
        raise ImageTooLarge(
            f"the compressed frame declares {size[0]}×{size[1]} pixels, more "
            f"than the DICOM header's {cols}×{rows}"
        )


def codestream_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG / JPEG-LS frame header or a JPEG 2000 SIZ marker; None
    for other streams (RLE has no size of its own)."""
    siz = data.find(b"\xff\x4f\xff\x51", 0, 4096)
    if siz >= 0 and len(data) >= siz + 4 + 18:
        xsiz, ysiz, xo, yo = struct.unpack(">IIII", data[siz + 8 : siz + 24])
        return max(xsiz - xo, 0), max(ysiz - yo, 0)
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in (
            0xC0,
            0xC1,
            0xC2,
            0xC3,
            0xC5,
            0xC6,
            0xC7,
            0xC9,
            0xCA,
            0xCB,
            0xCD,
            0xCE,
            0xCF,
            0xF7,
        ) and i + 9 <= len(data):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + length
    return None


def check_deflated(fp: BinaryIO, start: int, limit: int | None = None) -> None:
    """A deflated DICOM dataset is inflated whole by the reader: inflate it here first, a
    chunk at a time and discarding the output, and refuse it if it passes ``limit`` (default
    ``MAX_BYTES``, what an uncompressed file may hold)."""
    limit = MAX_BYTES if limit is None else limit
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total, chunk = 0, 1 << 20
    fp.seek(start)
    try:
        while piece := fp.read(chunk):
            while piece:
                total += len(inflater.decompress(piece, chunk))
                if total > limit:
                    raise ImageTooLarge(
                        f"the deflated DICOM dataset inflates to more than {limit:,} bytes"
                    )
                piece = inflater.unconsumed_tail
            if inflater.eof:
                return
    except zlib.error as exc:
        raise ImageInputError(f"malformed deflated DICOM dataset ({exc})") from None


def check_dicom_file(fp: BinaryIO) -> None:
    """Read the file meta group (where the dataset begins, its transfer syntax) and bound the
    inflation of a deflated dataset, before the DICOM reader inflates it."""
    from pydicom.filereader import read_dataset, read_preamble

    fp.seek(0)
    try:
        read_preamble(fp, False)
        meta = read_dataset(fp, False, True, stop_when=lambda tag, vr, length: tag.group != 2)
    except Exception as exc:  # broad: pydicom raises many types on bad files (ImageInputError)
        raise ImageInputError(f"malformed DICOM file ({exc})") from None
    if str(meta.get("TransferSyntaxUID", "") or "") == DEFLATED:
        check_deflated(fp, fp.tell())
    fp.seek(0)
