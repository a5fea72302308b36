"""One router per job (health, triage, imaging, reports). Routes only translate: they call the
services layer inside a bounded inference lane and map its typed results and input errors onto
HTTP (one contract: an image that gets no findings is a 422 with ``code`` ``unusable_image`` or
``image_refused`` on every route)."""

from __future__ import annotations

from fastapi import APIRouter

from medai.server.routes import health, imaging, reports, triage

ROUTERS: dict[str, APIRouter] = {"root": health.root_router, "health": health.router,
                                  "triage": triage.router, "imaging": imaging.router,
                                  "reports": reports.router}
