"""Inputs are bounded before they are read or decoded: CLI files, multi-frame DICOM, huge
PNGs; and a predictor never writes into its model directory."""

import json
import os
import tracemalloc

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from helpers.builders import gray_png
from medai.cli import app
from medai.imaging.io import WORKING_SIDE, ImageInputError, downscale, load_image

runner = CliRunner()


def _json(result):
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["device", "directory", "fifo", "missing", "too_large"])
def test_triage_predict_file_is_read_with_limits(kind, tmp_path, tfidf_model_dir):
    path = {"device": "/dev/zero", "directory": str(tmp_path), "missing": str(tmp_path / "x")}
    if kind == "fifo":
        os.mkfifo(tmp_path / "fifo")
        path["fifo"] = str(tmp_path / "fifo")
    if kind == "too_large":
        (tmp_path / "big.txt").write_text("kulak ağrısı " * 20_000)
        path["too_large"] = str(tmp_path / "big.txt")
    r = runner.invoke(
        app, ["triage", "predict", "--file", path[kind], "--model", str(tfidf_model_dir), "--json"]
    )
    assert r.exit_code == 2, r.output
    assert _json(r)["error"]


@pytest.mark.parametrize("kind", ["device", "directory", "fifo", "missing"])
def test_imaging_predict_exits_non_zero_on_unreadable_paths(kind, tmp_path, tiny_imaging_dir):
    path = {"device": "/dev/zero", "directory": str(tmp_path), "missing": str(tmp_path / "x")}
    if kind == "fifo":
        os.mkfifo(tmp_path / "fifo")
        path["fifo"] = str(tmp_path / "fifo")
    r = runner.invoke(
        app, ["imaging", "predict", path[kind], "--model", str(tiny_imaging_dir), "--json"]
    )
    assert r.exit_code == 2, r.output
    if kind == "directory":  # a folder is a batch (issue 27): one with no image is refused
        assert _json(r)["error_type"] == "BatchInputError"
        assert "no image in it" in _json(r)["error"]
        return
    assert _json(r)["error_type"] == "InputFileError"


def test_onnx_predict_never_writes_into_the_model_directory(tmp_path, tiny_imaging_dir):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_imaging_dir, model)
    os.chmod(model, 0o555)  # a read-only install (root ignores it: the listing is checked)
    try:
        before = sorted(p.name for p in model.iterdir())
        image = gray_png(tmp_path / "a.png", 1)
        r = runner.invoke(
            app, ["imaging", "predict", str(image), "--model", str(model), "--onnx", "--json"]
        )
        assert r.exit_code != 0 and "medai imaging export" in _json(r)["error"]
        r = runner.invoke(app, ["imaging", "predict", str(image), "--model", str(model), "--json"])
        assert r.exit_code == 0, r.output
        assert sorted(p.name for p in model.iterdir()) == before
    finally:
        os.chmod(model, 0o755)
    r = runner.invoke(app, ["imaging", "export", "--task", "cxr", "--model", str(model), "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app, ["imaging", "predict", str(image), "--model", str(model), "--onnx", "--json"]
    )
    assert r.exit_code == 0 and _json(r)["findings"]


def test_stale_onnx_export_is_not_served(tmp_path, tiny_imaging_dir):
    import shutil

    from safetensors.torch import load_file, save_file

    from medai.core import model_dir
    from medai.imaging.export import ONNX_FILE, export_model_dir

    model = tmp_path / "model"
    shutil.copytree(tiny_imaging_dir, model)
    p = model_dir.load(model, runtime="torch")
    export_model_dir(p.torch_model, p.cfg.image_size, model)
    assert model_dir.load(model).runtime == "onnx"
    state = load_file(model / "model.safetensors")
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, model / "model.safetensors")  # "retrained": the export no longer matches
    with pytest.raises(model_dir.ModelLoadError, match="differ"):  # the card notices first
        model_dir.load(model)
    model_dir.reseal(model)  # what training does after writing new weights
    assert (model / ONNX_FILE).is_file() and model_dir.load(model).runtime == "torch"
    with pytest.raises(model_dir.ModelLoadError):
        model_dir.load(model, runtime="onnx")


def _dicom(path, frames: int, rows: int, cols: int, pixel_frames: int | None = None):
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
    ds.Modality, ds.Rows, ds.Columns = "DX", rows, cols
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    n = pixel_frames if pixel_frames is not None else frames
    arr = np.stack([np.full((rows, cols), 100 * (i + 1), np.uint16) for i in range(n)])
    arr[:, : rows // 2] = 0  # not flat, so the rescale keeps the frame's identity
    ds.PixelData = arr.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_multi_frame_dicom_decodes_only_the_middle_frame(tmp_path):
    path = _dicom(tmp_path / "mf.dcm", frames=5, rows=64, cols=64)
    tracemalloc.start()
    img = load_image(path)
    tracemalloc.stop()
    assert img.metadata["frames"] == 5 and img.pixels.shape == (64, 64)


def test_frames_times_pixels_is_limited_before_decoding(tmp_path):
    # the header claims 2,000 frames of 512 × 512 (524 M pixels); the file holds one frame
    path = _dicom(tmp_path / "bomb.dcm", frames=2000, rows=512, cols=512, pixel_frames=1)
    with pytest.raises(ImageInputError, match="too large"):
        load_image(path)


def test_huge_png_is_downscaled_early_with_bounded_memory(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (6000, 6600), 0).save(path, optimize=True)  # a few KB on disk
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    img = load_image(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert max(img.pixels.shape) <= WORKING_SIDE
    assert img.metadata["width"] == 6000 and img.metadata["height"] == 6600
    assert peak < 120 * 1024 * 1024, peak  # NumPy buffers: no full-size float copies


def test_downscale_box_averages_and_keeps_dtype():
    arr = np.arange(16, dtype=np.uint16).reshape(4, 4)
    out = downscale(arr, 2)
    assert out.dtype == np.uint16 and out.tolist() == [[2, 4], [10, 12]]
    rgb = np.ones((10, 6, 3), np.uint8)
    assert downscale(rgb, 5).shape == (5, 3, 3)
