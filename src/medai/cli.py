"""The ``medai`` command line. ``--json`` output is one JSON object on stdout: a stable contract.

Progress bars and logs go to stderr so stdout stays machine-readable. Errors with ``--json``
print ``{"error": ..., "error_type": ...}`` and exit with status 2 (bad input) or 1 (other).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="medai: a hospital's own medical AI (triage, imaging, reports).",
                  no_args_is_help=True, pretty_exceptions_enable=False)
triage_app = typer.Typer(help="Complaint triage: Turkish complaint → department.",
                         no_args_is_help=True)
models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
app.add_typer(triage_app, name="triage")
app.add_typer(models_app, name="models")
imaging_app = typer.Typer(help="Imaging findings: chest X-ray and brain MRI.",
                          no_args_is_help=True)
app.add_typer(imaging_app, name="imaging")
TaskOpt = Annotated[str, typer.Option("--task", help="cxr | mri")]
OnnxOpt = Annotated[bool, typer.Option(help="Run with ONNX Runtime.")]
Int8Opt = Annotated[bool, typer.Option(help="Run the int8 ONNX model (see export --int8).")]

from medai.cli_common import (  # noqa: E402
    JsonFlag,
    ModelOpt,
    _emit,
    _guard,
    relaunched,
)
from medai.cli_reporting import caption_app, kb_app, report_app  # noqa: E402

app.add_typer(caption_app, name="caption")
app.add_typer(report_app, name="report")
app.add_typer(kb_app, name="kb")


# --- triage ---------------------------------------------------------------------------------

@triage_app.command("train")
def triage_train(
    data: Annotated[Path, typer.Option(help="CSV or JSONL with text,label columns.")],
    out: Annotated[Path, typer.Option(help="Model directory to create.")],
    model_type: Annotated[str, typer.Option(help="tfidf | encoder | tfidf+encoder | "
                                                 "transformer")] = "tfidf",
    base: Annotated[Path | None, typer.Option(help="Local Hugging Face encoder directory "
                                                   "(transformer).")] = None,
    redact: Annotated[bool, typer.Option(help="Redact names, e-mails, phones, ids, URLs "
                                              "before training.")] = False,
    drop_near_duplicates: Annotated[bool, typer.Option(
        help="Keep one row per near-duplicate group (default: keep all, grouped on one side "
             "of the split).")] = False,
    extra_train: Annotated[list[Path] | None, typer.Option(
        help="Weaker extra source(s) used for training only, never for validation/test "
             "(e.g. LLM-rewritten questions of departments with no real text).")] = None,
    out_of_scope: Annotated[Path | None, typer.Option(
        help="Complaints about departments this model does not learn: trains the gate that "
             "refers them to the general triage desk (30% held out for evaluation).")] = None,
    epochs: Annotated[int, typer.Option(help="transformer: maximum epochs.")] = 4,
    batch_size: Annotated[int, typer.Option(help="transformer: per-process batch.")] = 16,
    learning_rate: Annotated[float, typer.Option(help="transformer: AdamW peak LR.")] = 3e-5,
    grad_accum: Annotated[int, typer.Option(help="transformer: gradient accumulation.")] = 1,
    patience: Annotated[int, typer.Option(help="transformer: early-stopping patience.")] = 2,
    max_length: Annotated[int, typer.Option(help="transformer: max tokens.")] = 256,
    mixed_precision: Annotated[str, typer.Option(help="auto | no | bf16 | fp16")] = "auto",
    resume: Annotated[bool, typer.Option(help="transformer: continue from the last "
                                              "checkpoint in --out.")] = False,
    num_processes: Annotated[int, typer.Option(help="transformer: processes/GPUs "
                                                    "(Accelerate).")] = 1,
    seed: int = 13,
    name: Annotated[str, typer.Option(help="Model name for the registry.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Train a triage model and write it, with its model card and test metrics, to --out."""
    if relaunched(num_processes):
        return
    from medai.triage.train import TrainOptions, train

    model_options: dict[str, Any] = {}
    if model_type == "transformer":
        model_options = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                             grad_accum=grad_accum, patience=patience, max_length=max_length,
                             mixed_precision=mixed_precision, resume=resume, seed=seed)
    opts = TrainOptions(data=data, out=out, model_type=model_type, base=base, redact=redact,
                        drop_near_duplicates=drop_near_duplicates,
                        seed=seed, name=name, model_options=model_options,
                        extra_train=list(extra_train or []), out_of_scope=out_of_scope)
    with _guard(as_json), contextlib.redirect_stdout(sys.stderr):
        summary = train(opts)
    if summary:
        t = summary["test"]
        _emit(summary, as_json, f"saved {summary['model_dir']}: test accuracy "
                                f"{t['accuracy']:.3f}, macro-F1 {t['macro_f1']:.3f}, "
                                f"top-2 {t['top2_accuracy']:.3f}")


