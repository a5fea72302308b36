"""ONNX export of an imaging model and an ONNX Runtime model that the predictor can use instead
of the PyTorch one (same input tensor, same logits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

ONNX_FILE = "model.onnx"


def export_onnx(model, image_size: int, out: Path) -> Path:
    """Classic exporter (``dynamo=False``: needs only ``onnx``), dynamic batch."""
    model = model.eval()
    dummy = torch.rand(1, 1, image_size, image_size)
    torch.onnx.export(model, dummy, str(out), dynamo=False, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"},
                                                             "logits": {0: "batch"}},
                      opset_version=17)
    return out


class OnnxModel:
    """Callable like the torch module: B×1×H×W tensor in, logits tensor out."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(["logits"], {"image": x.detach().cpu().numpy().astype(np.float32)})
        return torch.from_numpy(out[0])

    def eval(self) -> OnnxModel:
        return self
