"""One analysis's monitoring sample (``monitoring.observe``): kept in one session, committed
before the alert check begins, so a check that fails keeps the sample, fails nothing and logs
what failed by type only; a check that passes sees the sample it follows."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from helpers.platform import bare_platform

PAYLOAD = {
    "findings": [{"label": "Pneumonia", "probability": 0.7}],
    "decision": {"state": "abnormal", "positives": ["Pneumonia"]},
}


@pytest.fixture()
def plat(tmp_path, tfidf_model_dir, tiny_imaging_dir):
    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        yield p


def _samples(p) -> int:
    from medai.platform.records.tables import MonitorSample

    with p.db.reader() as db:
        return db.scalar(select(func.count()).select_from(MonitorSample))


def test_a_failing_alert_check_keeps_the_sample_and_says_what_failed(plat, monkeypatch, caplog):
    from medai.platform.lifecycle import monitoring

    def broken(*args, **kwargs):
        raise RuntimeError("the reference could not be read")

    monkeypatch.setattr(monitoring, "conditions", broken)
    with caplog.at_level(logging.ERROR, logger="medai.platform.lifecycle"):
        monitoring.observe(plat, None, "cxr", "sha256:abc", PAYLOAD, None, 5.0, {"view": "PA"})
    assert _samples(plat) == 1
    assert "sample kept, alert check failed: RuntimeError" in caplog.text
    assert "reference" not in caplog.text  # the error's type, never its text


def test_the_check_sees_the_sample_it_follows(plat, monkeypatch):
    from medai.platform.lifecycle import monitoring
    from medai.platform.records.tables import MonitorSample

    seen = []
    real = monitoring.conditions

    def counting(db, task, model_hash, settings):
        seen.append(db.scalar(select(func.count()).select_from(MonitorSample)))
        return real(db, task, model_hash, settings)

    monkeypatch.setattr(monitoring, "conditions", counting)
    monitoring.observe(plat, None, "cxr", "sha256:abc", PAYLOAD, None, 5.0, {"view": "PA"})
    monitoring.observe(plat, None, "cxr", "sha256:abc", PAYLOAD, None, 5.0, {"view": "PA"})
    assert seen == [1, 2] and _samples(plat) == 2
