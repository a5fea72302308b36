"""`medai imaging …`: train, evaluate, predict, explain, fit-gate, fit-scope, operating-points,
fit-series-rule, export."""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from medai.cli.common import (
    JsonFlag,
    ModelOpt,
    _emit,
    _guard,
    batch_output,
    relaunched,
    report_batch,
    track,
)
from medai.core import model_dir
from medai.core.limited_read import InputFileError, read_limited
from medai.core.task_registry import default_task
from medai.imaging.datasets import load_dataset
from medai.imaging.evaluate import write_metrics, write_plots
from medai.imaging.explain import explain
from medai.imaging.export import INT8_FILE, OnnxModel, export_model_dir
from medai.imaging.io import MAX_BYTES
from medai.imaging.labels import space
from medai.imaging.networks import MIN_IMAGE_SIZE
from medai.imaging.pipeline import (
    quantize_checked,
    refit_gate,
    refit_operating_points,
    score,
    train_imaging,
)
from medai.imaging.scope_fit import fit_scope
from medai.imaging.series_fit import fit_series_rule
from medai.services import batch as batch_service
from medai.services import study_read
from medai.services.model_handles import model_folder

imaging_app = typer.Typer(no_args_is_help=True)  # its help: COMMANDS in medai.cli
TaskOpt = Annotated[
    str, typer.Option("--task", help="An imaging task (cxr, mri or one a hospital registers).")
]
# a command that has a default task takes the task registry's (``Task.default``), not a name
# of its own
DefaultTaskOpt = Annotated[
    str | None,
    typer.Option("--task", help="An imaging task (default: the registry's default imaging task)."),
]
OnnxOpt = Annotated[bool, typer.Option(help="Run with ONNX Runtime.")]
Int8Opt = Annotated[bool, typer.Option(help="Run the int8 ONNX model (see export --int8).")]


def _load_imaging(task: str | None, model: str | None, onnx: bool = False, int8: bool = False):
    """The task's imaging predictor (no task: the ``--model``'s own, else the registry's
    default imaging task). ``--onnx`` requires an exported ``model.onnx`` (never written here:
    a predictor does not write into a model directory); without it the model runs on ONNX
    Runtime when a current export exists, else on PyTorch."""

    asked = task
    task = default_task("imaging").name if task is None else task
    space(task)  # validates the task name

    directory = model_folder(model, task)
    predictor = model_dir.load(directory, runtime="onnx" if onnx else "auto")
    if asked is None and model is not None:
        space(predictor.cfg.task)  # a model given alone: its own task (an imaging one)
    elif predictor.cfg.task != task:
        raise ValueError(f"{directory} is a {predictor.cfg.task} model, not {task}")
    if int8:
        if not (directory / INT8_FILE).is_file():
            raise FileNotFoundError(
                f"{directory / INT8_FILE} does not exist: create it with "
                f"`medai imaging export --int8 --data LABELLED_IMAGES`"
            )
        predictor.model, predictor.runtime = OnnxModel(directory / INT8_FILE), "onnx-int8"
    return predictor


