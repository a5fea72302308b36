"""``medai caption …``, ``medai report …`` and ``medai kb …`` commands."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from medai.cli.common import JsonFlag, _emit, _guard, relaunched
from medai.core import model_dir
from medai.core.jsonsafe import loads_limited
from medai.core.limited_read import read_limited
from medai.core.options import lookup
from medai.imaging.io import MAX_BYTES
from medai.reporting.captioning.blip2_plan import (
    GIB,
    GpuInfo,
    PlanRefused,
    choose_plan,
    describe,
    detect_gpus,
    load_config,
)
from medai.reporting.captioning.captions import load_captions
from medai.reporting.draft import imaging_task
from medai.reporting.knowledge import CHUNKS_FILE, load_chunks, read_document, save_chunks
from medai.reporting.pipeline import (
    build_captioner,
    normalisation_for,
    score_captioner,
    train_blip2_captioner,
)
from medai.reporting.retrieve import HybridRetriever
from medai.services.model_handles import model_folder
from medai.services.reports import new_drafter
from medai.settings import get_settings

caption_app = typer.Typer(no_args_is_help=True)  # its help: COMMANDS in medai.cli
report_app = typer.Typer(no_args_is_help=True)  # its help: COMMANDS in medai.cli
kb_app = typer.Typer(no_args_is_help=True)  # its help: COMMANDS in medai.cli

ImagesOpt = Annotated[
    Path | None, typer.Option(help="ROCOv2 image folder (then --data is its ID,Caption CSV).")
]
ConceptsOpt = Annotated[Path | None, typer.Option(help="ROCOv2 ID,CUIs concepts CSV.")]
RgbOpt = Annotated[
    bool,
    typer.Option(
        help="Keep only RGB images (the reference system's "
        "filter); default converts grayscale instead."
    ),
]


PrecisionOpt = Annotated[
    str,
    typer.Option(
        help="blip2: auto | bf16 | fp16 | fp32 | int8 | nf4 — auto takes the first that fits the "
        "GPU (see `medai caption plan`); fp16 keeps the trainable weights fp32; int8 and nf4 "
        "(4-bit QLoRA) need bitsandbytes and a CUDA GPU"
    ),
]


NormalisationOpt = Annotated[
    str | None,
    typer.Option(
        help="Caption normalisation before scoring: imageclef2025 (ImageCLEFmedical 2025's) or "
        "medai-v1 (medai's earlier numbers); default: imageclef2025 for the ROCOv2 layout, "
        "medai-v1 for pairs.csv."
    ),
]


def _reader(images: Path | None, concepts: Path | None, rgb_only: bool) -> dict[str, Any]:
    return {"images": images, "concepts": concepts, "rgb_only": rgb_only} if images else {}


def _precision(precision: str, mixed_precision: str | None, load_in_8bit: bool) -> str:
    """--precision, or what the deprecated --mixed-precision / --load-in-8bit meant."""

    old = (
        "int8"
        if load_in_8bit
        else (
            lookup(
                {"auto": "auto", "bf16": "bf16", "no": "fp32", "fp16": "fp16"},
                mixed_precision,
                "--mixed-precision",
            )
            if mixed_precision is not None
            else None
        )
    )
    if old is None:
        return precision
    if precision not in ("auto", old):
        raise ValueError(
            f"--precision {precision} contradicts the deprecated "
            f"{'--load-in-8bit' if load_in_8bit else '--mixed-precision'}"
        )
    typer.echo(
        f"warning: --load-in-8bit and --mixed-precision are deprecated: use --precision {old}",
        err=True,
    )
    return old


@caption_app.command("train")
def caption_train(
    data: Annotated[Path, typer.Option(help="pairs.csv (file,caption) or ROCOv2 captions CSV.")],
    out: Annotated[Path, typer.Option(help="Caption model directory to create.")],
    method: Annotated[
        str,
        typer.Option(
            help="retrieval (CPU, no VLM weights) | blip2 (LoRA on a local BLIP-2, --base)"
        ),
    ] = "retrieval",
    base: Annotated[Path | None, typer.Option(help="blip2: local BLIP-2 directory.")] = None,
    embedder: Annotated[
        str, typer.Option(help="retrieval: efficientnet-lite0 or an imaging model dir.")
    ] = "efficientnet-lite0",
    k: Annotated[
        int,
        typer.Option(
            help="retrieval: neighbours whose captions compete (the earlier word vote used 5)."
        ),
    ] = 50,
    selection: Annotated[
        str,
        typer.Option(
            help="retrieval: expected-overlap (the caption "
            "most likely to agree with the neighbours') "
            "| consensus (the earlier word vote)"
        ),
    ] = "expected-overlap",
    temperature: Annotated[
        float | None,
        typer.Option(
            help="expected-overlap: similarity "
            "temperature; default: chosen on "
            "repeated case-group splits of the "
            "training part"
        ),
    ] = None,
    self_credit: Annotated[
        float | None,
        typer.Option(
            help="expected-overlap: how much a "
            "neighbour with the candidate's own "
            "caption counts, 0–1; default: "
            "chosen with the temperature"
        ),
    ] = None,
    image_weight: Annotated[
        float | None,
        typer.Option(
            help="expected-overlap: how much the image's neighbours count against the whole "
            "index, 0–1 (0: the best constant caption; 1: the neighbours alone); default: "
            "chosen with the temperature"
        ),
    ] = None,
    index: Annotated[
        str,
        typer.Option(
            help="retrieval: index the training part (train) or, "
            "after scoring on the split, every pair (all)"
        ),
    ] = "train",
    repeats: Annotated[
        int,
        typer.Option(
            help="retrieval: repeated case-group splits for the "
            "card's comparison with the baselines (constant "
            "caption, nearest neighbour, oracle); each one "
            "re-chooses the settings; 0 skips it"
        ),
    ] = 20,
    test_frac: Annotated[
        float, typer.Option(help="share of case groups held out for the reported metrics")
    ] = 0.25,
    epochs: Annotated[int, typer.Option(help="blip2: maximum epochs.")] = 5,
    batch_size: Annotated[int, typer.Option(help="blip2: per-process batch.")] = 4,
    grad_accum: int = 1,
    learning_rate: float = 1e-4,
    lora_r: int = 16,
    precision: PrecisionOpt = "auto",
    load_in_8bit: Annotated[
        bool, typer.Option(hidden=True, help="Deprecated: --precision int8.")
    ] = False,
    mixed_precision: Annotated[
        str | None, typer.Option(hidden=True, help="Deprecated: --precision.")
    ] = None,
    gradient_checkpointing: bool = False,
    num_processes: Annotated[int, typer.Option(help="blip2: processes/GPUs (Accelerate).")] = 1,
    num_workers: Annotated[
        int | None,
        typer.Option(
            help="Processes decoding images while the model trains (default: the CPUs less one, "
            "at most 8; 0: in the training process)."
        ),
    ] = None,
    normalisation: NormalisationOpt = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="blip2: continue from OUT/checkpoints/last "
            "where the run stopped (same data and options)"
        ),
    ] = False,
    images: ImagesOpt = None,
    concepts: ConceptsOpt = None,
    rgb_only: RgbOpt = False,
    as_json: JsonFlag = False,
) -> None:
    """Build a captioner on a caption-group split; held-out metrics go in its card."""
    if relaunched(num_processes):
        return

    with _guard(as_json), contextlib.redirect_stdout(sys.stderr):
        reader = _reader(images, concepts, rgb_only)
        if method == "blip2":
            if base is None:
                raise ValueError("--method blip2 needs --base (a local BLIP-2 directory)")
            m = train_blip2_captioner(
                data,
                out,
                str(base),
                epochs=epochs,
                batch_size=batch_size,
                grad_accum=grad_accum,
                learning_rate=learning_rate,
                lora_r=lora_r,
                precision=_precision(precision, mixed_precision, load_in_8bit),
                gradient_checkpointing=gradient_checkpointing,
                num_workers=num_workers,
                normalisation=normalisation,
                resume=resume,
                **reader,
            )
            if not m:
                return
        elif method == "retrieval":
            m = build_captioner(
                data,
                out,
                embedder,
                k,
                test_frac,
                selection=selection,
                temperature=temperature,
                self_credit=self_credit,
                image_weight=image_weight,
                index=index,
                repeats=repeats,
                normalisation=normalisation,
                num_workers=num_workers,
                **reader,
            )
        else:
            raise ValueError(f"unknown captioning method {method!r}: retrieval or blip2")
    _emit(
        m,
        as_json,
        f"saved {out}: held-out n={m['n']} BLEU-4 {m['bleu_4']:.3f} "
        f"ROUGE-L {m['rouge_l']:.3f} CIDEr {m['cider']:.3f}"
        + (f"; {m['verdict']}" if m.get("verdict") else ""),
    )


@caption_app.command("plan")
def caption_plan(
    base: Annotated[
        Path, typer.Option(help="Local BLIP-2 directory (only its config.json is read).")
    ],
    batch_size: Annotated[int, typer.Option(help="Per-process batch.")] = 4,
    tokens: Annotated[
        int,
        typer.Option(
            help="Text tokens per example, besides the query "
            "tokens (training truncates at 64 − 32 = 32)."
        ),
    ] = 32,
    lora_r: int = 16,
    gradient_checkpointing: bool = False,
    precision: PrecisionOpt = "auto",
    gpu_memory_gb: Annotated[
        float | None,
        typer.Option(
            help="Plan for another GPU: its memory in GiB as nvidia-smi shows it (MiB / 1024; a "
            "16 GB T4 shows 15). Default: this machine's GPUs."
        ),
    ] = None,
    bf16: Annotated[
        bool,
        typer.Option(
            help="With --gpu-memory-gb: whether that GPU has bf16 (--no-bf16 for a T4 or V100)."
        ),
    ] = True,
    gpus: Annotated[
        int, typer.Option(help="With --gpu-memory-gb: how many (DDP; each holds a whole copy).")
    ] = 1,
    bitsandbytes: Annotated[
        bool | None,
        typer.Option(help="Whether bitsandbytes will be installed (default: whether it is here)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Which precision a BLIP-2 + LoRA training would use — bf16, fp16, fp32, int8, nf4 — with
    each plan's memory per GPU estimated from config.json alone, before anything is loaded.
    Exit code 2 when nothing fits (the table and what would fit are still printed)."""

    with _guard(as_json):
        if gpu_memory_gb is not None:
            if gpu_memory_gb <= 0 or gpus < 1:
                raise ValueError("--gpu-memory-gb must be positive and --gpus at least 1")
            gpu: GpuInfo | None = GpuInfo(
                name="described GPU",
                total_bytes=int(gpu_memory_gb * GIB),
                bf16=bf16,
                capability=(8, 0) if bf16 else (7, 5),
                count=gpus,
            )
        else:
            gpu = detect_gpus()
        config = load_config(base)
        try:
            chosen = choose_plan(
                config,
                gpu,
                batch_size,
                tokens,
                lora_r,
                gradient_checkpointing,
                bitsandbytes,
                precision,
            )
            plans, refused = chosen.table, None
        except PlanRefused as exc:
            chosen, plans, refused = None, exc.plans, exc
    setting = plans[0].setting
    assert setting is not None
    result = {
        "base": str(base),
        "device": setting.device,
        "gpu": None
        if gpu is None
        else {
            "name": gpu.name,
            "total_bytes": gpu.total_bytes,
            "bf16": gpu.bf16,
            "count": gpu.count,
            "capability": list(gpu.capability),
        },
        "budget_bytes": setting.budget_bytes,
        "budget_fraction": setting.budget_fraction,
        "parameters": setting.parameters,
        "trainable_parameters": setting.trainable,
        "batch_size": batch_size,
        "tokens": tokens,
        "tokens_in_batch": setting.tokens_in_batch,
        "lora_r": lora_r,
        "gradient_checkpointing": gradient_checkpointing,
        "requested": precision,
        "chosen": chosen.name if chosen else None,
        "largest_batch": chosen.largest_batch if chosen else None,
        "plans": [p.as_dict() for p in plans],
        "advice": refused.advice if refused else [],
    }
    if refused is not None:
        result.update(error=str(refused).splitlines()[0], error_type="PlanRefused")
    _emit(result, as_json, str(refused) if refused else describe(plans, chosen))
    if refused is not None:
        raise typer.Exit(2)


