"""Logs hold no patient text (issue 24 items 8, 9): marker text sent through every route — as
complaint, report sections, clinical question, chat question, user name and password, token
name, file name, query strings, path values and headers, by every role — is in no log record,
while every request gets one access-log line (method, route template, status, duration,
request id). The log is captured twice: every record at DEBUG (caplog; the libraries that
``serve`` pins at WARNING stay pinned, as they are in production), and the text ``serve``'s own
handler writes. A real ``medai serve`` process is checked too (uvicorn's access log is off)."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import subprocess
import sys

import httpx
import pytest

from helpers.platform import (
    PASSWORD,
    bearer,
    clinic,
    decided,
    free_port,
    png_bytes,
    wait_ready,
    wait_status,
)

pytestmark = [pytest.mark.server]

MARK = "ZZMARKER-Ayşe"
ASCII_MARK = "ZZMARKER-Ayse"  # where only ASCII fits (headers, user names, patient refs)
NO_GLYPH = "\ue000🙂"  # characters DejaVu lacks: fpdf2 would name them in a warning
ROLES = [None, "admin", "rad1", "clin", "pat1"]
WEB = [
    "/",
    "/login",
    "/enrol",
    "/triage",
    "/kiosk",
    "/worklist",
    "/studies/{study_id}",
    "/chat",
    "/admin",
    "/history",
    "/sw.js",
    "/manifest.webmanifest",
    "/ui/{path}",
    "/no-such-page/{path}",
]


def _leaks(text: str) -> bool:
    low = text.lower()
    return "zzmarker" in low or any(c in text for c in NO_GLYPH) or "ayşe" in low


@pytest.fixture
def production_logging(caplog):
    """``serve``'s handler and pinned levels on the root logger, plus caplog at DEBUG."""
    from medai.server import logs

    buf = io.StringIO()
    handler = logs.handler(stream=buf)
    root = logging.getLogger()
    saved = {n: logging.getLogger(n).level for n in logs.logger_levels("DEBUG")}
    for name, level in logs.logger_levels("DEBUG").items():
        logging.getLogger(name).setLevel(level)
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog, buf
    finally:
        root.removeHandler(handler)
        logging.captureWarnings(False)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _body_for(op: dict, study_id: int) -> dict:
    content = (op.get("requestBody") or {}).get("content", {})
    if "multipart/form-data" in content:
        return {
            "files": {"file": (f"{MARK}.png", png_bytes(7), "image/png")},
            "data": {
                "task": "cxr",
                "clinical_question": MARK,
                "patient_ref": ASCII_MARK,
                "label": MARK,
                "lang": "tr",
            },
        }
    if "application/json" in content:
        return {
            "json": {
                "text": MARK,
                "username": MARK,
                "password": MARK,
                "name": MARK,
                "code": MARK,
                "version": 1,
                "role": MARK,
                "label": MARK,
                "sections": {"findings": MARK, "impression": MARK},
            }
        }
    return {}


def _sweep(client, app, headers_by_role: dict, study_id: int) -> int:
    """Every operation (and web page) as every role, with the marker in every place a client
    controls. Returns the number of requests made."""
    spec = app.openapi()
    calls = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            query = {p["name"]: MARK for p in op.get("parameters", []) if p["in"] == "query"}
            ints = {
                p["name"]
                for p in op.get("parameters", [])
                if p["in"] == "path" and p.get("schema", {}).get("type") == "integer"
            }
            for value in (MARK, study_id) if "{" in path else (MARK,):
                url = re.sub(
                    r"\{(\w+)\}",
                    lambda m, v=value, i=ints: str(v if m.group(1) in i else MARK),
                    path,
                )
                calls.append((method.upper(), url, {**query, "note": MARK}, op))
    for page in WEB:
        calls.append(
            (
                "GET",
                page.replace("{study_id}", MARK).replace("{path}", MARK),
                {"next": MARK, "q": MARK},
                {},
            )
        )
    n = 0
    for role in ROLES:
        for method, url, query, op in calls:
            headers = {
                **headers_by_role.get(role, {}),
                "X-Request-ID": ASCII_MARK,
                "User-Agent": ASCII_MARK,
                "Referer": f"http://localhost/{ASCII_MARK}",
            }
            client.cookies.clear()
            r = client.request(
                method, url, params=query, headers=headers, **_body_for(op, study_id)
            )
            assert r.status_code < 500 or r.status_code == 503, (method, url, r.status_code)
            n += 1
    return n


