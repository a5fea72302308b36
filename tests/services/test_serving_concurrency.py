"""Shared models under concurrent requests: results equal the serial ones, no hooks are left
on (or leak into) the shared model, and Grad-CAM needs none."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from helpers.builders import gray_png, make_imaging_model_dir
from medai.core import model_dir
from medai.imaging.explain import gradcam
from medai.imaging.io import load_image


def _hooks(model) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


@pytest.fixture(scope="module", params=["efficientnet-lite0", "densenet121"])
def predictor_and_images(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    directory = make_imaging_model_dir(root / "model", request.param)
    images = [load_image(gray_png(root / f"{i}.png", i)).pixels for i in range(12)]
    return model_dir.load(directory, runtime="torch"), images


def test_concurrent_features_equal_serial(predictor_and_images):
    predictor, images = predictor_and_images
    serial = [predictor.proba_and_features([p]) for p in images]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            parallel = list(pool.map(lambda p: predictor.proba_and_features([p]), images))
            for (p1, f1), (p2, f2) in zip(serial, parallel, strict=True):
                np.testing.assert_allclose(p1, p2, rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-5)
    assert _hooks(predictor.torch_model) == 0


def test_concurrent_heatmaps_equal_serial_and_leave_no_hooks(predictor_and_images):
    predictor, images = predictor_and_images
    model, size = predictor.torch_model, predictor.cfg.image_size
    jobs = [(p, i % len(predictor.labels)) for i, p in enumerate(images)]
    serial = [gradcam(model, p, k, size) for p, k in jobs]
    assert any(h.max() > 0 for h in serial)
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            parallel = list(pool.map(lambda j: gradcam(model, j[0], j[1], size), jobs))
            for a, b in zip(serial, parallel, strict=True):
                np.testing.assert_allclose(a, b, atol=1e-4)
    assert _hooks(model) == 0
    assert all(p.grad is None for p in model.parameters())  # nothing accumulates per call


def test_gradcam_matches_a_reference_computed_by_hand(predictor_and_images):
    """The hook-free Grad-CAM is Grad-CAM: ReLU of the gradient-weighted activation sum."""
    import torch

    from medai.imaging.networks import to_tensor

    predictor, images = predictor_and_images
    model, size = predictor.torch_model, predictor.cfg.image_size
    x = to_tensor(images[0], size)[None]
    with torch.enable_grad():
        parts = model.forward_parts(x.requires_grad_(True))
        parts.cam.retain_grad()
        parts.logits[0, 1].backward()
    ref = torch.relu((parts.cam.grad.mean((2, 3), keepdim=True) * parts.cam).sum(1))[0]
    ref = ref.detach().numpy()
    heat = gradcam(model, images[0], 1, size)
    # same map up to the bilinear resize: compare the location of the maximum
    if ref.max() > ref.min():
        ry, rx = np.unravel_index(ref.argmax(), ref.shape)
        hy, hx = np.unravel_index(heat.argmax(), heat.shape)
        assert abs(hy / heat.shape[0] - (ry + 0.5) / ref.shape[0]) < 1.5 / ref.shape[0]
        assert abs(hx / heat.shape[1] - (rx + 0.5) / ref.shape[1]) < 1.5 / ref.shape[1]
    model.zero_grad(set_to_none=True)


def test_concurrent_triage_equals_serial(tfidf_model_dir):
    from medai.services.triage import triage

    predictor = model_dir.load(tfidf_model_dir)
    texts = [
        "Yüzümde sivilce ve akne var",
        "kulağım çınlıyor ve ağrıyor",
        "babamın yüzü bir tarafa kaydı, konuşamıyor",
        "belim ağrıyor, bacağıma vuruyor",
        "intihar etmeyi düşünüyorum",
        "3 yıl önce felç geçirdim, şimdi iyiyim",
        "göğsüm sıkışıyor, sol koluma yayılıyor, terliyorum",
        "burnum tıkalı",
    ] * 3
    serial = [triage(predictor, t).to_dict() for t in texts]
    with ThreadPoolExecutor(8) as pool:
        parallel = [r.to_dict() for r in pool.map(lambda t: triage(predictor, t), texts)]
    assert parallel == serial