@caption_app.command("evaluate")
def caption_evaluate(
    data: Annotated[Path, typer.Option(help="pairs.csv (file,caption) or ROCOv2 captions CSV.")],
    model: Annotated[
        str | None,
        typer.Option(
            help="Caption model directory or registered name (e.g. the bundled "
            "caption-retrieval; there is no default captioner: none beats one fixed "
            "sentence here). Every row of --data is scored; nothing is trained."
        ),
    ] = None,
    bertscore_model: Annotated[
        str | None, typer.Option(help="Local Hugging Face encoder directory for BERTScore.")
    ] = None,
    normalisation: NormalisationOpt = None,
    images: ImagesOpt = None,
    concepts: ConceptsOpt = None,
    rgb_only: RgbOpt = False,
    as_json: JsonFlag = False,
) -> None:
    """BLEU-1..4, ROUGE-1/L, METEOR, CIDEr and BERTScore, on captions normalised as the result's
    "normalisation" says; a 2025 one lists the 2025 metrics not computed and why."""

    with _guard(as_json), contextlib.redirect_stdout(sys.stderr):
        reader = _reader(images, concepts, rgb_only)
        norm = normalisation_for(reader, normalisation)
        directory = model_folder(model, "caption")
        captioner = model_dir.load(directory, models_dir=get_settings().storage.models_dir)
        ds = load_captions(data, **reader)
        m = score_captioner(
            captioner, ds, list(range(len(ds.records))), bertscore_model, normalisation=norm
        )
        m["data"] = ds.report
        m["model"] = captioner.identity.model_dump()
        trained_on = {d.get("sha256") for d in captioner.card.data} if captioner.card else set()
        if Path(data).is_file() and model_dir.file_sha256(data) in trained_on:
            m["warning"] = (
                "this file is the model's own training data: its index holds "
                "these images, so the scores are optimistic"
            )
    _emit(
        m,
        as_json,
        " ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in m.items()
            if k not in ("examples", "split", "data", "model", "not_computed")
        ),
    )


