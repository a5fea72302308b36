"""A site's report templates and macros (issue 69 §2): the built-in ones
(``reporting.report_templates.BUILT_IN``, version 0) and the versions an admin saved, each
audited (``template``: kind, task, name, language, version — never the text's content in the
log). The newest version of a key is in use; a withdrawn one (``active`` false) gives the
built-in one back, or none.

An edit names the version it was made from (``base``): one made from an older version than
the newest is refused (``TemplateStale``, 409), so two admins editing at once never silently
overwrite each other — the second sees the first's text and edits again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medai.core.errors import MedaiError
from medai.core.task_registry import get as get_task
from medai.core.task_registry import names as task_names
from medai.platform.access import audit
from medai.platform.records.tables import ReportTemplateVersion, User
from medai.services.reports import (
    BUILT_IN_TEMPLATES,
    FOLLOW_UP,
    Template,
    check_template,
    render_template,
)
from medai.services.reports import (
    TEMPLATE_NORMAL as NORMAL,
)
from medai.services.reports import template_result as result_of

Key = tuple[str, str, str, str]  # kind, task, name, lang


class TemplateStale(MedaiError):
    """The edit was made from another version than the newest (409 ``template_stale``)."""

    def __init__(self, newest: int) -> None:
        super().__init__(f"the template has changed: version {newest} is the newest")
        self.newest = newest


def _key(kind: str, task: str, name: str, lang: str) -> tuple:
    """The WHERE clauses of one template's or macro's versions."""
    return (
        ReportTemplateVersion.kind == kind,
        ReportTemplateVersion.task == task,
        ReportTemplateVersion.name == name,
        ReportTemplateVersion.lang == lang,
    )


def _of(row: ReportTemplateVersion) -> Template:
    return Template(
        row.kind, row.task, row.name, row.lang, row.title, dict(row.sections or {}), row.version
    )


def _newest(db: Session) -> dict[Key, ReportTemplateVersion]:
    latest = (
        select(
            ReportTemplateVersion.kind,
            ReportTemplateVersion.task,
            ReportTemplateVersion.name,
            ReportTemplateVersion.lang,
            func.max(ReportTemplateVersion.version).label("v"),
        )
        .group_by(
            ReportTemplateVersion.kind,
            ReportTemplateVersion.task,
            ReportTemplateVersion.name,
            ReportTemplateVersion.lang,
        )
        .subquery()
    )
    rows = db.scalars(
        select(ReportTemplateVersion).join(
            latest,
            (ReportTemplateVersion.kind == latest.c.kind)
            & (ReportTemplateVersion.task == latest.c.task)
            & (ReportTemplateVersion.name == latest.c.name)
            & (ReportTemplateVersion.lang == latest.c.lang)
            & (ReportTemplateVersion.version == latest.c.v),
        )
    ).all()
    return {(r.kind, r.task, r.name, r.lang): r for r in rows}


def in_use(db: Session, kind: str | None = None, lang: str | None = None) -> list[dict[str, Any]]:
    """Every template and macro in use (a site's newest active version, else the built-in
    one), each with who saved it and when; templates first, then by task, name, language."""
    saved = _newest(db)
    out: dict[Key, dict[str, Any]] = {}
    for t in BUILT_IN_TEMPLATES:
        out[t.key] = _as_dict(t, None)
    names = {u.id: u.username for u in db.scalars(select(User)).all()} if saved else {}
    for key, row in saved.items():
        if row.active:  # withdrawn: the built-in one stays (a site's own key: none)
            out[key] = _as_dict(_of(row), row, names.get(row.created_by))
    rows = [
        v
        for v in out.values()
        if (kind is None or v["kind"] == kind) and (lang is None or v["lang"] == lang)
    ]
    # templates first (what a draft starts from), then macros
    return sorted(rows, key=lambda v: (v["kind"] != "template", v["task"], v["name"], v["lang"]))


def _as_dict(t: Template, row: ReportTemplateVersion | None, by: str | None = None) -> dict:
    return {
        "kind": t.kind,
        "task": t.task,
        "name": t.name,
        "lang": t.lang,
        "title": t.title,
        "sections": dict(t.sections),
        "version": t.version,
        "built_in": row is None,
        "saved_by": by,
        "saved_at": row.created_at.isoformat() + "Z" if row is not None else None,
    }


def pick(db: Session, kind: str, task: str, name: str, lang: str) -> Template | None:
    """The one in use for the key: the site's newest version, the built-in one when there is
    none or it was withdrawn; None when neither."""
    row = db.scalar(
        select(ReportTemplateVersion)
        .where(
            *_key(kind, task, name, lang),
        )
        .order_by(ReportTemplateVersion.version.desc())
        .limit(1)
    )
    if row is not None and row.active:
        return _of(row)
    return next((t for t in BUILT_IN_TEMPLATES if t.key == (kind, task, name, lang)), None)


def draft_sections(
    db: Session,
    task: str,
    decision: dict | None,
    lang: str,
    ai: dict[str, str],
    follow_up: bool = False,
) -> dict[str, str]:
    """The AI draft's sections, started from the template of its result (``result_of``; with
    a signed prior to compare, ``follow_up``, the result's follow-up template first, with its
    measurement slots); the AI's own sections where none matches."""
    result = result_of(decision)
    template = None
    if result and follow_up:
        template = pick(db, "template", task, result + FOLLOW_UP, lang)
    if result and template is None:
        template = pick(db, "template", task, result, lang)
    return render_template(template, ai)


