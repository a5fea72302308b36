"""Page routes. Pages are shells; their data comes from the API (same origin, cookie session,
CSRF header), so everything the UI does can be done through the API."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context

from medai.core.task_registry import names as task_names
from medai.platform.access.approval import is_pending
from medai.platform.access.audit import ACTIONS
from medai.platform.access.roles import ROLES
from medai.platform.api.deps import platform_of, principal
from medai.platform.api.routes.kiosks import kiosk_of
from medai.platform.documents.words.report_words import SECTIONS
from medai.platform.web.i18n import (
    COOKIE,
    DEFAULT,
    LANGUAGES,
    display_names,
    messages,
)
from medai.platform.web.viewer import installed as viewer_installed
from medai.server.errors import ApiError
from medai.server.inputs import MAX_ID, RowId
from medai.services.imaging import MAX_BYTES
from medai.services.model_handles import served_tasks

HERE = Path(__file__).parent
# the upload form's files at once (each its own request: the server checks each one's size)
UPLOAD_MAX_FILES = 20
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)
STATIC = StaticFiles(directory=str(HERE / "static"))
HOME_FOR = {
    "admin": "/admin",
    "radiologist": "/worklist",
    "clinician": "/worklist",
    "patient": "/triage",
}
# page -> roles that may open it (None: anyone, signed in or not)
PAGES: dict[str, tuple[str, frozenset[str] | None]] = {
    "login": ("login.html", None),
    "enrol": ("enrol.html", None),  # a new user chooses their password with a one-time code
    "triage": ("triage.html", None),
    "kiosk": ("triage.html", None),  # a registered kiosk's screen (its cookie)
    "kiosk_enrol": ("kiosk_enrol.html", None),
    "worklist": ("worklist.html", frozenset({"radiologist", "clinician"})),
    "study": ("study.html", frozenset({"radiologist", "clinician"})),
    "chat": ("chat.html", frozenset({"radiologist", "clinician"})),
    "admin": ("admin.html", frozenset({"admin"})),
    "monitoring": ("monitoring.html", frozenset({"admin"})),
    "triage_outcome": ("triage_outcome.html", frozenset({"radiologist", "clinician"})),
    "history": ("history.html", frozenset({"admin", "radiologist", "clinician", "patient"})),
    # the user's own full name and title (how signed reports name them)
    "account": ("account.html", frozenset(ROLES)),
}


def _lang(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked is not None and asked in LANGUAGES:
        return asked
    cookie = request.cookies.get(COOKIE)
    return cookie if cookie is not None and cookie in LANGUAGES else DEFAULT


def _who(request: Request):
    try:
        return principal(request)
    except ApiError:  # an expired or revoked session: treat as signed out
        return None


def _script_json(value) -> str:
    """JSON safe inside a <script type="application/json"> block."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


