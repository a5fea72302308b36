"""The decoded-image cache (``imaging.decode_cache``, ``imaging train --cache-dir``): what a
cached epoch reads is what the first epoch decoded (to 1.5e-5), a changed file is decoded
again, a planted or broken cache file is a miss, a full disk costs only the cache, and the
training loader gives the same batches with and without it."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from helpers.builders import gray_png
from medai.imaging.decode_cache import DecodedCache
from medai.imaging.io import load_image
from medai.imaging.networks import to_tensor
from medai.imaging.train import StreamedImages


def _get(cache: DecodedCache, film: str) -> np.ndarray | None:
    return cache.lookup(film)[0]


def _put(cache: DecodedCache, film: str, image: np.ndarray) -> np.ndarray:
    """Store at the film's place as it is now (the loader looks up before it decodes)."""
    return cache.store(cache.lookup(film)[1], image)


def _film(path, seed: int, side: int = 96) -> str:
    return str(gray_png(path, seed=seed, size=(side, side)))


def test_a_cached_image_is_the_decoded_one_quantised(tmp_path):
    film = _film(tmp_path / "a.png", 1)
    cache = DecodedCache(tmp_path / "cache", 32)
    assert _get(cache, film) is None
    decoded = to_tensor(load_image(film).pixels, 32).numpy()
    first = _put(cache, film, decoded)
    again = _get(cache, film)
    assert again is not None and again.dtype == np.float32 and again.shape == (1, 32, 32)
    np.testing.assert_array_equal(first, again)  # every epoch reads the same values
    assert np.abs(again - decoded).max() <= 0.5 / 65535 + 1e-7
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1
    assert _get(DecodedCache(tmp_path / "cache", 48), film) is None  # another size: a miss


def test_a_replaced_file_is_decoded_again(tmp_path):
    film = _film(tmp_path / "a.png", 1)
    cache = DecodedCache(tmp_path / "cache", 32)
    _put(cache, film, to_tensor(load_image(film).pixels, 32).numpy())
    _film(tmp_path / "a.png", 2, side=80)  # same name, other content and size
    st = os.stat(film)
    os.utime(film, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _get(cache, film) is None


def test_a_broken_or_planted_cache_file_is_a_miss(tmp_path):
    film = _film(tmp_path / "a.png", 1)
    cache = DecodedCache(tmp_path / "cache", 32)
    _put(cache, film, np.zeros((1, 32, 32), np.float32))
    (place,) = (tmp_path / "cache").rglob("*.npy")
    place.write_bytes(place.read_bytes()[:60])  # truncated
    assert _get(cache, film) is None
    np.save(place, np.array([{"x": 1}], dtype=object), allow_pickle=True)  # a pickle
    assert _get(cache, film) is None
    np.save(place, np.zeros((1, 32, 32), np.float32))  # wrong dtype
    assert _get(cache, film) is None
    place.write_bytes(b"")  # empty (a rename that outran the data)
    assert _get(cache, film) is None
    place.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': '<u2',\n")  # garbled header
    assert _get(cache, film) is None
    with place.open("wb") as fh:  # an .npz archive at the name
        np.savez(fh, a=np.zeros((1, 32, 32), np.uint16))
    assert _get(cache, film) is None
    with pytest.raises(ValueError, match="expected 1 × 32 × 32"):
        _put(cache, film, np.zeros((1, 16, 16), np.float32))


def test_a_full_disk_costs_only_the_cache(tmp_path, monkeypatch):
    import errno

    from medai.imaging import decode_cache

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    film = _film(tmp_path / "a.png", 1)
    cache = DecodedCache(tmp_path / "cache", 32)
    monkeypatch.setattr(decode_cache.tempfile, "mkstemp", full)
    out = _put(cache, film, np.full((1, 32, 32), 0.5, np.float32))
    assert out.shape == (1, 32, 32) and abs(float(out.mean()) - 0.5) < 1e-4
    assert _get(cache, film) is None
    assert not list((tmp_path / "cache").rglob("*.npy"))  # nothing half-written either


def test_the_loader_gives_the_same_items_with_and_without_the_cache(tmp_path):
    from medai.imaging.datasets import read_manifest

    (tmp_path / "img").mkdir()
    rows = ["file,label,patient"]
    for k in range(6):
        gray_png(tmp_path / "img" / f"{k}.png", seed=k, size=(40, 48))
        rows.append(f"img/{k}.png,{'Effusion' if k % 2 else 'No Finding'},p{k}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    ds = read_manifest(tmp_path / "m.csv", "cxr")
    plain = StreamedImages(ds.records, [0], 32, augment=True, flip=False, seed=3)
    cached = StreamedImages(
        ds.records,
        [0],
        32,
        augment=True,
        flip=False,
        seed=3,
        cache=DecodedCache(tmp_path / "cache", 32),
    )
    for epoch in (1, 2):  # the first fills the cache, the second reads it
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for i in range(len(ds)):
            (x, y), (xc, yc) = plain[i], cached[i]
            torch.testing.assert_close(xc, x, atol=2e-4, rtol=0)
            torch.testing.assert_close(yc, y, equal_nan=True)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == len(ds)


def test_the_cache_folder_is_not_part_of_the_saved_model(tmp_path):
    """``cache_dir`` is an option of one run: a saved model folder does not name it (its hash
    would change with a local path, and an older release could not load the config)."""
    import json
    from dataclasses import replace

    from medai.imaging.networks import ImagingNet
    from medai.imaging.train import ImagingTrainConfig, load_model, save_model

    cfg = ImagingTrainConfig(task="cxr", labels=["Effusion"], image_size=32)
    net = ImagingNet("efficientnet-lite0", 1, pretrained=False)
    save_model(net, replace(cfg, cache_dir=str(tmp_path / "cache")), tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "imaging_config.json").read_text())
    assert "cache_dir" not in saved and saved["labels"] == ["Effusion"]
    _, loaded = load_model(tmp_path / "m")
    assert loaded.cache_dir is None


def test_a_film_replaced_while_it_decodes_is_never_served_for_the_new_one(tmp_path):
    """The entry's key is taken once, before decoding: a film replaced on disk between the
    lookup and the store leaves the old pixels under the old key, and the new film is a miss
    (keyed at store time, the old pixels would have been served for the new film)."""
    film = _film(tmp_path / "a.png", 1)
    cache = DecodedCache(tmp_path / "cache", 32)
    cached, place = cache.lookup(film)
    assert cached is None and place is not None
    old = to_tensor(load_image(film).pixels, 32).numpy()  # the loader decodes the old film …
    _film(tmp_path / "a.png", 2)  # … while it is replaced
    st = os.stat(film)
    os.utime(film, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    cache.store(place, old)
    assert _get(cache, film) is None  # the new film is decoded afresh
    new = to_tensor(load_image(film).pixels, 32).numpy()
    assert not np.allclose(new, old, atol=1e-4)
    _put(cache, film, new)
    assert np.allclose(_get(cache, film), new, atol=1e-4)