def save(
    db: Session,
    actor: audit.Actor,
    *,
    kind: str,
    task: str,
    name: str,
    lang: str,
    title: str,
    sections: dict[str, str],
    base: int,
    active: bool = True,
) -> dict[str, Any]:
    """A new version of the key (``ValueError`` naming what is wrong; ``TemplateStale`` when
    ``base`` is not the newest version, 0 for a built-in one or a new key)."""
    check_template(kind, task, name, lang, sections)
    _check_task(kind, task, name)
    newest = (
        db.scalar(
            select(func.max(ReportTemplateVersion.version)).where(
                *_key(kind, task, name, lang),
            )
        )
        or 0
    )
    if base != newest:
        raise TemplateStale(newest)
    row = ReportTemplateVersion(
        kind=kind,
        task=task,
        name=name,
        lang=lang,
        version=newest + 1,
        title=title.strip()[:120] or name,
        sections={k: v.replace("\r\n", "\n") for k, v in sections.items()},
        active=active,
        created_by=actor.id,
    )
    db.add(row)
    try:
        db.flush()
    except IntegrityError:  # another admin saved the same version meanwhile
        raise TemplateStale(newest + 1) from None
    audit.record(
        db,
        actor,
        "template",
        "report_template",
        row.id,
        kind=kind,
        task=task,
        name=name,
        lang=lang,
        version=row.version,
        active=active,
    )
    return _as_dict(_of(row), row, actor.name)


def _check_task(kind: str, task: str, name: str) -> None:
    """A template's task is an imaging task and its result ``normal`` or one of its labels; a
    macro's task is one, or none (every task). ``ValueError`` lists the valid ones."""
    tasks = task_names("imaging")
    if task and task not in tasks:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(tasks)}")
    if kind != "template":
        return
    labels = [lab for lab in get_task(task).labels if lab != get_task(task).normal]
    result = name.removesuffix(FOLLOW_UP)
    if result != NORMAL and result not in labels:
        raise ValueError(
            f"unknown result {result!r} of {task}; valid: {', '.join([NORMAL, *labels])}"
        )


def history(db: Session, kind: str, task: str, name: str, lang: str) -> list[dict[str, Any]]:
    """Every saved version of the key, newest first (the built-in one is version 0)."""
    rows = db.scalars(
        select(ReportTemplateVersion)
        .where(
            *_key(kind, task, name, lang),
        )
        .order_by(ReportTemplateVersion.version.desc())
    ).all()
    names = {u.id: u.username for u in db.scalars(select(User)).all()} if rows else {}
    out = [_as_dict(_of(r), r, names.get(r.created_by)) | {"active": r.active} for r in rows]
    built = next((t for t in BUILT_IN_TEMPLATES if t.key == (kind, task, name, lang)), None)
    if built is not None:
        out.append(_as_dict(built, None) | {"active": True})
    return out
