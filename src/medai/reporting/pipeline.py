"""Caption and draft pipelines used by the CLI, the server and the benchmark.

Images are read from disk batch by batch (``caption_stream``), never all at once: a ROCOv2-size
set does not fit in memory as pixels. Scores name their caption normalisation
(``caption_metrics``): ImageCLEFmedical 2025's for the ROCOv2 layout, medai's earlier one for
``pairs.csv``, whose published numbers it reproduces; ``normalisation`` chooses another.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np

from medai.core.baselines import compare, verdict
from medai.core.model_dir import ModelCard, file_sha256, save_card
from medai.reporting.captioning.caption_metrics import (
    IMAGECLEF_2025,
    MEDAI_V1,
    NORMALISATIONS,
    bertscore,
    caption_scores,
)
from medai.reporting.captioning.captioner import DEFAULT_EMBEDDER, ImageEmbedder, RetrievalCaptioner
from medai.reporting.captioning.captions import CaptionDataset, group_split, load_captions

CAPTION_LICENCE_NOTE = (
    "Captions are quoted from the training pairs: the index redistributes "
    "their text, so it inherits the caption set's licence (see its "
    "PROVENANCE)."
)
EMBED_CHUNK = 64  # gray images decoded at a time for the retrieval embedder (≤ 16 MB each)


def normalisation_for(reader: dict, normalisation: str | None = None) -> str:
    """The caption normalisation a run's scores use: the one given, else ImageCLEFmedical
    2025's for the ROCOv2 layout (``images`` given) and ``medai-v1`` for ``pairs.csv``."""
    if normalisation is None:
        return IMAGECLEF_2025 if reader.get("images") is not None else MEDAI_V1
    if normalisation not in NORMALISATIONS:
        raise ValueError(
            f"unknown caption normalisation {normalisation!r}: one of {', '.join(NORMALISATIONS)}"
        )
    return normalisation


def _embed(
    emb: ImageEmbedder, ds: CaptionDataset, idx: list[int], num_workers: int | None = None
) -> tuple[np.ndarray, list[int]]:
    """Features of the readable images of ``idx`` (and which they are), ``EMBED_CHUNK`` images
    decoded at a time."""
    from medai.reporting.captioning.caption_stream import stream_images

    feats, keep = [], []
    for positions, pixels in stream_images(
        [ds.records[i].path for i in idx],
        colour=False,
        batch_size=EMBED_CHUNK,
        num_workers=num_workers,
    ):
        feats.append(emb.embed(pixels))
        keep += [idx[p] for p in positions]
    if not feats:
        return np.zeros((0, 0), dtype=np.float32), []
    return np.concatenate(feats), keep


def score_captioner(
    captioner,
    ds: CaptionDataset,
    idx: list[int],
    bertscore_model: str | None = None,
    normalisation: str = MEDAI_V1,
    batch_size: int = 16,
    num_workers: int | None = None,
) -> dict:
    """Caption the images of ``idx`` a batch at a time as they are read (in colour for a
    captioner that ``reads_colour``) and score them against their captions; an unreadable
    image is skipped and counted, an abstention scores as an empty caption."""
    import time

    from medai.reporting.captioning.caption_stream import stream_images

    colour = bool(getattr(captioner, "reads_colour", False))
    keep, answered, captioning = [], [], 0.0
    for positions, pixels in stream_images(
        [ds.records[i].path for i in idx], colour, batch_size=batch_size, num_workers=num_workers
    ):
        started = time.perf_counter()
        answered += captioner.caption_pixels(pixels)
        captioning += time.perf_counter() - started
        keep += [idx[p] for p in positions]
    if not keep:
        raise ValueError("no readable images to caption")
    preds = [p["caption"] or "" for p in answered]  # an abstention scores as empty, counted
    refs = [ds.records[i].caption for i in keep]
    metrics = caption_scores(preds, refs, normalisation)
    metrics["abstained"] = sum(p.get("status") == "abstained" for p in answered)
    if bertscore_model:
        metrics.update(bertscore(preds, refs, bertscore_model, normalisation=normalisation))
    metrics["unreadable_images"] = len(idx) - len(keep)
    metrics["generation_s"] = round(captioning, 3)  # the captioner alone, reading excluded
    metrics["examples"] = [
        {"id": ds.records[i].id, "reference": r, "caption": p}
        for i, r, p in list(zip(keep, refs, preds, strict=True))[:10]
    ]
    return metrics


