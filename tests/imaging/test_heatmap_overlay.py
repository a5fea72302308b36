"""The Grad-CAM overlay leaves the film untinted where the model does not look: the PNG the
viewer lays on the image is transparent (alpha 0) below a low activation, its label is not
burnt into it, and the composed file puts the label under the film, never over it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from helpers.builders import gray_png, make_imaging_model_dir
from medai.core import model_dir
from medai.imaging.explain import CAM_FLOOR, explain, gradcam, overlay_png, overlay_rgba
from medai.imaging.io import downscale, load_image


def _blob(h: int = 64, w: int = 80) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.clip(1.0 - ((x / w - 0.5) ** 2 + (y / h - 0.4) ** 2) * 6.0, 0.0, 1.0)


def test_overlay_alpha_is_zero_below_the_floor_and_rises_to_the_peak():
    heat = _blob()
    rgba = overlay_rgba(heat)
    alpha = rgba[..., 3]
    assert heat.min() < CAM_FLOOR < heat.max()
    assert (alpha[heat <= CAM_FLOOR] == 0).all()
    assert (alpha[heat >= 0.5] > 0).all()
    peak = np.unravel_index(heat.argmax(), heat.shape)
    assert alpha[peak] == alpha.max() >= 180  # clearly visible where the model looks
    order = np.argsort(heat.ravel())
    assert (np.diff(alpha.ravel()[order].astype(int)) >= 0).all()  # never fades as heat rises


def test_overlay_png_is_rgba_with_the_film_left_out():
    heat, film = _blob(), np.full((64, 80), 0.5)
    buf = io.BytesIO()
    overlay_png(film, heat, buf, caption="Pneumonia 0.71 (AI)")
    img = Image.open(io.BytesIO(buf.getvalue()))
    assert img.mode == "RGBA" and img.size == (80, 64)
    alpha = np.asarray(img)[..., 3]
    assert (alpha[heat <= CAM_FLOOR] == 0).all()  # no caption text burnt into the corner
    assert np.array_equal(alpha, overlay_rgba(heat)[..., 3])


def test_overlay_on_film_keeps_the_film_untinted_and_the_label_below_it():
    heat, film = _blob(), np.full((64, 80), 0.5)
    buf = io.BytesIO()
    overlay_png(film, heat, buf, on_film=True, caption="Pneumonia 0.71 (AI)")
    img = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(int)
    assert img.shape[0] > 64 and img.shape[1] == 80  # a caption band under the film
    inside = img[:64]
    cold = heat <= CAM_FLOOR
    gray = int(0.5 * 255)
    assert (inside[cold] == gray).all()  # plain gray film, caption nowhere on it
    assert (np.abs(inside[heat > 0.9] - gray).max(axis=-1) > 20).all()  # tinted where it looks
    assert (img[64:] != 0).any()  # the caption is drawn in the band


@pytest.fixture(scope="module")
def tiny_predictor(tmp_path_factory):
    root = tmp_path_factory.mktemp("overlay")
    return model_dir.load(make_imaging_model_dir(root / "model"), runtime="torch"), root


def test_explain_png_is_transparent_where_the_cam_is_low(tiny_predictor):
    predictor, root = tiny_predictor
    path = gray_png(root / "chest.png", 3)
    buf = io.BytesIO()
    shown = explain(predictor, path.read_bytes(), buf, label="Pneumonia", max_side=256)
    img = Image.open(io.BytesIO(buf.getvalue()))
    assert img.mode == "RGBA" and img.size == (shown["width"], shown["height"])
    pixels = downscale(load_image(path).pixels, 256)
    heat = gradcam(
        predictor.torch_model, pixels, predictor.labels.index("Pneumonia"), predictor.cfg.image_size
    )
    alpha = np.asarray(img)[..., 3]
    low, high = heat <= CAM_FLOOR, heat >= 0.6
    assert low.any() and high.any()
    assert (alpha[low] == 0).all() and (alpha[high] > 0).all()
