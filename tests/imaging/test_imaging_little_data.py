"""The imaging little-data benchmark's own rules: what replaces the bundled model, and which
unlabelled images self-training may use (none that is labelled, none from a held-out case)."""

import sys

import numpy as np
from PIL import Image

from helpers.paths import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from imaging_little_data import BUNDLED, adopt, centre_crop, unlabelled_pool


def _row(auroc, ci=None, pops=(0.9, 0.8)):
    row = {
        "macro_auroc": auroc,
        "per_population": {
            "adult": {"macro_auroc": pops[0]},
            "paediatric (Kermany)": {"macro_auroc": pops[1]},
        },
    }
    if ci is not None:
        row["vs_bundled"] = {"ci95": ci}
    return row


def test_a_candidate_replaces_the_bundled_model_only_if_it_wins_everywhere():
    rows = {
        BUNDLED: _row(0.95),
        "wins": _row(0.97, [0.005, 0.03], (0.91, 0.85)),
        "ties": _row(0.96, [-0.01, 0.02], (0.95, 0.9)),
        "one population worse": _row(0.97, [0.002, 0.03], (0.85, 0.95)),
    }
    out = adopt(rows)
    assert out["wins"] == "ADOPT"
    assert "includes or is below 0" in out["ties"]
    assert "worse on adult" in out["one population worse"]
    assert BUNDLED not in out


def test_the_unlabelled_pool_leaves_out_labelled_images_and_held_out_publications(tmp_path):
    (tmp_path / "images").mkdir()
    rows = [
        ("a.png", "X-ray", "s1", "10.1/train"),
        ("b.png", "X-ray", "s2", "10.1/held"),
        ("c.png", "X-ray", "s3", "10.1/other"),
        ("d.png", "CT", "s4", ""),
        ("e.png", "X-ray", "s5", ""),
    ]
    for name, *_ in rows:
        Image.fromarray(np.full((32, 32), 90, dtype=np.uint8)).save(tmp_path / "images" / name)
    (tmp_path / "pairs.csv").write_text(
        "file,modality,sha1_original,doi\n"
        + "".join(f"images/{f},{m},{s},{d}\n" for f, m, s, d in rows)
    )
    (tmp_path / "manifest.csv").write_text("file,label,sha1_original\nx.png,COVID-19,s1\n")
    pixels, report = unlabelled_pool(
        tmp_path / "pairs.csv", tmp_path / "manifest.csv", {"10.1/held"}
    )
    assert report == {
        "x_ray_pairs": 4,
        "in_manifest": 1,
        "shares_held_out_publication": 1,
        "unreadable": 0,
        "used": 2,
    }
    assert len(pixels) == 2


def test_centre_crop_keeps_the_middle():
    img = np.arange(100 * 80).reshape(100, 80)
    out = centre_crop(img, 0.9)
    assert out.shape == (90, 72) and out[0, 0] == img[5, 4]
