"""An upload retried with the same ``Idempotency-Key`` is filed once (issue 47: the two-node kill
test filed 101 studies for 100 uploads when a node died after committing an upload and before
answering). On SQLite and the real PostgreSQL server: the same key again answers the first
study (its status, ``Idempotent-Replayed: true``) without a second study, job or dispatch; the
same key for another upload is 422 ``idempotency_key_reused``; a malformed key is 400; keys are
per user; two replicas (two apps on one database and one store, each served by uvicorn) racing
on one key file exactly one study; a key older than a day is forgotten and swept; the migration
upgrades a database of the previous release."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, text

from helpers.dicom import make_dicom
from helpers.platform import (
    add_users,
    bare_platform,
    bearer,
    clinic,
    database_url,
    free_port,
    migrator,
    png_bytes,
    use_home,
)

pytestmark = [pytest.mark.server]

BACKENDS = ["sqlite", "postgresql"]
KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"


@pytest.fixture(params=BACKENDS)
def env(request, tmp_path, tfidf_model_dir, tiny_imaging_dir):
    """A platform whose analysis never runs (no job threads) and whose dispatches are
    counted: a second analysis would show as a second job row or dispatch."""
    with clinic(
        request.param,
        tmp_path / "home",
        tfidf_model_dir,
        tiny_imaging_dir,
        job_threads=0,
        outbox_threads=0,
    ) as (app, client):
        sent: list[int] = []
        app.state.dispatch = lambda study_id, job_id, urgent: sent.append(job_id)
        yield app, client, sent


def _upload(client, headers, key: str | None = None, *, seed: int = 0, **form):
    return client.post(
        "/api/v1/studies",
        headers={**headers, **({KEY: key} if key else {})},
        data={"task": "cxr", **form},
        files={"file": ("x.png", png_bytes(seed), "image/png")},
    )


def _count(app, table: str) -> int:
    with app.state.platform.db.reader() as db:
        return db.scalar(text(f"SELECT count(*) FROM {table}"))


def test_the_same_key_twice_files_one_study_one_job(env):
    app, client, sent = env
    rad = bearer(client, "rad1")
    key = str(uuid.uuid4())
    first = _upload(client, rad, key, patient_ref="P-1", clinical_question="öksürük")
    assert first.status_code == 201, first.text
    assert REPLAYED not in first.headers
    again = _upload(client, rad, key, patient_ref="P-1", clinical_question="öksürük")
    assert again.status_code == 201, again.text
    assert again.headers[REPLAYED] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json().keys() == first.json().keys()  # the same body shape
    assert (_count(app, "studies"), _count(app, "jobs"), len(sent)) == (1, 1, 1)
    assert _count(app, "upload_keys") == 1
    with app.state.platform.db.reader() as db:  # one upload audited; the replay as a view
        actions = db.execute(
            text("SELECT action, detail FROM audit_events WHERE target_type = 'study'")
        ).all()
    assert [a for a, _ in actions].count("upload") == 1
    assert any(a == "view" and "replayed_upload" in str(d) for a, d in actions)
    # without a key nothing changes: the same upload again is another study
    assert _upload(client, rad, patient_ref="P-1").status_code == 201
    assert _upload(client, rad, patient_ref="P-1").status_code == 201
    assert (_count(app, "studies"), _count(app, "jobs"), len(sent)) == (3, 3, 3)


def test_the_same_key_for_another_upload_is_refused(env):
    app, client, sent = env
    rad = bearer(client, "rad1")
    key = "order-4711/attempt"
    assert _upload(client, rad, key, seed=1, patient_ref="P-2").status_code == 201
    store = app.state.platform.store
    for change in (
        {"seed": 2},
        {"patient_ref": "P-3"},
        {"clinical_question": "ateş"},
        {"lang": "en"},
    ):
        r = _upload(client, rad, key, **{"seed": 1, "patient_ref": "P-2", **change})
        assert r.status_code == 422, (change, r.text)
        assert r.json()["code"] == "idempotency_key_reused"
    assert (_count(app, "studies"), len(sent)) == (1, 1)
    import hashlib

    other = hashlib.sha256(png_bytes(2)).hexdigest()
    assert not store.exists(other)  # the refused upload's file did not stay


def test_a_malformed_key_is_400_and_files_nothing(env):
    app, client, sent = env
    rad = bearer(client, "rad1")
    for bad in (b"", b"a" * 129, b"tab\tin-between", b"del\x7f", "é".encode("latin-1")):
        # raw bytes: the client library would refuse some of these values
        r = client.post(
            "/api/v1/studies",
            headers={**rad, KEY.encode(): bad},
            data={"task": "cxr"},
            files={"file": ("x.png", png_bytes(0), "image/png")},
        )
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["code"] == "invalid_idempotency_key"
    assert (_count(app, "studies"), _count(app, "upload_keys"), len(sent)) == (0, 0, 0)
    for seed, good in enumerate(("a" * 128, "~", "with inner spaces", '"an sf-string"')):
        assert _upload(client, rad, good, seed=seed).status_code == 201, good
    assert _count(app, "upload_keys") == 4


def test_keys_are_per_user(env):
    app, client, sent = env
    rad1, rad2 = bearer(client, "rad1"), bearer(client, "rad2")
    a = _upload(client, rad1, "shared-key")
    b = _upload(client, rad2, "shared-key")
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"] and REPLAYED not in b.headers
    again = _upload(client, rad2, "shared-key")
    assert again.headers[REPLAYED] == "true" and again.json()["id"] == b.json()["id"]
    assert (_count(app, "studies"), len(sent)) == (2, 2)


def test_a_replay_answers_the_first_status_of_a_dicom_that_joined(env, tmp_path):
    from pydicom.uid import generate_uid

    app, client, sent = env
    rad = bearer(client, "rad1")
    study = generate_uid()

    def send(path, key):
        return client.post(
            "/api/v1/studies",
            headers={**rad, KEY: key},
            data={"task": "cxr"},
            files={"file": (path.name, path.read_bytes(), "application/dicom")},
        )

    one = send(make_dicom(tmp_path / "1.dcm", study=study, seed=1), "k-1")
    assert one.status_code == 201, one.text
    second = make_dicom(tmp_path / "2.dcm", study=study, seed=2)
    joined = send(second, "k-2")
    assert joined.status_code == 200, joined.text  # it joined the study
    again = send(second, "k-2")
    assert again.status_code == 200 and again.headers[REPLAYED] == "true"
    assert again.json()["id"] == joined.json()["id"] == one.json()["id"]
    assert (_count(app, "studies"), _count(app, "dicom_instances"), len(sent)) == (1, 2, 1)


def test_an_expired_key_is_forgotten_and_swept(env):
    from medai.platform.intake import idempotency
    from medai.platform.records.db import utcnow
    from medai.platform.records.tables import UploadKey

    app, client, _sent = env
    p = app.state.platform
    rad = bearer(client, "rad1")
    first = _upload(client, rad, "old-key")
    assert first.status_code == 201
    with p.db.session() as db:  # a day and a minute ago
        db.execute(
            text("UPDATE upload_keys SET created_at = :at"),
            {"at": utcnow() - idempotency.TTL - timedelta(minutes=1)},
        )
    later = _upload(client, rad, "old-key")  # forgotten: a new upload, a new study
    assert later.status_code == 201 and REPLAYED not in later.headers
    assert later.json()["id"] != first.json()["id"]
    assert _count(app, "upload_keys") == 1  # the expired row was replaced, not doubled
    assert _upload(client, rad, "old-key").headers[REPLAYED] == "true"  # the new one counts

    now = utcnow()
    with p.db.session() as db:
        user = db.scalar(text("SELECT id FROM users WHERE username = 'rad1'"))
        db.add_all(
            [
                UploadKey(
                    user_id=user,
                    key=f"k{i}",
                    fingerprint="x",
                    study_id=None,
                    status=None,
                    created_at=now - timedelta(hours=h),
                )
                for i, h in enumerate((1, 23, 25, 48))
            ]
        )
    with p.db.session() as db:
        assert idempotency.sweep(db, now) == 2  # the ones older than a day
    with p.db.reader() as db:
        left = set(db.scalars(select(UploadKey.key)))
    assert left == {"old-key", "k0", "k1"}
    # the route sweeps at most once an hour per process and database
    assert idempotency.maybe_sweep(p.db, now + timedelta(days=2)) is not None
    assert idempotency.maybe_sweep(p.db, now + timedelta(days=2, minutes=59)) is None
    assert idempotency.maybe_sweep(p.db, now + timedelta(days=2, hours=1)) == 0


# --- two replicas racing on one key ------------------------------------------------------------


@contextmanager
def _served(app) -> Iterator[str]:
    """``app`` under uvicorn in a thread (a replica); its base URL."""
    import uvicorn

    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", log_config=None, lifespan="off"
        )
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    end = time.monotonic() + 60
    while not srv.started:
        assert time.monotonic() < end and thread.is_alive(), "the replica did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(30)


@pytest.mark.parametrize("kind", BACKENDS)
def test_two_replicas_racing_on_one_key_file_one_study(
    kind, tmp_path, tfidf_model_dir, tiny_imaging_dir, monkeypatch
):
    """Both requests pass the first look for the key (held at a barrier until both did), so
    both reach the insert: the unique key lets one file and makes the other answer it."""
    from fastapi.testclient import TestClient

    from medai.platform.app import create_platform_app
    from medai.platform.intake import idempotency

    home = tmp_path / "home"
    home.mkdir()
    use_home(home)
    looked, barrier = [], threading.Barrier(2)
    find = idempotency.find

    def find_together(db, user_id, key, now=None):
        row = find(db, user_id, key, now)
        looked.append(row)
        if len(looked) <= 2:  # the two first looks, one per request: both find nothing
            barrier.wait(60)
        return row

    monkeypatch.setattr(idempotency, "find", find_together)
    with database_url(kind, home) as url:
        apps = [
            create_platform_app(
                database_url=url,
                models={"triage": str(tfidf_model_dir), "cxr": str(tiny_imaging_dir)},
                preload=False,
                job_threads=0,
                outbox_threads=0,
            )
            for _ in range(2)
        ]
        add_users(apps[0])
        sent: list[int] = []
        for app in apps:
            app.state.dispatch = lambda study_id, job_id, urgent: sent.append(job_id)
        with (
            TestClient(apps[0], base_url="http://localhost") as c0,
            TestClient(apps[1], base_url="http://localhost"),
            _served(apps[0]) as one,
            _served(apps[1]) as two,
        ):
            rad = bearer(c0, "rad1")
            answers: list[httpx.Response | BaseException] = []

            def post(base: str) -> None:
                try:
                    answers.append(
                        httpx.post(
                            f"{base}/api/v1/studies",
                            headers={**rad, KEY: "race-1"},
                            data={"task": "cxr", "patient_ref": "P-race"},
                            files={"file": ("x.png", png_bytes(7), "image/png")},
                            timeout=120,
                        )
                    )
                except BaseException as exc:
                    answers.append(exc)

            threads = [threading.Thread(target=post, args=(b,)) for b in (one, two)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(180)
            assert all(isinstance(a, httpx.Response) for a in answers), answers
            assert sorted(a.status_code for a in answers) == [201, 201], [a.text for a in answers]
            assert len({a.json()["id"] for a in answers}) == 1
            assert sorted(a.headers.get(REPLAYED, "") for a in answers) == ["", "true"]
            # both got past the first look; the loser looked again after its insert failed
            assert looked[:2] == [None, None] and len(looked) == 3
        for table, n in (("studies", 1), ("jobs", 1), ("upload_keys", 1)):
            assert _count(apps[0], table) == n, table
        assert len(sent) == 1
        for app in apps:
            app.state.platform.db.dispose()


def test_a_claim_waits_for_an_uncommitted_one_and_loses_on_postgresql(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    """The unique index itself, not a look before it: the second insert waits for the first
    transaction and fails once it commits (``KeyTaken``)."""
    from medai.platform.intake import idempotency
    from medai.platform.records.tables import UploadKey, User

    with bare_platform("postgresql", tmp_path, tfidf_model_dir, tiny_imaging_dir) as p:
        with p.db.reader() as db:
            user = db.scalar(select(User.id))
        outcome: list[str] = []

        def second() -> None:
            try:
                with p.db.session() as db:
                    idempotency.claim(db, user, "k", "print-2")
                outcome.append("claimed")
            except idempotency.KeyTaken:
                outcome.append("taken")

        with p.db.session() as db:
            idempotency.claim(db, user, "k", "print-1")
            thread = threading.Thread(target=second)
            thread.start()
            end = time.monotonic() + 60
            while not _waiting_on_a_lock(p):
                assert time.monotonic() < end, "the second claim never waited"
                time.sleep(0.02)
            assert not outcome  # it waits on this uncommitted insert
        thread.join(60)
        assert outcome == ["taken"]
        with p.db.reader() as db:
            assert db.scalar(select(UploadKey.fingerprint)) == "print-1"


def _waiting_on_a_lock(p) -> bool:
    """Whether a session of this database waits on a lock (a new transaction each time: one
    transaction sees a single snapshot of ``pg_stat_activity``)."""
    with p.db.reader() as db:
        return bool(
            db.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )
        )


# --- the migration ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
def test_the_migration_makes_the_table_of_the_model(kind, tmp_path):
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from medai.platform.records.db import Base, make_engine

    use_home(tmp_path)
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        migrate = migrator(engine)
        migrate(command.upgrade, "0017")
        with engine.begin() as conn:  # a study filed before the upgrade
            conn.execute(
                text(
                    "INSERT INTO users (username, password_hash, role, active, "
                    "created_at) VALUES ('u', '', 'radiologist', true, "
                    "CURRENT_TIMESTAMP)"
                )
            )
        migrate(command.upgrade, "head")
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            assert conn.execute(text("SELECT count(*) FROM upload_keys")).scalar() == 0
            assert conn.execute(text("SELECT username FROM users")).scalar() == "u"
        migrate(command.downgrade, "0017")
        with engine.connect() as conn:
            assert "upload_keys" not in _tables(conn, kind)
        engine.dispose()


def _tables(conn, kind: str) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            text(
                "SELECT name FROM sqlite_master WHERE type='table'"
                if kind == "sqlite"
                else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        )
    }


def test_a_database_of_the_previous_release_takes_keyed_uploads(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    """The previous release's site (``tests/fixtures/previous_release``) migrates, and its
    users' keyed uploads are filed once."""
    from fastapi.testclient import TestClient

    from helpers.upgrade import BUILD, _old_home
    from medai.platform.app import create_platform_app
    from medai.platform.records.db import Database

    home = _old_home(tmp_path)
    use_home(home)
    url = f"sqlite:///{home / 'medai.db'}"
    db = Database(url)
    with db.engine.connect() as conn:
        assert "upload_keys" not in _tables(conn, "sqlite")
        studies = conn.execute(text("SELECT count(*) FROM studies")).scalar()
    db.upgrade()
    db.dispose()
    app = create_platform_app(
        database_url=url,
        models={"triage": str(tfidf_model_dir), "cxr": str(tiny_imaging_dir)},
        preload=False,
        job_threads=0,
        outbox_threads=0,
    )
    with TestClient(app, base_url="http://localhost") as client:
        r = client.post(
            "/api/v1/auth/login", json={"username": "rad", "password": BUILD["password"]}
        )
        rad = {"Authorization": f"Bearer {r.json()['access_token']}"}
        first, again = (_upload(client, rad, "after-upgrade") for _ in range(2))
        assert first.status_code == again.status_code == 201, first.text
        assert again.headers[REPLAYED] == "true"
        with app.state.platform.db.reader() as s:
            assert s.scalar(select(func.count()).select_from(text("studies"))) == studies + 1
    app.state.platform.db.dispose()


