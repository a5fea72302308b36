"""Monitoring compares a model with the outcomes staff record of its answers when its task
says staff record them (``Task.recorded_outcomes``), whatever the task is called: a complaint
task registered with triage's field gets the department agreement triage gets; an imaging
task, which says nothing, gets none."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpers.platform import bare_platform
from medai.core import task_registry
from medai.core.task_registry import Task, loader_from
from medai.platform.lifecycle import monitoring
from medai.platform.records.tables import TriageOutcome, TriageRecord, User

pytestmark = pytest.mark.slow
MODEL = "sha256:" + "c" * 64


@pytest.fixture()
def plat(tmp_path, tfidf_model_dir, tiny_imaging_dir, monkeypatch):
    monkeypatch.setattr(task_registry, "_TASKS", dict(task_registry._TASKS))
    task_registry.register(
        Task(
            name="complaint",
            kind="complaint",
            loader=loader_from("x:y"),
            labels=("ent", "neurology"),
            served=True,
            recorded_outcomes=True,
        )
    )
    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        yield p


def test_a_task_whose_outcomes_staff_record_is_compared_with_them(plat):
    with plat.db.session() as db:
        user = db.scalar(select(User))
        for suggested, sent in (("ent", "ent"), ("ent", "neurology"), ("neurology", "ent")):
            row = TriageRecord(
                user_id=user.id,
                complaint=b"sealed",
                result={"departments": [{"id": suggested}], "abstained": False},
                urgent=False,
                model_hash=MODEL,
            )
            db.add(row)
            db.flush()
            db.add(
                TriageOutcome(triage_id=row.id, department=sent, urgent=False, recorded_by=user.id)
            )
    outcomes = monitoring.summary(plat, "complaint", MODEL)["triage"]
    assert outcomes["n"] == 3 and outcomes["department"][0] == pytest.approx(1 / 3, abs=1e-4)
    assert monitoring.summary(plat, "cxr", MODEL)["triage"] is None  # signed reports only
    assert monitoring.summary(plat, "gone", MODEL)["triage"] is None  # no longer registered
