"""`medai models …`: the model registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medai.cli.common import JsonFlag, _emit, _guard

models_app = typer.Typer(help="The model registry.", no_args_is_help=True)


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


@models_app.command("reseal")
def models_reseal(model: Annotated[Path, typer.Argument(help="Model directory.")],
                  as_json: JsonFlag = False) -> None:
    """Record the present files' content hash in the card, after you changed them on purpose
    (a model whose files differ from its card is refused at load)."""
    from medai.core.registry import reseal

    with _guard(as_json):
        card = reseal(model)
    _emit({"path": str(model), "content_hash": card.content_hash}, as_json,
          f"{model}: {card.content_hash}")
