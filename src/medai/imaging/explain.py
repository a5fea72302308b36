"""Grad-CAM heatmaps (hook-free) overlaid on the image, for any label the model predicts."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from medai.imaging.io import ImageRefused, LoadedImage, downscale, load_image
from medai.imaging.networks import to_tensor


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


# activation below which the overlay is fully transparent (the film shows untinted where the
# model does not look), and the most opaque it gets at the peak
CAM_FLOOR = 0.25
CAM_MAX_ALPHA = 0.8


@functools.lru_cache(maxsize=1)
def colour_table() -> np.ndarray:
    """The overlay's colour map, 256 distinct uint8 RGB entries (matplotlib's inferno)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps

    table = colormaps["inferno"](np.linspace(0, 1, 256))[:, :3].astype(np.float32)
    table8 = (table * 255.0 + 0.5).astype(np.uint8)
    table8.setflags(write=False)
    return table8


def saliency_of_overlay(rgba: np.ndarray) -> np.ndarray:
    """The normalised Grad-CAM (float32, 0..1 in steps of 1/255) a stored overlay was drawn
    from: ``overlay_rgba`` writes the colour-map entry of the activation into every pixel's
    RGB, transparent or not, so the map comes back exactly as quantised (a Parametric Map for
    the PACS is built from it without running the model again). Raises ``ValueError`` for a
    picture that is not such an overlay."""
    table = colour_table().astype(np.uint32)
    keys = (table[:, 0] << 16) | (table[:, 1] << 8) | table[:, 2]
    order = np.argsort(keys)
    rgb = np.asarray(rgba)[..., :3].astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    pos = np.minimum(np.searchsorted(keys[order], packed), len(keys) - 1)
    index = order[pos]
    if not np.array_equal(keys[index], packed):
        raise ValueError("the picture is not a heatmap overlay of this colour map")
    return index.astype(np.float32) / 255.0


def overlay_rgba(
    heat: np.ndarray, floor: float = CAM_FLOOR, max_alpha: float = CAM_MAX_ALPHA
) -> np.ndarray:
    """The heatmap alone as an RGBA uint8 array: a perceptual colour map whose alpha is 0 up
    to ``floor`` and rises smoothly to ``max_alpha`` at the peak, so it can lie on the film (in
    the browser, the PDF or ``on_film``) without tinting what the model did not look at.

    The colour comes from a 256-entry uint8 table and the alpha is computed in place, written
    straight into the output: a 2048² overlay costs ~4 bytes a pixel of temporaries (it cost
    ~70: float RGB and RGBA copies, ~130 MB for a 1500×1250 image, per concurrent heatmap)."""
    if not 0.0 <= floor < 1.0:
        raise ValueError(f"floor must be in [0, 1), not {floor}")
    table8 = colour_table()
    heat = np.clip(np.nan_to_num(heat.astype(np.float32)), 0.0, 1.0)
    out = np.empty((*heat.shape, 4), dtype=np.uint8)
    out[..., :3] = table8[(heat * 255).astype(np.uint8)]
    ramp = heat  # reused in place: (heat - floor) / (1 - floor), clipped to [0, 1]
    np.subtract(ramp, floor, out=ramp)
    np.divide(ramp, 1.0 - floor, out=ramp)
    np.clip(ramp, 0.0, 1.0, out=ramp)
    alpha = ramp * max_alpha  # smoothstep: no hard rim at the floor
    alpha *= ramp
    edge = np.multiply(ramp, 2.0, out=ramp)  # ramp is not needed after this
    np.subtract(3.0, edge, out=edge)
    alpha *= edge
    alpha *= 255.0
    alpha += 0.5
    out[..., 3] = alpha  # truncating, as astype(uint8) did
    return out


def overlay_png(
    pixels: np.ndarray, heat: np.ndarray, out, on_film: bool = False, caption: str | None = None
):
    """Save the heatmap as PNG: by default the transparent RGBA overlay alone (viewers lay it
    on the film themselves and name the label beside the image); ``on_film`` composes it on
    the gray image for a file a person opens, with ``caption`` in a band under the film,
    never over it."""
    from PIL import Image, ImageDraw

    layer = Image.fromarray(overlay_rgba(heat), mode="RGBA")
    if on_film:
        gray = (np.clip(pixels, 0, 1) * 255).astype(np.uint8)
        film = Image.fromarray(gray, mode="L").convert("RGBA")
        img = Image.alpha_composite(film, layer).convert("RGB")
        if caption:
            band = 16
            framed = Image.new("RGB", (img.width, img.height + band), (0, 0, 0))
            framed.paste(img, (0, 0))
            ImageDraw.Draw(framed).text((4, img.height + 2), caption, fill=(255, 255, 0))
            img = framed
    else:
        img = layer
    if isinstance(out, str | Path):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    img.save(out, format="PNG")  # a path or a binary file object
    return out


def explain(
    predictor,
    source,
    out,
    label: str | None = None,
    max_side: int | None = None,
    on_film: bool = False,
) -> dict:
    """Grad-CAM overlay PNG of one image (path, bytes or a loaded image) for ``label``
    (default: the most probable), after the same refusal checks as prediction: the
    transparent overlay alone, or composed ``on_film`` with its label under the image.
    ``out``: path or binary file. Raises ``ImageInputError`` for an unusable or refused
    image."""

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
    overlay_png(pixels, heat, out, on_film=on_film, caption=f"{lab} {p:.2f} (AI)")
    return {
        "label": lab,
        "probability": p,
        "width": int(pixels.shape[1]),
        "height": int(pixels.shape[0]),
    }
