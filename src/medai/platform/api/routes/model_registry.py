"""Admin: the model registry over HTTP — the registered models and their states, registering a
directory the hospital placed in MEDAI_MODELS_DIR, shadow, promote (with the site validation or
an override), roll back and retire. Every change is audited with its reason; this process
swaps to a newly active model before answering, every other serve process and worker within
MEDAI_MODEL_WATCH_S."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, cast

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.api.schemas import Strict
from medai.platform.lifecycle import model_registry, shadow, site_sets, validation
from medai.server.errors import ApiError
from medai.server.inputs import RowId
from medai.server.schemas import ImagingTask, error_responses
from medai.services.tracking import PREFIX

router = APIRouter(prefix="/api/v1/models", tags=["models"])
State = Literal["candidate", "shadow", "active", "retired"]
# at least one character that is not a space: ``model_registry.reason_of`` refuses a blank one
# (and no control character: its own pattern says both)
_TEXT = "[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]"
_WORD = "[^\\s\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]"
Reason = Field(
    min_length=1, max_length=model_registry.MAX_REASON, pattern=f"^{_TEXT}*{_WORD}{_TEXT}*$"
)


class ModelOut(BaseModel):
    id: int
    task: str
    name: str
    version: str
    display_version: str = Field(
        description=(
            "the version as people read it: the version and a short content hash, so two "
            "different models never read alike"
        )
    )
    model_type: str
    content_hash: str
    state: State
    served: bool = Field(
        True,
        description=(
            "False for a task kept as a record only (the red-flag engine): no move applies"
        ),
    )
    source: str
    path: str
    registered_by: str
    registered_at: str | None
    state_at: str | None
    metrics: dict[str, Any]
    validation: dict[str, Any] | None = Field(
        None,
        description=(
            "the latest site validation of this model: passed, outcome (passed, "
            "not_non_inferior or inconclusive, with why), site set version, summary"
        ),
    )
    rollback_to: dict[str, Any] | None = Field(
        None,
        description=(
            "for the active model: the model a rollback would re-activate (id, name, version, "
            "display_version, content_hash, state); null when there is none"
        ),
    )


class TransitionOut(BaseModel):
    id: int
    model_id: int
    task: str
    from_: str | None = Field(alias="from")
    to: str
    reason: str
    actor: str
    override: bool
    at: str | None


class ModelDetail(ModelOut):
    card: dict[str, Any]
    history: list[TransitionOut]


class ModelList(BaseModel):
    items: list[ModelOut]


class RegisterIn(Strict):
    path: str = Field(
        min_length=1,
        max_length=1000,
        description="a sealed model directory inside MEDAI_MODELS_DIR, or "
        "mlflow:RUN_ID (a run in the server's MLFLOW_TRACKING_URI)",
    )
    task: str | None = Field(None, max_length=32)


class Registered(ModelOut):
    new: bool
    note: str | None = Field(
        None,
        description=(
            "when ``new`` is false: these files were registered already, and what identifies a "
            "model (the content hash of its files)"
        ),
    )


class ReasonIn(Strict):
    reason: str = Reason


class PromoteIn(ReasonIn):
    override: bool = False


class RollbackIn(ReasonIn):
    task: str = Field(min_length=1, max_length=32)
    to: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description=(
            "the model the admin confirmed rolling back to (``rollback_to`` of the active model); "
            "409 ``rollback_target_changed`` when the rollback would now go elsewhere"
        ),
    )


class SiteSetIn(Strict):
    task: ImagingTask


class SiteSetOut(BaseModel):
    id: int
    task: str
    version: int
    studies: int
    label_counts: dict[str, int]
    content_hash: str
    created_by: str
    created_at: str | None


class Moved(ModelOut):
    replaced: int | None = None
    served_here: bool = Field(description="this process already serves the newly active model")


def _inside_models_dir(raw: str, models_dir: Path) -> Path:
    """A registration over HTTP reads only what the hospital placed in its models folder
    (``models_dir``: ``MEDAI_MODELS_DIR``)."""
    root = models_dir.resolve()
    path = Path(raw)
    path = (path if path.is_absolute() else root / path).resolve()
    if not path.is_relative_to(root):
        raise ApiError(
            422,
            "path_not_allowed",
            f"only directories inside MEDAI_MODELS_DIR "
            f"({root}) can be registered over HTTP; use "
            "`medai models register` on the server",
        )
    if not path.is_dir():
        raise ApiError(422, "model_refused", f"{raw}: no such directory in MEDAI_MODELS_DIR")
    return path


@router.get("/registry", response_model=ModelList, responses=error_responses(401, 403, 422))
def list_registered(
    request: Request,
    who: Principal = Depends(require("models_read")),
    task: str | None = Query(None, max_length=32),
    state: State | None = None,
) -> ModelList:
    """The registered models of every task (or one), with their states."""
    with platform_of(request).db.reader() as db:
        return ModelList(
            items=[ModelOut(**r) for r in validation.registry_listing(db, task, state)]
        )


@router.get(
    "/registry/{model_id}",
    response_model=ModelDetail,
    responses=error_responses(401, 403, 404, 422),
)
def show_registered(
    model_id: RowId, request: Request, who: Principal = Depends(require("models_read"))
) -> ModelDetail:
    """One registered model: its card and every change of its state."""
    with platform_of(request).db.reader() as db:
        return ModelDetail(**model_registry.view(db, model_id))


@router.post(
    "/registry",
    response_model=Registered,
    status_code=201,
    responses=error_responses(401, 403, 409, 422),
)
async def register_model(
    body: RegisterIn, request: Request, who: Principal = Depends(require("models_manage"))
) -> Registered:
    """Register a sealed model directory from MEDAI_MODELS_DIR as a candidate. A model is
    identified by the content hash of its files (every file but its model_card.json): the same
    files and card again give the existing entry (``new`` false, ``note`` says so); the same
    files under an edited card are refused (409 ``already_registered``, naming the model
    registered with that hash), and so are other files under a name and version the task
    already has (409 ``version_taken``)."""

    p = platform_of(request)
    tracked = body.path.startswith(PREFIX)
    source = (
        body.path
        if tracked
        else str(_inside_models_dir(body.path, cast(Path, p.settings.storage.models_dir)))
    )

    def run() -> Registered:
        with model_registry.fetched(source) as directory, p.db.session() as db:
            return Registered(
                **model_registry.registration(
                    db,
                    p.home,
                    directory,
                    who.actor,
                    task=body.task,
                    source=source if tracked else None,
                )
            )

    return await run_in_threadpool(run)  # copies and hashes the files


async def _then_serve(request: Request, row: dict, replaced: int | None) -> Moved:
    """Swap this process to the newly active model before answering."""
    p = platform_of(request)
    if p.watcher is not None:
        await run_in_threadpool(p.watcher.poll_once)
    here = (
        p.models.served_path(row["task"]) == str(p.home / row["path"])
        if row["task"] in p.models.tasks
        else False
    )
    return Moved(**row, replaced=replaced, served_here=here)


@router.post(
    "/registry/{model_id}/promote",
    response_model=Moved,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def promote_model(
    model_id: RowId,
    body: PromoteIn,
    request: Request,
    who: Principal = Depends(require("models_manage")),
) -> Moved:
    """Make a model its task's active one (the site validation must clear it, or
    ``override`` with the reason); the replaced model is retired."""
    p = platform_of(request)
    with p.db.session() as db:
        row = validation.promote_model(db, model_id, who.actor, body.reason, body.override)
    replaced = row.pop("replaced")
    return await _then_serve(request, row, replaced)


@router.post("/rollback", response_model=Moved, responses=error_responses(401, 403, 409, 422))
async def rollback_model(
    body: RollbackIn, request: Request, who: Principal = Depends(require("models_manage"))
) -> Moved:
    """Re-activate the model that was active before the current one of ``task`` — never one
    that was rolled back from (409 ``no_rollback_target`` when there is none)."""
    p = platform_of(request)
    with p.db.session() as db:
        restored, replaced = model_registry.rollback(
            db, body.task, who.actor, body.reason, expected=body.to
        )
        row, replaced_id = model_registry.as_dict(restored), replaced.id
    return await _then_serve(request, row, replaced_id)


@router.post(
    "/site-sets",
    response_model=SiteSetOut,
    status_code=201,
    responses=error_responses(401, 403, 409, 422),
)
def build_site_set(
    body: SiteSetIn, request: Request, who: Principal = Depends(require("models_manage"))
) -> SiteSetOut:
    """Freeze the task's held-out signed studies as its next site evaluation set (as
    ``medai models site-set``); 409 ``empty_site_set`` while no signed study with labels is
    held out (an empty set could judge no candidate)."""
    p = platform_of(request)
    fraction = p.settings.models.site_set_fraction
    with p.db.session() as db:
        return SiteSetOut(
            **site_sets.as_dict(site_sets.build(db, body.task, who.actor.name, fraction))
        )


def _set_state(
    request: Request, model_id: int, state: str, reason: str, who: Principal
) -> ModelOut:
    with platform_of(request).db.session() as db:
        return ModelOut(
            **model_registry.as_dict(
                model_registry.set_state(db, model_id, state, who.actor, reason)
            )
        )


@router.post(
    "/registry/{model_id}/shadow",
    response_model=ModelOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def shadow_model(
    model_id: RowId,
    body: ReasonIn,
    request: Request,
    who: Principal = Depends(require("models_manage")),
) -> ModelOut:
    """Put a candidate in shadow: it analyses live studies too, never shown to clinicians."""
    return _set_state(request, model_id, "shadow", body.reason, who)


@router.post(
    "/registry/{model_id}/retire",
    response_model=ModelOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def retire_model(
    model_id: RowId,
    body: ReasonIn,
    request: Request,
    who: Principal = Depends(require("models_manage")),
) -> ModelOut:
    """Retire a candidate or shadow model."""
    return _set_state(request, model_id, "retired", body.reason, who)


class ShadowOut(BaseModel):
    model_id: int
    content_hash: str
    studies: int
    agreement: float | None = Field(
        description="share of studies whose decided findings (and refusal) equal the active model's"
    )
    only_active: dict[str, int]
    only_shadow: dict[str, int]
    signed_studies: int = Field(0, description="studies analysed in shadow and since signed")
    signatures: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "per label, on those signed studies: sensitivity and PPV (each [rate, low, high]) "
            "of the shadow model and of the active model, against the radiologists' labels"
        ),
    )


@router.get(
    "/registry/{model_id}/shadow",
    response_model=ShadowOut,
    responses=error_responses(401, 403, 404, 422),
)
def shadow_summary(
    model_id: RowId, request: Request, who: Principal = Depends(require("models_read"))
) -> ShadowOut:
    """How a model run in shadow compared with the active model on live studies so far."""
    p = platform_of(request)
    with p.db.reader() as db:
        row = model_registry.get(db, model_id)
        db.expunge(row)
    return ShadowOut(**shadow.summary(p, row))


@router.get(
    "/history", response_model=list[TransitionOut], responses=error_responses(401, 403, 422)
)
def model_history(
    request: Request,
    who: Principal = Depends(require("models_read")),
    task: str | None = Query(None, max_length=32),
) -> list[TransitionOut]:
    """Every change of state of the registered models (of one task), oldest first."""
    with platform_of(request).db.reader() as db:
        return [
            TransitionOut(**model_registry.transition_dict(t))
            for t in model_registry.history(db, task)
        ]