# --- the web UI -------------------------------------------------------------------------------

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
# a chosen file's key: the upload's random key and the file's place among the files chosen
FILE_KEY = re.compile(UUID4.pattern + r"-\d+")
# the first upload's answer is lost on its way to the page, whichever way the page sends it:
# fetch fails as on a network error; an XMLHttpRequest (the uploader's, for its progress) fires
# "error" instead of "load"
LOSE_THE_FIRST_UPLOAD_ANSWER = """(() => {
  const upload = (method, url) =>
    String(method).toUpperCase() === "POST" && String(url).endsWith("/api/v1/studies");
  const real = window.fetch;
  window.fetch = async (input, init) => {
    const r = await real(input, init);
    if (upload(init && init.method, input) && window.medaiLostAnswer === undefined) {
      window.medaiLostAnswer = r.status;
      throw new TypeError("Failed to fetch");
    }
    return r;
  };
  const open = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    this.medaiUpload = upload(method, url);
    return open.call(this, method, url, ...rest);
  };
  const listen = XMLHttpRequest.prototype.addEventListener;
  XMLHttpRequest.prototype.addEventListener = function (type, handler, ...rest) {
    if (type !== "load") return listen.call(this, type, handler, ...rest);
    return listen.call(this, type, function (event) {
      if (this.medaiUpload && window.medaiLostAnswer === undefined) {
        window.medaiLostAnswer = this.status;
        this.dispatchEvent(new ProgressEvent("error"));
        return;
      }
      return handler.call(this, event);
    }, ...rest);
  };
})();"""


