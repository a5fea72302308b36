"""Report templates and macros (issue 69 §2): every clinical user and admin reads those in use
(the study page expands macros from them and lists them in its shortcuts); an admin saves a new
version, withdraws one, and reads a key's versions. Every save is audited
(``reading.report_templates``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from medai.platform.api.deps import Principal, platform_of, require
from medai.platform.reading import report_templates
from medai.server.errors import ApiError
from medai.server.schemas import error_responses

router = APIRouter(prefix="/api/v1", tags=["report templates"])
Kind = Literal["template", "macro"]
Lang = Literal["tr", "en"]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
Task = Annotated[str, Field(max_length=32, pattern=r"^[a-z0-9_-]*$")]


class TemplateOut(BaseModel):
    kind: Kind
    task: str = Field(description="the task it belongs to; '' for a macro of every task")
    name: str = Field(description="a template's result ('normal' or a label); a macro's .word")
    lang: Lang
    title: str
    sections: dict[str, str] = Field(
        description="a template's sections ({technique}, {findings}, … place the AI's text; "
        "[…] is a slot the radiologist fills); a macro's {'text': …}"
    )
    version: int = Field(description="0: built in; a site's saved versions count from 1")
    built_in: bool
    saved_by: str | None = None
    saved_at: str | None = None
    active: bool | None = Field(None, description="history only: false for a withdrawal")


class TemplateIn(BaseModel):
    kind: Kind
    task: Task = ""
    name: Name
    lang: Lang
    title: str = Field("", max_length=120)
    sections: dict[Annotated[str, Field(max_length=16)], Annotated[str, Field(max_length=4000)]] = (
        Field(max_length=8)
    )
    base_version: int = Field(
        ge=0,
        le=1_000_000,
        description="the version this edit was made from (0: the built-in one, or a new key); "
        "another admin's newer save is refused 409",
    )
    active: bool = Field(True, description="false: withdraw it (the built-in one, if any, is used)")


@router.get(
    "/report-templates",
    response_model=list[TemplateOut],
    responses=error_responses(401, 403, 422),
)
def list_templates(
    request: Request,
    kind: Kind | None = Query(None),
    lang: Lang | None = Query(None),
    who: Principal = Depends(require("templates_read")),
) -> list[TemplateOut]:
    """The templates and macros in use, built in or the site's newest version."""
    return _in_use(request, kind, lang)


@router.get(
    "/admin/report-templates",
    response_model=list[TemplateOut],
    responses=error_responses(401, 403, 422),
)
def admin_list_templates(
    request: Request,
    kind: Kind | None = Query(None),
    lang: Lang | None = Query(None),
    who: Principal = Depends(require("templates_manage")),
) -> list[TemplateOut]:
    """The same list, for the admin who keeps them (who reads no patient data)."""
    return _in_use(request, kind, lang)


def _in_use(request: Request, kind: str | None, lang: str | None) -> list[TemplateOut]:
    p = platform_of(request)
    with p.db.reader() as db:
        return [TemplateOut(**t) for t in report_templates.in_use(db, kind, lang)]


@router.post(
    "/admin/report-templates",
    response_model=TemplateOut,
    status_code=201,
    responses=error_responses(401, 403, 409, 422),
)
def save_template(
    body: TemplateIn, request: Request, who: Principal = Depends(require("templates_manage"))
) -> TemplateOut:
    """Save a new version of a template or macro (audited), or withdraw one (``active``)."""
    p = platform_of(request)
    try:
        with p.db.session() as db:
            saved = report_templates.save(
                db,
                who.actor,
                kind=body.kind,
                task=body.task,
                name=body.name.strip(),
                lang=body.lang,
                title=body.title,
                sections=body.sections,
                base=body.base_version,
                active=body.active,
            )
    except report_templates.TemplateStale as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except ValueError as exc:
        raise ApiError(422, "invalid", str(exc)) from None
    return TemplateOut(**saved)


@router.get(
    "/admin/report-templates/history",
    response_model=list[TemplateOut],
    responses=error_responses(401, 403, 422),
)
def template_history(
    request: Request,
    kind: Kind = Query(...),
    name: Name = Query(...),
    lang: Lang = Query(...),
    task: Task = Query(""),
    who: Principal = Depends(require("templates_manage")),
) -> list[TemplateOut]:
    """Every saved version of one template or macro, newest first; the built-in one last."""
    p = platform_of(request)
    with p.db.reader() as db:
        return [TemplateOut(**t) for t in report_templates.history(db, kind, task, name, lang)]