@imaging_app.command("train")
def imaging_train(
    task: TaskOpt,
    data: Annotated[
        Path, typer.Option(help="Manifest CSV, NIH Data_Entry CSV, CheXpert CSV or class folder.")
    ],
    out: Annotated[Path, typer.Option(help="Model directory to create.")],
    backbone: Annotated[
        str,
        typer.Option(
            help="efficientnet-lite0 (ImageNet-pretrained) | densenet121 (MONAI, from scratch or "
            "--weights) | hf:DIR"
        ),
    ] = "efficientnet-lite0",
    weights: Annotated[str | None, typer.Option(help="Your weights file for the backbone.")] = None,
    epochs: int = 10,
    batch_size: int = 16,
    learning_rate: float = 3e-4,
    patience: int = 3,
    image_size: Annotated[
        int,
        typer.Option(help=f"Input side in pixels (at least {MIN_IMAGE_SIZE}).", min=MIN_IMAGE_SIZE),
    ] = 224,
    seed: int = 13,
    trainable: Annotated[
        str,
        typer.Option(
            help="What learns after the probe epochs: head (linear probe on frozen features) | "
            "top (last backbone stage + head) | all."
        ),
    ] = "all",
    probe_epochs: Annotated[
        int,
        typer.Option(
            help="Head-only epochs before --trainable takes over (linear probe, then fine-tune)."
        ),
    ] = 0,
    backbone_lr_scale: Annotated[
        float, typer.Option(help="Backbone learning rate = --learning-rate × this.")
    ] = 1.0,
    split_seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of the patient split (default: --seed); fix it to train seed-ensemble "
            "members on one split."
        ),
    ] = None,
    augment: Annotated[
        str, typer.Option(help="Augmentation strength: standard | strong.")
    ] = "standard",
    resume: bool = False,
    num_processes: Annotated[int, typer.Option(help="Processes/GPUs (Accelerate).")] = 1,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Image-decoding worker processes per GPU/process (default: the CPUs shared "
            "among the processes, one left over, at most 16; 0 decodes in the training "
            "process). Speed only: results do not depend on it.",
            min=0,
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Keep decoded, resized images in this folder: the epochs after the first "
            "read them instead of decoding every film again (~100 KB an image at 224 px; the "
            "decode was 80 % of a 1024² film's CPU cost). Safe to share between runs of the "
            "same image size; a changed file is decoded again."
        ),
    ] = None,
    name: str = "",
    as_json: JsonFlag = False,
) -> None:
    """Train an imaging model; writes weights, model card, metrics and plots to --out."""
    if relaunched(num_processes):
        return

    with _guard(as_json), contextlib.redirect_stdout(sys.stderr):
        summary = train_imaging(
            task,
            data,
            out,
            backbone=backbone,
            weights=weights,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            patience=patience,
            image_size=image_size,
            seed=seed,
            resume=resume,
            name=name,
            trainable=trainable,
            probe_epochs=probe_epochs,
            backbone_lr_scale=backbone_lr_scale,
            split_seed=split_seed,
            augmentation=augment,
            num_workers=workers,
            cache_dir=cache_dir,
        )
    if not summary:  # a non-main process of a distributed run
        return
    track(
        summary,
        task,
        dict(
            task=task,
            data=data,
            backbone=backbone,
            weights=weights,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            patience=patience,
            image_size=image_size,
            seed=seed,
            trainable=trainable,
            probe_epochs=probe_epochs,
            backbone_lr_scale=backbone_lr_scale,
        ),
    )
    t = summary["test"]
    _emit(
        summary,
        as_json,
        f"saved {summary['model_dir']}: test macro AUROC {_rounded(t['macro_auroc'])}, "
        f"accuracy {_rounded(t['accuracy'])}"
        + (
            f"; not measured (no validation or test image): {', '.join(summary['unmeasured_labels'])}"
            if summary.get("unmeasured_labels")
            else ""
        )
        + (
            "; the operating point does not meet its target on validation (met: false)"
            if summary.get("operating_point_met") is False
            else ""
        ),
    )


def _rounded(value) -> object:
    return round(value, 3) if isinstance(value, float) else value


@imaging_app.command("evaluate")
def imaging_evaluate(
    task: TaskOpt,
    data: Annotated[Path, typer.Option(help="Labelled images (manifest/CSV/folder).")],
    model: ModelOpt = None,
    out: Annotated[Path | None, typer.Option(help="Folder for metrics.json and plots.")] = None,
    onnx: OnnxOpt = False,
    int8: Int8Opt = False,
    as_json: JsonFlag = False,
) -> None:
    """Per-label AUROC (95 % CI), thresholds, accuracy, macro-F1, per-source breakdown."""
    with _guard(as_json):
        predictor = _load_imaging(task, model, onnx, int8)
        ds = load_dataset(data, task)
        metrics, targets, probs = score(predictor, ds)
        t = ds.targets()
        metrics["data"] = {
            **ds.report(),
            "labels_not_in_model": sorted(
                lab
                for j, lab in enumerate(ds.labels)
                if lab not in predictor.labels and (t[:, j] == 1).any()
            ),
        }
        metrics["data"]["unknown_label_rows"] = sum(ds.unknown_labels.values())
        # the exact model measured, as every stored AI result names it
        metrics["model"] = predictor.identity.model_dump(mode="json")
        if out is not None:
            write_metrics(metrics, out)
            metrics["files"] = write_plots(metrics, targets, probs, predictor.labels, out)
    _emit(
        metrics,
        as_json,
        f"n={metrics['n']} macro_auroc={metrics['macro_auroc']} "
        f"accuracy={metrics['accuracy']} macro_f1={metrics['macro_f1']}",
    )


