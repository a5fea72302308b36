"""Training pipeline: load → clean → split → fit → choose abstain threshold → test → save + card."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medai.core.model_dir import ModelCard, file_sha256, save_card
from medai.core.text import turkish_lower
from medai.triage import classifiers as model_families
from medai.triage import departments
from medai.triage.data import load_complaints, split
from medai.triage.evaluate import score, write_errors, write_outputs
from medai.triage.predict import TriagePredictor, choose_min_confidence
from medai.triage.scope import ScopeGate

TRIAGE_LICENCE_NOTE = (
    "Trained on the data recorded under 'data'. Scraped health Q&A text is user-generated and "
    "usually comes with no licence: check the terms of your source before redistributing the "
    "model, and redact personal names (--redact) before training on it."
)


@dataclass
class TrainOptions:
    data: Path
    out: Path
    model_type: str = "tfidf"
    base: Path | None = None
    redact: bool = False
    drop_near_duplicates: bool = False
    test_frac: float = 0.15
    val_frac: float = 0.15
    seed: int = 13
    target_accuracy: float = 0.95
    name: str = ""
    model_options: dict[str, Any] | None = None
    extra_train: list[Path] = field(default_factory=list)
    out_of_scope: Path | None = None  # complaints about departments the model does not learn
    cache_dir: Path | None = None  # e5 embedding cache of the encoder families (MEDAI_CACHE_DIR)


def load_extra_train(
    path: Path, main_texts: list[str], redact: bool
) -> tuple[list[str], list[str], dict]:
    """A weaker source (e.g. LLM-rewritten questions) used for training only, never for
    validation or test, so the reported metrics stay on real text. Rows that repeat a text of
    the main set are dropped."""

    extra = load_complaints(path, redact=redact)
    main = {turkish_lower(t) for t in main_texts}
    keep = [i for i, t in enumerate(extra.texts) if turkish_lower(t) not in main]
    report = extra.report.to_dict()
    report["dropped_as_in_main_set"] = len(extra.texts) - len(keep)
    return [extra.texts[i] for i in keep], [extra.labels[i] for i in keep], report


OUT_OF_SCOPE_HELD_OUT = 0.3
"""Share of the out-of-scope file kept out of training (seed 0, stratified by department), the
same rows the triage benchmark scores the gate on."""


def out_of_scope_split(path: Path, redact: bool = False):
    """(training part, held-out part) of an out-of-scope file, as ``Dataset`` subsets."""
    from sklearn.model_selection import train_test_split

    extra = load_complaints(path, redact=redact)
    idx_tr, idx_te = train_test_split(
        np.arange(len(extra)),
        test_size=OUT_OF_SCOPE_HELD_OUT,
        random_state=0,
        stratify=extra.labels,
    )
    return extra.subset(idx_tr), extra.subset(idx_te)


def fit_scope_gate(path: Path, train_set, val_set, predictor, redact: bool):
    """Fit the out-of-scope gate: the model's own training texts against the other-department
    complaints (training part only); threshold chosen on the validation split and a slice of the
    other-department training part the gate did not see."""

    other_train, _held_out = out_of_scope_split(path, redact)
    other = [
        t
        for t, lab in zip(other_train.texts, other_train.labels, strict=True)
        if lab not in predictor.labels
    ]
    if len(other) < 20:
        raise ValueError(
            f"{path}: only {len(other)} complaints of other departments; the "
            "out-of-scope gate needs at least 20"
        )
    rng = np.random.default_rng(0)
    order = rng.permutation(len(other))
    n_val = max(5, len(other) // 5)
    val_out = [other[i] for i in order[:n_val]]
    fit_out = [other[i] for i in order[n_val:]]
    confident = predictor.predict_proba(val_out).max(1) >= predictor.min_confidence
    return ScopeGate.fit(train_set.texts, fit_out, val_set.texts, val_out, confident)


def command_for(opts: TrainOptions) -> str:
    """The ``medai`` command that reproduces this training run (for the model card)."""
    args = [
        "medai",
        "triage",
        "train",
        "--data",
        str(opts.data),
        "--out",
        str(opts.out),
        "--model-type",
        opts.model_type,
    ]
    if opts.base:
        args += ["--base", str(opts.base)]
    if opts.redact:
        args.append("--redact")
    if opts.drop_near_duplicates:
        args.append("--drop-near-duplicates")
    if opts.out_of_scope is not None:
        args += ["--out-of-scope", str(opts.out_of_scope)]
    for extra in opts.extra_train:
        args += ["--extra-train", str(extra)]
    if opts.seed != 13:
        args += ["--seed", str(opts.seed)]
    if opts.name:
        args += ["--name", opts.name]
    for key, value in (opts.model_options or {}).items():
        if key in ("resume", "work_dir", "base"):
            continue
        args += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join(args)


def is_main_process(model_type: str) -> bool:
    """Under ``accelerate launch`` only the main process writes the model and its card."""
    if model_type != "transformer":
        return True
    from accelerate import PartialState

    return PartialState().is_main_process


def train(opts: TrainOptions) -> dict:
    """Train and save a model directory; returns a summary (metrics on the held-out test split)."""
    dataset = load_complaints(
        opts.data, redact=opts.redact, drop_near_duplicates=opts.drop_near_duplicates
    )
    if len(set(dataset.labels)) < 2:
        raise ValueError(
            f"{opts.data}: need at least two departments to train, "
            f"found {sorted(set(dataset.labels))}"
        )
    parts = split(dataset, test_frac=opts.test_frac, val_frac=opts.val_frac, seed=opts.seed)
    train_set, val_set, test_set = (
        dataset.subset(parts.train),
        dataset.subset(parts.validation),
        dataset.subset(parts.test),
    )
    extra_reports = []
    for extra_path in opts.extra_train:
        extra_texts, extra_labels, report = load_extra_train(extra_path, dataset.texts, opts.redact)
        train_set.texts, train_set.labels = (
            train_set.texts + extra_texts,
            train_set.labels + extra_labels,
        )
        extra_reports.append(
            {
                "path": str(extra_path),
                "sha256": file_sha256(extra_path),
                "role": "train_only_weak",
                "rows_added": len(extra_texts),
                "load_report": report,
            }
        )
    options = dict(opts.model_options or {})
    if opts.model_type == "transformer":
        options.setdefault("base", opts.base)
        options.setdefault("work_dir", opts.out)
    if opts.model_type in ("encoder", "tfidf+encoder") and opts.cache_dir is not None:
        options.setdefault("cache_dir", opts.cache_dir)
    model = model_families.create(opts.model_type, **options)
    model.fit(train_set.texts, train_set.labels, val_set.texts, val_set.labels)
    if not is_main_process(opts.model_type):
        return {}

    card = ModelCard(
        task="triage",
        model_type=opts.model_type,
        labels=list(model.labels),
        name=opts.name or opts.out.name,
        description=f"Complaint → department ({opts.model_type}), {len(model.labels)} departments.",
        training_command=command_for(opts),
        data=[
            {
                "path": str(opts.data),
                "sha256": file_sha256(opts.data),
                "load_report": dataset.report.to_dict(),
                "split": parts.to_dict(),
                "split_seed": opts.seed,
                "redacted": opts.redact,
            },
            *extra_reports,
        ],
        params={**getattr(model, "params", {}), **getattr(model, "train_info", {})},
        licence_notes=TRIAGE_LICENCE_NOTE,
        intended_use="Suggest a hospital department for a patient's free-text complaint, for "
        "staff review. Not a diagnosis; red-flag rules run independently.",
    )
    predictor = TriagePredictor(model, card)
    val_proba = predictor.predict_proba(val_set.texts)
    pos = {lab: i for i, lab in enumerate(model.labels)}
    y_val = np.array([pos[lab] for lab in val_set.labels])
    abstain = choose_min_confidence(val_proba, y_val, opts.target_accuracy)
    card.thresholds = {"min_confidence": abstain["min_confidence"]}
    predictor.min_confidence = abstain["min_confidence"]
    test_metrics, test_proba = score(predictor, test_set.texts, test_set.labels)
    card.metrics = {
        "split": "test",
        **{
            k: test_metrics[k]
            for k in (
                "n",
                "accuracy",
                "macro_f1",
                "weighted_f1",
                "top2_accuracy",
                "top3_accuracy",
                "ece",
            )
        },
        # None, not 0, for departments the real test split has no rows of
        "per_class_f1": {
            k: (v["f1"] if v["support"] else None) for k, v in test_metrics["per_class"].items()
        },
        "abstention_validation": abstain,
        "abstention_test": test_metrics.get("abstention"),
    }
    opts.out.mkdir(parents=True, exist_ok=True)
    if opts.out_of_scope is not None:
        gate, scope_report = fit_scope_gate(
            opts.out_of_scope, train_set, val_set, predictor, opts.redact
        )
        gate.save(opts.out)
        card.thresholds["out_of_scope"] = gate.threshold
        card.data.append(
            {
                "path": str(opts.out_of_scope),
                "sha256": file_sha256(opts.out_of_scope),
                "role": "out_of_scope_gate",
                "report": scope_report,
            }
        )
    model.save(opts.out)
    save_card(opts.out, card)
    write_errors(
        opts.out / "evaluation" / "errors.csv",
        test_set.texts,
        test_set.labels,
        test_proba,
        model.labels,
    )
    files = write_outputs(test_metrics, opts.out / "evaluation", model.history)
    (opts.out / "evaluation" / "history.json").write_text(json.dumps(model.history, indent=2))
    return {
        "model_dir": str(opts.out),
        "model_type": opts.model_type,
        "labels": model.labels,
        "names": departments.display_names(model.labels),
        "data": dataset.report.to_dict(),
        "split": parts.to_dict(),
        "thresholds": card.thresholds,
        "test": card.metrics,
        "files": files,
    }
