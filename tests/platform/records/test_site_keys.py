"""A site that holds sealed data never gets a freshly minted key (issue 57, item 3): a restored
home started without the operator's copy of its keys (no MEDAI_SECRET_KEYS, no HOME/secret.key)
is refused by ``medai serve``, ``medai worker`` and the DICOM node, naming the key ids the data
needs (``medai keys ids`` lists them); readiness answers 503 ``keys_missing`` when the keys
open none of the data; a brand-new site still makes its key and starts."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from helpers.platform import (
    PASSWORD,
    bearer,
    clinic,
    free_port,
    png_bytes,
    postgres_database,
    use_home,
    use_keys,
)
from medai.platform.dicom.arrival import Arrival

QUESTION = "öksürük, ateş: Ayşe Yılmaz 05321234567"


def _make_site(home: Path, url: str) -> str:
    """One stored file and a study naming it (a sealed clinical question), made through the
    platform with the home's own key: that key."""
    from medai.platform.access import accounts
    from medai.platform.boot import open_platform
    from medai.platform.worklist import filing
    from medai.services.model_handles import ModelHandles

    home.mkdir(parents=True, exist_ok=True)
    use_home(home)
    p = open_platform(url, models=ModelHandles({}), adopt_models=False)
    sha = p.store.put_bytes(png_bytes(1))
    with p.db.session() as db:
        user = accounts.create_user(
            db, "rad", PASSWORD, "radiologist", hash_profile=p.settings.auth.password_hash
        )
        filing.create(
            db,
            Arrival(
                sha=sha,
                size=10,
                content_type="image/png",
                task="cxr",
                uploaded_by=user.id,
                question=QUESTION,
            ),
        )
    p.db.dispose()
    return (home / "secret.key").read_text().strip()


@pytest.fixture
def keyless(tmp_path, monkeypatch):
    """A restored home without its keys: data sealed under K, then HOME/secret.key gone and
    no MEDAI_SECRET_KEYS. Yields (home, database URL, K, K's id, the CLI's environment)."""
    from medai.platform.ops.backup_manifest import key_id

    home = tmp_path / "home"
    url = f"sqlite:///{home / 'medai.db'}"
    use_keys(monkeypatch)
    key = _make_site(home, url)
    (home / "secret.key").unlink()
    use_keys(monkeypatch)  # as a restart would: no key cached
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDAI_SECRET_KEYS")}
    env |= {"MEDAI_HOME": str(home), "MEDAI_DATABASE_URL": url}
    yield home, url, key, key_id(key), env
    use_keys(monkeypatch)


