"""Imaging train/evaluate pipelines: data → patient split → fit → thresholds on validation →
held-out test metrics → model directory with its card and plots.

Evaluation streams too: a split is decoded a chunk at a time (``EVAL_CHUNK`` images, each
reduced to the model's input size at once), so memory stays bounded however large the split;
only per-image probabilities and gate features are kept."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from medai.core import model_dir
from medai.core.model_dir import ModelCard, file_sha256, read_card, reseal, save_card
from medai.core.trainer import default_workers
from medai.imaging.datasets import (
    DatasetFormatError,
    ImageDataset,
    load_dataset,
    patient_split,
    thumbnail_groups,
)
from medai.imaging.evaluate import (
    choose_thresholds,
    evaluate_arrays,
    write_metrics,
    write_plots,
)
from medai.imaging.export import INT8_FILE, ONNX_FILE, OnnxModel, quantize_int8
from medai.imaging.gate import FeatureGate
from medai.imaging.io import ImageInputError, load_image
from medai.imaging.labels import space
from medai.imaging.networks import to_tensor
from medai.imaging.operating import choose_policy, load_policy, write_policy
from medai.imaging.predict import ImagingPredictor
from medai.imaging.train import ImagingTrainConfig, save_model, train_model
from medai.imaging.train import augmentation as check_augmentation

IMAGING_LICENCE_NOTE = (
    "Trained on the images recorded under 'data'. Public imaging sets often carry "
    "non-commercial or unstated licences (see each source's PROVENANCE); check them before "
    "redistributing the model."
)


EVAL_CHUNK = 256  # images decoded at a time when a split is scored


def _subset(ds: ImageDataset, idx: np.ndarray) -> ImageDataset:
    return ds.subset(idx)


def split_groups(ds: ImageDataset) -> np.ndarray | None:
    """Patients where the data has them; otherwise near-identical-thumbnail groups (refused
    above ``THUMBNAIL_GROUP_LIMIT`` images, before any is read: add a patient column)."""
    if ds.has_patients():
        return None
    return thumbnail_groups([ds.records.path(i) for i in range(len(ds.records))])


class _DecodedImages(Dataset):
    """Item i: (i, pixels or None, why not) — pixels reduced to ``size``² when given."""

    def __init__(self, ds: ImageDataset, size: int | None) -> None:
        self.records, self.size = ds.records, size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            pixels = load_image(self.records.path(i)).pixels
        except (ImageInputError, OSError) as exc:
            return i, None, str(exc)
        if self.size:
            # the model's own resize (``to_tensor``); resizing again to the same size is an
            # exact copy, so predictions equal those from the full-resolution pixels
            pixels = to_tensor(pixels, self.size)[0].numpy()
        return i, pixels, None


def _as_list(items: list) -> list:
    return items


def readable_chunks(
    ds: ImageDataset, size: int | None = None, chunk: int = EVAL_CHUNK, workers: int = 0
) -> Iterator[tuple[list[np.ndarray], list[int], dict]]:
    """``readable`` a chunk at a time, decoded by ``workers`` processes (0: this one); with
    ``size``, each image reduced to the model's input size as soon as it is decoded."""
    from torch.utils.data import DataLoader

    loader = DataLoader(
        _DecodedImages(ds, size), batch_size=chunk, num_workers=workers, collate_fn=_as_list
    )
    for items in loader:
        yield (
            [p for _, p, _ in items if p is not None],
            [i for i, p, _ in items if p is not None],
            {str(ds.records[i].path): err for i, p, err in items if p is None},
        )


def readable(ds: ImageDataset) -> tuple[list[np.ndarray], list[int], dict]:
    """Decoded pixels of the images that load, their indices, and why the others did not
    (every image at full resolution in memory: for small sets; ``readable_chunks`` streams)."""
    pixels, keep, errors = [], [], {}
    for p, k, e in readable_chunks(ds):
        pixels += p
        keep += k
        errors.update(e)
    return pixels, keep, errors


def predict_streamed(
    predictor: ImagingPredictor, ds: ImageDataset, workers: int = 0
) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    """Probabilities and gate features of the readable images, a chunk at a time; their
    indices and how many could not be read."""
    probs, feats, keep, unreadable = [], [], [], 0
    for pixels, idx, errors in readable_chunks(ds, predictor.cfg.image_size, workers=workers):
        if pixels:
            p, f = predictor.proba_and_features(pixels)
            probs.append(p)
            feats.append(f)
        keep += idx
        unreadable += len(errors)
    if not probs:
        return np.zeros((0, len(predictor.labels))), np.zeros((0, 0)), keep, unreadable
    return np.concatenate(probs), np.concatenate(feats), keep, unreadable


