"""A study's refusal reason (``studies.reason``) and the finding its heatmap is drawn for
(``ai_results.heatmap_label``) are sealed at rest like every other clinical text (issue 67,
item 9): migration 0027 seals what an older version kept in clear and its downgrade opens it
again, on SQLite and PostgreSQL; the API still reads both back; a backup of the older schema is
still checked as the older schema holds it."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from helpers.platform import (  # noqa: F401 (urgent_cxr_dir: a fixture)
    bearer,
    clinic,
    png_bytes,
    refused_study,
    urgent_cxr_dir,
    wait_status,
)

REASON = "görüntü bir akciğer grafisine benzemiyor (renkli fotoğraf); " + "ş" * 380  # > 400
LABEL = "Pneumothorax"


def _old_rows(conn, payload: str) -> None:
    """A site at 0026: a refused study with its reason in clear, one without a reason, an AI
    result with its heatmap label in clear and one without a heatmap."""
    conn.execute(
        text(
            "INSERT INTO users (id, username, password_hash, role, active, created_at) "
            "VALUES (1, 'u', '', 'radiologist', true, '2026-01-01')"
        )
    )
    conn.execute(
        text(
            "INSERT INTO studies (id, task, modality, file_sha256, file_size, content_type, "
            "language, status, urgent, reason, uploaded_by, created_at, updated_at) VALUES "
            "(1, 'cxr', 'OT', 'x', 1, 'image/png', 'tr', 'refused', false, :reason, 1, "
            "'2026-01-01', '2026-01-01'), (2, 'cxr', 'CR', 'y', 1, 'image/png', 'tr', "
            "'ai_drafted', false, NULL, 1, '2026-01-01', '2026-01-01')"
        ),
        {"reason": REASON[:400]},
    )
    conn.execute(
        text(
            "INSERT INTO ai_results (id, study_id, kind, model_name, model_version, model_hash, "
            "reading, payload, heatmap_sha256, heatmap_label, created_at) VALUES "
            "(1, 2, 'imaging', 'm', '1', 'h', '', :payload, 'z', :label, '2026-01-01'), "
            "(2, 2, 'draft', 'm', '1', 'h', '', :payload, NULL, NULL, '2026-01-01')"
        ),
        {"payload": payload, "label": LABEL},
    )


def _stored(conn, table: str, column: str) -> list:
    return [r[0] for r in conn.execute(text(f"SELECT {column} FROM {table} ORDER BY id"))]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_upgrade_seals_reasons_and_heatmap_labels_and_the_downgrade_opens_them(kind, tmp_path):
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from helpers.platform import database_url, migrator, use_home
    from medai.platform.ops.backup import sealed_columns
    from medai.platform.records.crypto import cipher
    from medai.platform.records.db import Base, Database, make_engine
    from medai.platform.records.tables import AIResultRow, Study
    from medai.platform.worklist.study_state import set_status

    use_home(tmp_path)
    cipher.cache_clear()
    labels = {"studies.reason", "ai_results.heatmap_label"}
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        migrate = migrator(engine)
        migrate(command.upgrade, "0026")
        payload = json.dumps(cipher().encrypt(json.dumps({"findings": []})).decode("ascii"))
        with engine.begin() as conn:
            _old_rows(conn, payload)
            # the older schema holds them in clear: a backup of it is not checked for tokens there
            assert not labels & {label for label, *_ in sealed_columns(conn)}
        migrate(command.upgrade, "head")
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            assert labels <= {label for label, *_ in sealed_columns(conn)}
            reason, none = _stored(conn, "studies", "reason")
            label, no_label = _stored(conn, "ai_results", "heatmap_label")
        assert none is None and no_label is None
        assert "akciğer" not in reason and LABEL not in label
        assert cipher().decrypt(reason.encode()) == REASON[:400]
        assert cipher().decrypt(label.encode()) == LABEL
        db = Database(url)
        with db.session() as s:
            assert s.get(Study, 1).reason == REASON[:400] and s.get(Study, 2).reason is None
            assert s.get(AIResultRow, 1).heatmap_label == LABEL
            set_status(s.get(Study, 2), "failed", REASON)  # a new reason: sealed, 400 kept
        with db.session() as s:
            assert s.get(Study, 2).reason == REASON[:400]
        db.dispose()
        with engine.connect() as conn:
            assert "akciğer" not in _stored(conn, "studies", "reason")[1]
        migrate(command.downgrade, "0026")  # and back in clear
        with engine.connect() as conn:
            assert _stored(conn, "studies", "reason") == [REASON[:400], REASON[:400]]
            assert _stored(conn, "ai_results", "heatmap_label") == [LABEL, None]
        migrate(command.upgrade, "head")  # and sealed again
        engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, tmp_path_factory, tfidf_model_dir, urgent_cxr_dir):  # noqa: F811
    with clinic(
        request.param,
        tmp_path_factory.mktemp(f"reasons-{request.param}"),
        tfidf_model_dir,
        urgent_cxr_dir,
    ) as (app, client):
        yield app, client


def test_a_refusal_reason_and_a_heatmap_label_are_sealed_and_read_back(site):
    app, client = site
    rad = bearer(client, "rad1")
    refused = refused_study(app, client, rad)
    r = client.post(
        "/api/v1/studies",
        headers=rad,
        data={"task": "cxr"},
        files={"file": ("x.png", png_bytes(5), "image/png")},
    )
    assert r.status_code == 201, r.text
    drafted = wait_status(client, rad, r.json()["id"], {"ai_drafted"})
    shown = client.get(f"/api/v1/studies/{refused}", headers=rad).json()
    assert isinstance(shown["reason"], str) and shown["reason"]
    heat = drafted["ai_result"]["heatmap_label"]
    assert heat  # the urgent model draws its heatmap for a finding
    with app.state.platform.db.session() as db:
        reason = db.execute(text(f"SELECT reason FROM studies WHERE id = {refused}")).scalar()
        labels = db.execute(
            text("SELECT heatmap_label FROM ai_results WHERE heatmap_label IS NOT NULL")
        ).scalars()
        labels = list(labels)
    from medai.platform.records.crypto import cipher

    assert reason != shown["reason"] and cipher().decrypt(reason.encode()) == shown["reason"]
    assert labels and all(v != heat and cipher().decrypt(v.encode()) == heat for v in labels)
