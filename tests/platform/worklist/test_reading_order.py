"""The worklist's reading order (issue 59): an urgent AI finding first, then a red flag in the
clinical question, then the rest, oldest first; ranked and paged by the database (SQLite and
PostgreSQL); the AI column's states (finding, undecided, conflict, out of scope, none) and a
filter for each; the question's red flag named by its rule, a reason apart from the AI's."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text

from helpers.platform import (  # noqa: F401
    bearer,
    clinic,
    database_url,
    migrator,
    png_bytes,
    urgent_cxr_dir,
    use_home,
    wait_status,
)
from medai.platform.dicom.arrival import Arrival

STROKE = "hasta aniden konuşamıyor, yüzünün bir tarafı kaydı"  # triage's "stroke" rule fires
T0 = datetime(2026, 11, 1, 8, 0)


def payload(task: str, probs: dict[str, float], mode: str = "indeterminate", **extra) -> dict:
    """A stored imaging result as the analysis stores it: the task's real decision on these
    probabilities (``imaging.decision.decide``), every threshold 0.5 (MRI: exclusive, its
    confidence 0.5 and margin 0.2)."""
    from medai.core.task_registry import get as get_task
    from medai.imaging.decision import OperatingPolicy, decide

    spec = get_task(task)
    base = {lab: 0.02 for lab in spec.labels} | probs
    policy = OperatingPolicy(
        thresholds={lab: 0.5 for lab in spec.labels},
        normal_conflict=mode,
        **({"min_confidence": 0.5, "min_margin": 0.2} if task == "mri" else {}),
    )
    d = decide(spec, base, policy).model_dump(mode="json")
    return {
        "task": task,
        "status": "ai_suggestion",
        "findings": d["labels"],
        "decision": d,
        **extra,
    }


def flagged(p: dict) -> dict:
    """``p`` with its image flagged out of the model's scope (issue 58's detector)."""
    scope = {
        "out_of_scope": {
            "flagged": True,
            "score": 3.0,
            "threshold": 1.0,
            "reason": "unlike_training",
            "detector": "feature_distance",
        }
    }
    return {**p, "scope": scope}


REFUSED = {
    "task": "cxr",
    "status": "refused",
    "refused": True,
    "reason_code": "colour_photo",
    "reason": "colour photograph",
}
PNEUMOTHORAX = payload("cxr", {"Pneumothorax": 0.93})
EFFUSION = payload("cxr", {"Effusion": 0.81})
NORMAL = payload("cxr", {"No Finding": 0.9})
CONFLICT = payload("cxr", {"No Finding": 0.9, "Effusion": 0.7})
GLIOMA = payload("mri", {"Glioma": 0.9, "No_Tumor": 0.04})
UNDECIDED = payload("mri", {"Meningioma": 0.45, "Pituitary": 0.4, "No_Tumor": 0.1})


# --- the rule, on the task's real decisions


def test_each_ai_state_and_the_urgent_rule_read_the_stored_decision():
    from medai.platform.worklist.reading_order import columns

    def state(task, p, earlier=None):
        c = columns(task, p, earlier)
        return c["ai_state"], c["ai_urgent"], c["out_of_scope"]

    assert state("cxr", PNEUMOTHORAX) == ("decided", True, False)  # the task's urgent label
    assert state("cxr", EFFUSION) == ("decided", False, False)
    assert state("cxr", NORMAL) == ("decided", False, False)
    assert state("mri", GLIOMA) == ("decided", True, False)  # a glioma is read first too
    assert state("mri", UNDECIDED) == ("undecided", False, False)
    # the AI contradicts itself (normal and a finding both passed): a conflict, whichever way
    # the policy settled it, never a confident study
    assert state("cxr", CONFLICT) == ("conflict", False, False)
    assert state("cxr", payload("cxr", {"No Finding": 0.9, "Effusion": 0.7}, "finding"))[0] == (
        "conflict"
    )
    # a pneumothorax the model could not rule out (a conflict's candidate) is urgent
    assert state("cxr", payload("cxr", {"No Finding": 0.9, "Pneumothorax": 0.7})) == (
        "conflict",
        True,
        False,
    )
    assert state("cxr", REFUSED) == ("refused", False, False)
    assert state("cxr", flagged(EFFUSION)) == ("decided", False, True)
    assert state("cxr", None) == (None, False, False)
    # the newest reading of the study decided otherwise than the one before it: a conflict
    assert state("cxr", EFFUSION, NORMAL)[0] == "conflict"
    assert state("cxr", EFFUSION, payload("cxr", {"Effusion": 0.7}))[0] == "decided"


# --- ranked and filtered by the database, across pages


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ward(request, tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    """A worklist of studies filed and read in a known order (no job runs: each study's
    result is stored and its columns written as the analysis does, ``reading_order.refresh``);
    ``ids`` names them."""
    from medai.platform.records.db import utcnow
    from medai.platform.records.tables import AIResultRow, IdentityConflict, User
    from medai.platform.worklist import filing, reading_order

    home = tmp_path_factory.mktemp(f"reading-{request.param}")
    with clinic(request.param, home, tfidf_model_dir, tiny_imaging_dir, job_threads=0) as (
        app,
        client,
    ):
        plan = [  # (name, task, status, result, red flag, earlier reading's result)
            ("normal_old", "cxr", "ai_drafted", NORMAL, False, None),
            ("dyspnoea_normal", "cxr", "ai_drafted", NORMAL, True, None),
            ("effusion", "cxr", "ai_drafted", EFFUSION, False, None),
            ("undecided", "mri", "ai_drafted", UNDECIDED, False, None),
            ("conflict", "cxr", "ai_drafted", CONFLICT, False, None),
            ("signed_pneumothorax", "cxr", "final", PNEUMOTHORAX, True, None),
            ("pending", "cxr", "received", None, False, None),
            ("out_of_scope", "cxr", "ai_drafted", flagged(EFFUSION), False, None),
            ("reread", "cxr", "ai_drafted", EFFUSION, False, NORMAL),
            ("identity", "cxr", "ai_drafted", NORMAL, False, None),
            ("flag_pending", "cxr", "analysing", None, True, None),
            ("glioma", "mri", "ai_drafted", GLIOMA, False, None),
            ("pneumothorax_new", "cxr", "ai_drafted", PNEUMOTHORAX, True, None),
            ("refused", "cxr", "refused", REFUSED, False, None),
        ]
        ids: dict[str, int] = {}
        with app.state.platform.db.session() as db:
            rad = db.scalar(select(User).where(User.username == "rad1"))
            for i, (name, task, status, result, flag, earlier) in enumerate(plan):
                study, _job = filing.create(
                    db,
                    Arrival(
                        sha=f"{i:064x}",
                        size=1,
                        content_type="image/png",
                        task=task,
                        uploaded_by=rad.id,
                        urgent=flag,
                        question=STROKE if flag else None,
                        red_flags=(
                            {
                                "code": "question_red_flag",
                                "rule": "stroke",
                                "name_tr": "İnme (felç) belirtileri",
                                "name_en": "Stroke signs",
                            },
                        )
                        if flag
                        else (),
                    ),
                )
                study.created_at = T0 + timedelta(minutes=i)
                study.status = status
                for n, p in enumerate(x for x in (earlier, result) if x is not None):
                    db.add(
                        AIResultRow(
                            study_id=study.id,
                            kind="imaging",
                            model_name="tiny",
                            model_version="1",
                            model_hash=f"sha256:{n}",
                            reading=f"{n + 1}:{n}",
                            payload=p,
                        )
                    )
                if name == "identity":
                    db.add(
                        IdentityConflict(
                            study_id=study.id,
                            reason="patient_mismatch",
                            fields=["PatientID"],
                            identity=b"x",
                            file_sha256="f" * 64,
                            file_size=1,
                            content_type="application/dicom",
                            task="cxr",
                            source="dicom",
                            language="tr",
                            state="open",
                            uploaded_by=rad.id,
                            created_at=utcnow(),
                        )
                    )
                db.flush()
                reading_order.refresh(db, study)
                ids[name] = study.id
        yield client, bearer(client, "rad1"), ids


def names(ids: dict[str, int], items: list[dict]) -> list[str]:
    back = {v: k for k, v in ids.items()}
    return [back[s["id"]] for s in items]


def walk(client, headers, ids, size: int, **params) -> tuple[list[str], int]:
    """Every page of the worklist, ``size`` rows at a time: the names in order, the total."""
    out, offset, total = [], 0, None
    while True:
        r = client.get(
            "/api/v1/studies", headers=headers, params={"limit": size, "offset": offset, **params}
        )
        assert r.status_code == 200, r.text
        page = r.json()
        total = page["total"] if total is None else total
        assert page["total"] == total and page["offset"] == offset and page["limit"] == size
        out += names(ids, page["items"])
        if len(page["items"]) < size:
            return out, total
        offset += size


RANKED = [
    # an urgent AI finding first (oldest first): a glioma, a pneumothorax
    "glioma",
    "pneumothorax_new",
    # then a red flag in the question: the normal film with "nefes darlığı" is here, not first
    "dyspnoea_normal",
    "flag_pending",
    # then the rest, oldest first; a signed pneumothorax was read: the rest
    "normal_old",
    "effusion",
    "undecided",
    "conflict",
    "signed_pneumothorax",
    "pending",
    "out_of_scope",
    "reread",
    "identity",
    "refused",
]


@pytest.mark.parametrize("size", [3, 5, 14])
def test_the_worklist_is_ranked_by_the_database_across_pages(ward, size):
    client, rad, ids = ward
    order, total = walk(client, rad, ids, size)
    assert order == RANKED and total == len(RANKED)


def test_each_reason_is_said_apart(ward):
    client, rad, ids = ward
    items = {
        s["id"]: s
        for s in client.get("/api/v1/studies", headers=rad, params={"limit": 50}).json()["items"]
    }
    row = items[ids["pneumothorax_new"]]["reading"]
    assert row["rank"] == "ai_urgent"
    assert row["ai"]["state"] == "finding" and row["ai"]["primary"] == "Pneumothorax"
    assert row["ai"]["probability"] == pytest.approx(0.93)
    assert row["ai"]["urgent"] == [
        {"label": "Pneumothorax", "state": "present", "probability": pytest.approx(0.93)}
    ]
    assert row["request"] == {
        "red_flag": True,
        "rules": [
            {"id": "stroke", "name_tr": "İnme (felç) belirtileri", "name_en": "Stroke signs"}
        ],
        "stat": False,
    }
    dyspnoea = items[ids["dyspnoea_normal"]]["reading"]
    assert dyspnoea["rank"] == "red_flag" and dyspnoea["ai"]["state"] == "normal"
    assert dyspnoea["ai"]["primary"] is None and dyspnoea["ai"]["urgent"] == []
    undecided = items[ids["undecided"]]["reading"]["ai"]
    assert undecided["state"] == "undecided"
    assert undecided["candidates"][:2] == ["Meningioma", "Pituitary"]
    conflict = items[ids["conflict"]]["reading"]["ai"]
    assert conflict["state"] == "conflict" and conflict["conflict"] == ["self"]
    assert set(conflict["conflict_labels"]) == {"No Finding", "Effusion"}
    assert items[ids["reread"]]["reading"]["ai"]["conflict"] == ["reading"]
    assert items[ids["identity"]]["reading"]["ai"]["conflict"] == ["identity"]
    oos = items[ids["out_of_scope"]]["reading"]["ai"]
    assert oos["state"] == "finding" and oos["out_of_scope"] is True
    assert oos["out_of_scope_reason"] == "unlike_training"
    assert items[ids["pending"]]["reading"]["ai"]["state"] == "pending"
    refused = items[ids["refused"]]["reading"]["ai"]
    assert (refused["state"], refused["refusal"]) == ("refused", "colour_photo")
    assert items[ids["signed_pneumothorax"]]["reading"]["rank"] == "rest"


@pytest.mark.parametrize(
    ("params", "want"),
    [
        ({"ai": "urgent"}, ["glioma", "pneumothorax_new", "signed_pneumothorax"]),
        ({"ai": "undecided"}, ["undecided"]),
        ({"ai": "conflict"}, ["conflict", "reread", "identity"]),
        ({"ai": "out_of_scope"}, ["out_of_scope"]),
        ({"ai": "none"}, ["flag_pending", "pending"]),
        (
            {"red_flag": True},
            ["pneumothorax_new", "dyspnoea_normal", "flag_pending", "signed_pneumothorax"],
        ),
        ({"red_flag": False, "ai": "urgent"}, ["glioma"]),
        ({"red_flag": True, "status": "ai_drafted"}, ["pneumothorax_new", "dyspnoea_normal"]),
        ({"ai": "urgent", "task": "mri"}, ["glioma"]),
    ],
)
def test_each_filter_pages_right(ward, params, want):
    client, rad, ids = ward
    order, total = walk(client, rad, ids, 2, **params)
    assert order == want and total == len(want)


def test_an_unknown_ai_filter_is_a_named_422(ward):
    client, rad, _ids = ward
    r = client.get("/api/v1/studies", headers=rad, params={"ai": "urgentish"})
    assert r.status_code == 422 and r.json()["code"]


# --- written where it happens: the upload names the question's rule, the analysis the AI's


def test_the_upload_names_the_rule_and_the_analysis_the_urgent_finding(
    tmp_path,
    tfidf_model_dir,
    urgent_cxr_dir,  # noqa: F811
):
    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, urgent_cxr_dir, job_threads=1) as (
        _app,
        client,
    ):
        rad = bearer(client, "rad1")

        def upload(seed, **form):
            r = client.post(
                "/api/v1/studies",
                headers=rad,
                data={"task": "cxr", **form},
                files={"file": ("x.png", png_bytes(seed), "image/png")},
            )
            assert r.status_code == 201, r.text
            return r.json()

        flagged_study = upload(1, clinical_question=STROKE)
        because = flagged_study["urgent_because"]
        assert [(r["code"], r["rule"], r["name_tr"]) for r in because] == [
            ("question_red_flag", "stroke", "İnme (felç) belirtileri")
        ]
        calm = upload(2)
        for sid in (flagged_study["id"], calm["id"]):
            wait_status(client, rad, sid, {"ai_drafted"})
        page = client.get("/api/v1/studies", headers=rad).json()["items"]
        by_id = {s["id"]: s["reading"] for s in page}
        # every film of this model has a pneumothorax: both are urgent AI findings, the
        # question's red flag is said beside it, apart
        assert by_id[calm["id"]]["rank"] == "ai_urgent"
        assert by_id[calm["id"]]["request"] == {"red_flag": False, "rules": [], "stat": False}
        assert by_id[flagged_study["id"]]["ai"]["urgent"][0]["label"] == "Pneumothorax"
        assert by_id[flagged_study["id"]]["request"]["rules"][0]["id"] == "stroke"
        urgent = client.get("/api/v1/studies", headers=rad, params={"ai": "urgent"}).json()
        assert urgent["total"] == 2
        flag = client.get("/api/v1/studies", headers=rad, params={"red_flag": True}).json()
        assert [s["id"] for s in flag["items"]] == [flagged_study["id"]]


# --- the migration fills the columns of studies already read


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_migration_backfills_the_reading_columns(kind, tmp_path):
    import sqlalchemy as sa
    from alembic import command

    from medai.platform.records.db import make_engine
    from medai.platform.records.sealed import seal_text

    use_home(tmp_path)
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        migrate = migrator(engine)
        migrate(command.upgrade, "0022")
        users = sa.table(
            "users",
            *(
                sa.column(c)
                for c in ("id", "username", "password_hash", "role", "active", "created_at")
            ),
        )
        studies = sa.table(
            "studies",
            *(
                sa.column(c)
                for c in (
                    "id",
                    "task",
                    "modality",
                    "file_sha256",
                    "file_size",
                    "content_type",
                    "language",
                    "status",
                    "urgent",
                    "urgent_because",
                    "uploaded_by",
                    "created_at",
                    "updated_at",
                )
            ),
            sa.column("urgent_because", sa.JSON()),
        )
        results = sa.table(
            "ai_results",
            *(
                sa.column(c)
                for c in (
                    "study_id",
                    "kind",
                    "model_name",
                    "model_version",
                    "model_hash",
                    "reading",
                    "created_at",
                )
            ),
            sa.column("payload", sa.JSON()),
        )

        def sealed(value):
            return seal_text(json.dumps(value))

        with engine.begin() as conn:
            conn.execute(
                users.insert().values(
                    id=1, username="u", password_hash="", role="admin", active=True, created_at=T0
                )
            )
            for sid, because, result in (
                (1, [{"code": "question_red_flag"}], NORMAL),
                (2, [{"code": "ai_finding", "label": "Pneumothorax"}], PNEUMOTHORAX),
                (3, None, UNDECIDED),
                (4, None, None),
            ):
                conn.execute(
                    studies.insert().values(
                        id=sid,
                        task="mri" if result is UNDECIDED else "cxr",
                        modality="x",
                        file_sha256="a" * 64,
                        file_size=1,
                        content_type="image/png",
                        language="tr",
                        status="ai_drafted",
                        urgent=bool(because),
                        urgent_because=sealed(because) if because else None,
                        uploaded_by=1,
                        created_at=T0,
                        updated_at=T0,
                    )
                )
                if result is not None:
                    conn.execute(
                        results.insert().values(
                            study_id=sid,
                            kind="imaging",
                            model_name="m",
                            model_version="1",
                            model_hash="h",
                            reading="",
                            created_at=T0,
                            payload=sealed(result),
                        )
                    )
        migrate(command.upgrade, "0023")
        with engine.connect() as conn:
            got = conn.execute(
                text(
                    "SELECT id, ai_state, ai_urgent, red_flag, out_of_scope FROM studies ORDER BY id"
                )
            ).all()
        assert [(i, s, bool(u), bool(f), bool(o)) for i, s, u, f, o in got] == [
            (1, "decided", False, True, False),
            (2, "decided", True, False, False),
            (3, "undecided", False, False, False),
            (4, None, False, False, False),
        ]
        migrate(command.downgrade, "0022")
        with engine.connect() as conn:
            cols = {
                r[0] for r in conn.execute(text("SELECT * FROM studies LIMIT 0")).cursor.description
            }
        assert not cols & {"ai_state", "ai_urgent", "red_flag", "out_of_scope"}
        engine.dispose()


def test_a_result_stored_while_its_job_runs_reads_pending_not_normal():
    """The analysis stores its result before its draft; the row of a study still analysing
    says the AI's answer is pending, never "no finding" for an image not yet reported."""
    from medai.platform.records.tables import Study
    from medai.platform.worklist.reading_order import summary

    running = Study(id=1, task="cxr", status="analysing", urgent_because=None)
    assert summary(running, NORMAL, None, [])["ai"]["state"] == "pending"
    drafted = Study(id=1, task="cxr", status="ai_drafted", urgent_because=None)
    assert summary(drafted, NORMAL, None, [])["ai"]["state"] == "normal"
