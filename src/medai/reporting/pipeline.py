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


def train_blip2_captioner(data: Path, out: Path, base: str, test_frac: float = 0.2,
                          seed: int = 13, **options) -> dict:
    """LoRA fine-tune of a local BLIP-2 on a caption-group split (train / validation / test);
    the test part is captioned and scored with the caption metrics."""
    from accelerate import PartialState

    from medai.reporting.blip2 import Blip2Captioner, Blip2LoraConfig, train_blip2

    reader = {k: options.pop(k) for k in ("images", "concepts", "rgb_only") if k in options}
    ds = load_captions(data, **reader)
    rest, test = group_split(ds, test_frac=test_frac, seed=seed)
    sub = CaptionDataset([ds.records[i] for i in rest], ds.report)
    tr, va = group_split(sub, test_frac=0.15, seed=seed)
    if not tr or not va or not test:
        raise ValueError(f"{data}: too few caption groups for train/validation/test")
    cfg = Blip2LoraConfig(base=str(base), seed=seed, **options)
    pairs = []
    for part, idx in ((sub, tr), (sub, va)):
        pixels, keep = _pixels(part, idx)
        pairs.append((pixels, [part.records[i].caption for i in keep]))
    out.mkdir(parents=True, exist_ok=True)
    history = train_blip2(cfg, pairs[0], pairs[1], out)
    if not PartialState().is_main_process:
        return {}
    card = ModelCard(task="caption", model_type="blip2-lora", labels=[], name=out.name,
                     description=f"BLIP-2 + LoRA captioner on {Path(base).name}",
                     training_command=shlex.join(["medai", "caption", "train", "--method",
                                                  "blip2", "--base", str(base), "--data",
                                                  str(data), "--out", str(out)]),
                     data=[{"path": str(data), "sha256": file_sha256(Path(data)),
                            "report": ds.report,
                            "split": {"train": len(tr), "validation": len(va),
                                      "test": len(test)}}],
                     params={"base": Path(base).name, "history": history,
                             **{k: v for k, v in vars(cfg).items() if k != "base"}},
                     licence_notes="The adapter is a derivative of the base model (its licence "
                                   "applies) and of the caption data (see its PROVENANCE).",
                     intended_use="Suggest a caption for a radiologist to edit.")
    save_card(out, card)
    metrics = score_captioner(Blip2Captioner(out, card), ds, test)
    card.metrics = {k: v for k, v in metrics.items() if k != "examples"}
    save_card(out, card)
    return {**metrics, "history": history, "model_dir": str(out)}