def _workflow(client, app) -> int:
    """Valid calls that carry content where it belongs (so it is really processed: the
    analysis, the PDF with glyphs no font has, the chat answer)."""
    rad, admin, clin, pat = (bearer(client, u) for u in ("rad1", "admin", "clin", "pat1"))
    n = 0

    def call(method, url, expect, **kw):
        nonlocal n
        n += 1
        client.cookies.clear()  # bearer tokens only: a sign-in cookie would ask for CSRF
        r = client.request(method, url, **kw)
        assert r.status_code == expect, (method, url, r.status_code, r.text[:300])
        return r.json() if "json" in r.headers.get("content-type", "") else r

    call("POST", "/api/v1/auth/login", 401, json={"username": MARK, "password": MARK})
    call("POST", "/api/v1/triage", 200, json={"text": f"Başım çok ağrıyor {MARK} iki gündür"})
    call("POST", "/api/v1/triage", 200, headers=pat, json={"text": f"Kulağımda çınlama var {MARK}"})
    study = call(
        "POST",
        "/api/v1/studies",
        201,
        headers=clin,
        data={"task": "cxr", "clinical_question": f"Öksürük {MARK}", "patient_ref": ASCII_MARK},
        files={"file": (f"{MARK}.png", png_bytes(11), "image/png")},
    )
    sid = study["id"]
    wait_status(client, rad, sid, {"ai_drafted"})
    url = f"/api/v1/studies/{sid}/report"
    version = call("GET", url, 200, headers=rad)["version"]
    text = f"{MARK} {NO_GLYPH}"
    sections = {"technique": text, "findings": text, "impression": text, "recommendation": text}
    v2 = call("PUT", url, 200, headers=rad, json={"version": version, "sections": sections})
    client.cookies.clear()
    labels = decided(client, rad, sid)  # the labels in real doubt, answered as the dialog does
    call("POST", f"{url}/sign", 200, headers=rad, json={"version": v2["version"], "labels": labels})
    call("GET", f"{url}/pdf", 200, headers=rad)
    call("GET", f"{url}/fhir", 200, headers=clin)
    conv = call("POST", f"/api/v1/studies/{sid}/conversations", 201, headers=rad)
    call(
        "POST",
        f"/api/v1/conversations/{conv['id']}/messages",
        200,
        headers=rad,
        json={"text": f"Bu bulgu ne anlama geliyor? {MARK}"},
    )
    issued = call(
        "POST",
        "/api/v1/users",
        201,
        headers=admin,
        json={"username": ASCII_MARK.lower(), "role": "clinician"},
    )
    call(
        "POST",
        "/api/v1/auth/enrol",
        200,
        json={"code": issued["enrol_code"], "password": f"{MARK} uzun bir parola 9"},
    )
    call(
        "POST",
        "/api/v1/auth/login",
        200,
        json={"username": ASCII_MARK.lower(), "password": f"{MARK} uzun bir parola 9"},
    )
    call("POST", "/api/v1/auth/tokens", 201, headers=rad, json={"name": MARK})
    call("GET", "/api/v1/audit", 200, headers=admin, params={"actor": MARK, "action": MARK})
    return n


