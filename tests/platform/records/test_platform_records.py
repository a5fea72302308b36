"""What the platform keeps: an append-only audit log without patient text, report versions
the database refuses to change, chat messages encrypted at rest with rotatable keys."""

from __future__ import annotations

import os
import re

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from helpers.platform import bearer, clinic, png_bytes, wait_status
from medai.reporting.chat import label_name


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(request, tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    with clinic(
        request.param,
        tmp_path_factory.mktemp(f"records-{request.param}"),
        tfidf_model_dir,
        tiny_imaging_dir,
    ) as (app, client):
        rad = bearer(client, "rad1")
        sid = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "cxr"},
            files={"file": ("x.png", png_bytes(5), "image/png")},
        ).json()["id"]
        wait_status(client, rad, sid, {"ai_drafted"})
        yield app, client, sid


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET outcome = 'ok'",
        "DELETE FROM audit_events",
        "UPDATE report_versions SET status = 'final'",
        "DELETE FROM report_versions",
    ],
)
def test_the_database_refuses_to_rewrite_history(env, statement):
    app, _, _ = env
    with pytest.raises(DBAPIError, match="append-only"), app.state.platform.db.session() as db:
        db.execute(text(statement))


def test_the_audit_log_records_the_workflow_without_patient_text(env):
    _app, client, sid = env
    clin = bearer(client, "clin")
    secret = "Ayşe Yılmaz 12345678901 göğsüm sıkışıyor"
    client.post("/api/v1/triage", headers=clin, json={"text": secret})
    client.get(f"/api/v1/studies/{sid}/report/fhir", headers=clin)
    admin = bearer(client, "admin")
    items = client.get(
        "/api/v1/audit", headers=admin, params={"limit": 1000, "order": "asc"}
    ).json()["items"]
    actions = {e["action"] for e in items}
    assert {"login", "upload", "predict", "draft", "view", "triage", "export"} <= actions
    assert not any("Ayşe" in str(e) or "12345678901" in str(e) for e in items)
    exported = [e for e in items if e["action"] == "export"]
    assert exported[-1]["detail"]["format"] == "fhir" and exported[-1]["actor"] == "clin"
    since = client.get(
        "/api/v1/audit", headers=admin, params={"action": "export", "since": exported[-1]["at"]}
    ).json()
    assert since["total"] >= 1


def test_chat_answers_from_the_findings_and_stores_messages_encrypted(env):
    app, client, sid = env
    clin = bearer(client, "clin")
    conv = client.post(f"/api/v1/studies/{sid}/conversations", headers=clin).json()["id"]
    r = client.post(
        f"/api/v1/conversations/{conv}/messages",
        headers=clin,
        json={"text": "Bu görüntüde pnömoni var mı?"},
    )
    assert r.status_code == 200
    answer = r.json()
    assert answer["backend"] == "retrieval" and answer["role"] == "assistant"
    said = answer["text"]  # the study's language is Turkish; no language model is configured
    assert "yapılandırılmış bir dil modeli yok" in said and "tanı değil" in said
    study = client.get(f"/api/v1/studies/{sid}", headers=clin).json()
    for f in study["ai_result"]["findings"]:  # the decided findings, by their Turkish names
        assert label_name("cxr", f["label"], "tr") in said
    assert re.search(r"^\[1\] .+ — .+ — lisans: ", said, re.M)  # a cited passage
    history = client.get(f"/api/v1/conversations/{conv}", headers=clin).json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    with app.state.platform.db.session() as db:
        raw = db.execute(text("SELECT body FROM messages")).scalars().all()
    assert raw and all(b"pn\xc3\xb6moni" not in bytes(b) for b in raw)


def test_key_rotation_re_encrypts_everything(env, monkeypatch):
    import json

    from medai.platform.ops.rotation import rotate_all
    from medai.platform.records.crypto import Cipher, cipher
    from medai.settings import get_settings

    app, client, sid = env
    clin = bearer(client, "clin")
    conv = client.post(f"/api/v1/studies/{sid}/conversations", headers=clin).json()["id"]
    client.post(f"/api/v1/conversations/{conv}/messages", headers=clin, json={"text": "soru"})
    old_key = (get_settings().storage.home / "secret.key").read_text().strip()
    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("MEDAI_SECRET_KEYS", json.dumps([new_key, old_key]))
    get_settings.cache_clear()
    cipher.cache_clear()
    try:
        with app.state.platform.db.session() as db:
            assert rotate_all(db) >= 2
        only_new = Cipher([new_key])
        with app.state.platform.db.session() as db:
            bodies = db.execute(text("SELECT body FROM messages")).scalars().all()
            complaints = db.execute(text("SELECT complaint FROM triage_requests")).scalars().all()
        assert all(only_new.decrypt(b) for b in [*bodies, *complaints])
        monkeypatch.setenv("MEDAI_SECRET_KEYS", json.dumps([new_key]))
        get_settings.cache_clear()
        cipher.cache_clear()
        got = client.get(f"/api/v1/conversations/{conv}", headers=clin).json()["messages"]
        assert got[0]["text"] == "soru"
    finally:
        monkeypatch.delenv("MEDAI_SECRET_KEYS")
        os.environ.pop("MEDAI_SECRET_KEYS", None)
        get_settings.cache_clear()
        cipher.cache_clear()