@caption_app.command("predict")
def caption_predict(
    image: Annotated[Path, typer.Argument(help="PNG, JPEG or DICOM file.")],
    model: Annotated[
        str | None,
        typer.Option(
            help="Caption model directory or name, e.g. the bundled caption-retrieval (no default: "
            "the bundled captioner ties one fixed sentence on held-out cases; "
            "MEDAI_MODELS caption=DIR makes one the default)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """A suggested caption, to edit: the indexed caption most in agreement with those of the
    nearest indexed images (an AI suggestion, never a finding). An image unlike every indexed
    one gets none: status "abstained" with the reason (exit code 0)."""

    with _guard(as_json):
        data = read_limited(image, MAX_BYTES)
        directory = model_folder(model, "caption")
        captioner = model_dir.load(directory, models_dir=get_settings().storage.models_dir)
        result = captioner.predict(data).model_dump(mode="json")
    _emit(
        result,
        as_json,
        result["caption"] if result["caption"] is not None else f"abstained: {result['reason']}",
    )


MAX_FINDINGS_BYTES = 256 * 1024


@report_app.command("draft")
def report_draft(
    image: Annotated[Path, typer.Argument(help="PNG, JPEG or DICOM file of the study.")],
    findings: Annotated[
        str | None,
        typer.Option(
            help="Findings JSON (a file or inline): `medai imaging predict` output, a list of "
            "{label, probability, threshold, positive}, or a list of label names. Default: "
            "run the imaging model on IMAGE."
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            "--task", help="An imaging task (default: the registry's default imaging task)."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Imaging model (without --findings).")] = None,
    lang: Annotated[str, typer.Option(help="en | tr")] = "en",
    question: Annotated[
        str | None, typer.Option(help="Clinical question (quoted as data).")
    ] = None,
    kb: Annotated[
        Path | None,
        typer.Option(
            help="Extra knowledge base from `medai kb ingest` (default: MEDAI_KNOWLEDGE_DIR)."
        ),
    ] = None,
    caption_model: Annotated[Path | None, typer.Option(help="Caption model directory.")] = None,
    llm: Annotated[
        str | None,
        typer.Option(help="template | openai | gemini | llamacpp (default: MEDAI_LLM_BACKEND)."),
    ] = None,
    embeddings: Annotated[bool, typer.Option(help="Hybrid retrieval with e5 embeddings.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Draft a report (technique, findings, impression, recommendation) with citations."""
    with _guard(as_json), contextlib.redirect_stdout(sys.stderr):
        data = read_limited(image, MAX_BYTES)
        drafter = new_drafter(kb, caption_model=caption_model, llm=llm, embeddings=embeddings)
        raw = None
        if findings is not None:
            text = (
                read_limited(findings, MAX_FINDINGS_BYTES).decode("utf-8", "replace")
                if Path(findings).exists()
                else findings
            )
            raw = loads_limited(text, "--findings")
        if raw is None and model is None:  # MEDAI_MODELS's folder, else the bundled default
            model = str(model_folder(None, imaging_task(task)))
        result = drafter.draft(
            data, raw, task=task, model=model, lang=lang, question=question
        ).model_dump(mode="json")
    s = result["sections"]
    _emit(
        result,
        as_json,
        "\n".join(
            [f"[{result['status_label']}]"]
            + [f"{k.upper()}: {s[k]}" for k in s]
            + [f"[{c['n']}] {c['source']} — {c['title']}" for c in result["citations"]]
            + [f"warning: {w}" for w in result["warnings"]]
        ),
    )


@kb_app.command("ingest")
def kb_ingest(
    files: Annotated[list[Path], typer.Argument(help="Markdown/text, CSV, JSONL or PDF files.")],
    out: Annotated[Path, typer.Option(help="Knowledge-base folder to write (appends).")],
    licence: Annotated[
        str,
        typer.Option(help="Licence/terms of these documents (kept with every chunk for citation)."),
    ],
    text_column: Annotated[str | None, typer.Option(help="CSV/JSONL column with the text.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Chunk documents into the knowledge base; a file that is not text is refused whole."""

    with _guard(as_json):
        existing = load_chunks(out, include_builtin=False) if (out / CHUNKS_FILE).is_file() else []
        new = [c for f in files for c in read_document(f, licence, text_column)]
        seen = {c.id for c in existing}
        added = [c for c in new if c.id not in seen]
        save_chunks(out, existing + added)
    _emit(
        {
            "out": str(out),
            "files": len(files),
            "chunks_added": len(added),
            "chunks_total": len(existing) + len(added),
        },
        as_json,
        f"{len(added)} chunks added to {out} ({len(existing) + len(added)} in all)",
    )


@kb_app.command("search")
def kb_search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    kb: Annotated[Path | None, typer.Option(help="Extra knowledge-base folder.")] = None,
    k: int = 5,
    lang: Annotated[str | None, typer.Option(help="en | tr (bundled passages)")] = None,
    embeddings: bool = True,
    as_json: JsonFlag = False,
) -> None:
    """Hybrid search (BM25 + e5 embeddings) over the knowledge base."""

    with _guard(as_json), contextlib.redirect_stdout(sys.stderr):
        r = HybridRetriever(load_chunks(kb), use_embeddings=embeddings)
        hits = r.search(query, k=k, lang=lang)
    rows: list[dict[str, Any]] = [
        {
            "id": h.chunk.id,
            "score": h.score,
            "source": h.chunk.source,
            "licence": h.chunk.licence,
            "title": h.chunk.title,
            "text": h.chunk.text,
        }
        for h in hits
    ]
    _emit(
        {"mode": r.mode, "hits": rows},
        as_json,
        "\n".join(f"{x['score']:.4f} {x['id']}: {x['text'][:100]}" for x in rows),
    )