def test_marker_text_through_every_route_is_in_no_log(
    tmp_path, tfidf_model_dir, tiny_imaging_dir, production_logging
):
    caplog, buf = production_logging
    from medai.server.logs import WITHHELD

    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir, job_threads=1) as (
        app,
        client,
    ):
        n = _workflow(client, app)
        roles = {u: bearer(client, u) for u in ROLES if u}
        n += len(ROLES) - 1
        n += _sweep(client, app, roles, study_id=1)
    records = list(caplog.records)
    ours = [
        r for r in records if not any(r.name == w or r.name.startswith(w + ".") for w in WITHHELD)
    ]
    leaked = [
        (r.name, r.getMessage()[:200])
        for r in ours
        if _leaks(r.getMessage()) or _leaks(str(r.exc_text or ""))
    ]
    assert leaked == []
    written = buf.getvalue()
    assert not _leaks(written), [line for line in written.splitlines() if _leaks(line)][:5]

    access = [r.getMessage() for r in records if r.name == "medai.access"]
    assert len(access) >= n  # one line per request (the web pages' assets included)
    line = re.compile(
        r"^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|OTHER) (\S+) (\d{3}) "
        r"\d+\.\dms rid=[0-9a-f]{16}$"
    )
    assert all(line.match(a) for a in access), [a for a in access if not line.match(a)][:3]
    routes = {line.match(a).group(2) for a in access}
    for template in (
        "/api/v1/studies",
        "/api/v1/studies/{study_id}/report",
        "/api/v1/studies/{study_id}/report/pdf",
        "/api/v1/users/{username}",
        "/api/v1/conversations/{conv_id}/messages",
        "/ui/{path}",
        "<unmatched>",
    ):
        assert template in routes, " ".join(r for r in sorted(routes) if not r.startswith("/api"))
    assert "PUT /api/v1/studies/{study_id}/report 200" in " ".join(access)


def test_withheld_libraries_keep_level_and_place_only(production_logging):
    import warnings

    _caplog, buf = production_logging
    logging.getLogger("fpdf.output").warning(
        "Font X is missing the following glyphs: %s", MARK
    )  # dropped once report_pdf is imported
    logging.getLogger("fpdf.svg").warning("unsupported attribute %r", MARK)
    logging.getLogger("pydicom.valuerep").warning("Invalid value for VR PN: %r", MARK)
    logging.getLogger("python_multipart.multipart").info("Opening file: %r", MARK)
    logging.getLogger("sqlalchemy.engine.Engine").info("[generated] (%r,)", MARK)
    warnings.warn(f"a library warning quoting {MARK}", UserWarning, stacklevel=1)
    try:
        raise ValueError(MARK)
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    written = buf.getvalue()
    assert not _leaks(written), written
    assert "WARNING fpdf.svg: warning message withheld" in written
    assert "WARNING pydicom.valuerep: warning message withheld" in written
    assert "UserWarning at server/test_logs.py" in written
    assert "Exception in ASGI application [ValueError; traceback withheld]" in written
    assert "python_multipart" not in written and "sqlalchemy" not in written


def test_medai_serve_logs_route_templates_and_no_uvicorn_access_lines(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    home = tmp_path / "home"
    env = {
        **os.environ,
        "MEDAI_HOME": str(home),
        "MEDAI_MODELS": f"triage={tfidf_model_dir},cxr={tiny_imaging_dir},mri={tiny_imaging_dir}",
        "MEDAI_JOB_THREADS": "0",
        "MEDAI_LOG_LEVEL": "debug",
    }
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "medai.cli", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base, models=("triage",))  # the first triage loads no model
        assert httpx.get(f"{base}/api/v1/health/live", params={"q": MARK}).status_code == 200
        assert httpx.get(f"{base}/api/v1/studies/{ASCII_MARK}").status_code in (401, 422)
        assert httpx.get(f"{base}/login", params={"next": MARK}).status_code == 200
        r = httpx.post(f"{base}/api/v1/auth/login", json={"username": MARK, "password": PASSWORD})
        assert r.status_code == 401
        r = httpx.post(f"{base}/api/v1/triage", json={"text": f"Başım ağrıyor {MARK}"})
        assert r.status_code == 200, r.text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=60)[0].decode("utf-8", "replace")
    assert not _leaks(out), [line for line in out.splitlines() if _leaks(line)][:5]
    assert re.search(
        r"medai\.access: GET /api/v1/health/live 200 \d+\.\dms rid=[0-9a-f]{16}", out
    ), out[-2000:]
    assert "medai.access: GET /api/v1/studies/{study_id} 401" in out, out[-2000:]
    assert "medai.access: POST /api/v1/triage 200" in out
    assert '"GET /api/v1/health/live' not in out  # uvicorn's own access line format
