"""A brain MRI predictor whose decisions the tests control, and MR series built as DICOM.

The predictor is the real ``ImagingPredictor`` (batching, softmax, the task's decision, model
identity) over a small deterministic network whose logits depend only on how bright a slice is:
a slice whose bright area covers ``BRIGHTNESS[label]`` of it reads as ``label``. No model file,
no training: every test knows what each slice will read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medai.imaging.networks import ForwardParts

LABELS = ("Glioma", "Meningioma", "Pituitary", "No_Tumor")
BRIGHTNESS = {"No_Tumor": 0.1, "Glioma": 0.4, "Meningioma": 0.65, "Pituitary": 0.9}
SHARPNESS = 100.0
MR = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


class BrightnessNet(torch.nn.Module):
    """Logits ``-SHARPNESS * (mean - centre)²`` per label: the label whose brightness the
    slice's mean is nearest wins. ``forward_parts`` gives the Grad-CAM layer (the input)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("centres", torch.tensor([BRIGHTNESS[lab] for lab in LABELS]))

    def forward_parts(self, x: torch.Tensor) -> ForwardParts:
        mean = x.mean(dim=(1, 2, 3))
        logits = -SHARPNESS * (mean[:, None] - self.centres[None]) ** 2
        return ForwardParts(logits, x, x, torch.stack([mean, mean * mean], dim=1))

    def logits_and_features(self, x: torch.Tensor, layer: str = "gate"):
        parts = self.forward_parts(x)
        return parts.logits, parts.gate.mean(dim=(2, 3)) if layer == "gate" else parts.embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_parts(x).logits


def brightness_predictor():
    from medai.core.model_dir import ModelCard
    from medai.imaging.predict import ImagingPredictor
    from medai.imaging.train import ImagingTrainConfig

    cfg = ImagingTrainConfig(task="mri", labels=list(LABELS), image_size=32, num_workers=0)
    card = ModelCard(
        task="mri", model_type="brightness", labels=list(LABELS), name="brightness-mri"
    )
    return ImagingPredictor(BrightnessNet().eval(), cfg, card, directory=None)


def slice_pixels(label: str, jitter: int = 0, side: int = 64) -> np.ndarray:
    """A float slice in [0, 1] that reads as ``label``: the top rows bright, covering the
    label's brightness (``jitter`` moves it by a row or so, so that slices differ)."""
    rows = round(BRIGHTNESS[label] * side) + (jitter % 3) - 1
    arr = np.zeros((side, side), dtype=np.float32)
    arr[:rows] = 1.0
    return arr


def mr_dataset(sop: str, series: str, *, frames: int = 1, sop_class: str = MR):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1", series
    ds.Modality, ds.SeriesNumber, ds.BodyPartExamined = "MR", 3, "BRAIN"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    if frames > 1:
        ds.NumberOfFrames = frames
    return ds


def _pixels(arr: np.ndarray) -> bytes:
    return (np.asarray(arr) * 1000).astype("<u2").tobytes()


def _save(ds) -> bytes:
    import io

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def mr_slice(
    label: str,
    index: int,
    series: str = "1.2.826.0.1.3680043.8.498.2",
    *,
    spacing: float = 5.0,
    geometry: bool = True,
    modality: str = "MR",
) -> bytes:
    """One single-frame MR slice (bytes) of ``series`` that reads as ``label``: instance
    number ``index + 1``, ``index * spacing`` mm along the axial normal."""
    pixels = slice_pixels(label, index)
    ds = mr_dataset(f"{series}.{index + 1}", series)
    ds.Modality = modality
    ds.InstanceNumber = index + 1
    if geometry:
        ds.ImageOrientationPatient = AXIAL
        ds.ImagePositionPatient = [-120.0, -120.0, index * spacing]
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = _pixels(pixels)
    return _save(ds)


def mr_multiframe(labels: list[str], positions: list[float], sop: str) -> bytes:
    """An enhanced MR object with one frame per label, each at its position along the axial
    normal (per-frame functional groups, orientation shared)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    frames = np.stack([slice_pixels(lab, i) for i, lab in enumerate(labels)])
    ds = mr_dataset(sop, sop + ".9", frames=len(labels), sop_class=ENHANCED_MR)
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = frames.shape[1:]
    orientation = Dataset()
    orientation.ImageOrientationPatient = AXIAL
    shared = Dataset()
    shared.PlaneOrientationSequence = Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for z in positions:
        plane = Dataset()
        plane.ImagePositionPatient = [-120.0, -120.0, float(z)]
        item = Dataset()
        item.PlanePositionSequence = Sequence([plane])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = _pixels(frames)
    return _save(ds)


def write_all(folder: Path, blobs: list[bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, blob in enumerate(blobs):
        path = folder / f"{i:04d}.dcm"
        path.write_bytes(blob)
        paths.append(path)
    return paths