@imaging_app.command("predict")
def imaging_predict(
    image: Annotated[
        Path,
        typer.Argument(
            help="PNG, JPEG or DICOM file; or a folder of them, "
            "or a manifest CSV (a file column): a batch."
        ),
    ],
    task: DefaultTaskOpt = None,
    model: ModelOpt = None,
    onnx: OnnxOpt = False,
    int8: Int8Opt = False,
    out: Annotated[
        Path | None,
        typer.Option(
            help="A batch: write the JSON lines here (default: standard output); --series: "
            "the study's result."
        ),
    ] = None,
    series: Annotated[
        bool,
        typer.Option(
            "--series",
            help="The folder (or multi-frame file) is one study's DICOM series: every series "
            "read to one decision with its key slices, as the platform reads a study.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Findings with probabilities and thresholds; refuses images of the wrong kind. Given a
    folder or a manifest, every image of it (the model loaded once): JSON lines out, one per
    image, a refused or unreadable image reported on its line; the summary at the end. With
    ``--series``, a folder of DICOM files is one study instead: one result, its ``read``
    naming the series read, the key slices and each series' account.

    Exit status: 0 findings (or a batch done), 3 refused (wrong kind of image; the reason is
    printed), 2 the file cannot be used (missing, not a regular file, too large, not an
    image), 1 the model cannot be loaded."""

    if series:
        _imaging_series(image, task, model, onnx, int8, out, as_json)
        return
    if image.is_dir() or image.suffix.lower() in (".csv", ".tsv"):
        _imaging_batch(image, task, model, onnx, int8, out, as_json)
        return
    with _guard(as_json):
        data = read_limited(image, MAX_BYTES)
        result = _load_imaging(task, model, onnx, int8).predict(data).model_dump(mode="json")
    if result["refused"]:
        human = f"refused: {result['reason']}"
    else:
        human = "\n".join(
            f"{'+' if f['positive'] else ' '} {f['probability']:.3f} "
            f"(thr {f['threshold']:.3f})  {f['label']}"
            for f in result["findings"]
        )
    _emit(result, as_json, human)
    if result["refused"]:
        raise typer.Exit(3)


def _imaging_series(
    source: Path,
    task: str | None,
    model: str | None,
    onnx: bool,
    int8: bool,
    out: Path | None,
    as_json: bool,
) -> None:
    with _guard(as_json):
        if not source.exists():
            raise InputFileError(f"{source}: no such file or folder")
        if not source.is_dir() and not source.is_file():
            raise InputFileError(f"{source}: not a regular file (a device, FIFO or socket)")
        # one entry past the limit is enough to refuse a folder by its count (read_files);
        # what is not a file (a folder, a FIFO, a device, a broken link) is named, not read
        listed = source.iterdir() if source.is_dir() else iter([source])
        entries = sorted(itertools.islice(listed, study_read.MAX_FILES + 1))
        predictor = _load_imaging(task, model, onnx, int8)
        got, skipped, files = study_read.read_files(predictor, entries)
    result = dict(got.payload or {})
    read = result.get("read") or {}
    keys = read.get("key_instances") or []
    # the key slices as a person finds them: their files, and their numbers in the series
    # (a copy of a slice counts once, as for the AI and the viewer)
    copies = {str(d.get("instance")) for d in read.get("duplicates") or []}
    counted = (k for k in read.get("read_instances") or [] if k not in copies)
    number = {k: i for i, k in enumerate(counted, start=1)}
    result["key_files"] = [_file_of(k, files) for k in keys]
    result["skipped"] = skipped
    if out is not None:  # the result as a file, as a batch's --out writes its lines
        with batch_output(out, source if source.is_file() else None) as sink:
            sink.write(json.dumps(result, ensure_ascii=False) + "\n")
    if got.refusal is not None:
        _emit(result, as_json, f"refused: {got.refusal.message}")
        raise typer.Exit(3)
    decision = result.get("decision") or {}
    found = decision.get("primary") or ", ".join(decision.get("candidates") or []) or "-"
    numbers = ", ".join(str(number[k]) for k in keys if k in number) or "none"
    film = read.get("rule") == "single_image"  # a chest study: the film chosen, and why
    why = (read.get("series_choice") or {}).get("why") or ""
    lines = [
        f"{decision.get('state')}: {found} (series {read.get('series_uid')})",
        f"read {', '.join(result['key_files']) or '-'}: {why}"
        if film
        else f"read {read.get('instances_read')} of {read.get('instances_in_series')} slices; "
        f"key slices {numbers}: {', '.join(result['key_files']) or '-'}",
        *(
            f"series {a.get('series_uid')} ({a.get('description') or '-'}): "
            + (f"read, {a.get('state')}" if a.get("read") else f"not read, {a.get('reason')}")
            for a in read.get("series") or []
        ),
        *(f"skipped {s['file']}: {s['reason']}" for s in skipped),
    ]
    _emit(result, as_json, "\n".join(lines))


def _file_of(key: str, files: dict[str, str]) -> str:
    """A slice's file name (``name#frame`` for a frame of a multi-frame file)."""
    sop, _, frame = key.partition("#")
    return Path(files[sop]).name + (f"#{frame}" if frame else "")


def _imaging_outcome(result: dict) -> list[str]:
    if result["refused"]:
        return [f"refused:{result.get('reason_code') or 'refused'}"]
    return ["analysed"] + [
        f"positive:{label}" for label in (result.get("decision") or {}).get("positives", [])
    ]


def _imaging_batch(
    source: Path,
    task: str | None,
    model: str | None,
    onnx: bool,
    int8: bool,
    out: Path | None,
    as_json: bool,
) -> None:

    with _guard(as_json), batch_output(out, source if source.is_file() else None) as sink:
        predictor = _load_imaging(task, model, onnx, int8)
        items = list(batch_service.images(source))  # paths only: a known total for the bar
        summary = batch_service.run(
            iter(items),
            lambda item: predictor.predict(read_limited(item.value, MAX_BYTES)).model_dump(
                mode="json"
            ),
            _imaging_outcome,
            sink,
            total=len(items),
        )
    report_batch(summary, out, as_json)


@imaging_app.command("explain")
def imaging_explain(
    image: Annotated[Path, typer.Argument(help="PNG, JPEG or DICOM file.")],
    out: Annotated[Path, typer.Option(help="PNG to write.")],
    task: DefaultTaskOpt = None,
    label: Annotated[
        str | None, typer.Option(help="Label to explain (default: the most probable).")
    ] = None,
    model: ModelOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Grad-CAM heatmap overlay for one label."""
    with _guard(as_json):
        r = explain(
            _load_imaging(task, model), read_limited(image, MAX_BYTES), out, label, on_film=True
        )  # a file a person opens: the film with the overlay on it
    lab, p = r["label"], r["probability"]
    _emit(
        {"out": str(out), "label": lab, "probability": p},
        as_json,
        f"wrote {out} ({lab}, p={p:.3f})",
    )


@imaging_app.command("fit-gate")
def imaging_fit_gate(
    task: TaskOpt,
    data: Annotated[Path, typer.Option(help="The data the model was trained on (same split).")],
    model: ModelOpt = None,
    seed: int = 13,
    as_json: JsonFlag = False,
) -> None:
    """(Re)fit the learned wrong-kind-of-image gate of a model (gate.npz)."""
    with _guard(as_json), contextlib.redirect_stdout(sys.stderr):
        directory = _load_imaging(task, model).directory
        result = refit_gate(directory, data, seed)
    _emit(
        result,
        as_json,
        f"gate threshold {result['threshold']:.2f}; accepts "
        f"{result['test_acceptance']:.1%} of the held-out test images",
    )


@imaging_app.command("fit-scope")
def imaging_fit_scope(
    task: TaskOpt,
    data: Annotated[
        Path,
        typer.Option(
            help="The data the model was trained on (same split); a manifest with a "
            "`view` column also fits the view check."
        ),
    ],
    model: ModelOpt = None,
    seed: int = 13,
    view_check: Annotated[
        bool, typer.Option(help="Fit the lateral-film check (chest tasks, a `view` column).")
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Fit a model's scope: the out-of-scope threshold on its validation split
    (out_of_scope.json) and, for a chest task, the image check of a film's view
    (view_check.npz); recorded in the card, which is resealed."""

    with _guard(as_json), contextlib.redirect_stdout(sys.stderr):
        directory = _load_imaging(task, model).directory
        result = fit_scope(directory, data, seed, view_check=view_check)
    oos = result["out_of_scope"]
    check = result.get("view_check") or {}
    cv = check.get("cross_validated") or {}
    _emit(
        result,
        as_json,
        f"out-of-scope threshold {oos['threshold']:.2f} ({oos['quantile']:.0%} of "
        f"{oos['n']} validation images); view check: "
        + (
            f"{cv['laterals_caught']}/{cv['laterals']} laterals caught, "
            f"{cv['frontals_flagged']}/{cv['frontals']} frontals flagged (cross-validated)"
            if "laterals" in cv
            else check.get("skipped") or "not fitted"
        ),
    )


@imaging_app.command("operating-points")
def imaging_operating_points(
    task: TaskOpt,
    data: Annotated[Path, typer.Option(help="The data the model was trained on (same split).")],
    model: ModelOpt = None,
    seed: int = 13,
    as_json: JsonFlag = False,
) -> None:
    """Re-choose a model's operating points on its validation split, through the task's
    decision rules (operating_points.json, with bootstrap intervals); reseals the card."""
    with _guard(as_json), contextlib.redirect_stdout(sys.stderr):
        directory = _load_imaging(task, model).directory
        result = refit_operating_points(directory, data, seed)
    few = ", ".join(result["few_positives"]) or "none"
    _emit(
        result,
        as_json,
        f"operating points chosen on {result['n_validation']} validation "
        f"images; validation macro-F1 {result['validation_macro_f1']:.3f}; "
        f"labels decided by fewer than 10 validation positives: {few}",
    )


@imaging_app.command("fit-series-rule")
def imaging_fit_series_rule(
    task: TaskOpt,
    data: Annotated[Path, typer.Option(help="The data the model was trained on (same split).")],
    model: ModelOpt = None,
    seed: int = 13,
    per_cell: Annotated[
        int, typer.Option(help="Validation series per tumour class, kind and length.")
    ] = 20,
    dry_run: Annotated[
        bool, typer.Option(help="Print the table; write nothing into the model directory.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Choose how a series' slices become one study decision (imaging.series rules), on
    validation series built from the model's validation split; records it in
    operating_points.json and reseals the card."""

    with _guard(as_json), contextlib.redirect_stdout(sys.stderr):
        directory = _load_imaging(task, model).directory
        result = fit_series_rule(directory, data, seed, per_cell=per_cell, write=not dry_run)
    result.pop("full_table", None)
    chosen = result["validation"]
    _emit(
        result,
        as_json,
        f"series rule {result['tag']}: validation macro-F1 {chosen['macro_f1']:.3f}, "
        f"accuracy {chosen['accuracy']:.3f} on {result['chosen_on']}"
        + (" (dry run: nothing written)" if dry_run else ""),
    )


@imaging_app.command("export")
def imaging_export(
    task: TaskOpt,
    model: ModelOpt = None,
    int8: Annotated[
        bool,
        typer.Option(
            help="Also write a statically quantised int8 model, kept only if its macro AUROC on "
            "--data is within --max-auroc-drop of the fp32 model's."
        ),
    ] = False,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Labelled images (manifest/CSV/folder) for int8 calibration and the AUROC check."
        ),
    ] = None,
    max_auroc_drop: float = 0.005,
    calibration_images: int = 128,
    as_json: JsonFlag = False,
) -> None:
    """Write model.onnx (the serving runtime) into the model directory and check ONNX Runtime
    agrees with PyTorch; `medai serve` uses it from then on."""
    import numpy as np
    import torch

    with _guard(as_json):
        directory = model_folder(model, task)
        predictor = model_dir.load(directory, runtime="torch")
        path = export_model_dir(
            predictor.torch_model, predictor.cfg.image_size, predictor.directory
        )
        x = torch.rand(2, 1, predictor.cfg.image_size, predictor.cfg.image_size)
        with torch.no_grad():
            diff = float(
                np.abs(predictor.torch_model(x).numpy() - OnnxModel(path)(x).numpy()).max()
            )
        result: dict[str, Any] = {"onnx": str(path), "max_abs_logit_diff": diff}
        if int8:
            if data is None:
                raise ValueError(
                    "--int8 needs --data: labelled images to calibrate on and to "
                    "check that AUROC holds"
                )

            result["int8"] = quantize_checked(predictor, data, max_auroc_drop, calibration_images)
    human = f"wrote {path} (max |Δlogit| {diff:.2e})"
    if "int8" in result:
        q = result["int8"]
        human += f"; int8 macro AUROC {q['macro_auroc_int8']} vs fp32 {q['macro_auroc_fp32']}: " + (
            "kept " + q["path"] if q["accepted"] else "not kept (AUROC dropped)"
        )
    _emit(result, as_json, human)
