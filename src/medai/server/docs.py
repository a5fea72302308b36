"""API documentation pages served entirely from the package: hospital networks are closed, so
``/docs`` and ``/redoc`` load no script, style or font from a public CDN.

The vendored files (Swagger UI 5.35.0 from ``swagger-ui-dist``, Apache-2.0; ReDoc 2.5.2
standalone, MIT) live in ``static/vendor`` with their licences; ``make vendor-docs-assets``
refreshes them from the npm registry.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/static"

_SWAGGER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} — API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{s}/vendor/swagger-ui/swagger-ui.css">
<link rel="icon" type="image/png" href="{s}/vendor/swagger-ui/favicon-32x32.png">
</head><body data-openapi="{openapi}"><div id="swagger-ui"></div>
<script src="{s}/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="{s}/docs-init.js"></script></body></html>"""

_REDOC = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} — API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="{openapi}"></redoc>
<script src="{s}/vendor/redoc/redoc.standalone.js"></script></body></html>"""


def mount_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI), ``/redoc`` and ``/static`` from the package's own files."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
    page = {"title": app.title, "openapi": app.openapi_url, "s": STATIC_URL}

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return HTMLResponse(_SWAGGER.format(**page))

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return HTMLResponse(_REDOC.format(**page))
