"""Site validation (issue 26): a site set is frozen from the held-out share of signed studies;
a candidate is evaluated beside the active model on it; promotion without an override needs a
passing verdict — refused for a candidate that misses what the active model finds, allowed
for one that is as good — and a later amendment does not change a frozen set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import make_imaging_model_dir
from platform_helpers import bare_platform, png_bytes

pytestmark = pytest.mark.slow
LABELS = ("Pneumothorax", "Effusion", "No Finding")


def _model(directory: Path, threshold: float, nudge: float = 0.0) -> Path:
    """A tiny CXR model deciding every label positive (threshold 0) or none (1); ``nudge``
    moves one bias a hair, so the files (and the hash) differ while the scores barely do."""
    from safetensors.torch import load_file, save_file

    from medai.core.registry import reseal

    make_imaging_model_dir(directory, labels=LABELS, seed=0)
    if nudge:
        weights = next(directory.glob("*.safetensors"))
        state = load_file(weights)
        key = sorted(k for k in state if k.endswith("bias"))[-1]
        state[key] = state[key] + nudge
        save_file(state, weights)
    card_path = directory / "model_card.json"
    card = json.loads(card_path.read_text())
    # 0: both findings called on every film (the normal class never); 1: nothing called
    card["thresholds"] = {"Pneumothorax": threshold, "Effusion": threshold, "No Finding": 1.0}
    card_path.write_text(json.dumps(card))
    reseal(directory)
    return directory


@pytest.fixture()
def site(tmp_path, monkeypatch, tfidf_model_dir):
    """A platform whose active CXR model calls every finding, 40 studies signed (half with a
    pneumothorax), half of them held out for validation."""
    from medai.platform import studies
    from medai.platform.tables import StudyLabel, User
    from medai.settings import get_settings

    monkeypatch.setenv("MEDAI_SITE_SET_FRACTION", "0.5")
    get_settings.cache_clear()
    active = _model(tmp_path / "active", 0.0)
    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, active) as p:
        with p.db.session() as db:
            user = db.scalar(select(User))
            for i in range(40):
                sha = p.store.put_bytes(png_bytes(100 + i))
                study, _ = studies.create(db, user, sha=sha, size=1,
                                          content_type="image/png", task="cxr")
                db.flush()
                for label, present in (("Pneumothorax", i % 2 == 0), ("Effusion", i % 3 == 0),
                                       ("No Finding", i % 2 == 1 and i % 3 != 0)):
                    db.add(StudyLabel(study_id=study.id, report_version=2, label=label,
                                      present=present, ai_positive=True, source="text",
                                      decided_by=user.id))
        yield p, tmp_path


def _register(p, directory: Path) -> int:
    from medai.platform.audit import Actor
    from medai.platform.lifecycle import registry

    with p.db.session() as db:
        return registry.register(db, p.home, directory, Actor("ml"))[0].id


def test_a_candidate_that_misses_findings_is_refused_and_one_as_good_is_promoted(site):
    from medai.platform.audit import Actor
    from medai.platform.lifecycle import registry, site_sets, validation

    p, tmp = site
    blind = _register(p, _model(tmp / "blind", 1.0, nudge=1e-3))  # decides nothing
    with p.db.session() as db, pytest.raises(registry.PromotionRefused) as refused:
        registry.promote(db, blind, Actor("admin"), "try")
    assert refused.value.code == "no_site_set"
    with p.db.session() as db:
        frozen = site_sets.build(db, "cxr", "admin")
        assert 10 <= len(frozen.studies) <= 30 and frozen.version == 1
    with p.db.session() as db, pytest.raises(registry.PromotionRefused) as refused:
        registry.promote(db, blind, Actor("admin"), "try")
    assert refused.value.code == "not_validated"

    v = validation.validate(p, blind, "admin", n_boot=100)
    assert not v.passed, v.metrics
    assert v.metrics["macro_sensitivity_difference"]["high"] < -0.05  # clearly worse
    label = v.metrics["labels"]["Pneumothorax"]
    assert label["candidate"]["sensitivity"][0] == 0.0 and label["active"]["sensitivity"][0] == 1.0
    assert label["positives"] > 0 and label["candidate"]["auroc"] is not None
    with p.db.session() as db, pytest.raises(registry.PromotionRefused) as refused:
        registry.promote(db, blind, Actor("admin"), "try")
    assert refused.value.code == "not_non_inferior"

    twin = _register(p, _model(tmp / "twin", 0.0, nudge=1e-4))  # the same model, re-saved
    v = validation.validate(p, twin, "admin", n_boot=100)
    assert v.passed, v.metrics["summary"]
    with p.db.session() as db:
        registry.promote(db, twin, Actor("admin"), "validated on the site set")
        assert registry.active(db, "cxr").id == twin


def test_a_frozen_site_set_keeps_the_labels_it_was_built_with(site):
    from medai.platform.lifecycle import site_sets
    from medai.platform.tables import StudyLabel, User

    p, _ = site
    with p.db.session() as db:
        frozen = site_sets.build(db, "cxr", "admin")
        first = frozen.studies[0]
        user = db.scalar(select(User))
        for label, present in first["labels"].items():  # an amendment flips every label
            db.add(StudyLabel(study_id=first["study_id"], report_version=4, label=label,
                              present=not present, ai_positive=True, source="text",
                              decided_by=user.id))
    with p.db.session() as db:
        again = site_sets.latest(db, "cxr")
        assert again.studies[0] == first  # v1 as frozen
        newer = site_sets.build(db, "cxr", "admin")
        assert newer.version == 2 and newer.studies[0]["labels"] != first["labels"]
        assert newer.content_hash != again.content_hash


def test_a_validated_model_is_monitored_against_its_site_set_outputs(site):
    """Once validated, a model's monitoring reference is what it gave on the site set: a
    shifted stream alerts within the least window (30 studies) from its first analysis, with
    no 100 first analyses to wait for; a stream like the site set stays quiet."""
    from medai.platform.lifecycle import monitoring, site_sets, validation
    from medai.services import imaging as imaging_service
    from test_monitoring import _alerts, film

    p, tmp = site
    twin = _register(p, _model(tmp / "twin", 0.0, nudge=1e-4))
    with p.db.session() as db:
        site_sets.build(db, "cxr", "admin")
    v = validation.validate(p, twin, "admin", n_boot=50)
    kept = validation.as_dict(v)
    assert kept["monitor_reference_n"] >= 10 and "monitor_reference" not in kept["metrics"]
    predictor = __import__("medai.core.registry", fromlist=["load"]).load(tmp / "twin")
    content_hash = predictor.identity.content_hash

    def stream(images) -> list[int]:
        fired = []
        for i, data in enumerate(images):
            image = imaging_service.read_image(data)
            result = predictor.predict(image)
            before = len(_alerts(p))
            monitoring.record(p, None, "cxr", content_hash, result.model_dump(mode="json"),
                              image, 5.0, {"modality": "chest X-ray", "source": "upload"},
                              result.embedding)
            if len(_alerts(p)) > before:
                fired.append(i + 1)
        return fired

    import os

    os.environ["MEDAI_MONITOR_MIN_WINDOW"] = "10"  # the site set here holds ~20 studies
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
