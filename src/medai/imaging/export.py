"""ONNX export of an imaging model and an ONNX Runtime model that the predictor can use instead
of the PyTorch one (same input tensor, same logits)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from medai.core.model_dir import file_sha256, reseal
from medai.imaging.train import LEGACY_WEIGHTS_FILE, WEIGHTS_FILE

ONNX_FILE = "model.onnx"


class _WithFeatures(torch.nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model.logits_and_features(x)


ONNX_META = "model.onnx.json"


def onnx_is_current(directory: Path) -> bool:
    """True when ``model.onnx`` was exported from the directory's present weights (its
    sidecar records their hash): a retrained model never serves a stale export."""

    onnx, meta, weights = directory / ONNX_FILE, directory / ONNX_META, weights_path(directory)
    if not (onnx.is_file() and meta.is_file() and weights is not None):
        return False
    try:
        recorded = json.loads(meta.read_text()).get("weights_sha256")
    except (json.JSONDecodeError, OSError, AttributeError):
        return False
    return recorded == file_sha256(weights)


def weights_path(directory: Path) -> Path | None:

    for name in (WEIGHTS_FILE, LEGACY_WEIGHTS_FILE):
        if (directory / name).is_file():
            return directory / name
    return None


def export_model_dir(model, image_size: int, directory: Path) -> Path:
    """``medai imaging export``: write model.onnx and its sidecar into a model directory and
    re-seal its card (the content hash covers the export)."""

    path = export_onnx(model, image_size, directory / ONNX_FILE)
    weights = weights_path(directory)
    if weights is None:
        raise FileNotFoundError(f"{directory}: no {WEIGHTS_FILE} for the export's sidecar to name")
    (directory / ONNX_META).write_text(
        json.dumps(
            {
                "weights_sha256": file_sha256(weights),
                "opset": 17,
                "outputs": ["logits", "features"],
            },
            indent=2,
        )
        + "\n"
    )
    reseal(directory)
    return path


def export_onnx(model, image_size: int, out: Path) -> Path:
    """Classic exporter (``dynamo=False``: needs only ``onnx``), dynamic batch; outputs the
    logits and the gate features (the out-of-distribution gate reads the latter)."""
    model = model.eval()
    dummy = torch.rand(1, 1, image_size, image_size)
    torch.onnx.export(
        _WithFeatures(model).eval(),
        (dummy,),  # the model's positional arguments (a lone tensor reads the same)
        str(out),
        dynamo=False,
        input_names=["image"],
        output_names=["logits", "features"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}},
        opset_version=17,
    )
    return out


class OnnxModel:
    """Callable like the torch module: B×1×H×W tensor in, logits tensor out."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:  # workers × threads must not oversubscribe the cores (see services)
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.has_features = "features" in {o.name for o in self.session.get_outputs()}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_and_features(x)[0]

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features are None for files exported before the gate existed."""
        names = ["logits", "features"] if self.has_features else ["logits"]
        out = self.session.run(names, {"image": x.detach().cpu().numpy().astype(np.float32)})
        return torch.from_numpy(out[0]), torch.from_numpy(out[1]) if self.has_features else None

    def eval(self) -> OnnxModel:
        return self


INT8_FILE = "model.int8.onnx"


class _Calibration:
    """ONNX Runtime calibration reader over real images (static quantisation needs the
    activation ranges of the data the model will see, not random tensors)."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self._it = iter([{"image": b} for b in batches])

    def get_next(self) -> dict | None:
        return next(self._it, None)


def quantize_int8(fp32: Path, calibration: torch.Tensor, out: Path) -> Path:
    """Static int8 (QDQ, per-channel weights, uint8 activations) after ORT's pre-processing.

    Dynamic int8 is slower than fp32 for CNNs on this kind of CPU; static is about 2× faster
    than fp32 but can cost accuracy, so callers compare AUROC before shipping it.
    """
    import tempfile

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calibration.ndim != 4 or len(calibration) == 0:
        raise ValueError("calibration needs at least one B×1×H×W image batch")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared))
        batches = [
            calibration[i : i + 8].numpy().astype(np.float32) for i in range(0, len(calibration), 8)
        ]
        quantize_static(
            str(prepared),
            str(out),
            _Calibration(batches),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    return out