@pytest.mark.slow
def test_the_web_upload_retried_after_a_lost_answer_files_once(
    tmp_path, browser, tfidf_model_dir, tiny_imaging_dir
):
    """The worklist's upload sends a random key per chosen file (the upload's random key and
    the file's place among those chosen): its first answer is lost
    (the request reached the server, the page saw a network failure), the user presses
    Upload again, and the study is filed once; the next file gets another key."""
    from helpers.browser import new_page, sign_in
    from helpers.platform import http_login, ui_server

    image, other = tmp_path / "chest.png", tmp_path / "chest-2.png"
    image.write_bytes(png_bytes(42, (160, 160)))
    other.write_bytes(png_bytes(43, (160, 160)))
    with ui_server(
        tmp_path / "home",
        {"rad1": "radiologist"},
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
    ) as base:
        ctx, page, _ = new_page(browser, base)
        keys: list[str] = []
        replayed: list[str] = []
        page.on(
            "request",
            lambda r: (
                keys.append(r.headers.get(KEY.lower(), ""))
                if (r.method == "POST" and r.url.endswith("/api/v1/studies"))
                else None
            ),
        )
        page.on(
            "response",
            lambda r: (
                replayed.append(r.headers.get(REPLAYED.lower(), ""))
                if (r.request.method == "POST" and r.url.endswith("/api/v1/studies"))
                else None
            ),
        )
        # the first upload reaches the server, and its answer never reaches the page
        page.add_init_script(LOSE_THE_FIRST_UPLOAD_ANSWER)
        sign_in(page, "rad1")
        page.locator("#upload-panel summary").click()
        page.get_by_label("Görüntü (PNG, JPEG veya DICOM)").set_input_files(str(image))
        page.get_by_label("Hasta referansı (takma ad)").fill("P-UI-KEY")
        upload = page.get_by_role("button", name="Yükle")
        upload.click()
        page.wait_for_function("() => window.medaiLostAnswer !== undefined")
        assert page.evaluate("() => window.medaiLostAnswer") == 201  # it was filed
        assert page.locator("#upload-done").is_hidden()  # no answer: nothing said
        upload.click()  # the user tries again
        page.locator("#upload-done").wait_for()
        said = page.locator("#upload-done").inner_text()
        assert FILE_KEY.fullmatch(keys[0]), keys
        assert keys == [keys[0], keys[0]]
        # other files chosen, two at once: another upload, another key, and each file its own
        page.get_by_label("Görüntü (PNG, JPEG veya DICOM)").set_input_files(
            [str(image), str(other)]
        )
        upload.click()
        page.wait_for_function(
            "(said) => !document.getElementById('upload-done').hidden && "
            "document.getElementById('upload-done').textContent !== said",
            arg=said,
        )
        assert len(keys) == 4 and all(FILE_KEY.fullmatch(k) for k in keys[2:]), keys
        assert UUID4.match(keys[2])[0] != UUID4.match(keys[0])[0]  # a new random key
        assert UUID4.match(keys[3])[0] == UUID4.match(keys[2])[0] and keys[3] != keys[2]
        assert replayed == ["", "true", "", ""]
        ctx.close()

        # a site on plain HTTP (no secure context) has no crypto.randomUUID: the same kind of key
        ctx, page, _ = new_page(browser, base)
        page.add_init_script("delete Crypto.prototype.randomUUID")
        page.on(
            "request",
            lambda r: (
                keys.append(r.headers.get(KEY.lower(), ""))
                if (r.method == "POST" and r.url.endswith("/api/v1/studies"))
                else None
            ),
        )
        sign_in(page, "rad1")
        assert page.evaluate("() => crypto.randomUUID") is None
        page.locator("#upload-panel summary").click()
        page.get_by_label("Görüntü (PNG, JPEG veya DICOM)").set_input_files(str(image))
        page.get_by_label("Hasta referansı (takma ad)").fill("P-UI-HTTP")
        page.get_by_role("button", name="Yükle").click()
        page.locator("#upload-done").wait_for()
        assert len(keys) == 5 and FILE_KEY.fullmatch(keys[4]), keys
        assert UUID4.match(keys[4])[0] not in {UUID4.match(k)[0] for k in keys[:4]}
        ctx.close()
        items = httpx.get(
            f"{base}/api/v1/studies", headers=http_login(base, "rad1"), timeout=30
        ).json()["items"]
        # each upload filed once: the retried one once, the two chosen together each once
        assert sorted(s["patient_ref"] or "" for s in items) == ["", "", "P-UI-HTTP", "P-UI-KEY"]
