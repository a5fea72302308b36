"""Caption and draft pipelines used by the CLI, the server and the benchmark.

Images are read from disk batch by batch (``caption_stream``), never all at once: a ROCOv2-size
set does not fit in memory as pixels. Scores name their caption normalisation
(``caption_metrics``): ImageCLEFmedical 2025's for the ROCOv2 layout, medai's earlier one for
``pairs.csv``, whose published numbers it reproduces; ``normalisation`` chooses another.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medai.core.baselines import compare, verdict
from medai.core.model_dir import ModelCard, file_sha256, save_card
from medai.reporting.captioning.blip2_plan import generation_batch, load_config
from medai.reporting.captioning.caption_metrics import (
    IMAGECLEF_2025,
    MEDAI_V1,
    NORMALISATIONS,
    bertscore,
    caption_scores,
)
from medai.reporting.captioning.caption_select import SELECTIONS, baselines, scope_floor
from medai.reporting.captioning.caption_tuning import (
    DEFAULT_SETTINGS,
    choose_selection,
    nested_comparison,
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


@dataclass(frozen=True)
class _Part:
    """The readable images of one part of a caption set (training, held out, all): their
    features, with the positions, captions, case groups and ids of the images they are of."""

    feats: np.ndarray
    keep: list[int]
    captions: list[str]
    groups: list[str]
    ids: list[str]


def _readable(
    emb: ImageEmbedder, ds: CaptionDataset, idx: list[int], num_workers: int | None
) -> _Part:
    """``idx``'s readable images, embedded (``_embed``)."""
    feats, keep = _embed(emb, ds, idx, num_workers)
    records = [ds.records[i] for i in keep]
    return _Part(
        feats,
        keep,
        [r.caption for r in records],
        [r.group for r in records],
        [r.id for r in records],
    )


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
    _check_choices(index, selection)
    norm = normalisation_for(reader, normalisation)
    ds = load_captions(data, **reader)
    train_idx, test_idx = group_split(ds, test_frac=test_frac, seed=seed)
    if not train_idx or not test_idx:
        raise ValueError(f"{data}: too few caption groups to hold some out")
    emb = ImageEmbedder(embedder)
    train = _readable(emb, ds, train_idx, num_workers)
    if not train.keep:
        raise ValueError("no readable training images")
    given = _given(temperature=temperature, self_credit=self_credit, image_weight=image_weight)
    fixed = len(given) == 3 or selection != "expected-overlap"
    chosen, validation = _selection_settings(train, k, seed, given, fixed)
    captioner = _retrieval_captioner(emb, train, k, selection, chosen)
    test = _readable(emb, ds, test_idx, num_workers)
    if not test.keep:
        raise ValueError("no readable images to caption")
    metrics, table, examples = _held_out(captioner, train, test, bertscore_model, norm)
    metrics["unreadable_images"] = len(test_idx) - len(test.keep)
    metrics["split"] = {"train": len(train_idx), "test": len(test_idx), "by": "case group"}
    metrics["validation"] = validation
    if repeats > 1 and selection == "expected-overlap":
        table = _nested_table(
            captioner,
            np.concatenate([train.feats, test.feats]),
            train.captions + test.captions,
            train.groups + test.groups,
            k,
            repeats,
            chosen if fixed else given,
            table,
        )
    metrics["baselines"] = table
    metrics["verdict"] = verdict(table)
    metrics["examples"] = examples
    if out is not None:
        if index == "all":  # the same settings, every pair's caption to retrieve
            every = _readable(emb, ds, list(range(len(ds.records))), num_workers)
            captioner = _retrieval_captioner(emb, every, k, selection, _settings_of(captioner))
        command = _retrieval_command(
            data, out, embedder, k, selection, index, test_frac, repeats, given, reader
        )
        _save_retrieval(captioner, out, data, ds, index, command, metrics, embedder)
    return metrics


def _check_choices(index: str, selection: str) -> None:
    """A wrong ``index`` or ``selection`` is refused, naming the valid ones, before any work."""
    if index not in ("train", "all"):
        raise ValueError(f"unknown index {index!r}: train or all")
    if selection not in SELECTIONS:
        raise ValueError(f"unknown caption selection {selection!r}: one of {', '.join(SELECTIONS)}")


