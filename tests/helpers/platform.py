"""Fixtures of the clinical-platform tests: a platform app on SQLite and on the real local
PostgreSQL server (each test database created fresh and dropped), tiny models, users."""

from __future__ import annotations

import io
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PASSWORD = "correct-horse-1"
USERS = {
    "admin": "admin",
    "rad1": "radiologist",
    "rad2": "radiologist",
    "clin": "clinician",
    "pat1": "patient",
    "pat2": "patient",
}
PG_ADMIN = os.environ.get("MEDAI_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1/postgres")


@pytest.fixture
def broker_lock() -> Iterator[None]:
    """One broker test at a time across the suite's processes (pytest-xdist): the local Redis
    and RabbitMQ are shared, and a Celery test purges the queues and starts workers that would
    take another test's tasks."""
    import fcntl
    import tempfile

    with open(Path(tempfile.gettempdir()) / "medai-test-broker.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _pg_admin():
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (skips with the reason when the server is away)."""
    from sqlalchemy import text

    try:
        admin = _pg_admin()
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: {type(exc).__name__}")
    name = f"medai_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def database_url(kind: str, home: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{home / 'medai.db'}"
    else:
        with postgres_database() as url:
            yield url


def use_home(home: Path) -> None:
    """Point the settings (and the derived key file) at a fresh MEDAI_HOME."""
    from medai.platform.records.crypto import cipher
    from medai.settings import get_settings

    os.environ["MEDAI_HOME"] = str(home)
    get_settings.cache_clear()
    cipher.cache_clear()


def reread_settings(monkeypatch, p) -> None:
    """Hand the running platform ``p`` the settings the environment makes now, as a restart
    with it would: platform code reads ``p.settings`` (read when the platform was opened),
    never the environment itself."""
    from medai.settings import get_settings

    get_settings.cache_clear()
    monkeypatch.setattr(p, "settings", get_settings())


def png_bytes(seed: int = 0, size=(80, 96)) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.random((size[1] // 8 + 1, size[0] // 8 + 1))
    img = Image.fromarray((base * 255).astype("uint8")).resize(size, Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def colour_png() -> bytes:
    """A colour photograph-like image: the AI refuses it (radiographs are grayscale)."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:240, 0:320]
    rgb = np.stack([(x * 255 // 320), (y * 255 // 240), 255 - (x * 255 // 320)], -1)
    buf = io.BytesIO()
    Image.fromarray(rgb.astype("uint8"), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def refused_study(app, client, headers) -> int:
    """A study whose image the AI refuses (a colour photograph), analysed: its id."""
    r = client.post(
        "/api/v1/studies",
        headers=headers,
        files={"file": ("photo.png", colour_png(), "image/png")},
        data={"task": "cxr"},
    )
    assert r.status_code == 201, r.text
    study = wait_status(client, headers, r.json()["id"], {"refused"})
    assert study["ai_result"]["reason_code"] == "colour_photo"
    return study["id"]


def add_users(app, users: dict[str, str] = USERS) -> None:
    """The users, their clinical accounts approved (the two-person rule) as if on the console,
    without its audit event, so that tests counting audit events see only their own."""
    from medai.platform.access import accounts, approval
    from medai.platform.records.db import utcnow

    with app.state.platform.db.session() as db:
        for name, role in users.items():
            user = accounts.create_user(
                db,
                name,
                PASSWORD,
                role,
                hash_profile=app.state.platform.settings.auth.password_hash,
            )
            if role in approval.NEEDS_APPROVAL:
                user.approved_at, user.approved_by = utcnow(), "fixture"


def bearer(client, username: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def wait_status(client, headers, study_id: int, want: set[str], timeout: float = 240.0) -> dict:
    """Poll until the background analysis reaches a wanted status (returns at once when it
    does; the long limit only matters on a heavily loaded machine)."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        body = client.get(f"/api/v1/studies/{study_id}", headers=headers).json()
        if body["status"] in want:
            return body
        time.sleep(0.1)
    raise AssertionError(f"study {study_id} stayed {body['status']}")


@pytest.fixture(scope="session")
def urgent_cxr_dir(tmp_path_factory) -> Path:
    """A tiny CXR model whose Pneumothorax threshold is 0: every image is an urgent study."""
    import json

    from helpers.builders import make_imaging_model_dir
    from medai.core.model_dir import reseal

    d = make_imaging_model_dir(
        tmp_path_factory.mktemp("urgent") / "cxr", labels=("Pneumothorax", "Effusion", "No Finding")
    )
    card_path = d / "model_card.json"
    card = json.loads(card_path.read_text())
    card["thresholds"] = {"Pneumothorax": 0.0, "Effusion": 1.0, "No Finding": 1.0}
    card_path.write_text(json.dumps(card))
    reseal(d)
    return d


@contextmanager
def clinic(kind: str, home: Path, triage_dir: Path, cxr_dir: Path, **options):
    """A platform app with users, its TestClient, on SQLite or PostgreSQL; ``models`` in
    ``options``: more task folders beside triage and cxr."""
    from fastapi.testclient import TestClient

    from medai.platform.app import create_platform_app

    home.mkdir(parents=True, exist_ok=True)
    use_home(home)
    with database_url(kind, home) as url:
        app = create_platform_app(
            database_url=url,
            models={"triage": str(triage_dir), "cxr": str(cxr_dir), **options.pop("models", {})},
            preload=False,
            **options,
        )
        add_users(app)
        with TestClient(app, base_url="http://localhost") as client:
            yield app, client
        app.state.platform.db.dispose()


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port that refuses connections (bound, never listening) and that no other process
    (the suite runs in two) can take while the block runs: a destination that is down."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def free_port() -> int:
    """A port free now, for a server about to bind it (the one helper every test uses)."""
    with refusing_port() as port:
        return port


def users_cli(env: dict, *args: str, stdin: str = ""):
    """``medai users ARGS`` in its own process, as an operator runs it at the server's shell:
    the completed process (exit status, stdout, stderr)."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "medai.cli", "users", *args],
        input=stdin,
        text=True,
        capture_output=True,
        env=env,
        timeout=120,
    )


def cli_add_user(env: dict, name: str, role: str) -> None:
    """An account with ``PASSWORD`` the way a hospital makes one: an admin sets their own;
    anyone else is added with an enrolment code and then chooses it (``users enrol``); a
    clinical account is then approved (``users approve``)."""
    import json

    def cli(*args: str, stdin: str = "") -> str:
        r = users_cli(env, *args, "--json", stdin=stdin)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    if role == "admin":
        cli("add", name, "--role", role, "--password-stdin", stdin=PASSWORD + "\n")
        return
    code = json.loads(cli("add", name, "--role", role))["enrol_code"]
    cli("enrol", code, "--password-stdin", stdin=PASSWORD + "\n")
    if role in ("radiologist", "clinician"):  # the two-person rule: the server's shell approves
        cli("approve", name)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def launched_browser():
    """Debian's chromium driven by Playwright (its own browser download fails offline)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def drain_output(proc) -> None:
    """Read ``proc``'s piped output as it comes, in a thread, keeping all of it: a pipe nobody
    reads fills (64 KiB) and then blocks the server on its next log line, so a browser module's
    server hung mid-module once its access lines reached that size (a request that never
    answers, a 30 s wait_for timeout)."""
    import threading

    chunks: list[bytes] = []

    def read() -> None:
        for line in iter(proc.stdout.readline, b""):
            chunks.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc.medai_output = (chunks, reader)


def server_log(proc, timeout: float = 30) -> str:
    """What ``proc`` (started with ``drain_output``) has written: all of it once it exited."""
    chunks, reader = proc.medai_output
    if proc.poll() is not None:
        reader.join(timeout)
    return b"".join(chunks).decode(errors="replace")


@contextmanager
def serving(env: dict):
    """``medai serve`` in its own process group for the duration; its base URL."""
    proc, base = start_serve(env, free_port())
    try:
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def listens(pid: int, port: int) -> bool:
    """Does process ``pid`` (or a child of it) hold the listening socket on ``port``? A ready
    answer on a port alone might come from another test process's server that took it."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return False
    for p in tree:
        try:
            if any(
                c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                for c in p.net_connections("tcp")
            ):
                return True
        except psutil.Error:
            continue
    return False


def start_serve(
    env: dict, port: int, workers: int = 1, timeout: float = 180.0, extra: tuple[str, ...] = ()
):
    """``medai serve`` as a real process (its own process group), once ready; ``extra``:
    more options (e.g. ``--dicom-port``)."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medai.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    drain_output(proc)
    base = f"http://127.0.0.1:{port}"
    wait_ready(proc, base, timeout, lambda: listens(proc.pid, port))
    return proc, base


def wait_ready(
    proc, base: str, timeout: float = 180.0, also=lambda: True, models: tuple[str, ...] = ()
) -> None:
    """Wait until ``medai serve`` at ``base`` says it is ready (every model loaded: a first
    request after this does not wait for a model to load, whatever the machine's load), or
    only the served ``models`` named, when given (a server whose other checks fail on
    purpose), or fail with its log when it exits or ``timeout`` passes: readiness, never a
    wall clock."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            r = httpx.get(f"{base}/api/v1/health/ready", timeout=60)
            said = r.json().get("models", {}) if r.status_code in (200, 503) else {}
            if models:
                ok = all(said.get(name, {}).get("ready") for name in models)
            else:
                ok = r.status_code == 200
            if ok and also():
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            said = server_log(proc)[-3000:] if hasattr(proc, "medai_output") else ""
            raise AssertionError(said or f"server exited with {proc.returncode}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("server did not become ready")
        time.sleep(0.3)


def http_login(base: str, name: str) -> dict[str, str]:
    import httpx

    r = httpx.post(
        f"{base}/api/v1/auth/login", json={"username": name, "password": PASSWORD}, timeout=30
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@contextmanager
def signed_in(home: Path, role: str = "radiologist", **models):
    """The one API face on an embedded SQLite file with one user of ``role`` signed in: the
    client's default headers carry the bearer token (the job routes' tests). ``models`` are
    ``create_platform_app``'s keyword arguments (models={"triage": …}, preload=…)."""
    from fastapi.testclient import TestClient

    from medai.platform.app import create_platform_app

    home.mkdir(parents=True, exist_ok=True)
    use_home(home)
    models.setdefault("preload", False)
    app = create_platform_app(
        database_url=f"sqlite:///{home / 'medai.sqlite'}", job_threads=0, **models
    )
    add_users(app, {"user": role})
    with TestClient(app, base_url="http://localhost") as client:
        client.headers.update(bearer(client, "user"))
        yield app, client
    app.state.platform.db.dispose()


@contextmanager
def ui_server(home: Path, users: dict[str, str], **env: str) -> Iterator[str]:
    """A real ``medai serve`` for a browser test module (skipped, saying why, without
    chromium or Playwright): ``users`` (name → role) added by the CLI, ``env`` on top of this
    process's environment and MEDAI_HOME=home. Yields the base URL."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make test installs it: make browser-deps)")
    pytest.importorskip("playwright.sync_api")
    full = {**os.environ, "MEDAI_HOME": str(home), **env}
    for name, role in users.items():
        cli_add_user(full, name, role)
    with serving(full) as base:
        yield base


def migrator(engine):
    """``migrate(step, revision)`` for a migration test: runs alembic's ``command.upgrade`` or
    ``command.downgrade`` to ``revision`` on ``engine``, in one transaction."""
    from alembic.config import Config

    from medai.platform.records.db import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))

    def migrate(step, revision: str) -> None:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            step(cfg, revision)

    return migrate


class FakeClock:
    """Naive UTC, moved by hand (the platform reads ``app.state.platform.clock``)."""

    def __init__(self, at) -> None:
        self.at = at

    def __call__(self):
        return self.at


@contextmanager
def bare_platform(kind: str, home: Path, triage_dir: Path, cxr_dir: Path):
    """A ``Platform`` (no app) on SQLite or PostgreSQL with one radiologist, ``rad``."""
    from medai.platform.access import accounts
    from medai.platform.boot import open_platform
    from medai.services.model_handles import ModelHandles

    home.mkdir(parents=True, exist_ok=True)
    use_home(home)
    with database_url(kind, home) as url:
        p = open_platform(
            url, models=ModelHandles({"triage": str(triage_dir), "cxr": str(cxr_dir)})
        )
        with p.db.session() as db:
            accounts.create_user(
                db, "rad", PASSWORD, "radiologist", hash_profile=p.settings.auth.password_hash
            )
        yield p
        p.db.dispose()


def use_keys(monkeypatch, *keys: str) -> None:
    """Configure ``MEDAI_SECRET_KEYS`` (newest first; none: back to the home's own key file)
    and drop the cached settings and cipher, as a restart would."""
    import json

    from medai.platform.records.crypto import cipher
    from medai.settings import get_settings

    if keys:
        monkeypatch.setenv("MEDAI_SECRET_KEYS", json.dumps(list(keys)))
    else:
        monkeypatch.delenv("MEDAI_SECRET_KEYS", raising=False)
        os.environ.pop("MEDAI_SECRET_KEYS", None)
    get_settings.cache_clear()
    cipher.cache_clear()


def decided(
    client,
    headers,
    study_id: int,
    labels: dict[str, bool] | None = None,
    present: bool | None = None,
    base: str = "",
) -> dict[str, bool]:
    """The ``labels`` of a sign request with every label in real doubt decided by the
    radiologist (an answer in ``labels`` is kept): ``present`` for each, or by default the AI's
    first candidate present and the others absent, as a radiologist choosing between them would.
    Signing needs each one decided (409 ``undecided_labels`` otherwise). Asked of the real
    labels API, as the sign dialog does (``client``: a TestClient, or ``httpx`` with the
    server's ``base``)."""
    choices = dict(labels or {})
    r = client.post(
        f"{base}/api/v1/studies/{study_id}/labels/suggest",
        headers=headers,
        json={"sections": {}, "labels": choices},
    )
    if r.status_code in (404, 409):  # no such study, or a retracted one: the signature says why
        return choices
    assert r.status_code == 200, r.text
    # the labels in real doubt, as the sign dialog asks them (a parent that follows an
    # undecided sub-finding is settled by that one's answer)
    open_ = [e["label"] for e in r.json()["labels"] if e["needs_decision"]]
    for k, label in enumerate(open_):
        choices.setdefault(label, (k == 0) if present is None else present)
    return choices
