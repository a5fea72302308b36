"""The model's side of a study in one call (``services.study_read.read_study``): the images read
below it (``imaging.reading``), each model call timed for ``/metrics`` through the reader's
``Timer``, the result put as it is stored, and the draft made from that result, never from a
refusal; a repeated job infers nothing again."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image
from prometheus_client import REGISTRY

from helpers.platform import png_bytes
from medai.core import model_dir
from medai.services import study_read


@pytest.fixture(scope="module")
def predictor(tiny_imaging_dir):
    return model_dir.load(tiny_imaging_dir, runtime="torch")


def _calls(predictor, call: str) -> dict[str, float]:
    ident = predictor.identity
    out = {}
    for outcome in ("ok", "refused", "error"):
        labels = {
            "task": ident.task,
            "model": ident.name,
            "version": ident.version,
            "call": call,
            "outcome": outcome,
        }
        out[outcome] = REGISTRY.get_sample_value("medai_model_call_seconds_count", labels) or 0.0
    return out


def _read(predictor, data: bytes, **kw) -> study_read.StudyRead:
    return study_read.read_study(
        predictor,
        members=[],
        study_sha="upload",
        read_bytes=lambda _sha: data,
        reads_series=False,
        want_display=True,
        **kw,
    )


def _readable(predictor) -> bytes:
    """A picture the tiny model reads (its gate refuses some random ones)."""
    for seed in range(40):
        data = png_bytes(seed, size=(96, 96))
        if _read(predictor, data).refusal is None:
            return data
    pytest.fail("the tiny model refused every picture")


def test_each_model_call_is_timed_and_the_draft_is_made_from_the_stored_result(predictor):
    data = _readable(predictor)
    predicts, heatmaps = _calls(predictor, "predict"), _calls(predictor, "heatmap")
    ask = study_read.Ask(task="cxr", lang="en", question="cough", prior=None)
    got = _read(predictor, data, ask=ask)
    assert got.refusal is None and got.payload is not None and got.heatmap is not None
    assert _calls(predictor, "predict")["ok"] == predicts["ok"] + 1
    assert _calls(predictor, "heatmap")["ok"] == heatmaps["ok"] + 1
    assert got.decision is not None and got.display_png is not None
    # the draft names the model the findings came from and reads the result as it is stored
    assert got.draft is not None and got.draft["sections"]
    assert got.draft["model"]["content_hash"] == predictor.identity.content_hash
    assert got.draft["decision"] == got.decision  # the one decision the result states


def test_no_draft_is_made_when_none_is_asked_or_the_image_is_refused(predictor):
    data = _readable(predictor)
    assert _read(predictor, data).draft is None  # made before: not asked again
    colour = Image.new("RGB", (96, 96))
    colour.putdata([(255 * (i % 2), 40, 200) for i in range(96 * 96)])
    buf = BytesIO()
    colour.save(buf, format="PNG")
    before = _calls(predictor, "predict")
    ask = study_read.Ask(task="cxr", lang="en", question=None, prior=None)
    got = _read(predictor, buf.getvalue(), ask=ask)
    assert got.refusal is not None and got.refusal.code == "colour_photo"
    assert got.draft is None and got.payload is not None and got.payload["refused"]
    assert got.payload["model"]["content_hash"] == predictor.identity.content_hash
    assert _calls(predictor, "predict")["refused"] == before["refused"] + 1


def test_a_repeated_job_infers_nothing_again(predictor):
    data = _readable(predictor)
    first = _read(predictor, data)
    predicts = _calls(predictor, "predict")
    again = _read(predictor, data, stored=first.payload)
    assert again.payload == first.payload and again.decision == first.decision
    assert again.result is None  # nothing inferred: the stored result is the study's
    assert _calls(predictor, "predict") == predicts


def test_a_series_read_is_timed_as_one_call_and_its_key_slice_becomes_the_studys_image():
    """An MRI study's series were read without a timer (no ``/metrics`` sample at all); they
    are one ``series`` call now. Its key slice's instance is handed back as the study's image
    (``member``), with a display rendition of it, when the study's file is another slice."""
    from helpers.series import brightness_predictor, mr_slice

    mri = brightness_predictor()
    normal, glioma = "1.2.826.0.1.3680043.8.498.71", "1.2.826.0.1.3680043.8.498.72"
    slices = [("No_Tumor", i, normal) for i in range(3)] + [("Glioma", i, glioma) for i in range(4)]
    files, members = {}, []
    for n, (label, i, series) in enumerate(slices):
        files[f"sha{n}"] = blob = mr_slice(label, i, series)
        members.append(study_read.Member(f"{series}.{i + 1}", f"sha{n}", len(blob), series, None))
    before = {call: _calls(mri, call) for call in ("series", "predict", "heatmap")}
    got = study_read.read_study(
        mri,
        members=members,
        study_sha="sha0",  # the first-filed slice, of the normal series
        read_bytes=files.__getitem__,
        reads_series=True,
        want_display=False,
    )
    assert got.result is not None and got.result.decision.primary == "Glioma"
    assert _calls(mri, "series")["ok"] == before["series"]["ok"] + 1
    assert _calls(mri, "predict") == before["predict"]  # a film's call: none here
    assert _calls(mri, "heatmap")["ok"] == before["heatmap"]["ok"] + 1
    key = got.heatmap_instance.partition("#")[0]
    assert got.member is not None and got.member.sop_uid == key
    assert got.member.series_uid == glioma and got.data == files[got.member.sha]
    assert got.display_png is not None  # the study's picture is made again from its new image


def test_a_key_frame_of_the_studys_own_multiframe_file_is_drawn_again():
    """The study's file is the one multi-frame instance read: it stays the study's image, but
    its picture is made again from the key frame (a re-read may pick another frame)."""
    from helpers.series import brightness_predictor, mr_multiframe

    mri = brightness_predictor()
    sop = "1.2.826.0.1.3680043.8.498.81"
    blob = mr_multiframe(["No_Tumor"] * 2 + ["Glioma"] * 4, [0.0, 5, 10, 15, 20, 25], sop)
    member = study_read.Member(sop, "sha", len(blob), f"{sop}.9", None)
    got = study_read.read_study(
        mri,
        members=[member],
        study_sha="sha",
        read_bytes={"sha": blob}.__getitem__,
        reads_series=True,
        want_display=False,
    )
    assert got.result is not None and got.result.decision.primary == "Glioma"
    assert got.heatmap_instance.startswith(f"{sop}#") and got.heatmap_instance != f"{sop}#1"
    assert got.member == member and got.display_png is not None
    film = np.asarray(Image.open(BytesIO(got.display_png)).convert("L")) / 255.0
    assert 0.3 < film.mean() < 0.5  # the key frame, a glioma one (frame 1 reads no tumour)
