"""Site validation (issue 26): a site set is frozen from the held-out share of signed studies;
a candidate is evaluated beside the active model on it; promotion without an override needs a
passing verdict — refused for a candidate that misses what the active model finds, allowed
for one that is as good — and a later amendment does not change a frozen set. An empty set is
never frozen, and a validation on too few studies is inconclusive, never passed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from helpers.lifecycle import _model
from helpers.platform import bare_platform, png_bytes
from medai.platform.dicom.arrival import Arrival

pytestmark = pytest.mark.slow


def _signed_site(tmp_path, monkeypatch, tfidf_model_dir, n: int):
    """A platform whose active CXR model calls every finding, ``n`` studies signed (half with a
    pneumothorax), about half of them held out for validation."""
    from medai.platform.records.tables import StudyLabel, User
    from medai.platform.worklist import filing
    from medai.settings import get_settings

    monkeypatch.setenv("MEDAI_SITE_SET_FRACTION", "0.5")
    get_settings.cache_clear()
    active = _model(tmp_path / "active", 0.0)
    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, active) as p:
        with p.db.session() as db:
            user = db.scalar(select(User))
            for i in range(n):
                sha = p.store.put_bytes(png_bytes(100 + i))
                study, _ = filing.create(
                    db,
                    Arrival(
                        sha=sha, size=1, content_type="image/png", task="cxr", uploaded_by=user.id
                    ),
                )
                db.flush()
                for label, present in (
                    ("Pneumothorax", i % 2 == 0),
                    ("Effusion", i % 3 == 0),
                    ("No Finding", i % 2 == 1 and i % 3 != 0),
                ):
                    db.add(
                        StudyLabel(
                            study_id=study.id,
                            report_version=2,
                            label=label,
                            present=present,
                            ai_positive=True,
                            source="text",
                            decided_by=user.id,
                        )
                    )
        yield p, tmp_path


@pytest.fixture()
def site(tmp_path, monkeypatch, tfidf_model_dir):
    """70 signed studies: 35 held out, more than a verdict's minimum (MIN_STUDIES)."""
    yield from _signed_site(tmp_path, monkeypatch, tfidf_model_dir, 70)


@pytest.fixture()
def small_site(tmp_path, monkeypatch, tfidf_model_dir):
    """12 signed studies: 8 held out, fewer than a verdict's minimum."""
    yield from _signed_site(tmp_path, monkeypatch, tfidf_model_dir, 12)


def _register(p, directory: Path) -> int:
    from medai.platform.access.audit import Actor
    from medai.platform.lifecycle import model_registry

    with p.db.session() as db:
        return model_registry.register(db, p.home, directory, Actor("ml"))[0].id


def test_a_candidate_that_misses_findings_is_refused_and_one_as_good_is_promoted(site):
    from medai.platform.access.audit import Actor
    from medai.platform.lifecycle import model_registry, site_sets, validation

    p, tmp = site
    blind = _register(p, _model(tmp / "blind", 1.0, nudge=1e-3))  # decides nothing
    with p.db.session() as db, pytest.raises(model_registry.PromotionRefused) as refused:
        validation.promote(db, blind, Actor("admin"), "try")
    assert refused.value.code == "no_site_set"
    with p.db.session() as db:
        frozen = site_sets.build(db, "cxr", "admin", p.settings.models.site_set_fraction)
        assert validation.MIN_STUDIES <= len(frozen.studies) <= 50 and frozen.version == 1
    with p.db.session() as db, pytest.raises(model_registry.PromotionRefused) as refused:
        validation.promote(db, blind, Actor("admin"), "try")
    assert refused.value.code == "not_validated"

    v = validation.validate(p, blind, "admin", n_boot=100)
    assert not v.passed, v.metrics
    assert v.metrics["macro_sensitivity_difference"]["high"] < -0.05  # clearly worse
    label = v.metrics["labels"]["Pneumothorax"]
    assert label["candidate"]["sensitivity"][0] == 0.0 and label["active"]["sensitivity"][0] == 1.0
    assert label["positives"] > 0 and label["candidate"]["auroc"] is not None
    with p.db.session() as db, pytest.raises(model_registry.PromotionRefused) as refused:
        validation.promote(db, blind, Actor("admin"), "try")
    assert refused.value.code == "not_non_inferior"
    assert v.metrics["outcome"] == "not_non_inferior" and "inconclusive" not in v.metrics

    twin = _register(p, _model(tmp / "twin", 0.0, nudge=1e-4))  # the same model, re-saved
    v = validation.validate(p, twin, "admin", n_boot=100)
    assert v.passed and v.metrics["outcome"] == "passed", v.metrics["summary"]
    with p.db.session() as db:
        validation.promote(db, twin, Actor("admin"), "validated on the site set")
        assert model_registry.active(db, "cxr").id == twin


