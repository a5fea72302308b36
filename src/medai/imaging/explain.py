"""Grad-CAM heatmaps (hook-free) overlaid on the image, for any label the model predicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medai.imaging.models import to_tensor


def gradcam(model, pixels: np.ndarray, label_index: int, size: int) -> np.ndarray:
    """Grad-CAM heatmap in [0, 1] at the image's own resolution, for one output label.

    Hook-free (Selvaraju et al.): the target layer's activations come from the model's explicit
    forward pass and their gradient from ``torch.autograd.grad`` on this call's own graph, so
    the shared model is never modified and concurrent requests cannot see each other's tensors
    (MONAI's GradCAM registered hooks on the shared model per call: they leaked and crossed)."""
    from PIL import Image

    x = to_tensor(pixels, size)[None]
    with torch.enable_grad():
        x.requires_grad_(True)  # gives the graph a leaf even when all weights are frozen
        parts = model.forward_parts(x)
        act = parts.cam
        (grad,) = torch.autograd.grad(parts.logits[0, label_index], act)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    heat = torch.relu((weights * act).sum(dim=1))[0].detach().cpu().numpy()
    heat = np.nan_to_num(heat.astype(np.float32))
    h, w = pixels.shape
    heat = np.asarray(Image.fromarray(heat, mode="F").resize((w, h), Image.Resampling.BILINEAR))
    lo, hi = float(heat.min()), float(heat.max())
    return (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)


def overlay_png(pixels: np.ndarray, heat: np.ndarray, out, alpha: float = 0.45,
                caption: str | None = None):
    """The gray image with the heatmap in a perceptual colour map on top, saved as PNG.

    Float32 throughout and a 256-entry colour table: a 2048² overlay costs tens of MB, not
    the hundreds that per-pixel float64 RGBA colour mapping took."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    table = colormaps["inferno"](np.linspace(0, 1, 256))[:, :3].astype(np.float32)
    weight = (alpha * heat.astype(np.float32))[..., None]
    colour = table[np.clip(heat * 255, 0, 255).astype(np.uint8)]
    gray = np.clip(pixels, 0, 1).astype(np.float32)[..., None]
    mixed = (1 - weight) * gray + weight * colour
    img = Image.fromarray((np.clip(mixed, 0, 1) * 255).astype(np.uint8))
    if caption:
        ImageDraw.Draw(img).text((4, 4), caption, fill=(255, 255, 0))
    if isinstance(out, str | Path):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    img.save(out, format="PNG")  # a path or a binary file object
    return out


def explain(predictor, source, out, label: str | None = None,
            max_side: int | None = None) -> dict:
    """Grad-CAM overlay PNG of one image (path, bytes or a loaded image) for ``label``
    (default: the most probable), after the same refusal checks as prediction. ``out``: path
    or binary file. Raises ``ImageInputError`` for an unusable or refused image."""
    from medai.imaging.io import ImageRefused, LoadedImage, downscale, load_image

    image = source if isinstance(source, LoadedImage) else load_image(source)
    if label is not None and label not in predictor.labels:
        raise ValueError(f"label {label!r} is not one of {predictor.labels}")
    probs, feats = predictor.proba_and_features([image.pixels])
    reason = predictor.refusal_reason(image, feats)
    if reason:
        raise ImageRefused(reason)
    idx = predictor.labels.index(label) if label else int(probs[0].argmax())
    pixels = downscale(image.pixels, max_side) if max_side else image.pixels
    heat = gradcam(predictor.torch_model, pixels, idx, predictor.cfg.image_size)
    lab, p = predictor.labels[idx], float(probs[0, idx])
    overlay_png(pixels, heat, out, caption=f"{lab} {p:.2f} (AI)")
    return {"label": lab, "probability": p, "width": int(pixels.shape[1]),
            "height": int(pixels.shape[0])}
