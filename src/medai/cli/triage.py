"""`medai triage …`: train, evaluate, predict, train and seal the red-flag engine, collect."""

from __future__ import annotations

import contextlib
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
from medai.core.limited_read import read_limited, read_stream_limited
from medai.core.model_dir import file_sha256
from medai.core.text import MAX_COMPLAINT_BYTES, TextInputError, decode_text
from medai.services import batch as batch_service
from medai.services.model_handles import model_folder
from medai.services.triage import red_flag_options, triage
from medai.settings import get_settings
from medai.triage.collect import Collector, CollectorConfig
from medai.triage.evaluate import evaluate_file
from medai.triage.red_flags import build_engine, learn
from medai.triage.red_flags.engine import cache_embeddings
from medai.triage.red_flags.identity import seal
from medai.triage.train import TrainOptions, train

triage_app = typer.Typer(no_args_is_help=True)  # its help: COMMANDS in medai.cli


@triage_app.command("train")
def triage_train(
    data: Annotated[Path, typer.Option(help="CSV or JSONL with text,label columns.")],
    out: Annotated[Path, typer.Option(help="Model directory to create.")],
    model_type: Annotated[
        str, typer.Option(help="tfidf | encoder | tfidf+encoder | transformer")
    ] = "tfidf",
    base: Annotated[
        Path | None, typer.Option(help="Local Hugging Face encoder directory (transformer).")
    ] = None,
    redact: Annotated[
        bool, typer.Option(help="Redact names, e-mails, phones, ids, URLs before training.")
    ] = False,
    drop_near_duplicates: Annotated[
        bool,
        typer.Option(
            help="Keep one row per near-duplicate group (default: keep all, grouped on one side "
            "of the split)."
        ),
    ] = False,
    extra_train: Annotated[
        list[Path] | None,
        typer.Option(
            help="Weaker extra source(s) used for training only, never for validation/test "
            "(e.g. LLM-rewritten questions of departments with no real text)."
        ),
    ] = None,
    out_of_scope: Annotated[
        Path | None,
        typer.Option(
            help="Complaints about departments this model does not learn: trains the gate that "
            "refers them to the general triage desk (30% held out for evaluation)."
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(help="transformer: maximum epochs.")] = 4,
    batch_size: Annotated[int, typer.Option(help="transformer: per-process batch.")] = 16,
    learning_rate: Annotated[float, typer.Option(help="transformer: AdamW peak LR.")] = 3e-5,
    grad_accum: Annotated[int, typer.Option(help="transformer: gradient accumulation.")] = 1,
    patience: Annotated[int, typer.Option(help="transformer: early-stopping patience.")] = 2,
    max_length: Annotated[int, typer.Option(help="transformer: max tokens.")] = 256,
    mixed_precision: Annotated[str, typer.Option(help="auto | no | bf16 | fp16")] = "auto",
    resume: Annotated[
        bool, typer.Option(help="transformer: continue from the last checkpoint in --out.")
    ] = False,
    num_processes: Annotated[
        int, typer.Option(help="transformer: processes/GPUs (Accelerate).")
    ] = 1,
    seed: int = 13,
    name: Annotated[str, typer.Option(help="Model name for the registry.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Train a triage model and write it, with its model card and test metrics, to --out."""
    if relaunched(num_processes):
        return

    model_options: dict[str, Any] = {}
    if model_type == "transformer":
        model_options = dict(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            grad_accum=grad_accum,
            patience=patience,
            max_length=max_length,
            mixed_precision=mixed_precision,
            resume=resume,
            seed=seed,
        )
    opts = TrainOptions(
        data=data,
        out=out,
        model_type=model_type,
        base=base,
        redact=redact,
        drop_near_duplicates=drop_near_duplicates,
        seed=seed,
        name=name,
        model_options=model_options,
        extra_train=list(extra_train or []),
        out_of_scope=out_of_scope,
        cache_dir=get_settings().storage.cache_dir,
    )
    with _guard(as_json), contextlib.redirect_stdout(sys.stderr):
        summary = train(opts)
    if summary:
        track(
            summary,
            "triage",
            {
                **model_options,
                "data": data,
                "model_type": model_type,
                "base": base,
                "redact": redact,
                "seed": seed,
            },
        )
        t = summary["test"]
        _emit(
            summary,
            as_json,
            f"saved {summary['model_dir']}: test accuracy "
            f"{t['accuracy']:.3f}, macro-F1 {t['macro_f1']:.3f}, "
            f"top-2 {t['top2_accuracy']:.3f}",
        )


def _load_triage(model: str | None):

    return model_dir.load(
        model_folder(model, "triage"),
        flag_options=red_flag_options(),
    )


@triage_app.command("evaluate")
def triage_evaluate(
    data: Annotated[Path, typer.Option(help="CSV or JSONL with text,label columns.")],
    model: ModelOpt = None,
    out: Annotated[Path | None, typer.Option(help="Folder for metrics.json and plots.")] = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate a random sample of N rows.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Metrics (accuracy, macro/weighted F1, per-department, top-2/3, ECE) on a labelled file."""

    with _guard(as_json):
        predictor = _load_triage(model)
        metrics = evaluate_file(predictor, data, out_dir=out, limit=limit)
    human = (
        f"n={metrics['n']} accuracy={metrics['accuracy']:.4f} "
        f"macro_f1={metrics['macro_f1']:.4f} weighted_f1={metrics['weighted_f1']:.4f} "
        f"top2={metrics['top2_accuracy']:.4f} ece={metrics['ece']:.4f} "
        f"unknown_label_rows={metrics['data']['unknown_label_rows']}"
    )
    _emit(metrics, as_json, human)


@triage_app.command("predict")
def triage_predict(
    text: Annotated[str | None, typer.Argument(help="The complaint; '-' reads stdin.")] = None,
    model: ModelOpt = None,
    file: Annotated[Path | None, typer.Option(help="Read the complaint from a UTF-8 file.")] = None,
    top_k: Annotated[int, typer.Option(min=1, max=15)] = 3,
    min_confidence: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Abstain below this probability (default: model card)."
        ),
    ] = None,
    batch: Annotated[
        Path | None,
        typer.Option(
            help="Triage every complaint of a CSV (a text column, optionally id) or JSON-lines "
            "file: JSON lines out, one per row."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="--batch: write the JSON lines here (default: standard output)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Suggest departments for one complaint, with red flags and abstention; with --batch,
    for every complaint of a file (the model loaded once, a bad row reported and skipped)."""

    if batch is not None:
        if text is not None or file is not None:
            _emit(
                {
                    "error": "--batch takes no complaint argument or --file",
                    "error_type": "UsageError",
                },
                as_json,
                "--batch takes no complaint argument or --file",
            )
            raise typer.Exit(2)
        _triage_batch(batch, out, model, top_k, min_confidence, as_json)
        return
    with _guard(as_json):
        if file is not None:
            raw = decode_text(read_limited(file, MAX_COMPLAINT_BYTES))
        elif text == "-" or text is None:
            if text is None and sys.stdin.isatty():
                raise TextInputError("give the complaint as an argument, '-' or --file")
            raw = decode_text(
                read_stream_limited(sys.stdin.buffer, MAX_COMPLAINT_BYTES, "standard input")
            )
        else:
            raw = text

        result = triage(_load_triage(model), raw, top_k, min_confidence).to_dict()
    lines = [f"[{result['status']}] {result['recommendation']['text_tr']}"]
    for flag in result["red_flags"]:
        lines.append(
            f"  ACİL / URGENT [{flag['level']}, {'+'.join(flag['detectors'])}]: "
            f"{flag['name_tr']} ({'; '.join(flag['matched'])})"
        )
    for note in result["red_flag_history"]:
        lines.append(f"  not (geçmiş) / history note: {note['name_tr']}")
    for d in result["departments"]:
        lines.append(f"  {d['probability']:.3f}  {d['name']}")
    _emit(result, as_json, "\n".join(lines))


def _outcome(result: dict) -> list[str]:
    """What the summary counts: a department suggested or abstained (staff follow those
    up), and, counted apart, the rows with a red flag."""
    return ["abstained" if result["abstained"] else "department"] + (
        ["red_flag"] if result["red_flags"] else []
    )


def _triage_batch(
    path: Path,
    out: Path | None,
    model: str | None,
    top_k: int,
    min_confidence: float | None,
    as_json: bool,
) -> None:

    with _guard(as_json), batch_output(out, path) as sink:
        predictor = _load_triage(model)
        summary = batch_service.run(
            batch_service.complaints(path),
            lambda item: triage(predictor, item.value, top_k, min_confidence).to_dict(),
            _outcome,
            sink,
        )
    report_batch(summary, out, as_json)


@triage_app.command("train-red-flags")
def triage_train_red_flags(
    data: Annotated[
        Path,
        typer.Option(
            help="Folder of <set>_urgent.jsonl / <set>_ordinary.jsonl files, one set per author."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Classifier directory to create (put it in your "
            "rules folder as classifier/ to serve it)."
        ),
    ],
    sets: Annotated[str, typer.Option(help="Use only sets whose name starts with this.")] = "",
    name: Annotated[str | None, typer.Option(help="Model name (default: the folder's).")] = None,
    rules: Annotated[Path | None, typer.Option(help="Rules folder (default: bundled).")] = None,
    max_false_alarms: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="False-alarm budget of all detectors together, out of author."
        ),
    ] = 0.05,
    embeddings: Annotated[
        bool,
        typer.Option(help="Choose the e5 detector's threshold together with the classifier's."),
    ] = True,
    real_posts: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV of your own real complaints (a 'text' column, an 'id' column if it has one), "
            "learned as negatives where the rules stay quiet: its training half only "
            "(a stable hash of the id, else of the text, keeps the rest for reports).",
        ),
    ] = None,
    real_weight: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="The real posts together weigh this many times the written ordinary "
            "complaints together (default 0.25, chosen on the validation quarter of "
            "the bundled data: docs/benchmarks/red_flags.md).",
        ),
    ] = None,
    jobs: Annotated[
        int, typer.Option(min=1, max=64, help="Held-out classifiers fitted at once (processes).")
    ] = 1,
    train_only_kind: Annotated[
        list[str] | None,
        typer.Option(
            help="Ordinary rows of this 'kind' are learned from but not counted in the false-alarm "
            "budget (repeat it; default: idiom, the adversarial figures of speech). Give "
            "'none' to count every row."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Train the red-flag classifier on written complaints; its threshold is chosen on
    out-of-author scores (each set scored by a classifier trained on the others)."""
    from datetime import date

    with _guard(as_json), contextlib.redirect_stdout(sys.stderr):
        if not data.is_dir():
            raise FileNotFoundError(f"{data}: not a folder of JSONL sets")
        found = learn.read_sets(data, sets)
        posts, data_rows = None, [{"set": k, "rows": len(v)} for k, v in found.items()]
        if real_posts is not None:  # read first: a bad file fails before minutes of embedding
            posts = [
                t for i, t in learn.read_real_posts(real_posts) if learn.real_part(i) == "train"
            ]
            data_rows.append(
                {
                    "real_posts": real_posts.name,
                    "rows": len(posts),
                    "part": "train (learn.real_part)",
                    "sha256": file_sha256(real_posts),
                }
            )
        cache_dir = get_settings().storage.cache_dir
        engine = cache_embeddings(
            build_engine(rules, embeddings=embeddings, classifier=False, cache_dir=cache_dir),
            cache_dir,
        )
        knn = None  # every neighbour hit, before thresholds: they are what is chosen
        if engine.knn:
            knn = [
                [
                    (h.similarity, h.similarity - h.contrast_similarity)
                    for h in engine.analyse(r["text"]).knn
                ]
                for rows in found.values()
                for r in rows
            ]
        trained = learn.train_with_choice(
            engine.ruleset,
            found,
            knn,
            max_false_alarms,
            progress=lambda m: print(m, file=sys.stderr, flush=True),
            real_posts=posts,
            real_weight=learn.REAL_WEIGHT if real_weight is None else real_weight,
            jobs=jobs,
            train_only_kinds=(
                None
                if train_only_kind is None
                else frozenset(k for k in train_only_kind if k != "none")
            ),
        )
        trained.model.save(
            out,
            {
                "name": name or out.name,
                "version": date.today().isoformat(),
                "description": "Red-flag classifier (medai triage train-red-flags)",
                "training_command": " ".join(["medai triage train-red-flags", *sys.argv[3:]]),
                "data": data_rows,
                "metrics": {"out_of_author": trained.choice},
            },
        )
    result = {
        "out": str(out),
        "sets": {k: len(v) for k, v in found.items()},
        "chosen": trained.choice,
    }
    c = trained.choice
    left_out = trained.model.params["budget_excludes"]["kinds"]
    uncounted = (
        f" ({', '.join(left_out)} rows not counted: they fire "
        f"{c['uncounted_false_alarm_rate']:.3f})"
        if "uncounted_false_alarm_rate" in c
        else ""
    )
    _emit(
        result,
        as_json,
        f"wrote {out}: classifier threshold {c['classifier']}, out-of-author "
        f"recall {c['recall']:.3f}, false alarms {c['false_alarm_rate']:.3f}"
        f"{uncounted}; seal the engine folder it serves in: medai triage "
        f"seal-red-flags {out.parent}",
    )


@triage_app.command("seal-red-flags")
def triage_seal_red_flags(
    folder: Annotated[
        Path,
        typer.Argument(
            help="Engine folder: concepts.yaml, flags.yaml, "
            "exemplars.yaml (reader.yaml and classifier/ "
            "are copied from the bundled engine if absent)."
        ),
    ],
    name: Annotated[
        str, typer.Option(help="Engine name (default: kept, or red-flag-engine).")
    ] = "",
    version: Annotated[str, typer.Option(help="Engine version (default: today).")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Validate a red-flag engine folder and seal it: one content hash over every file that can
    change a flag, written to its model card. Serve it with MEDAI_RED_FLAG_RULES=FOLDER."""
    with _guard(as_json), contextlib.redirect_stdout(sys.stderr):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: not a folder")
        card = seal(folder, name=name, version=version)
    result = {
        "folder": str(folder),
        "name": card["name"],
        "version": card["version"],
        "content_hash": card["content_hash"],
        "flags": card["params"]["flags"],
        "classifier": card["params"]["classifier"],
        "thresholds": card["thresholds"],
    }
    _emit(
        result,
        as_json,
        f"sealed {folder}: {card['name']} {card['version']} {card['content_hash'][:19]}…",
    )


@triage_app.command("collect")
def triage_collect(
    start_url: Annotated[list[str], typer.Option("--start-url", help="Listing page URL(s).")],
    out: Annotated[Path, typer.Option(help="CSV to write (appended on resume).")],
    state: Annotated[
        Path | None, typer.Option(help="Resume state file (default: OUT.state.json).")
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="Department for every question (else read from each page).")
    ] = None,
    max_pages: Annotated[int, typer.Option(help="Stop after this many fetches.")] = 1000,
    delay: Annotated[
        float,
        typer.Option(help="Seconds between requests (at least; robots.txt Crawl-delay wins)."),
    ] = 2.0,
    user_agent: Annotated[str | None, typer.Option(help="Identifying User-Agent.")] = None,
    redact: Annotated[bool, typer.Option(help="Redact PII before writing.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Collect questions from a Turkish health Q&A site into a text,label CSV (polite)."""

    cfg = CollectorConfig(delay=delay, max_pages=max_pages, redact=redact, label=label)
    if user_agent:
        cfg.user_agent = user_agent
    with _guard(as_json):
        stats = Collector(cfg, out, state).run(start_url)
    _emit(stats, as_json, json.dumps(stats, ensure_ascii=False))