def test_a_frozen_site_set_keeps_the_labels_it_was_built_with(site):
    from medai.platform.lifecycle import site_sets
    from medai.platform.records.tables import StudyLabel, User

    p, _ = site
    with p.db.session() as db:
        frozen = site_sets.build(db, "cxr", "admin", p.settings.models.site_set_fraction)
        first = frozen.studies[0]
        user = db.scalar(select(User))
        for label, present in first["labels"].items():  # an amendment flips every label
            db.add(
                StudyLabel(
                    study_id=first["study_id"],
                    report_version=4,
                    label=label,
                    present=not present,
                    ai_positive=True,
                    source="text",
                    decided_by=user.id,
                )
            )
    with p.db.session() as db:
        again = site_sets.latest(db, "cxr")
        assert again.studies[0] == first  # v1 as frozen
        newer = site_sets.build(db, "cxr", "admin", p.settings.models.site_set_fraction)
        assert newer.version == 2 and newer.studies[0]["labels"] != first["labels"]
        assert newer.content_hash != again.content_hash


def test_a_validated_model_is_monitored_against_its_site_set_outputs(site):
    """Once validated, a model's monitoring reference is what it gave on the site set: a
    shifted stream alerts within the least window (30 studies) from its first analysis, with
    no 100 first analyses to wait for; a stream like the site set stays quiet."""
    from helpers.lifecycle import _alerts, film
    from medai.platform.lifecycle import monitoring, site_sets, validation
    from medai.services import imaging as imaging_service

    p, tmp = site
    twin = _register(p, _model(tmp / "twin", 0.0, nudge=1e-4))
    with p.db.session() as db:
        site_sets.build(db, "cxr", "admin", p.settings.models.site_set_fraction)
    v = validation.validate(p, twin, "admin", n_boot=50)
    kept = validation.as_dict(v)
    assert kept["monitor_reference_n"] >= 10 and "monitor_reference" not in kept["metrics"]
    predictor = __import__("medai.core.model_dir", fromlist=["load"]).load(tmp / "twin")
    content_hash = predictor.identity.content_hash

    def stream(images) -> list[int]:
        fired = []
        for i, data in enumerate(images):
            image = imaging_service.read_image(data)
            result = predictor.predict(image)
            before = len(_alerts(p))
            monitoring.observe(
                p,
                None,
                "cxr",
                content_hash,
                result.model_dump(mode="json"),
                image,
                5.0,
                {"modality": "chest X-ray", "source": "upload"},
                result.embedding,
            )
            if len(_alerts(p)) > before:
                fired.append(i + 1)
        return fired

    import os

    os.environ["MEDAI_MONITOR_MIN_WINDOW"] = "10"  # the site set here holds 35 studies
    from medai.settings import get_settings

    get_settings.cache_clear()
    try:
        assert stream(png_bytes(500 + i) for i in range(30)) == []  # like the site set
        summary = monitoring.summary(p, "cxr", content_hash)
        assert summary["reference"]["kind"] == "site_validation"
        assert summary["volume"]["reference_n"] == kept["monitor_reference_n"]
        fired = stream(film(900 + i, brighter=0.3) for i in range(30))
        assert fired and fired[0] <= 30
    finally:
        del os.environ["MEDAI_MONITOR_MIN_WINDOW"]
        get_settings.cache_clear()