def _medai(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medai.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.mark.slow
def test_serve_worker_and_dicom_node_refuse_a_site_without_its_keys(keyless):
    """The real CLI, each in its own process: exit 3, the key id the data needs named, and
    no key made (a new key would open none of the data and seal new data apart from it)."""
    home, _url, key, kid, env = keyless
    port = free_port()
    serve = _medai(env, "serve", "--port", str(port))
    assert serve.returncode == 3, serve.stdout + serve.stderr
    assert kid in serve.stderr and "no key is configured" in serve.stderr
    assert "medai keys ids" in serve.stderr
    worker = _medai(
        {**env, "MEDAI_BROKER_URL": "redis://127.0.0.1:9/0"}, "worker", "--json"
    )  # refused before the broker is asked
    assert worker.returncode == 3, worker.stdout + worker.stderr
    refused = json.loads(worker.stdout)
    assert refused["code"] == "keys_missing" and kid in refused["error"]
    node = _medai(env, "dicom", "listen", "--port", str(port), "--allow", "CR01", "--json")
    assert node.returncode == 3, node.stdout + node.stderr
    assert json.loads(node.stdout)["code"] == "keys_missing" and kid in node.stdout
    # the other commands that open the platform: the same refusal, never a traceback
    export = _medai(
        env, "dataset", "export", "--task", "cxr", "--out", str(home.parent / "x"), "--json"
    )
    outbox = _medai(
        {**env, "MEDAI_FHIR_URL": "http://127.0.0.1:9/fhir"}, "outbox", "run", "--once", "--json"
    )
    for out in (export, outbox):
        assert out.returncode == 3, out.stdout + out.stderr
        assert json.loads(out.stdout)["code"] == "keys_missing" and kid in out.stdout
        assert "Traceback" not in out.stderr
    assert not (home / "secret.key").exists()
    for out in (serve, worker, node, export, outbox):  # key ids only: never a key, never the data
        assert key not in out.stdout + out.stderr
        assert "Ayşe" not in out.stdout + out.stderr
    # with the operator's copy of the key the same site starts (the DICOM node as witness)
    ok = _medai({**env, "MEDAI_SECRET_KEYS": json.dumps([key])}, "keys", "ids", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["status"] == "ok", ok.stdout


@pytest.mark.slow
def test_keys_ids_names_what_the_data_needs_and_makes_no_key(keyless):
    home, _url, key, kid, env = keyless
    out = _medai(env, "keys", "ids", "--json")
    assert out.returncode == 3, out.stdout + out.stderr
    ids = json.loads(out.stdout)
    assert set(ids) == {"status", "configured", "needed", "missing", "sampled", "key_ids"}
    assert ids["status"] == "keys_missing"
    assert ids["needed"] == [kid] and ids["missing"] == [kid]
    assert ids["configured"] == [] and ids["key_ids"] == []
    assert ids["sampled"]["files"] == 1 and ids["sampled"]["sealed_values"] >= 1
    assert ids["sampled"]["sealed_values_opened"] == 0
    assert not (home / "secret.key").exists()
    human = _medai(env, "keys", "ids")
    assert human.returncode == 3 and kid in human.stdout and key not in human.stdout
    # configured: the same id, both lists
    keys = home.parent / "keys.txt"
    keys.write_text(f"# the operator's copy\n{key}\n")
    good = _medai({**env, "MEDAI_SECRET_KEYS_FILE": str(keys)}, "keys", "ids", "--json")
    assert good.returncode == 0, good.stdout + good.stderr
    got = json.loads(good.stdout)
    assert got["configured"] == [kid] and got["needed"] == [kid] and got["missing"] == []
    assert got["sampled"]["sealed_values_opened"] == got["sampled"]["sealed_values"]
    # a new site: nothing needed, nothing configured, and still no key made or database
    new = home.parent / "new"
    new.mkdir()
    fresh = _medai(
        {**env, "MEDAI_HOME": str(new), "MEDAI_DATABASE_URL": f"sqlite:///{new / 'medai.db'}"},
        "keys",
        "ids",
        "--json",
    )
    assert fresh.returncode == 1 and json.loads(fresh.stdout)["status"] == "new_site"
    assert list(new.iterdir()) == []


def test_every_start_path_refuses_in_process_and_makes_no_key(keyless, caplog):
    """``open_platform`` (serve's app, each Celery worker's platform, `medai dicom listen`)
    refuses before migrating or minting; the refusal is logged with key ids only."""
    from medai.platform.boot import open_platform
    from medai.platform.records.crypto import KeysMissing, cipher
    from medai.services.model_handles import ModelHandles

    home, url, key, kid, _env = keyless
    with (
        caplog.at_level(logging.ERROR, logger="medai.platform"),
        pytest.raises(KeysMissing) as refused,
    ):
        open_platform(url, models=ModelHandles({}), adopt_models=False)
    assert refused.value.code == "keys_missing" and refused.value.status == 503
    assert kid in str(refused.value) and key not in str(refused.value)
    assert any(kid in r.getMessage() for r in caplog.records)
    assert all(key not in r.getMessage() and "Ayşe" not in r.getMessage() for r in caplog.records)
    assert not (home / "secret.key").exists()
    # any other first use of the cipher in this home (a CLI command, de-identification)
    with pytest.raises(KeysMissing, match=kid):
        cipher()
    assert not (home / "secret.key").exists()


@pytest.mark.postgres
def test_a_postgresql_site_without_its_keys_is_refused(tmp_path, monkeypatch):
    """The same sample on PostgreSQL (bytea tokens, JSON columns decoded by the driver)."""
    from medai.platform.boot import open_platform
    from medai.platform.ops.backup_manifest import key_id
    from medai.platform.ops.key_check import inspect_site
    from medai.platform.records.crypto import KeysMissing
    from medai.services.model_handles import ModelHandles

    home = tmp_path / "home"
    use_keys(monkeypatch)
    with postgres_database() as url:
        key = _make_site(home, url)
        (home / "secret.key").unlink()
        use_keys(monkeypatch)
        with pytest.raises(KeysMissing, match=key_id(key)):
            open_platform(url, models=ModelHandles({}), adopt_models=False)
        assert not (home / "secret.key").exists()
        state = inspect_site(url, home / "blobs", [key])
        assert state.status == "ok" and state.opened == state.sealed >= 1
        assert state.needed == [key_id(key)] and state.files_opened == 1


def test_keys_that_open_none_of_the_data_are_refused_too(keyless, monkeypatch):
    """A key is configured, just not the site's (another site's key file): refused the same
    way, naming both the configured id and the one the data needs."""
    from medai.platform.boot import open_platform
    from medai.platform.ops.backup_manifest import key_id
    from medai.platform.records.crypto import KeysMissing
    from medai.services.model_handles import ModelHandles

    _home, url, key, kid, _env = keyless
    other = Fernet.generate_key().decode()
    use_keys(monkeypatch, other)
    with pytest.raises(KeysMissing) as refused:
        open_platform(url, models=ModelHandles({}), adopt_models=False)
    assert kid in str(refused.value) and key_id(other) in str(refused.value)
    use_keys(monkeypatch, other, key)  # the site's key listed too (a rotation under way)
    p = open_platform(url, models=ModelHandles({}), adopt_models=False)
    p.db.dispose()


def test_a_new_site_makes_its_key_once_and_starts(tmp_path, monkeypatch):
    """First run on a fresh machine: no key, no data, no files: the key is made (once: a
    second start, or a second process, reads the same) and the platform opens."""
    from medai.platform.boot import open_platform
    from medai.platform.ops.key_check import inspect_site, require_keys
    from medai.services.model_handles import ModelHandles

    home = tmp_path / "fresh"
    home.mkdir()
    use_home(home)
    use_keys(monkeypatch)
    url = f"sqlite:///{home / 'medai.db'}"
    p = open_platform(url, models=ModelHandles({}), adopt_models=False)
    key = (home / "secret.key").read_text().strip()
    assert require_keys(p.db.engine, home / "blobs", p.settings).status == "ok"
    p.db.dispose()
    use_keys(monkeypatch)
    p = open_platform(url, models=ModelHandles({}), adopt_models=False)
    assert (home / "secret.key").read_text().strip() == key
    p.db.dispose()
    assert inspect_site(url, home / "blobs", [key]).status == "ok"


def test_a_home_whose_blobs_hold_sealed_files_gets_no_key_even_with_an_empty_database(
    keyless, tmp_path
):
    """The stored files alone tell a site from a new one: a database lost or elsewhere does
    not make the home new."""
    from medai.platform.boot import open_platform
    from medai.platform.records.crypto import KeysMissing
    from medai.services.model_handles import ModelHandles

    home, _url, _key, kid, _env = keyless
    with pytest.raises(KeysMissing, match=kid):
        open_platform(f"sqlite:///{tmp_path / 'empty.db'}", models=ModelHandles({}))
    assert not (home / "secret.key").exists()


def test_readiness_is_503_keys_missing_while_the_keys_open_none_of_the_data(
    tmp_path, monkeypatch, tfidf_model_dir, tiny_imaging_dir
):
    """The process runs, then its keys change under it (a restart with another site's key
    file would be refused; a key list edited and reloaded is not): readiness is never 200
    while the keys open none of the sealed data, and recovers with the site's key."""
    from medai.settings import get_settings

    def reload(*keys: str) -> None:  # the key list edited and the platform's settings reloaded
        use_keys(monkeypatch, *keys)
        monkeypatch.setattr(app.state.platform, "settings", get_settings())

    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir, job_threads=0) as (
        app,
        client,
    ):
        rad = bearer(client, "rad1")
        r = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "cxr", "clinical_question": QUESTION},
            files={"file": ("x.png", png_bytes(3), "image/png")},
        )
        assert r.status_code == 201, r.text
        ready = client.get("/api/v1/health/ready")
        assert ready.status_code == 200 and ready.json()["keys"] == {"ready": True}, ready.text
        key = (tmp_path / "home" / "secret.key").read_text().strip()
        reload(Fernet.generate_key().decode())
        try:
            r = client.get("/api/v1/health/ready")
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["code"] == "keys_missing" and body["status"] == "not_ready"
            assert body["keys"] == {"ready": False, "error": "KeysMissing", "code": "keys_missing"}
            assert key not in r.text
            reload(key)
            assert client.get("/api/v1/health/ready").status_code == 200
        finally:
            reload()