def build_captioner(
    data: Path,
    out: Path | None,
    embedder: str = DEFAULT_EMBEDDER,
    k: int = 50,
    test_frac: float = 0.25,
    seed: int = 13,
    bertscore_model: str | None = None,
    selection: str = "expected-overlap",
    temperature: float | None = None,
    self_credit: float | None = None,
    image_weight: float | None = None,
    index: str = "train",
    repeats: int = 20,
    normalisation: str | None = None,
    num_workers: int | None = None,
    **reader,
) -> dict:
    """Fit a retrieval captioner on the training part of a case-group split and score it on
    the held-out part beside its baselines (best constant caption, nearest neighbour, oracle
    ceiling), all in this run, and over ``repeats`` repeated case-group splits with the
    settings chosen anew on each (``nested_comparison``: the card's verdict, steadier than one
    split of ~30 pairs; 0 or 1 skips it). ``temperature``/``self_credit``/``image_weight``
    None: chosen on the training part by repeated case-group splits; given, they are used
    everywhere as given.
    With ``out``, the index is saved: of the training part (``index="train"``), or of every
    pair (``"all"``: the same settings, more captions to retrieve; the card's metrics stay
    those of the split). Scores use ``normalisation_for(reader, normalisation)``; the
    selection's own word matching and the repeated-split comparison stay on ``medai-v1``
    (``caption_select``), as the saved indexes were chosen with it."""
    from medai.reporting.captioning.caption_select import SELECTIONS, scope_floor
    from medai.reporting.captioning.caption_tuning import DEFAULT_SETTINGS, choose_selection

    if index not in ("train", "all"):
        raise ValueError(f"unknown index {index!r}: train or all")
    if selection not in SELECTIONS:
        raise ValueError(f"unknown caption selection {selection!r}: one of {', '.join(SELECTIONS)}")
    norm = normalisation_for(reader, normalisation)
    ds = load_captions(data, **reader)
    train, test = group_split(ds, test_frac=test_frac, seed=seed)
    if not train or not test:
        raise ValueError(f"{data}: too few caption groups to hold some out")
    emb = ImageEmbedder(embedder)
    feats, keep = _embed(emb, ds, train, num_workers)
    if not keep:
        raise ValueError("no readable training images")
    captions = [ds.records[i].caption for i in keep]
    groups = [ds.records[i].group for i in keep]
    validation: dict = {}
    given = {
        key: value
        for key, value in (
            ("temperature", temperature),
            ("self_credit", self_credit),
            ("image_weight", image_weight),
        )
        if value is not None
    }
    fixed = len(given) == 3 or selection != "expected-overlap"
    chosen = {**DEFAULT_SETTINGS, **given}
    if not fixed:
        chosen, validation = choose_selection(feats, captions, k, seed=seed, groups=groups)
        chosen.update(given)  # a setting given is used as given, the others chosen
        validation["chosen"] = chosen
    captioner = RetrievalCaptioner(
        feats,
        captions,
        [ds.records[i].id for i in keep],
        emb,
        k,
        selection=selection,
        **chosen,
        min_similarity=scope_floor(feats, captions, groups=groups),
    )
    test_feats, test_keep = _embed(emb, ds, test, num_workers)
    if not test_keep:
        raise ValueError("no readable images to caption")
    refs = [ds.records[i].caption for i in test_keep]
    metrics, predicted, table = _score_split(
        captioner, feats, captions, test_feats, refs, bertscore_model, norm
    )
    metrics["unreadable_images"] = len(test) - len(test_keep)
    metrics["split"] = {"train": len(train), "test": len(test), "by": "case group"}
    metrics["validation"] = validation
    if repeats > 1 and selection == "expected-overlap":
        table = _nested_table(
            captioner,
            np.concatenate([feats, test_feats]),
            captions + refs,
            groups + [ds.records[i].group for i in test_keep],
            k,
            repeats,
            chosen if fixed else given,
            table,
        )
    metrics["baselines"] = table
    metrics["verdict"] = verdict(table)
    metrics["examples"] = [
        {"id": ds.records[i].id, "reference": r, "caption": c}
        for i, r, c in list(zip(test_keep, refs, predicted, strict=True))[:10]
    ]
    if out is not None:
        if index == "all":
            all_feats, all_keep = _embed(emb, ds, list(range(len(ds.records))), num_workers)
            all_caps = [ds.records[i].caption for i in all_keep]
            all_groups = [ds.records[i].group for i in all_keep]
            captioner = RetrievalCaptioner(
                all_feats,
                all_caps,
                [ds.records[i].id for i in all_keep],
                emb,
                k,
                selection=selection,
                temperature=captioner.temperature,
                self_credit=captioner.self_credit,
                image_weight=captioner.image_weight,
                min_similarity=scope_floor(all_feats, all_caps, groups=all_groups),
            )
        command = [
            "medai",
            "caption",
            "train",
            "--data",
            str(data),
            "--out",
            str(out),
            "--embedder",
            embedder,
            "--k",
            str(k),
            "--selection",
            selection,
            "--index",
            index,
            "--test-frac",
            str(test_frac),
            "--repeats",
            str(repeats),
        ]
        if temperature is not None:
            command += ["--temperature", str(temperature)]
        if self_credit is not None:
            command += ["--self-credit", str(self_credit)]
        if image_weight is not None:
            command += ["--image-weight", str(image_weight)]
        command += _reader_flags(reader)
        card = ModelCard(
            task="caption",
            model_type="retrieval",
            labels=[],
            name=out.name,
            description=f"retrieval captioner ({embedder} embeddings, {selection}"
            f", k={k}, temperature {captioner.temperature:g})",
            training_command=shlex.join(command),
            data=[
                {
                    "path": str(data),
                    "sha256": file_sha256(Path(data)),
                    "report": ds.report,
                    "indexed": index,
                }
            ],
            metrics={k2: v for k2, v in metrics.items() if k2 not in ("examples", "baselines")},
            params={
                "embedder": embedder,
                "k": k,
                "selection": selection,
                "temperature": captioner.temperature,
                "self_credit": captioner.self_credit,
                "image_weight": captioner.image_weight,
                "index": index,
                "min_similarity": captioner.min_similarity,
            },
            baselines=table,
            licence_notes=CAPTION_LICENCE_NOTE,
            intended_use="Suggest a caption for a radiologist to edit.",
        )
        captioner.card = card
        captioner.save(out)
        save_card(out, card)
    return metrics