def score(
    predictor: ImagingPredictor, ds: ImageDataset, n_boot: int = 1000, workers: int = 0
) -> tuple[dict, np.ndarray, np.ndarray]:
    probs, feats, keep, unreadable = predict_streamed(predictor, ds, workers)
    cols = [ds.labels.index(lab) for lab in predictor.labels]
    targets = ds.targets()[keep][:, cols]
    sources = [ds.records.source(i) for i in keep]
    metrics = evaluate_arrays(
        ds.task, predictor.labels, targets, probs, predictor.policy, sources, n_boot=n_boot
    )
    metrics["unreadable_images"] = unreadable
    if predictor.gate is not None and len(feats):
        # metrics above cover every image; this says how many the gate would have let through
        metrics["gate_acceptance"] = predictor.gate.acceptance(feats)
    return metrics, targets, probs


def refit_gate(directory: Path, data: Path, seed: int = 13) -> dict:
    """(Re)fit the out-of-distribution gate of an existing model directory on the training and
    validation part of the split it was trained on (e.g. a model trained before gates)."""

    predictor = model_dir.load(directory)
    ds = load_dataset(data, predictor.cfg.task)
    tr, va, te = patient_split(ds, seed=seed, groups=split_groups(ds))
    predictor.gate = fit_gate(predictor, _subset(ds, tr), _subset(ds, va))
    predictor.gate.save(directory)
    feats = predict_streamed(predictor, _subset(ds, te))[1]
    acceptance = predictor.gate.acceptance(feats)
    card = read_card(directory)
    card.params["gate"] = {"threshold": predictor.gate.threshold, "test_acceptance": acceptance}
    save_card(directory, card)
    return {"model_dir": str(directory), **card.params["gate"]}


def _operating_points(
    directory: Path,
    task: str,
    labels: list[str],
    targets: np.ndarray,
    probs: np.ndarray,
    card: ModelCard,
) -> dict[str, float]:
    """Choose and write ``operating_points.json`` (validation, through the decision); the card
    keeps a copy of the thresholds and the validation report."""

    start = choose_thresholds(targets, probs, labels)
    report = choose_policy(space(task), labels, targets, probs, start)
    if report.get("met") is False:  # chosen all the same (the closest point), never silently
        print(
            f"warning: no operating point meets its target on the {report.get('n_validation')} "
            f"validation images ({', '.join(report.get('failed') or [])} not met: "
            f"{report.get('rule')}); the card and operating_points.json say so (met: false)",
            file=sys.stderr,
        )
    write_policy(directory, report)
    card.params["operating_points"] = {k: v for k, v in report.items() if k != "thresholds"}
    return dict(report["thresholds"])


def refit_operating_points(directory: Path, data: Path, seed: int = 13) -> dict:
    """Re-choose an existing model's operating points on the validation part of the split it
    was trained on (same seed), e.g. after the decision rules changed; reseals the card."""

    predictor = model_dir.load(directory)
    ds = load_dataset(data, predictor.cfg.task)
    _, va, _ = patient_split(ds, seed=seed, groups=split_groups(ds))
    _, targets, probs = score(predictor, _subset(ds, va), n_boot=0)
    card = read_card(directory)
    card.thresholds = _operating_points(
        directory, predictor.cfg.task, predictor.labels, targets, probs, card
    )
    save_card(directory, card)
    return {
        "model_dir": str(directory),
        **card.params["operating_points"],
        "thresholds": card.thresholds,
    }


def fit_gate(
    predictor: ImagingPredictor, train: ImageDataset, val: ImageDataset, workers: int = 0
) -> FeatureGate:
    """The out-of-distribution gate on this model's embeddings of its own training images
    (decoded a chunk at a time; only the pooled features are kept)."""
    feats = [predict_streamed(predictor, ds, workers)[1] for ds in (train, val)]
    return FeatureGate.fit(feats[0], feats[1])


def card_metrics(metrics: dict) -> dict:
    """The test-split summary a model card keeps of a full metrics dict."""
    return {
        "split": "test",
        **{k: metrics.get(k) for k in ("n", "macro_auroc", "accuracy", "macro_f1")},
        "per_label_auroc": {k: v["auroc"] for k, v in metrics["per_label"].items()},
        "per_source": metrics.get("per_source"),
    }


