"""Grad-CAM heatmaps (monai.visualize) overlaid on the image, for any label the model predicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medai.imaging.models import to_tensor


def gradcam(model, pixels: np.ndarray, label_index: int, size: int) -> np.ndarray:
    """Heatmap in [0, 1] at the image's own resolution, for one output label."""
    from monai.visualize import GradCAM
    from PIL import Image

    x = to_tensor(pixels, size)[None].requires_grad_(True)
    cam = GradCAM(nn_module=model, target_layers=model.target_layer())
    with torch.enable_grad():
        heat = cam(x=x, class_idx=label_index)[0, 0].detach().cpu().numpy()
    heat = np.nan_to_num(heat)
    h, w = pixels.shape
    heat = np.asarray(Image.fromarray(heat.astype(np.float32), mode="F").resize((w, h)))
    lo, hi = float(heat.min()), float(heat.max())
    return (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)


def overlay_png(pixels: np.ndarray, heat: np.ndarray, out, alpha: float = 0.45,
                caption: str | None = None):
    """The gray image with the heatmap in a perceptual colour map on top, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    gray = np.repeat(np.clip(pixels, 0, 1)[..., None], 3, axis=2)
    colour = colormaps["inferno"](heat)[..., :3]
    mixed = (1 - alpha * heat[..., None]) * gray + alpha * heat[..., None] * colour
    img = Image.fromarray((np.clip(mixed, 0, 1) * 255).astype(np.uint8))
    if caption:
        ImageDraw.Draw(img).text((4, 4), caption, fill=(255, 255, 0))
    if isinstance(out, str | Path):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    img.save(out, format="PNG")  # a path or a binary file object
    return out


def explain(predictor, source, out, label: str | None = None) -> dict:
    """Grad-CAM overlay PNG of one image (path or bytes) for ``label`` (default: the most
    probable), after the same refusal checks as prediction. ``out``: path or binary file."""
    from medai.imaging.io import ImageInputError, load_image

    image = load_image(source)
    probs, feats = predictor.proba_and_features([image.pixels])
    reason = predictor.refusal_reason(image, feats)
    if reason:
        raise ImageInputError(reason)
    if label is not None and label not in predictor.labels:
        raise ValueError(f"label {label!r} is not one of {predictor.labels}")
    idx = predictor.labels.index(label) if label else int(probs[0].argmax())
    heat = gradcam(predictor.torch_model, image.pixels, idx, predictor.cfg.image_size)
    lab, p = predictor.labels[idx], float(probs[0, idx])
    overlay_png(image.pixels, heat, out, caption=f"{lab} {p:.2f} (AI)")
    return {"label": lab, "probability": p}