def _reader_flags(reader: dict) -> list[str]:
    """The ROCOv2 options of a training command (the card's ``training_command``)."""
    flags = []
    for flag, value in (("--images", reader.get("images")), ("--concepts", reader.get("concepts"))):
        if value is not None:
            flags += [flag, str(value)]
    return flags + (["--rgb-only"] if reader.get("rgb_only") else [])


def _score_split(
    captioner: RetrievalCaptioner,
    feats: np.ndarray,
    captions: list[str],
    test_feats: np.ndarray,
    refs: list[str],
    bertscore_model: str | None,
    normalisation: str = MEDAI_V1,
) -> tuple[dict, list[str], dict]:
    """The captioner's metrics, its captions and its comparison with the baselines on one
    held-out split (an abstention scores as an empty caption: counted, never skipped)."""
    from medai.reporting.captioning.caption_select import baselines

    name = f"retrieval captioner ({captioner.selection})"
    answered = captioner.caption_features(test_feats)
    systems = {
        name: [p["caption"] or "" for p in answered],
        **baselines(captions, feats, refs, test_feats),
    }
    scored = {
        sys_name: caption_scores(preds, refs, normalisation) for sys_name, preds in systems.items()
    }
    if bertscore_model:
        for sys_name, preds in systems.items():
            scored[sys_name].update(
                bertscore(preds, refs, bertscore_model, normalisation=normalisation)
            )
    metrics = dict(scored[name])
    metrics["abstained"] = sum(p["status"] == "abstained" for p in answered)
    table = compare(
        name,
        scored,
        "rouge_l",
        on=f"one held-out split by case ({len(refs)} pairs)",
        also=("bleu_1", "meteor", "cider") + (("bertscore_f1",) if bertscore_model else ()),
    )
    return metrics, systems[name], table


def _nested_table(
    captioner: RetrievalCaptioner,
    feats: np.ndarray,
    captions: list[str],
    groups: list[str],
    k: int,
    repeats: int,
    fixed: dict,
    one_split: dict,
) -> dict:
    """The card's verdict: the repeated-split comparison, with corrected paired CIs."""
    from medai.reporting.captioning.caption_tuning import nested_comparison

    nested = nested_comparison(feats, captions, k, repeats=repeats, groups=groups, fixed=fixed)
    if "rouge_l_mean" not in nested:
        return one_split
    name = f"retrieval captioner ({captioner.selection})"
    means = nested["rouge_l_mean"]
    constant, nearest = "baseline: best constant caption", "baseline: nearest neighbour's caption"
    table = compare(
        name,
        {
            name: {"rouge_l": means["model"]},
            constant: {"rouge_l": means["constant"]},
            nearest: {"rouge_l": means["nearest"]},
            "ceiling: oracle (best training caption per image)": {"rouge_l": means["oracle"]},
        },
        "rouge_l",
        on=f"mean of {nested['splits']} repeated splits by case, settings "
        + (
            "as given"
            if len(fixed) >= 3
            else "chosen on each split's training "
            "side" + (f" ({', '.join(fixed)} as given)" if fixed else "")
        ),
        paired={constant: nested["vs_constant"]["ci95"], nearest: nested["vs_nearest"]["ci95"]},
    )
    table["paired"] = {key: nested[key] for key in ("vs_constant", "vs_nearest")}
    table["before"] = {
        "word-vote consensus, k=5": {"rouge_l": means["consensus"], **nested["vs_consensus"]},
        "expected overlap, neighbours alone (image weight 1)": {
            "rouge_l": means["neighbours_only"],
            **nested["vs_neighbours_only"],
        },
    }
    if "answered" in nested:
        table["answered_only"] = nested["answered"]
    table["one_split"] = one_split
    return table