def train_imaging(
    task: str,
    data: Path,
    out: Path,
    backbone: str = "efficientnet-lite0",
    weights: str | None = None,
    epochs: int = 10,
    batch_size: int = 16,
    learning_rate: float = 3e-4,
    patience: int = 3,
    image_size: int = 224,
    seed: int = 13,
    resume: bool = False,
    name: str = "",
    trainable: str = "all",
    probe_epochs: int = 0,
    backbone_lr_scale: float = 1.0,
    split_seed: int | None = None,
    augmentation: str = "standard",
    num_workers: int | None = None,
    cache_dir: str | Path | None = None,
    cancel=None,
    progress=None,
) -> dict:
    """Split, train, set operating points and the gate, evaluate on the test split and save
    the sealed directory; ``cancel``/``progress``: a job's hooks (``core.trainer.fit``).
    ``split_seed`` (default: ``seed``) fixes the patient split apart from the training seed,
    so members of a seed ensemble share one split and one validation set. ``num_workers``:
    image-decoding processes (default: from the CPU count; results do not depend on it).
    ``cache_dir``: keep decoded, resized images there for the epochs after the first
    (``imaging.decode_cache``)."""

    check_augmentation(augmentation)
    split_seed = seed if split_seed is None else split_seed
    ds = load_dataset(data, task)
    tr, va, te = patient_split(ds, seed=split_seed, groups=split_groups(ds))
    train, val, test = _subset(ds, tr), _subset(ds, va), _subset(ds, te)
    labels = train.annotated_labels(min_positives=min(5, max(1, len(train) // 20)))
    # one class per image (softmax) needs two classes to choose between; multi-label, one
    if len(labels) < (1 if space(task).multilabel else 2):
        raise ValueError(f"{data}: not enough annotated labels to train ({labels})")
    unmeasured = unmeasured_labels(labels, val, test)
    for label, counts in unmeasured.items():
        print(  # beside the epochs' lines: the run goes on, its card keeps the warning
            f"warning: {label!r} has {counts['validation']} validation and {counts['test']} "
            "test images: its operating point and test metrics cannot be measured; add images "
            "of it (each patient's stay on one side of the split)",
            file=sys.stderr,
        )
    cfg = ImagingTrainConfig(
        task=task,
        backbone=backbone,
        weights=weights,
        labels=labels,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        patience=patience,
        image_size=image_size,
        seed=seed,
        trainable=trainable,
        probe_epochs=probe_epochs,
        backbone_lr_scale=backbone_lr_scale,
        augmentation=augmentation,
        num_workers=default_workers() if num_workers is None else num_workers,
        cache_dir=str(cache_dir) if cache_dir else None,
    )
    workers = cfg.num_workers
    some_readable(train, cfg.image_size)
    model, history = train_model(
        cfg, train, val, out, resume=resume, cancel=cancel, progress=progress
    )
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return {}
    card = ModelCard(
        task=task,
        model_type=backbone,
        labels=labels,
        name=name or out.name,
        description=f"{task} findings ({backbone}), {len(labels)} labels",
        training_command=shlex.join(
            [
                "medai",
                "imaging",
                "train",
                "--task",
                task,
                "--data",
                str(data),
                "--out",
                str(out),
                "--backbone",
                backbone,
                "--epochs",
                str(epochs),
                "--batch-size",
                str(batch_size),
                "--learning-rate",
                str(learning_rate),
                "--image-size",
                str(image_size),
                "--patience",
                str(patience),
                "--trainable",
                trainable,
                "--probe-epochs",
                str(probe_epochs),
                "--backbone-lr-scale",
                str(backbone_lr_scale),
                "--seed",
                str(seed),
            ]
            + (["--split-seed", str(split_seed)] if split_seed != seed else [])
            + (["--augment", augmentation] if augmentation != "standard" else [])
        ),
        data=[
            {
                "path": str(data),
                "sha256": file_sha256(data) if data.is_file() else None,
                "report": ds.report(),
                "split": {"train": len(tr), "validation": len(va), "test": len(te)},
                "unmeasured_labels": unmeasured,
            }
        ],
        params={
            "epochs_run": len(history),
            "best_epoch": min(history, key=lambda h: h["val_loss"])["epoch"] if history else None,
        },
        licence_notes=IMAGING_LICENCE_NOTE,
        intended_use="Suggest findings for a radiologist to review.",
    )
    predictor = ImagingPredictor(model, cfg, card)
    _, val_targets, val_probs = score(predictor, val, n_boot=0, workers=workers)
    out.mkdir(parents=True, exist_ok=True)
    card.thresholds = _operating_points(out, task, labels, val_targets, val_probs, card)
    predictor.policy = load_policy(out, card, labels)
    predictor.thresholds = dict(predictor.policy.thresholds)
    predictor.gate = fit_gate(predictor, train, val, workers=workers)
    predictor.gate.save(out)
    metrics, targets, probs = score(predictor, test, workers=workers)
    card.metrics = card_metrics(metrics)
    card.params["gate"] = {
        "threshold": predictor.gate.threshold,
        "test_acceptance": metrics.get("gate_acceptance"),
    }
    save_model(model, cfg, out)
    save_card(out, card)
    write_metrics(metrics, out / "evaluation")
    files = write_plots(metrics, targets, probs, labels, out / "evaluation", history)
    return {
        "model_dir": str(out),
        "labels": labels,
        "thresholds": card.thresholds,
        "test": card.metrics,
        "history": history,
        "files": files,
        "unmeasured_labels": unmeasured,
        "operating_point_met": card.params["operating_points"].get("met"),
    }


READABLE_SAMPLE = 16
"""How many training images are decoded before training to check that some can be read."""


def some_readable(train: ImageDataset, size: int, seed: int = 0) -> None:
    """Refuse a training set none of whose sampled images decodes (a folder of broken or
    mislabelled files) before an epoch runs on nothing and a checkpoint is written: up to
    ``READABLE_SAMPLE`` images, decoded as training decodes them; ``DatasetFormatError``
    naming one image and why."""
    order = np.random.default_rng(seed).permutation(len(train.records))[:READABLE_SAMPLE]
    errors: dict = {}
    for pixels, _idx, failed in readable_chunks(train.subset(np.sort(order)), size):
        if pixels:
            return
        errors.update(failed)
    first = next(iter(errors.items()), None)
    raise DatasetFormatError(
        f"none of the {len(order)} training images tried can be read"
        + (f" (e.g. {Path(first[0]).name}: {first[1]})" if first else "")
    )


def unmeasured_labels(labels: list[str], val, test) -> dict[str, dict[str, int]]:
    """The labels a run learns with no positive image in its validation or test split (a
    class folder of one or two images): their threshold is chosen on nothing and their test
    metrics are empty, which a summary's macro figures would otherwise hide."""
    counts = {}
    for name, part in (("validation", val), ("test", test)):
        targets = part.targets()
        counts[name] = {
            lab: int((targets[:, part.labels.index(lab)] == 1).sum()) if len(targets) else 0
            for lab in labels
        }
    return {
        lab: {"validation": counts["validation"][lab], "test": counts["test"][lab]}
        for lab in labels
        if not counts["validation"][lab] or not counts["test"][lab]
    }


def quantize_checked(
    predictor: ImagingPredictor,
    data: Path,
    max_auroc_drop: float = 0.005,
    calibration_images: int = 128,
    seed: int = 0,
) -> dict:
    """Static int8 ONNX model, calibrated on part of the images of ``data`` (at most half) and
    kept next to the fp32 one only if its macro AUROC on the *other* images is no more than
    ``max_auroc_drop`` below fp32's on those same images (never judged on what it was
    calibrated on)."""
    import copy

    import torch

    directory = predictor.directory
    if directory is None:
        raise ValueError("quantizing needs a predictor loaded from its model directory")
    ds = load_dataset(data, predictor.cfg.task)
    pixels, keep, _ = readable(ds)
    if not pixels:
        raise ValueError(f"{data}: no readable images to calibrate on")
    if len(pixels) < 4:
        raise ValueError(
            f"{data}: at least 4 readable images are needed (half calibrate, half judge)"
        )
    perm = np.random.default_rng(seed).permutation(len(pixels))
    n_cal = max(1, min(calibration_images, len(pixels) // 2))
    order, judge = perm[:n_cal], np.sort(perm[n_cal:])
    calib = torch.stack([to_tensor(pixels[i], predictor.cfg.image_size) for i in order])
    out = quantize_int8(directory / ONNX_FILE, calib, directory / INT8_FILE)
    cols = [ds.labels.index(lab) for lab in predictor.labels]
    targets = ds.targets()[keep][:, cols][judge]
    pixels = [pixels[i] for i in judge]
    fp32 = copy.copy(predictor)
    fp32.model = OnnxModel(directory / ONNX_FILE)
    q = copy.copy(predictor)
    q.model = OnnxModel(out)
    p32, p8 = fp32.predict_proba_pixels(pixels), q.predict_proba_pixels(pixels)
    thr = np.array([predictor.thresholds[lab] for lab in predictor.labels])
    a32, a8 = (
        evaluate_arrays(ds.task, predictor.labels, targets, p, predictor.thresholds, n_boot=0)[
            "macro_auroc"
        ]
        for p in (p32, p8)
    )
    accepted = a32 is not None and a8 is not None and a32 - a8 <= max_auroc_drop
    if not accepted:
        out.unlink()

    reseal(directory)
    return {
        "path": str(out),
        "accepted": bool(accepted),
        "n": len(pixels),
        "calibration_images": len(order),
        "judged_on": "images not used for calibration",
        "macro_auroc_fp32": a32,
        "macro_auroc_int8": a8,
        "max_abs_prob_diff": float(np.abs(p32 - p8).max()),
        "positive_agreement": float(np.mean((p32 >= thr) == (p8 >= thr))),
    }