def _given(**settings: float | None) -> dict:
    """The selection settings the caller gave (None: to be chosen), in the order given."""
    return {key: value for key, value in settings.items() if value is not None}


def _selection_settings(
    train: _Part, k: int, seed: int, given: dict, fixed: bool
) -> tuple[dict, dict]:
    """The selection's settings and how they were chosen: those ``given`` over the defaults
    when they are ``fixed``, else chosen on the training part by repeated case-group splits
    (``choose_selection``), a setting given still used as given."""
    if fixed:
        return {**DEFAULT_SETTINGS, **given}, {}
    chosen, validation = choose_selection(
        train.feats, train.captions, k, seed=seed, groups=train.groups
    )
    chosen.update(given)  # a setting given is used as given, the others chosen
    validation["chosen"] = chosen
    return chosen, validation


def _retrieval_captioner(
    emb: ImageEmbedder, part: _Part, k: int, selection: str, settings: dict
) -> RetrievalCaptioner:
    """A retrieval captioner over ``part``'s captions, abstaining below the similarity its
    own case groups set (``scope_floor``)."""
    return RetrievalCaptioner(
        part.feats,
        part.captions,
        part.ids,
        emb,
        k,
        selection=selection,
        **settings,
        min_similarity=scope_floor(part.feats, part.captions, groups=part.groups),
    )


def _settings_of(captioner: RetrievalCaptioner) -> dict:
    """The selection settings a captioner runs with (an index of all pairs keeps them)."""
    return {
        "temperature": captioner.temperature,
        "self_credit": captioner.self_credit,
        "image_weight": captioner.image_weight,
    }


def _held_out(
    captioner: RetrievalCaptioner,
    train: _Part,
    test: _Part,
    bertscore_model: str | None,
    normalisation: str,
) -> tuple[dict, dict, list[dict]]:
    """The captioner's scores on the held-out part, its comparison with the baselines there
    and its first ten captions beside their references."""
    metrics, predicted, table = _score_split(
        captioner,
        train.feats,
        train.captions,
        test.feats,
        test.captions,
        bertscore_model,
        normalisation,
    )
    examples = [
        {"id": i, "reference": r, "caption": c}
        for i, r, c in list(zip(test.ids, test.captions, predicted, strict=True))[:10]
    ]
    return metrics, table, examples


def _retrieval_command(
    data: Path,
    out: Path,
    embedder: str,
    k: int,
    selection: str,
    index: str,
    test_frac: float,
    repeats: int,
    given: dict,
    reader: dict,
) -> list[str]:
    """The ``medai caption train`` command that builds this captioner again (its card's
    ``training_command``): the settings given, not those chosen, so a rerun chooses anew."""
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
    for key, value in given.items():  # temperature, self_credit, image_weight, in that order
        command += [f"--{key.replace('_', '-')}", str(value)]
    return command + _reader_flags(reader)


def _save_retrieval(
    captioner: RetrievalCaptioner,
    out: Path,
    data: Path,
    ds: CaptionDataset,
    index: str,
    command: list[str],
    metrics: dict,
    embedder: str,
) -> None:
    """Save the captioner's index in ``out`` with its card: the split's metrics and
    baselines, the data it indexed and the settings it runs with."""
    card = ModelCard(
        task="caption",
        model_type="retrieval",
        labels=[],
        name=out.name,
        description=f"retrieval captioner ({embedder} embeddings, {captioner.selection}"
        f", k={captioner.k}, temperature {captioner.temperature:g})",
        training_command=shlex.join(command),
        data=[
            {
                "path": str(data),
                "sha256": file_sha256(Path(data)),
                "report": ds.report,
                "indexed": index,
            }
        ],
        metrics={key: v for key, v in metrics.items() if key not in ("examples", "baselines")},
        params={
            "embedder": embedder,
            "k": captioner.k,
            "selection": captioner.selection,
            **_settings_of(captioner),
            "index": index,
            "min_similarity": captioner.min_similarity,
        },
        baselines=metrics["baselines"],
        licence_notes=CAPTION_LICENCE_NOTE,
        intended_use="Suggest a caption for a radiologist to edit.",
    )
    captioner.card = card
    captioner.save(out)
    save_card(out, card)


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