def _load_triage(model: str | None):
    from medai.core import registry

    return registry.load(registry.resolve_model(model, "triage"))


@triage_app.command("evaluate")
def triage_evaluate(
    data: Annotated[Path, typer.Option(help="CSV or JSONL with text,label columns.")],
    model: ModelOpt = None,
    out: Annotated[Path | None, typer.Option(help="Folder for metrics.json and plots.")] = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate a random sample of N rows.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Metrics (accuracy, macro/weighted F1, per-department, top-2/3, ECE) on a labelled file."""
    from medai.triage.evaluate import evaluate_file

    with _guard(as_json):
        predictor = _load_triage(model)
        metrics = evaluate_file(predictor, data, out_dir=out, limit=limit)
    human = (f"n={metrics['n']} accuracy={metrics['accuracy']:.4f} "
             f"macro_f1={metrics['macro_f1']:.4f} weighted_f1={metrics['weighted_f1']:.4f} "
             f"top2={metrics['top2_accuracy']:.4f} ece={metrics['ece']:.4f} "
             f"unknown_label_rows={metrics['data']['unknown_label_rows']}")
    _emit(metrics, as_json, human)


@triage_app.command("predict")
def triage_predict(
    text: Annotated[str | None, typer.Argument(help="The complaint; '-' reads stdin.")] = None,
    model: ModelOpt = None,
    file: Annotated[Path | None, typer.Option(help="Read the complaint from a UTF-8 file.")] = None,
    top_k: Annotated[int, typer.Option(min=1, max=15)] = 3,
    min_confidence: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Abstain below this probability (default: model card).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Suggest departments for one complaint, with red flags and abstention."""
    from medai.core.files import read_limited, read_stream_limited
    from medai.core.text import MAX_COMPLAINT_BYTES, TextInputError, decode_text

    with _guard(as_json):
        if file is not None:
            raw = decode_text(read_limited(file, MAX_COMPLAINT_BYTES))
        elif text == "-" or text is None:
            if text is None and sys.stdin.isatty():
                raise TextInputError("give the complaint as an argument, '-' or --file")
            raw = decode_text(read_stream_limited(sys.stdin.buffer, MAX_COMPLAINT_BYTES,
                                                  "standard input"))
        else:
            raw = text
        from medai.services.triage import triage

        result = triage(_load_triage(model), raw, top_k, min_confidence).to_dict()
    lines = [f"[{result['status']}] {result['recommendation']['text_tr']}"]
    for flag in result["red_flags"]:
        lines.append(f"  ACİL / URGENT [{flag['level']}, {'+'.join(flag['detectors'])}]: "
                     f"{flag['name_tr']} ({'; '.join(flag['matched'])})")
    for note in result["red_flag_history"]:
        lines.append(f"  not (geçmiş) / history note: {note['name_tr']}")
    for d in result["departments"]:
        lines.append(f"  {d['probability']:.3f}  {d['name']}")
    _emit(result, as_json, "\n".join(lines))


@triage_app.command("collect")
def triage_collect(
    start_url: Annotated[list[str], typer.Option("--start-url", help="Listing page URL(s).")],
    out: Annotated[Path, typer.Option(help="CSV to write (appended on resume).")],
    state: Annotated[Path | None, typer.Option(help="Resume state file "
                                                    "(default: OUT.state.json).")] = None,
    label: Annotated[str | None, typer.Option(help="Department for every question (else read "
                                                   "from each page).")] = None,
    max_pages: Annotated[int, typer.Option(help="Stop after this many fetches.")] = 1000,
    delay: Annotated[float, typer.Option(help="Seconds between requests (at least; "
                                              "robots.txt Crawl-delay wins).")] = 2.0,
    user_agent: Annotated[str | None, typer.Option(help="Identifying User-Agent.")] = None,
    redact: Annotated[bool, typer.Option(help="Redact PII before writing.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Collect questions from a Turkish health Q&A site into a text,label CSV (polite)."""
    from medai.triage.collect import Collector, CollectorConfig

    cfg = CollectorConfig(delay=delay, max_pages=max_pages, redact=redact, label=label)
    if user_agent:
        cfg.user_agent = user_agent
    with _guard(as_json):
        stats = Collector(cfg, out, state).run(start_url)
    _emit(stats, as_json, json.dumps(stats, ensure_ascii=False))


# --- imaging --------------------------------------------------------------------------------

def _load_imaging(task: str, model: str | None, onnx: bool = False, int8: bool = False):
    """The task's imaging predictor. ``--onnx`` requires an exported ``model.onnx`` (never
    written here: a predictor does not write into a model directory); without it the model
    runs on ONNX Runtime when a current export exists, else on PyTorch."""
    from medai.core import registry
    from medai.imaging.labels import space

    space(task)  # validates the task name
    directory = registry.resolve_model(model, task)
    predictor = registry.load(directory, runtime="onnx" if onnx else "auto")
    if predictor.cfg.task != task:
        raise ValueError(f"{directory} is a {predictor.cfg.task} model, not {task}")
    if int8:
        from medai.imaging.export import INT8_FILE, OnnxModel

        if not (directory / INT8_FILE).is_file():
            raise FileNotFoundError(f"{directory / INT8_FILE} does not exist: create it with "
                                    f"`medai imaging export --int8 --data LABELLED_IMAGES`")
        predictor.model, predictor.runtime = OnnxModel(directory / INT8_FILE), "onnx-int8"
    return predictor


@imaging_app.command("train")
def imaging_train(
    task: TaskOpt,
    data: Annotated[Path, typer.Option(help="Manifest CSV, NIH Data_Entry CSV, CheXpert CSV "
                                            "or class folder.")],
    out: Annotated[Path, typer.Option(help="Model directory to create.")],
    backbone: Annotated[str, typer.Option(help="efficientnet-lite0 | densenet121 | hf:DIR")
                        ] = "efficientnet-lite0",
    weights: Annotated[str | None, typer.Option(help="Your weights file for the backbone.")
                       ] = None,
    epochs: int = 10,
    batch_size: int = 16,
    learning_rate: float = 3e-4,
    patience: int = 3,
    image_size: int = 224,
    seed: int = 13,
    trainable: Annotated[str, typer.Option(
        help="What learns after the probe epochs: head (linear probe on frozen features) | "
             "top (last backbone stage + head) | all.")] = "all",
    probe_epochs: Annotated[int, typer.Option(
        help="Head-only epochs before --trainable takes over (linear probe, then fine-tune)."
    )] = 0,
    backbone_lr_scale: Annotated[float, typer.Option(
        help="Backbone learning rate = --learning-rate × this.")] = 1.0,
    resume: bool = False,
    num_processes: Annotated[int, typer.Option(help="Processes/GPUs (Accelerate).")] = 1,
    name: str = "",
    as_json: JsonFlag = False,
) -> None:
    """Train an imaging model; writes weights, model card, metrics and plots to --out."""
    if relaunched(num_processes):
        return
    from medai.imaging.pipeline import train_imaging

    with _guard(as_json), contextlib.redirect_stdout(sys.stderr):
        summary = train_imaging(task, data, out, backbone=backbone, weights=weights,
                                epochs=epochs, batch_size=batch_size,
                                learning_rate=learning_rate, patience=patience,
                                image_size=image_size, seed=seed, resume=resume, name=name,
                                trainable=trainable, probe_epochs=probe_epochs,
                                backbone_lr_scale=backbone_lr_scale)
    if not summary:  # a non-main process of a distributed run
        return
    t = summary["test"]
    _emit(summary, as_json, f"saved {summary['model_dir']}: test macro AUROC "
                            f"{t['macro_auroc']}, accuracy {t['accuracy']}")


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
    from medai.imaging.datasets import load_dataset
    from medai.imaging.evaluate import write_metrics, write_plots
    from medai.imaging.pipeline import score

    with _guard(as_json):
        predictor = _load_imaging(task, model, onnx, int8)
        ds = load_dataset(data, task)
        metrics, targets, probs = score(predictor, ds)
        t = ds.targets()
        metrics["data"] = {**ds.report(), "labels_not_in_model": sorted(
            lab for j, lab in enumerate(ds.labels)
            if lab not in predictor.labels and (t[:, j] == 1).any())}
        metrics["data"]["unknown_label_rows"] = sum(ds.unknown_labels.values())
        if out is not None:
            write_metrics(metrics, out)
            metrics["files"] = write_plots(metrics, targets, probs, predictor.labels, out)
    _emit(metrics, as_json, f"n={metrics['n']} macro_auroc={metrics['macro_auroc']} "
                            f"accuracy={metrics['accuracy']} macro_f1={metrics['macro_f1']}")


@imaging_app.command("predict")
def imaging_predict(
    image: Annotated[Path, typer.Argument(help="PNG, JPEG or DICOM file.")],
    task: TaskOpt = "cxr",
    model: ModelOpt = None,
    onnx: OnnxOpt = False,
    int8: Int8Opt = False,
    as_json: JsonFlag = False,
) -> None:
    """Findings with probabilities and thresholds; refuses images of the wrong kind.

    Exit status: 0 findings, 3 refused (wrong kind of image; the reason is printed), 2 the
    file cannot be used (missing, not a regular file, too large, not an image)."""
    from medai.core.files import read_limited
    from medai.imaging.io import MAX_BYTES

    with _guard(as_json):
        data = read_limited(image, MAX_BYTES)
        result = _load_imaging(task, model, onnx, int8).predict(data).model_dump(mode="json")
    if result["refused"]:
        human = f"refused: {result['reason']}"
    else:
        human = "\n".join(f"{'+' if f['positive'] else ' '} {f['probability']:.3f} "
                          f"(thr {f['threshold']:.3f})  {f['label']}" for f in result["findings"])
    _emit(result, as_json, human)
    if result["refused"]:
        raise typer.Exit(3)


@imaging_app.command("explain")
def imaging_explain(
    image: Annotated[Path, typer.Argument(help="PNG, JPEG or DICOM file.")],
    out: Annotated[Path, typer.Option(help="PNG to write.")],
    task: TaskOpt = "cxr",
    label: Annotated[str | None, typer.Option(help="Label to explain (default: the most "
                                                   "probable).")] = None,
    model: ModelOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Grad-CAM heatmap overlay for one label."""
    from medai.core.files import read_limited
    from medai.imaging.explain import explain
    from medai.imaging.io import MAX_BYTES

    with _guard(as_json):
        r = explain(_load_imaging(task, model), read_limited(image, MAX_BYTES), out, label)
    lab, p = r["label"], r["probability"]
    _emit({"out": str(out), "label": lab, "probability": p}, as_json,
          f"wrote {out} ({lab}, p={p:.3f})")


@imaging_app.command("fit-gate")
def imaging_fit_gate(
    task: TaskOpt,
    data: Annotated[Path, typer.Option(help="The data the model was trained on (same split).")],
    model: ModelOpt = None,
    seed: int = 13,
    as_json: JsonFlag = False,
) -> None:
    """(Re)fit the learned wrong-kind-of-image gate of a model (gate.npz)."""
    from medai.imaging.pipeline import refit_gate

    with _guard(as_json), contextlib.redirect_stdout(sys.stderr):
        directory = _load_imaging(task, model).directory
        result = refit_gate(directory, data, seed)
    _emit(result, as_json, f"gate threshold {result['threshold']:.2f}; accepts "
                           f"{result['test_acceptance']:.1%} of the held-out test images")


@imaging_app.command("export")
def imaging_export(
    task: TaskOpt,
    model: ModelOpt = None,
    int8: Annotated[bool, typer.Option(
        help="Also write a statically quantised int8 model, kept only if its macro AUROC on "
             "--data is within --max-auroc-drop of the fp32 model's.")] = False,
    data: Annotated[Path | None, typer.Option(
        help="Labelled images (manifest/CSV/folder) for int8 calibration and the AUROC check."
    )] = None,
    max_auroc_drop: float = 0.005,
    calibration_images: int = 128,
    as_json: JsonFlag = False,
) -> None:
    """Write model.onnx (the serving runtime) into the model directory and check ONNX Runtime
    agrees with PyTorch; `medai serve` uses it from then on."""
    import numpy as np
    import torch

    from medai.core import registry
    from medai.imaging.export import OnnxModel, export_model_dir

    with _guard(as_json):
        predictor = registry.load(registry.resolve_model(model, task), runtime="torch")
        path = export_model_dir(predictor.torch_model, predictor.cfg.image_size,
                                predictor.directory)
        x = torch.rand(2, 1, predictor.cfg.image_size, predictor.cfg.image_size)
        with torch.no_grad():
            diff = float(np.abs(predictor.torch_model(x).numpy()
                                - OnnxModel(path)(x).numpy()).max())
        result: dict[str, Any] = {"onnx": str(path), "max_abs_logit_diff": diff}
        if int8:
            if data is None:
                raise ValueError("--int8 needs --data: labelled images to calibrate on and to "
                                 "check that AUROC holds")
            from medai.imaging.pipeline import quantize_checked

            result["int8"] = quantize_checked(predictor, data, max_auroc_drop,
                                              calibration_images)
    human = f"wrote {path} (max |Δlogit| {diff:.2e})"
    if "int8" in result:
        q = result["int8"]
        human += (f"; int8 macro AUROC {q['macro_auroc_int8']} vs fp32 {q['macro_auroc_fp32']}: "
                  + ("kept " + q["path"] if q["accepted"] else "not kept (AUROC dropped)"))
    _emit(result, as_json, human)


# --- models ---------------------------------------------------------------------------------

@models_app.command("list")
def models_list(
    path: Annotated[list[Path] | None, typer.Option("--path", help="Extra folder(s) to "
                                                                   "scan.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Models found in the bundled assets, MEDAI_MODELS_DIR and --path folders."""
    from medai.core.registry import list_models

    rows = [{"name": card.name or d.name, "path": str(d), "task": card.task,
             "model_type": card.model_type, "labels": len(card.labels),
             "macro_f1": card.metrics.get("macro_f1"), "created_at": card.created_at}
            for d, card in list_models(path)]
    human = "\n".join(f"{r['name']:<28} {r['task']:<8} {r['model_type']:<14} "
                      f"labels={r['labels']:<3} macro_f1="
                      f"{'-' if r['macro_f1'] is None else format(r['macro_f1'], '.4f')}  "
                      f"{r['path']}" for r in rows) or "no models found"
    _emit({"models": rows}, as_json, human)


@models_app.command("show")
def models_show(model: Annotated[str, typer.Argument(help="Directory or registered name.")],
                as_json: JsonFlag = False) -> None:
    """The full model card."""
    from medai.core.registry import read_card, resolve_model

    with _guard(as_json):
        directory = resolve_model(model, "triage")
        card = read_card(directory).to_dict()

    card["path"] = str(directory)
    _emit(card, as_json)


# --- server ---------------------------------------------------------------------------------

@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Worker processes (default MEDAI_WORKERS or 1); each loads the models once and "
             "gets cores / workers inference threads.")] = None,
    triage_model: Annotated[str | None, typer.Option(help="Triage model to serve.")] = None,
    cxr_model: Annotated[str | None, typer.Option(help="Chest X-ray model to serve.")] = None,
    mri_model: Annotated[str | None, typer.Option(help="Brain MRI model to serve.")] = None,
) -> None:
    """Start the API server (OpenAPI docs at /docs). Liveness: /api/v1/health/live;
    readiness (every model loaded): /api/v1/health/ready."""
    import os

    import uvicorn

    from medai.settings import get_settings

    settings = get_settings()
    workers = workers or settings.workers
    bind = host or settings.host
    env = {"MEDAI_WORKERS": str(workers), "MEDAI_SERVE_TRIAGE_MODEL": triage_model or "",
           "MEDAI_SERVE_CXR_MODEL": cxr_model or "", "MEDAI_SERVE_MRI_MODEL": mri_model or ""}
    if bind not in ("0.0.0.0", "::") and bind not in settings.trusted_hosts:
        env["MEDAI_TRUSTED_HOSTS"] = json.dumps([*settings.trusted_hosts, bind])
    os.environ.update(env)  # worker processes build their app from the environment
    get_settings.cache_clear()
    uvicorn.run("medai.server.app:app_from_env", factory=True, host=bind,
                port=port or settings.port, workers=workers, log_level=settings.log_level,
                server_header=False, access_log=False, proxy_headers=True)


@app.command("version")
def version(as_json: JsonFlag = False) -> None:
    """Print medai's version."""
    import medai

    _emit({"version": medai.__version__}, as_json, medai.__version__)


if __name__ == "__main__":
    app()
