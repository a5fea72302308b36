"""The conversation list (``GET /api/v1/conversations``, ``api.routes.chat``, issue 59): a
conversation opened but never used is not listed; one with a message is."""

from __future__ import annotations

import pytest

from helpers.platform import bearer, clinic, png_bytes, wait_status


@pytest.fixture(scope="module")
def env(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    with clinic(
        "sqlite", tmp_path_factory.mktemp("conversations"), tfidf_model_dir, tiny_imaging_dir
    ) as (
        app,
        client,
    ):
        rad = bearer(client, "rad1")
        sid = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "cxr"},
            files={"file": ("x.png", png_bytes(7), "image/png")},
        ).json()["id"]
        wait_status(client, rad, sid, {"ai_drafted"})
        yield app, client, sid


def test_a_conversation_opened_and_left_unused_is_not_listed(env):
    _app, client, sid = env
    clin = bearer(client, "clin")
    opened = client.post(f"/api/v1/studies/{sid}/conversations", headers=clin).json()["id"]
    assert client.get("/api/v1/conversations", headers=clin).json()["items"] == []
    used = client.post(f"/api/v1/studies/{sid}/conversations", headers=clin).json()["id"]
    r = client.post(
        f"/api/v1/conversations/{used}/messages", headers=clin, json={"text": "Pnömoni nedir?"}
    )
    assert r.status_code == 200
    listed = [c["id"] for c in client.get("/api/v1/conversations", headers=clin).json()["items"]]
    assert listed == [used] and opened not in listed
