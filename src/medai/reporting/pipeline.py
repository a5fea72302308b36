"""Caption and draft pipelines used by the CLI, the server and the benchmark."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np

from medai.core.registry import ModelCard, file_sha256, save_card
from medai.reporting.caption_metrics import bertscore, caption_scores
from medai.reporting.captioner import DEFAULT_EMBEDDER, ImageEmbedder, RetrievalCaptioner
from medai.reporting.captions import CaptionDataset, group_split, load_captions

CAPTION_LICENCE_NOTE = ("Captions are quoted from the training pairs: the index redistributes "
                        "their text, so it inherits the caption set's licence (see its "
                        "PROVENANCE).")


def _pixels(ds: CaptionDataset, idx: list[int]) -> tuple[list[np.ndarray], list[int]]:
    from medai.imaging.io import ImageInputError, load_image

    pixels, keep = [], []
    for i in idx:
        try:
            pixels.append(load_image(ds.records[i].path).pixels)
            keep.append(i)
        except ImageInputError:
            continue
    return pixels, keep


def score_captioner(captioner: RetrievalCaptioner, ds: CaptionDataset, idx: list[int],
                    bertscore_model: str | None = None) -> dict:
    pixels, keep = _pixels(ds, idx)
    if not keep:
        raise ValueError("no readable images to caption")
    preds = [p["caption"] for p in captioner.caption_pixels(pixels)]
    refs = [ds.records[i].caption for i in keep]
    metrics = caption_scores(preds, refs)
    if bertscore_model:
        metrics.update(bertscore(preds, refs, bertscore_model))
    metrics["unreadable_images"] = len(idx) - len(keep)
    metrics["examples"] = [{"id": ds.records[i].id, "reference": r, "caption": p}
                           for i, r, p in list(zip(keep, refs, preds, strict=True))[:10]]
    return metrics


def build_captioner(data: Path, out: Path | None, embedder: str = DEFAULT_EMBEDDER, k: int = 5,
                    test_frac: float = 0.25, seed: int = 13, bertscore_model: str | None = None,
                    **reader) -> dict:
    """Fit a retrieval captioner on the training part of a caption-group split, score it on the
    held-out part, and (with ``out``) save the index trained on the training part."""
    ds = load_captions(data, **reader)
    train, test = group_split(ds, test_frac=test_frac, seed=seed)
    if not train or not test:
        raise ValueError(f"{data}: too few caption groups to hold some out")
    emb = ImageEmbedder(embedder)
    pixels, keep = _pixels(ds, train)
    captioner = RetrievalCaptioner.fit(pixels, [ds.records[i].caption for i in keep],
                                       [ds.records[i].id for i in keep], emb, k)
    metrics = score_captioner(captioner, ds, test, bertscore_model)
    metrics["split"] = {"train": len(train), "test": len(test), "by": "caption group"}
    if out is not None:
        card = ModelCard(task="caption", model_type="retrieval", labels=[], name=out.name,
                         description=f"retrieval captioner ({embedder} embeddings, k={k})",
                         training_command=shlex.join(["medai", "caption", "train", "--data",
                                                      str(data), "--out", str(out),
                                                      "--embedder", embedder, "--k", str(k)]),
                         data=[{"path": str(data), "sha256": file_sha256(Path(data)),
                                "report": ds.report}],
                         metrics={k2: v for k2, v in metrics.items() if k2 != "examples"},
                         params={"embedder": embedder, "k": k},
                         licence_notes=CAPTION_LICENCE_NOTE,
                         intended_use="Suggest a caption for a radiologist to edit.")
        captioner.card = card
        captioner.save(out)
        save_card(out, card)
    return metrics