def train_blip2_captioner(
    data: Path,
    out: Path,
    base: str,
    test_frac: float = 0.2,
    seed: int = 13,
    normalisation: str | None = None,
    num_workers: int | None = None,
    resume: bool = False,
    **options,
) -> dict:
    """LoRA fine-tune of a local BLIP-2 on a caption-group split (train / validation / test);
    ``resume`` continues from ``out/checkpoints/last`` exactly where the run stopped;
    the test part is captioned and scored with the caption metrics (``normalisation_for``).
    Images are decoded in colour as the loaders draw them, in ``num_workers`` processes
    (``caption_stream.default_workers()`` if None); unreadable ones are skipped and counted
    (each epoch's ``unreadable_images``, and the test part's in the metrics)."""
    from accelerate import PartialState

    from medai.reporting.captioning.blip2 import (
        GENERATION,
        Blip2Captioner,
        Blip2LoraConfig,
        train_blip2,
    )
    from medai.reporting.captioning.blip2_plan import generation_batch, load_config
    from medai.reporting.captioning.caption_stream import CaptionImages

    reader = {k: options.pop(k) for k in ("images", "concepts", "rgb_only") if k in options}
    norm = normalisation_for(reader, normalisation)
    ds = load_captions(data, **reader)
    rest, test = group_split(ds, test_frac=test_frac, seed=seed)
    sub = CaptionDataset([ds.records[i] for i in rest], ds.report)
    tr, va = group_split(sub, test_frac=0.15, seed=seed)
    if not tr or not va or not test:
        raise ValueError(f"{data}: too few caption groups for train/validation/test")
    cfg = Blip2LoraConfig(base=str(base), seed=seed, **options)
    train, val = (
        CaptionImages([sub.records[i].path for i in idx], [sub.records[i].caption for i in idx])
        for idx in (tr, va)
    )
    out.mkdir(parents=True, exist_ok=True)
    history = train_blip2(cfg, train, val, out, resume=resume, num_workers=num_workers)
    if not PartialState().is_main_process:
        return {}
    card = ModelCard(
        task="caption",
        model_type="blip2-lora",
        labels=[],
        name=out.name,
        description=f"BLIP-2 + LoRA captioner on {Path(base).name}",
        training_command=shlex.join(
            [
                "medai",
                "caption",
                "train",
                "--method",
                "blip2",
                "--base",
                str(base),
                "--data",
                str(data),
                "--out",
                str(out),
                *_reader_flags(reader),
            ]
        ),
        data=[
            {
                "path": str(data),
                "sha256": file_sha256(Path(data)),
                "report": ds.report,
                "split": {"train": len(tr), "validation": len(va), "test": len(test)},
            }
        ],
        params={
            "base": Path(base).name,
            "history": history,
            **{k: v for k, v in vars(cfg).items() if k != "base"},
        },
        licence_notes="The adapter is a derivative of the base model (its licence "
        "applies) and of the caption data (see its PROVENANCE).",
        intended_use="Suggest a caption for a radiologist to edit.",
    )
    save_card(out, card)
    captions_at_once = generation_batch(
        load_config(base),
        cfg.plan,
        cfg.batch_size,
        GENERATION["num_beams"],
        GENERATION["max_new_tokens"],
    )
    metrics = score_captioner(
        Blip2Captioner(out, card),
        ds,
        test,
        normalisation=norm,
        batch_size=captions_at_once,
        num_workers=num_workers,
    )
    card.metrics = {k: v for k, v in metrics.items() if k != "examples"}
    save_card(out, card)
    return {
        **metrics,
        "generation_batch_size": captions_at_once,
        "history": history,
        "model_dir": str(out),
    }
