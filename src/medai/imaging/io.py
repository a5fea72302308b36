"""Image input: PNG/JPEG/DICOM → one grayscale float array in [0, 1], for training and serving.

One path for both, so a model sees at serving time exactly what it saw in training. Limits are
checked before any pixel is decoded (file bytes, then what the header declares: pixels,
decoded bytes, frames; see ``imaging.limits``), so a decompression bomb or a giant scan is
refused (``ImageTooLarge``) with a clear message instead of exhausting memory. DICOM goes
through the modality LUT, the VOI LUT / window, and MONOCHROME1 inversion.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np

from medai.imaging.limits import (
    MAX_BYTES,
    MAX_FRAME_BYTES,
    MAX_PIXELS,
    MAX_TOTAL_PIXELS,
    MIN_SIDE,
    ImageInputError,
    ImageTooLarge,
    NoPixelData,
    check_dicom_file,
    check_encapsulated_frame,
    check_frame,
    dicom_header,
    pillow_decoded_bytes,
)
from medai.imaging.views import header_fields

__all__ = [
    "MAX_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_PIXELS",
    "MAX_TOTAL_PIXELS",
    "MIN_SIDE",
    "REFUSAL_CODES",
    "WORKING_SIDE",
    "ImageInputError",
    "ImageRefused",
    "ImageTooLarge",
    "LoadedImage",
    "NoPixelData",
    "Refusal",
    "check_limits",
    "downscale",
    "load_image",
    "load_rgb",
]

WORKING_SIDE = 2048
"""Images are reduced to at most this many pixels a side right after decoding (box average in
the decoder's own integer type): models read 224–512 pixels, heatmaps need no more, and a
6000 × 6600 PNG no longer costs a gigabyte of float copies."""


class ImageRefused(ImageInputError):
    """A readable image of the wrong kind for the model (another modality or body part, a
    colour photograph): no findings, no heatmap, no draft — the same answer everywhere."""

    code = "image_refused"

    def __init__(self, reason: Refusal | str, scope=None) -> None:
        super().__init__(str(reason))
        self.refusal = (
            reason if isinstance(reason, Refusal) else Refusal("out_of_distribution", str(reason))
        )
        # the refusing model's scope (``imaging.scope.Scope``): stored with the refusal, so a
        # refused study still says what the model reads and why this image is outside it
        self.scope = scope


@dataclass
class LoadedImage:
    pixels: np.ndarray  # float32, H × W, in [0, 1]
    source_format: str  # "png" | "jpeg" | "dicom" | ...
    metadata: dict = field(default_factory=dict)


def _is_dicom(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def _read_source(source: str | Path | bytes, max_bytes: int) -> bytes:
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise ImageInputError(f"{path}: no such file")
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageTooLarge(f"file is too large ({size:,} bytes; limit {max_bytes:,})")
        data = path.read_bytes()
    else:
        data = bytes(source)
    if len(data) > max_bytes:
        raise ImageTooLarge(f"file is too large ({len(data):,} bytes; limit {max_bytes:,})")
    if not data:
        raise ImageInputError("file is empty")
    return data


def load_image(
    source: str | Path | bytes,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    frame: int | None = None,
) -> LoadedImage:
    """Read a PNG, JPEG (or other Pillow format) or DICOM file / bytes.

    ``frame``: the 1-based frame number of a multi-frame DICOM to decode (a series is read
    frame by frame, ``imaging.series``); None decodes the middle frame, as a single image is
    read. Only that frame is decoded; a number the object does not have is refused."""
    data = _read_source(source, max_bytes)
    if _is_dicom(data):
        return _load_dicom(data, max_pixels, frame)
    if frame not in (None, 1):
        raise ImageInputError(f"frame {frame} requested of an image that is not a DICOM object")
    return _load_raster(data, max_pixels)


def load_rgb(
    source: str | Path | bytes,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    max_side: int = WORKING_SIDE,
) -> np.ndarray:
    """uint8 H × W × 3 for a model that reads colour (BLIP-2 captioning of ROCOv2 figures, many
    of them colour): a colour image stays in colour, a gray one is repeated on the three
    channels. The limits of ``load_image`` are checked before decoding; a JPEG larger than
    ``max_side`` is decoded at a reduced scale and every image is box-reduced to at most
    ``max_side`` a side. DICOM goes through ``load_image`` (its LUTs and window) as gray."""
    data = _read_source(source, max_bytes)
    if _is_dicom(data):
        gray = downscale(_load_dicom(data, max_pixels).pixels, max_side)
        return np.repeat(_gray_uint8(gray)[..., None], 3, axis=2)
    img, _ = _open_raster(io.BytesIO(data), max_pixels, draft_side=max_side)
    try:
        img.load()
        if max(img.size) > max_side:
            factor = -(-max(img.size) // max_side)
            img = img.reduce(factor) if img.mode in _REDUCIBLE else _reduce_array(img, factor)
        return _to_rgb(img)
    except Exception as exc:  # broad: Pillow's decoders raise many types (ImageInputError)
        raise ImageInputError(f"image data is corrupt or truncated ({exc})") from None


def _gray_uint8(gray: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(gray, 0.0, 1.0) * 255.0).astype(np.uint8)


def _to_rgb(img) -> np.ndarray:
    """Colour modes (palette, alpha over black as in ``_to_gray``, CMYK, YCbCr …) → RGB;
    gray ones (1/8/16/32-bit) through ``_to_gray`` and repeated on three channels."""
    from PIL import Image

    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "PA"):
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    if img.mode in ("RGB", "CMYK", "YCbCr", "HSV", "LAB"):
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    gray, _ = _to_gray(img)
    return np.repeat(_gray_uint8(gray)[..., None], 3, axis=2)


def check_limits(source: str | Path | BinaryIO, max_pixels: int = MAX_PIXELS) -> None:
    """The header checks of ``load_image`` on a file (a path, or an open binary file such as
    a decrypted blob), without decoding a pixel: raises ``ImageTooLarge`` for a bomb. Other
    problems (not an image, corrupt) are left to the analysis, which names them."""
    with contextlib.ExitStack() as stack:
        fh: BinaryIO
        if hasattr(source, "read"):  # an open binary file (str and Path have no read)
            fh = cast(BinaryIO, source)
        else:
            fh = stack.enter_context(Path(source).open("rb"))
        if fh.seek(0, 2) > MAX_BYTES:
            raise ImageTooLarge(f"file is too large ({fh.tell():,} bytes; limit {MAX_BYTES:,})")
        fh.seek(0)
        if _is_dicom(fh.read(132)):
            import pydicom

            check_dicom_file(fh)
            try:
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
            except Exception as exc:  # broad: pydicom raises many types (ImageInputError)
                raise ImageInputError(f"malformed DICOM file ({exc})") from None
            dicom_header(ds)
            return
        fh.seek(0)
        img, _ = _open_raster(fh, max_pixels)
        img.close()


def downscale(arr: np.ndarray, max_side: int = WORKING_SIDE) -> np.ndarray:
    """Box-average an H×W(×C) array so its longer side is at most ``max_side``, a band of
    rows at a time (no full-size float copy); keeps the dtype."""
    factor = -(-max(arr.shape[:2]) // max_side)
    if factor <= 1:
        return arr
    h, w = (arr.shape[0] // factor) * factor, (arr.shape[1] // factor) * factor
    out = np.empty((h // factor, w // factor, *arr.shape[2:]), dtype=np.float32)
    for i in range(0, h, factor * 64):
        band = arr[i : min(i + factor * 64, h), :w].astype(np.float32)
        rows = band.shape[0] // factor
        out[i // factor : i // factor + rows] = band.reshape(
            rows, factor, w // factor, factor, *arr.shape[2:]
        ).mean(axis=(1, 3))
    if np.issubdtype(arr.dtype, np.integer):
        return np.rint(out).astype(arr.dtype)
    return out.astype(arr.dtype)


def _open_raster(source, max_pixels: int, draft_side: int = WORKING_SIDE):
    """Pillow's header read, with the size and decoded bytes checked before ``load``; a JPEG
    larger than ``draft_side`` is set to decode at a reduced scale first."""
    from PIL import Image, UnidentifiedImageError

    if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS > MAX_PIXELS:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own check, for every Pillow decoder
    try:
        img = Image.open(source)
    except UnidentifiedImageError:
        raise ImageInputError("not an image: the file is neither PNG/JPEG nor DICOM") from None
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image is too large ({exc})") from None
    except Exception as exc:  # broad: Pillow raises many types on bad headers (ImageInputError)
        raise ImageInputError(f"image header is corrupt or truncated ({exc})") from None
    declared = img.size
    check_frame(img.width, img.height, 0, max_pixels)
    if (img.format or "").lower() == "jpeg" and max(img.size) > draft_side:
        img.draft(img.mode, (draft_side, draft_side))  # decode at a reduced scale
    check_frame(*declared, pillow_decoded_bytes(img, declared), max_pixels)
    return img, declared


def _load_raster(data: bytes, max_pixels: int) -> LoadedImage:
    img, (width, height) = _open_raster(io.BytesIO(data), max_pixels)
    fmt = (img.format or "unknown").lower()
    meta = {"mode": img.mode, "width": width, "height": height}
    try:
        img.load()
        if max(img.size) > WORKING_SIDE:
            factor = -(-max(img.size) // WORKING_SIDE)
            img = img.reduce(factor) if img.mode in _REDUCIBLE else _reduce_array(img, factor)
    except Exception as exc:  # broad: Pillow's decoders raise many types (ImageInputError)
        raise ImageInputError(f"image data is corrupt or truncated ({exc})") from None
    if getattr(img, "n_frames", 1) > 1:
        meta["frames"] = img.n_frames  # first frame used
    pixels, colourfulness = _to_gray(img)
    meta["colourfulness"] = colourfulness
    return LoadedImage(pixels, fmt, meta)


_REDUCIBLE = {"L", "LA", "RGB", "RGBA", "I", "F", "P"} - {"P"}


def _reduce_array(img, factor: int):
    """Modes Pillow cannot ``reduce`` (16-bit, palette, 1-bit): through a NumPy array."""
    from PIL import Image

    if img.mode in ("P", "1", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert(
            "RGBA"
            if "A" in img.mode or "transparency" in img.info
            else "RGB"
            if img.mode != "1"
            else "L"
        )
        if img.mode in _REDUCIBLE:
            return img.reduce(factor)
    arr = downscale(np.asarray(img), -(-max(img.size) // factor))
    return Image.fromarray(arr)


def _to_gray(img) -> tuple[np.ndarray, float]:
    """Float gray in [0, 1] for 1/8/16/32-bit, palette, RGB(A); also how colourful it was."""
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA"):
        from PIL import Image

        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
        mode = "RGB"
    if mode in ("RGB", "CMYK", "YCbCr", "HSV", "LAB"):
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        colourfulness = float(np.mean(rgb.max(axis=2) - rgb.min(axis=2)))
        gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return gray.astype(np.float32), colourfulness
    arr = np.asarray(img)
    if mode == "1":
        return arr.astype(np.float32), 0.0
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0, 0.0
    return _rescale(arr.astype(np.float64)), 0.0  # I;16, I, F: stretch to the data range


AGE_BANDS = ((2, "0-1"), (12, "2-11"), (18, "12-17"), (40, "18-39"), (65, "40-64"), (None, "65+"))


def age_band(ds) -> str:
    """The patient's age band from PatientAge ("045Y", "006M", "010D", "002W") or from the
    birth date and the study date; "" when the file says neither. Bands, not ages: what
    monitoring and validation subgroups need, and no more."""
    years: float | None = None
    raw = str(ds.get("PatientAge", "") or "").strip().upper()
    if len(raw) == 4 and raw[:3].isdigit() and raw[3] in "DWMY":
        years = int(raw[:3]) / {"D": 365.25, "W": 52.18, "M": 12.0, "Y": 1.0}[raw[3]]
    else:
        born = str(ds.get("PatientBirthDate", "") or "")[:8]
        seen = str(ds.get("StudyDate", "") or ds.get("ContentDate", "") or "")[:8]
        if born.isdigit() and seen.isdigit() and len(born) == len(seen) == 8:
            years = (int(seen[:4]) - int(born[:4])) - (seen[4:] < born[4:])
    if years is None or not 0 <= years < 150:
        return ""
    return next(name for limit, name in AGE_BANDS if limit is None or years < limit)


def population(ds) -> dict[str, str]:
    """Who and what took the image, as monitoring's population mix: device manufacturer,
    age band and sex (M/F/O, "" when unknown)."""
    sex = str(ds.get("PatientSex", "") or "").strip().upper()[:1]
    return {
        "manufacturer": str(ds.get("Manufacturer", "") or "").strip()[:64],
        "age_band": age_band(ds),
        "sex": sex if sex in ("M", "F", "O") else "",
    }


def _rescale(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def _load_dicom(data: bytes, max_pixels: int, frame: int | None = None) -> LoadedImage:
    import pydicom

    check_dicom_file(io.BytesIO(data))  # a deflated dataset is inflated within bounds
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except Exception as exc:  # broad: pydicom raises many types (ImageInputError)
        raise ImageInputError(f"malformed DICOM file ({exc})") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise NoPixelData(
            "DICOM file has no pixel data (e.g. a structured report or "
            "a presentation state), so there is no image to analyse"
        )
    rows, cols, frames, _, _, _ = dicom_header(ds, max_pixels)
    name = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    syntax = str(name or "")
    if frame is not None and not 1 <= frame <= frames:
        raise ImageInputError(f"DICOM object has {frames} frame(s); frame {frame} asked for")
    # only the frame used is decoded: the one asked for, else the middle one
    index = frame - 1 if frame is not None and frames > 1 else frames // 2 if frames > 1 else None
    if name is not None and name.is_encapsulated and "PixelData" in ds:
        from pydicom.encaps import get_frame

        try:
            encoded = get_frame(ds.PixelData, index or 0, number_of_frames=frames)
        except Exception as exc:  # broad: pydicom raises many types (ImageInputError)
            raise ImageInputError(f"malformed compressed DICOM pixel data ({exc})") from None
        check_encapsulated_frame(encoded, rows, cols)
        del encoded
    try:
        from pydicom.pixels import pixel_array

        arr = pixel_array(ds, index=index)
    except Exception as exc:  # broad: decoders raise many types (ImageInputError)
        hint = (
            (f" (transfer syntax {name.name}: install a decoder such as pylibjpeg or python-gdcm)")
            if name is not None and name.is_compressed
            else ""
        )
        raise ImageInputError(f"cannot decode DICOM pixel data{hint}: {exc}") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    meta = {
        "modality": str(ds.get("Modality", "")),
        "photometric": photometric,
        "bits_stored": int(ds.get("BitsStored", 0) or 0),
        "frames": frames,
        "transfer_syntax": syntax,
        "width": cols,
        "height": rows,
        **header_fields(ds),  # view_position, view_code(_meaning), patient_orientation
        "body_part": str(ds.get("BodyPartExamined", "") or "").strip().upper()[:32],
        **population(ds),
    }
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            arr = apply_color_lut(arr, ds)
        except Exception as exc:  # broad: pydicom's LUT raises many types (ImageInputError)
            raise ImageInputError(f"cannot apply the DICOM palette ({exc})") from None
    arr = downscale(arr)  # (pixel_array has already converted YBR to RGB)
    if arr.ndim == 3 and photometric in (
        "RGB",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_RCT",
        "YBR_ICT",
        "PALETTE COLOR",
    ):
        rgb = arr.astype(np.float64)
        meta["colourfulness"] = float(np.mean(np.ptp(rgb, axis=2)) / max(rgb.max(), 1))
        return LoadedImage(_rescale(rgb @ [0.299, 0.587, 0.114]), "dicom", meta)
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageInputError(f"unsupported DICOM photometric interpretation {photometric!r}")
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        values = apply_modality_lut(arr, ds).astype(np.float64)
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            values = apply_voi_lut(values, ds, index=0).astype(np.float64)
    except Exception as exc:  # broad: pydicom's LUTs raise many types (ImageInputError)
        raise ImageInputError(f"cannot apply the DICOM rescale/window attributes ({exc})") from None
    if values.ndim != 2:
        raise ImageInputError(f"unexpected DICOM pixel array shape {values.shape}")
    gray = _rescale(values)
    if photometric == "MONOCHROME1":  # 0 = white: invert so bone is bright as in MONOCHROME2
        gray = 1.0 - gray
    meta["colourfulness"] = 0.0
    return LoadedImage(gray, "dicom", meta)


@dataclass(frozen=True)
class Refusal:
    """Why an image gets no findings: a stable code (translated by the faces), an English
    sentence for logs and the CLI, and the values the sentence names."""

    code: str  # one of REFUSAL_CODES
    message: str
    params: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


# every reason an image gets no findings (the web UI names each in Turkish and English)
REFUSAL_CODES = (
    "wrong_modality",
    "colour_photo",
    "out_of_distribution",
    "unreadable",
    "no_image",
    "too_small",
    "no_model",
    "lateral_view",
)