async def _chunks(parts):
    for part in parts:
        yield part


def test_uploads_are_content_addressed_and_limited_while_streaming(tmp_path):
    import asyncio
    import hashlib

    from medai.platform.records.blobs import BlobStore, TooLarge

    store = BlobStore(tmp_path / "blobs")

    data = b"x" * 3000
    sha, size = asyncio.run(store.put_stream(_chunks([data[:1000], data[1000:]]), limit=4096))
    assert sha == hashlib.sha256(data).hexdigest() and size == 3000
    assert store.read(sha) == data and store.put_bytes(data) == sha
    assert b"xxxx" not in store.path(sha).read_bytes()  # encrypted as it streamed in
    with pytest.raises(TooLarge):
        asyncio.run(store.put_stream(_chunks([b"y" * 4000, b"y" * 4000]), limit=4096))
    leftovers = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert leftovers == [store.path(sha)]  # the refused upload left no partial file
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")


def test_blobs_are_sealed_rotated_and_refused_when_altered(tmp_path):
    """Files at rest: a blob an older version stored in clear is still read and is encrypted
    by rotation; rotation moves every blob to the newest key; a flipped byte or a key no
    longer listed is refused (InvalidToken), never returned as altered plaintext."""
    import asyncio
    import hashlib

    from medai.core.faults import StorageFault
    from medai.platform.records.blobs import BlobStore
    from medai.platform.records.crypto import BlobCipher

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    store = BlobStore(tmp_path / "blobs", BlobCipher([old]))
    sealed = store.put_bytes(b"sealed under the old key")
    legacy = b"stored in clear by an older version"
    clear = hashlib.sha256(legacy).hexdigest()
    store.path(clear).parent.mkdir(parents=True, exist_ok=True)
    store.path(clear).write_bytes(legacy)
    assert store.read(clear) == legacy

    rotated = BlobStore(tmp_path / "blobs", BlobCipher([new, old]))
    assert rotated.rotate() == {"rotated": 2, "unreadable": 0}
    assert rotated.rotate() == {"rotated": 0, "unreadable": 0}  # done once, nothing to do
    newest = BlobStore(tmp_path / "blobs", BlobCipher([new]))
    assert newest.read(sealed) == b"sealed under the old key" and newest.read(clear) == legacy
    assert legacy not in store.path(clear).read_bytes()
    with pytest.raises(StorageFault, match="cannot be decrypted") as refused:
        BlobStore(tmp_path / "blobs", BlobCipher([old])).read(sealed)
    assert refused.value.code == "storage_undecryptable" and sealed in refused.value.where
    # swapped: two valid sealed files exchanged on disk are refused, not served crossed
    other = newest.put_bytes(b"another patient's image")
    a, b = newest.path(sealed).read_bytes(), newest.path(other).read_bytes()
    newest.path(sealed).write_bytes(b)
    newest.path(other).write_bytes(a)
    for sha in (sealed, other):
        with pytest.raises(StorageFault, match="cannot be decrypted"):
            newest.read(sha)
    newest.path(sealed).write_bytes(a)
    newest.path(other).write_bytes(b)
    # truncated (to a few bytes of the header, or to its tag) or a flipped bit: refused
    for cut in (a[:10], a[:-1], a[:-20] + bytes([a[-20] ^ 1]) + a[-19:]):
        newest.path(sealed).write_bytes(cut)
        with pytest.raises(StorageFault, match="cannot be decrypted"):
            newest.read(sealed)
    # a clear file planted under a name that is not its content's: refused
    newest.path(other).write_bytes(b"planted in clear")
    with pytest.raises(StorageFault):
        newest.read(other)
    # rotation names and counts what it cannot read, and rewrites the rest
    assert BlobStore(tmp_path / "blobs", BlobCipher([old, new])).rotate() == {
        "rotated": 1,
        "unreadable": 2,
    }
    # storing the same content again replaces a damaged copy
    assert newest.put_bytes(b"sealed under the old key") == sealed
    assert newest.read(sealed) == b"sealed under the old key"
    newest.path(sealed).write_bytes(a[:10])
    fresh = asyncio.run(newest.receive(_chunks([b"sealed under", b" the old key"]), 1 << 20))
    assert fresh[0] == sealed and newest.read(sealed) == b"sealed under the old key"


def test_the_generated_key_is_the_same_for_concurrent_first_uses(tmp_path):
    import stat
    import threading

    from medai.platform.records.crypto import _key_file

    keys: list[list[str]] = []
    barrier = threading.Barrier(8)

    def first_use():
        barrier.wait()
        keys.append(_key_file(tmp_path))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and all(k == keys[0] for k in keys)
    Fernet(keys[0][0].encode())  # a complete, valid key
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]