def _cli(p, *args: str, code: int) -> tuple[dict, str]:
    """``medai models … --json`` on this platform's database and home: (its JSON, stderr)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "MEDAI_HOME": str(p.home), "MEDAI_DATABASE_URL": str(p.db.engine.url)}
    r = subprocess.run(
        [sys.executable, "-m", "medai.cli", "models", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == code, r.stdout + r.stderr
    return json.loads(r.stdout), r.stderr


def test_an_empty_site_set_is_never_frozen_and_an_empty_one_is_blamed_not_the_candidate(
    tmp_path, tfidf_model_dir
):
    """No signed study is held out yet: ``medai models site-set`` (and its API, in
    test_model_registry) refuses to freeze an empty set with ``empty_site_set`` (CLI exit 2)
    saying why. A set frozen empty before that rule makes validation and promotion say the
    set is the problem, never the candidate."""
    from medai.platform.access.audit import Actor
    from medai.platform.lifecycle import model_registry, site_sets, validation
    from medai.platform.records.tables import SiteSet

    active = _model(tmp_path / "active", 0.0)
    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, active) as p:
        fraction = p.settings.models.site_set_fraction
        with p.db.session() as db, pytest.raises(model_registry.LifecycleError) as refused:
            site_sets.build(db, "cxr", "admin", fraction)  # it used to freeze an empty set
        assert (refused.value.status, refused.value.code) == (409, "empty_site_set")
        assert "no signed cxr study with labels is held out" in str(refused.value)
        with p.db.reader() as db:
            assert site_sets.latest(db, "cxr") is None  # nothing frozen
        out, _ = _cli(p, "site-set", "--task", "cxr", code=2)
        assert out["error_type"] == "empty_site_set"
        assert "no signed cxr study with labels is held out" in out["error"]

        twin = _register(p, _model(tmp_path / "twin", 0.0, nudge=1e-4))
        with p.db.session() as db:  # as the code before this rule froze it
            db.add(
                SiteSet(
                    task="cxr",
                    version=1,
                    studies=[],
                    label_counts={},
                    content_hash="sha256:" + "0" * 64,
                    created_by="admin",
                )
            )
        with pytest.raises(model_registry.LifecycleError) as refused:
            validation.validate(p, twin, "admin", n_boot=20)
        assert refused.value.code == "empty_site_set"  # it used to blame the candidate
        said = str(refused.value)
        assert "site set v1 of the cxr task is empty (0 studies)" in said
        assert "the set is the problem, not the candidate" in said
        with p.db.session() as db, pytest.raises(model_registry.PromotionRefused) as refused:
            validation.promote(db, twin, Actor("admin"), "try")
        assert refused.value.code == "empty_site_set" and "is empty" in str(refused.value)
        out, _ = _cli(p, "validate", str(twin), code=2)
        assert out["error_type"] == "empty_site_set"


def test_a_validation_on_too_few_studies_is_inconclusive_and_never_passes(small_site):
    """Eight held-out studies, a candidate that decides exactly like the active model: the
    intervals collapse to "0.0 to 0.0". The validation is inconclusive (not passed), naming the
    sample size and the minimum, in the CLI too, and a promotion without an override is
    refused with ``validation_inconclusive``."""
    from medai.platform.access.audit import Actor
    from medai.platform.lifecycle import model_registry, site_sets, validation

    p, tmp = small_site
    twin = _register(p, _model(tmp / "twin", 0.0, nudge=1e-4))
    with p.db.session() as db:
        assert (
            len(site_sets.build(db, "cxr", "admin", p.settings.models.site_set_fraction).studies)
            == 8
        )
    v = validation.validate(p, twin, "admin", n_boot=100)
    assert not v.passed and v.metrics["outcome"] == "inconclusive", v.metrics["summary"]
    assert validation.MIN_STUDIES == 30  # the documented minimum (the pages' tests use it)
    assert v.metrics["inconclusive"] == {
        "reason": "too_few_studies",
        "studies": 8,
        "minimum": validation.MIN_STUDIES,
    }
    assert "only 8 studies" in v.metrics["summary"]
    assert f"at least {validation.MIN_STUDIES}" in v.metrics["summary"]
    shown = validation.as_dict(v)
    assert shown["outcome"] == "inconclusive" and shown["inconclusive"]["studies"] == 8
    with p.db.session() as db, pytest.raises(model_registry.PromotionRefused) as refused:
        validation.promote(db, twin, Actor("admin"), "looks the same")
    assert refused.value.code == "validation_inconclusive"
    assert "only 8 studies" in str(refused.value) and "at least 30" in str(refused.value)

    out, _ = _cli(p, "validate", str(twin), "--bootstrap", "50", code=0)
    assert out["outcome"] == "inconclusive" and out["passed"] is False
    assert out["inconclusive"]["reason"] == "too_few_studies"
    import os
    import subprocess
    import sys

    human = subprocess.run(
        [sys.executable, "-m", "medai.cli", "models", "validate", str(twin), "--bootstrap", "50"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MEDAI_HOME": str(p.home), "MEDAI_DATABASE_URL": str(p.db.engine.url)},
    )
    assert human.returncode == 0, human.stderr
    assert "INCONCLUSIVE" in human.stdout and "PASSED —" not in human.stdout
    assert "only 8 studies" in human.stdout and "at least 30" in human.stdout