def render(request: Request, page: str, **context) -> Response:
    template, roles = PAGES[page]
    who = _who(request)
    user = who.user if who else None
    if roles is not None and (user is None or user.role not in roles):
        if user is None:
            return RedirectResponse(f"/login?next={request.url.path}", 303)
        return RedirectResponse(HOME_FOR.get(user.role, "/triage"), 303)
    lang = _lang(request)
    t = messages(lang)
    names = display_names(lang)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "t": t,
            "lang": lang,
            "other_lang": "en" if lang == "tr" else "tr",
            "page": page,
            "user": user,
            # app.js by a versioned address: on the first page after an upgrade the old
            # service worker still answers /ui/app.js from its cache, and that older app.js
            # would not enable the page's submit buttons (data-until-ready)
            "static_version": static_version(),
            "i18n_json": _script_json(t),
            "names": names,
            # the two-person rule: a clinical account not yet approved is told why it sees nothing
            "approval_pending": user is not None and is_pending(user),
            "names_json": _script_json(names),
            "timezone": platform_of(request).settings.general.timezone,
            "viewer_installed": viewer_installed(),
            "imaging_tasks": [(n, v["name"]) for n, v in names.items() if v["reads_images"]],
            **context,
        },
    )
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(COOKIE, lang, max_age=365 * 86400, samesite="strict")
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    who = _who(request)
    if who is None or who.user is None:
        return RedirectResponse("/triage", 303)
    return RedirectResponse(HOME_FOR.get(who.user.role, "/triage"), 303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return render(request, "login")


@router.get("/enrol", response_class=HTMLResponse)
def enrol_page(request: Request) -> Response:
    """Where a new (or reset) user types the code an administrator gave them and chooses a
    password; never cached, like every page that takes a secret."""
    response = render(request, "enrol")
    response.headers["Cache-Control"] = "no-store"
    return response


@pass_context
def kiosk_defaults(context: Context) -> dict[str, int]:
    """Kiosk settings the pages show: the idle seconds before a shared triage screen clears
    itself, the daily quota a new kiosk gets (the settings of the page's platform)."""
    kiosk = platform_of(context["request"]).settings.kiosk
    return {"idle_s": kiosk.kiosk_idle_s, "daily_quota": kiosk.kiosk_device_quota}


templates.env.globals["kiosk_defaults"] = kiosk_defaults


@router.get("/triage", response_class=HTMLResponse)
def triage_page(request: Request) -> Response:
    return render(request, "triage")


@router.get("/kiosk", response_class=HTMLResponse)
def kiosk_page(request: Request) -> Response:
    """A registered kiosk's triage screen (by its cookie), else the enrolment form. Never
    stored by the browser, so the next patient cannot go back to the previous one's page."""
    try:
        kiosk, problem = kiosk_of(request), None
    except ApiError as exc:  # kiosk_revoked | kiosk_unknown
        kiosk, problem = None, exc.code
    who = _who(request)
    if who is not None and who.user is not None:
        problem = "signed_in"  # a session would outlive the patient who opened it
    response = (
        render(request, "kiosk", kiosk=kiosk.name)
        if kiosk and not problem
        else render(request, "kiosk_enrol", problem=problem)
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/worklist", response_class=HTMLResponse)
def worklist_page(request: Request) -> Response:
    # several files upload at once: how many and how large, checked before any is read
    return render(
        request, "worklist", upload_max_files=UPLOAD_MAX_FILES, upload_max_bytes=MAX_BYTES
    )


@router.get("/studies/{study_id}", response_class=HTMLResponse)
def study_page(study_id: RowId, request: Request) -> Response:
    return render(request, "study", study_id=study_id, sections=SECTIONS)


@router.get("/chat", response_class=HTMLResponse)
def chat_page(request: Request, study: int | None = Query(None, ge=1, le=MAX_ID)) -> Response:
    return render(request, "chat", study_id=study)


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request) -> Response:

    # the most common new account first
    roles = sorted(ROLES, key=lambda r: r != "radiologist")
    return render(
        request,
        "admin",
        roles=roles,
        audit_actions=ACTIONS,
        model_tasks=served_tasks(),
        retrain_tasks=[t for t in served_tasks() if t in task_names("imaging")],
    )


@router.get("/monitoring", response_class=HTMLResponse)
def monitoring_page(request: Request) -> Response:
    """Each active model's volume, drift, agreement with signatures and alerts."""
    return render(request, "monitoring")


@router.get("/triage-outcome", response_class=HTMLResponse)
def triage_outcome_page(request: Request) -> Response:
    """Where staff record the department a triaged patient was actually sent to."""
    return render(request, "triage_outcome")


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request) -> Response:
    return render(request, "account")


@router.get("/history", response_class=HTMLResponse)
def history_page(request: Request) -> Response:
    return render(request, "history")


@lru_cache(maxsize=1)
def static_version() -> str:
    """A digest of every static file: names the service worker's cache, and versions the URL
    of ``app.js`` in every page."""
    static = HERE / "static"
    digest = hashlib.sha256()
    for path in sorted(p for p in static.rglob("*") if p.is_file()):
        digest.update(path.relative_to(static).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def _service_worker_source() -> str:
    """sw.js with its cache named by the content of the files it caches: a release that
    changes any of them is a new worker to the browser, which then drops the old shell (a
    fixed name kept an upgraded site's browsers on the old scripts, cache-first, for good)."""
    return (
        (HERE / "static" / "sw.js")
        .read_text()
        .replace('"medai-shell-v1"', f'"medai-shell-{static_version()}"')
    )


@router.get("/sw.js")
def service_worker() -> Response:
    """Served from the root so that its scope covers every page."""
    return Response(
        _service_worker_source(),
        media_type="text/javascript",
        headers={"Service-Worker-Allowed": "/", "Cache-Control": "no-cache"},
    )


@router.get("/manifest.webmanifest")
def manifest() -> Response:
    return Response(
        (HERE / "static" / "manifest.webmanifest").read_text(),
        media_type="application/manifest+json",
    )
