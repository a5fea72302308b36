"""The diagnostic viewer: OHIF v3's prebuilt ``dist/`` served by medai under ``/viewer``, same
origin, no CDN, its one data source medai's own DICOMweb (``/api/v1/dicomweb``).

Why served by medai: OHIF then reads with the radiologist's session cookie, through the same
accounts, approvals and audit as the study page (``api.routes.dicomweb_read``), and nothing
leaves the hospital's origin. The dist is installed by ``make viewer-deps``
(``deploy/viewer/install-ohif.sh``: ``npm pack`` pinned by version and sha512 integrity) into
``.viewer/ohif`` or wherever ``MEDAI_VIEWER_DIR`` says; when it is absent ``/viewer`` answers
503 ``viewer_not_installed`` and the study page keeps medai's own viewer.

OHIF's build is rooted at ``/``: its ``index.html`` is rewritten once per process (absolute
addresses and ``window.PUBLIC_URL`` under ``/viewer/``; its ``init-service-worker.js`` left
out, because it unregisters every service worker of the origin, medai's own included) and the
hashes of its two inline scripts go into the viewer's Content-Security-Policy
(``viewer_csp`` below: WASM codecs and blob workers allowed under ``/viewer``
alone). ``app-config.js`` is medai's, generated here. OHIF's client-side routes
(``/viewer/viewer?StudyInstanceUIDs=…``) answer the same ``index.html``.

Who may open it: the page (``index.html``) and its configuration need a signed-in clinical
account (the study page's rule; an approval still pending sees OHIF but its DICOMweb reads are
refused, as on the study page); OHIF's own scripts, styles and codecs hold no patient data and
are served to anyone, cached for good (their names carry content hashes).
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import re
from functools import lru_cache
from pathlib import Path
from typing import cast
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from medai.platform.api.deps import platform_of, principal
from medai.platform.records.tables import Study
from medai.platform.web.i18n import COOKIE, DEFAULT, LANGUAGES
from medai.platform.web.viewer_hanging import extension_js, protocol_for
from medai.platform.worklist import listing, patient_context
from medai.server.errors import ApiError
from medai.server.inputs import RowId
from medai.settings import get_settings

router = APIRouter(include_in_schema=False)
PREFIX = "/viewer"
DICOMWEB_ROOT = "/api/v1/dicomweb"
READERS = frozenset({"radiologist", "clinician"})
# OHIF 3.13.2 ships a partial Turkish locale (tr-TR: the measurement table, buttons, header,
# study list; the rest falls back to English)
OHIF_LANGUAGES = {"tr": "tr-TR", "en": "en-US"}
MAX_PATH = 256


def viewer_dir() -> Path:
    """The installed OHIF ``dist/`` (the ``viewer_dir`` setting, ``MEDAI_VIEWER_DIR``; else
    the checkout's ``.viewer/ohif/dist``, where ``make viewer-deps`` puts it)."""
    configured = get_settings().serving.viewer_dir
    if configured is not None:
        return Path(configured)
    return Path(__file__).resolve().parents[4] / ".viewer" / "ohif" / "dist"


def installed() -> bool:
    return (viewer_dir() / "index.html").is_file()


def _not_installed() -> ApiError:
    return ApiError(
        503,
        "viewer_not_installed",
        "the diagnostic viewer (OHIF) is not installed on this server: run `make viewer-deps`"
        " or set MEDAI_VIEWER_DIR; the study page's own viewer still works",
    )


@lru_cache(maxsize=4)
def _index(root: str) -> tuple[bytes, tuple[str, ...]]:
    """OHIF's index.html under /viewer/, and the CSP hashes of its inline scripts."""
    html = (Path(root) / "index.html").read_text(encoding="utf-8")
    html = re.sub(
        r'<script[^>]*src="/init-service-worker\.js"[^>]*></script>', "", html
    )  # it unregisters every service worker of the origin: medai's too
    html = html.replace('window.PUBLIC_URL="/"', f'window.PUBLIC_URL="{PREFIX}/"')
    html = re.sub(r'(href|src)="/(?!/)', rf'\1="{PREFIX}/', html)
    hashes = tuple(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    )
    return html.encode(), hashes


def inline_hashes() -> tuple[str, ...]:
    """The viewer page's inline-script hashes (for its CSP), () when OHIF is absent."""
    return _index(str(viewer_dir()))[1] if installed() else ()


def _reader(request: Request):
    try:
        who = principal(request)
    except ApiError:
        return None
    user = who.user
    return user if user is not None and user.role in READERS else None


def _lang(request: Request) -> str:
    lang = request.cookies.get(COOKIE)
    return lang if lang in LANGUAGES else DEFAULT


def app_config(lang: str) -> str:
    """OHIF's ``window.config``: one DICOMweb source, medai's own, same origin."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "medai",
        "configuration": {
            "friendlyName": "medai",
            "name": "medai",
            "qidoRoot": DICOMWEB_ROOT,
            "wadoRoot": DICOMWEB_ROOT,
            "wadoUriRoot": DICOMWEB_ROOT,
            "qidoSupportsIncludeField": True,
            "imageRendering": "wadors",
            "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "supportsReject": False,
            "staticWado": False,
            "singlepart": "bulkdata,video",
            "omitQuotationForMultipartRequest": True,
            "bulkDataURI": {"enabled": True},
        },
    }
    config = {
        "name": "medai",
        "routerBasename": PREFIX,
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "showStudyList": False,
        "maxNumberOfWebWorkers": 2,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 10},
        "showErrorDetails": "dev",
        "investigationalUseDialog": {"option": "never"},
        # a measurement is the radiologist's from the first one drawn: no "track this series?"
        # prompt per study; "Create SR" saves them over STOW-RS to medai (reading.measurements)
        "measurementTrackingMode": "simplified",
        "defaultDataSourceName": "medai",
        "dataSources": [source],
    }
    language = json.dumps(OHIF_LANGUAGES.get(lang, "en-US"))
    return (
        "// generated by medai (platform.web.viewer): OHIF reads medai's own DICOMweb\n"
        # OHIF's i18next reads ?lng=, then its cookie, then localStorage: both set to the UI's
        f"try {{ localStorage.setItem('i18nextLng', {language}); }} catch (e) {{}}\n"
        f"document.cookie = 'i18next=' + {language} + '; path=/; SameSite=Strict';\n"
        f"window.config = {json.dumps(config, indent=1)};\n" + extension_js() + CSRF_HOOK
    )


# OHIF saves a measurement report with a STOW-RS POST through XMLHttpRequest, and its auth
# service passes only an Authorization header on: medai's CSRF token (the ``medai_csrf``
# cookie, readable by the page, SameSite=strict) is added to same-origin POSTs to the DICOMweb
# store, exactly as medai's own pages send it; nothing else is touched
CSRF_HOOK = """(function () {
  var open = XMLHttpRequest.prototype.open, send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, url) {
    try {
      var u = new URL(url, location.href);
      this.__medaiStow = String(method).toUpperCase() === "POST" && u.origin === location.origin &&
        u.pathname.indexOf("@ROOT@/studies") === 0;
    } catch (e) { this.__medaiStow = false; }
    return open.apply(this, arguments);
  };
  XMLHttpRequest.prototype.send = function () {
    if (this.__medaiStow) {
      var m = document.cookie.match(/(?:^|; )medai_csrf=([^;]*)/);
      if (m) this.setRequestHeader("X-CSRF-Token", decodeURIComponent(m[1]));
    }
    return send.apply(this, arguments);
  };
})();
""".replace("@ROOT@", DICOMWEB_ROOT)


@router.get(PREFIX)
def viewer_root() -> Response:
    return RedirectResponse(f"{PREFIX}/", 307)


@router.get(PREFIX + "/app-config.js")
def viewer_config(request: Request) -> Response:
    if not installed():
        raise _not_installed()
    if _reader(request) is None:
        raise ApiError(401, "unauthenticated", "sign in with a clinical account to open the viewer")
    return Response(
        app_config(_lang(request)),
        media_type="text/javascript",
        headers=_headers("no-store"),
    )


@router.get(PREFIX + "/study/{study_id}")
def viewer_study(study_id: RowId, request: Request) -> Response:
    """The study page's "open in the viewer": the study in OHIF, hung the way it is read
    (``viewer_hanging.protocol_for``): beside its prior (the same patient's latest earlier
    study of the same type, by DICOM UID) or, for a chest film, PA beside the lateral."""
    if not installed():
        raise _not_installed()
    if _reader(request) is None:
        return RedirectResponse(f"/login?next={quote(request.url.path, safe='/')}", 303)
    with platform_of(request).db.reader() as db:
        study = db.get(Study, study_id)
        if study is None or not study.study_uid:
            raise ApiError(404, "not_found", "no such study with a DICOM identity")
        views = [
            (i.series_uid, i.view_position) for i in listing.instances(db, [study.id])[study.id]
        ]
        prior = next(
            (
                s
                for s in patient_context.priors(db, study)
                if s.task == study.task and s.study_uid and s.study_uid != study.study_uid
            ),
            None,
        )
        uids = [study.study_uid] + ([prior.study_uid] if prior is not None else [])
    url = f"{PREFIX}/viewer?StudyInstanceUIDs=" + ",".join(
        quote(cast(str, u), safe="")
        for u in uids  # each checked non-empty above
    )
    protocol = protocol_for(views, prior is not None)
    if protocol:
        url += "&hangingProtocolId=" + quote(protocol, safe="")
    return RedirectResponse(url, 303)


@router.get(PREFIX + "/{path:path}")
def viewer_file(path: str, request: Request) -> Response:
    if not installed():
        raise _not_installed()
    if len(path) > MAX_PATH:
        raise ApiError(404, "not_found", "no such viewer file")
    root = viewer_dir().resolve()
    target = (root / path).resolve() if path else root
    if path and target.is_file() and target.is_relative_to(root) and path != "index.html":
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if target.suffix == ".wasm":
            kind = "application/wasm"
        hashed = re.search(r"\.[0-9a-f]{16,}\.|^[0-9a-f]{16}\.wasm$", target.name)
        cache = "public, max-age=31536000, immutable" if hashed else "public, max-age=3600"
        return FileResponse(target, media_type=kind, headers=_headers(cache))
    if "." in Path(path).name and path != "index.html":
        raise ApiError(404, "not_found", "no such viewer file")
    # the page itself, and every client-side route of OHIF's (viewer?StudyInstanceUIDs=…)
    if _reader(request) is None:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(back, safe='/')}", 303)
    body, _ = _index(str(root))
    return Response(body, media_type="text/html", headers=_headers("no-store"))


def viewer_csp() -> str:
    """The Content-Security-Policy of everything under /viewer: medai's own, plus what OHIF's
    codecs need (WebAssembly compiled in the page and in its workers, workers from blobs) and
    the hashes of the viewer page's two inline scripts; no inline script otherwise, no CDN.

    ``'unsafe-eval'`` too, under /viewer alone: OHIF lays a DICOM SEG (the AI's saliency region
    on a film) with the ``ndarray`` library, which compiles its array types with ``new
    Function`` (scijs/ndarray#48); without it the AI's overlay fails to load. It lets no script
    in: inline scripts still need their hashes and every script comes from medai itself."""
    scripts = " ".join(("'self'", "'unsafe-eval'", "'wasm-unsafe-eval'", *inline_hashes()))
    return (
        f"default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; "
        "connect-src 'self' data: blob:; object-src 'none'; base-uri 'self'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def _headers(cache: str) -> dict[str, str]:
    """Every viewer answer's own CSP (a codec worker loaded from /viewer gets it from its own
    response) and caching, which the kernel's SecurityHeaders keeps."""
    return {"cache-control": cache, "content-security-policy": viewer_csp()}
