"""The model registry (issue 26): register a sealed directory into content-addressed storage,
refuse one of another task or with labels the task lacks, promote only with validation or an
override, roll back, exactly one active model per task (enforced by the database, SQLite and
PostgreSQL), and every process swapping to the active model without a restart while a job
that holds the old model finishes with it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from helpers.builders import make_imaging_model_dir
from helpers.platform import bare_platform, bearer, clinic, decided, png_bytes
from medai.platform.dicom.arrival import Arrival

pytestmark = [pytest.mark.slow, pytest.mark.server]


@pytest.fixture(scope="module")
def second_cxr(tmp_path_factory) -> Path:
    """A second tiny CXR model (other weights, so another content hash)."""
    return make_imaging_model_dir(tmp_path_factory.mktemp("cxr-b") / "cxr-b", seed=1, version="b")


def _card_hash(directory: Path) -> str:
    return json.loads((directory / "model_card.json").read_text())["content_hash"]


def _actor(name: str = "tester"):
    from medai.platform.access.audit import Actor

    return Actor(name)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_first_start_registers_the_configured_models_and_promotion_swaps_them(
    kind, tmp_path, tfidf_model_dir, tiny_imaging_dir, second_cxr
):
    from medai.platform.lifecycle import model_registry, serving, validation

    with bare_platform(kind, tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        with p.db.session() as db:
            first = model_registry.active(db, "cxr")
            assert first.content_hash == _card_hash(tiny_imaging_dir)
            assert model_registry.active(db, "triage").content_hash == _card_hash(tfidf_model_dir)
            assert model_registry.active(db, "mri").source == "bundled"
            first_id = first.id
        # the served copy is the registry's, not the directory it came from
        assert p.models.get("cxr").identity.content_hash == _card_hash(tiny_imaging_dir)
        assert Path(p.models.served_path("cxr")).is_relative_to(p.home / "registry")
        held = p.models.get("cxr")

        with p.db.session() as db:
            row, new = model_registry.register(db, p.home, second_cxr, _actor("ml"))
            assert new and row.state == "candidate"
            again, new_again = model_registry.register(db, p.home, second_cxr, _actor("ml"))
            assert again.id == row.id and not new_again
            second_id = row.id
        with p.db.session() as db, pytest.raises(model_registry.PromotionRefused):
            validation.promote(db, second_id, _actor("admin"), "looks better")
        with p.db.session() as db:
            replaced = validation.promote(
                db, second_id, _actor("admin"), "looks better", override=True
            )
            assert replaced.id == first_id
        watcher = serving.watch(p, every_s=3600)  # polled by hand below
        assert watcher.poll_once() == {"cxr": str(p.home / row.path)}
        assert p.models.get("cxr").identity.content_hash == _card_hash(second_cxr)
        assert held.identity.content_hash == _card_hash(tiny_imaging_dir)  # not mutated

        with p.db.session() as db:
            restored, replaced = model_registry.rollback(
                db, "cxr", _actor("admin"), "worse at night"
            )
            assert (restored.id, replaced.id) == (first_id, second_id)
        watcher.poll_once()
        assert p.models.get("cxr").identity.content_hash == _card_hash(tiny_imaging_dir)
        with p.db.session() as db:
            states = {r.id: r.state for r in model_registry.listing(db, "cxr")}
            assert states == {first_id: "active", second_id: "retired"}
            moves = [
                (t.model_id, t.from_state, t.to_state, t.override)
                for t in model_registry.history(db, "cxr")
            ]
        assert moves == [
            (first_id, None, "active", False),
            (second_id, None, "candidate", False),
            (first_id, "active", "retired", False),
            (second_id, "candidate", "active", True),
            (second_id, "active", "retired", False),
            (first_id, "retired", "active", False),
        ]
        p.stop_watching()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_database_keeps_one_active_model_per_task(
    kind, tmp_path, tfidf_model_dir, tiny_imaging_dir, second_cxr
):
    from sqlalchemy.exc import IntegrityError

    from medai.platform.lifecycle import model_registry, validation
    from medai.platform.records.tables import RegisteredModel

    with bare_platform(kind, tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        with p.db.session() as db:
            second = model_registry.register(db, p.home, second_cxr, _actor())[0].id
        with pytest.raises(IntegrityError), p.db.session() as db:
            db.get(RegisteredModel, second).state = "active"  # behind the registry's back
        # two admins promoting at once: one wins, the other is told, never two actives
        third = make_imaging_model_dir(tmp_path / "cxr-c", seed=2, version="c")
        with p.db.session() as db:
            third = model_registry.register(db, p.home, third, _actor())[0].id
        outcomes: list[str] = []
        barrier = threading.Barrier(2)

        def promote(model_id: int) -> None:
            barrier.wait()
            try:
                with p.db.session() as db:
                    validation.promote(db, model_id, _actor(), "race", override=True)
                outcomes.append("ok")
            except (IntegrityError, model_registry.LifecycleError) as exc:
                outcomes.append(type(exc).__name__)
            except Exception as exc:  # a serialisation failure or lock timeout is fine too
                outcomes.append(type(exc).__name__)

        threads = [threading.Thread(target=promote, args=(m,)) for m in (second, third)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert "ok" in outcomes
        with p.db.session() as db:
            actives = db.scalars(
                select(RegisteredModel.id).where(
                    RegisteredModel.task == "cxr", RegisteredModel.state == "active"
                )
            ).all()
        assert len(actives) == 1


def test_registration_refuses_what_is_not_a_sealed_model_of_the_task(tmp_path, tiny_imaging_dir):
    from medai.core.model_dir import read_card, save_card
    from medai.platform.lifecycle import model_registry

    with pytest.raises(model_registry.ModelRefused, match="is a 'cxr' model, not 'mri'"):
        model_registry.check_directory(tiny_imaging_dir, "mri")
    with pytest.raises(model_registry.ModelRefused, match="unknown task"):
        model_registry.check_directory(tiny_imaging_dir, "dental")
    odd = make_imaging_model_dir(tmp_path / "odd", labels=("Pneumonia", "Unicorn"))
    with pytest.raises(model_registry.ModelRefused, match="Unicorn"):
        model_registry.check_directory(odd, "cxr")
    with pytest.raises(model_registry.ModelRefused, match=r"no model_card\.json"):
        model_registry.check_directory(tmp_path, "cxr")
    altered = make_imaging_model_dir(tmp_path / "altered", seed=3)
    weights = next(altered.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(model_registry.ModelRefused, match="differ"):
        model_registry.check_directory(altered, "cxr")
    unsealed = make_imaging_model_dir(tmp_path / "unsealed", seed=4)
    card = read_card(unsealed)
    save_card(unsealed, card)
    raw = json.loads((unsealed / "model_card.json").read_text())
    raw["content_hash"] = ""
    (unsealed / "model_card.json").write_text(json.dumps(raw))
    with pytest.raises(model_registry.ModelRefused, match="not sealed"):
        model_registry.check_directory(unsealed, "cxr")
    assert model_registry.check_directory(tiny_imaging_dir).card.task == "cxr"


def test_the_red_flag_engine_is_registered_as_a_record_and_never_served_through_it(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    """Issue 27: the sealed engine is a model of task red_flags. The registry keeps its
    versions (an alert's engine is found by its hash); what would serve it is refused with a
    named reason, since it serves from MEDAI_RED_FLAG_RULES."""
    from medai.core import model_dir as model_dirs
    from medai.platform.lifecycle import model_registry, site_sets, validation
    from medai.triage.red_flags.engine import default_engine
    from medai.triage.red_flags.schema import DATA_DIR

    with (
        bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p,
        p.db.session() as db,
    ):
        row = model_registry.register(db, p.home, DATA_DIR, _actor())[0]
        assert row.task == "red_flags" and row.state == "candidate"
        assert row.content_hash == default_engine().identity["content_hash"]
        assert model_dirs.load(p.home / row.path).identity["sealed"]
        for move in (
            lambda: validation.promote(db, row.id, _actor(), "try", override=True),
            lambda: model_registry.set_state(db, row.id, "shadow", _actor(), "try"),
            lambda: site_sets.build(db, "red_flags", "tester", 0.3),
        ):
            with pytest.raises(model_registry.MoveRefused, match="MEDAI_RED_FLAG_RULES") as refused:
                move()
            assert refused.value.status == 409 and refused.value.code == "not_served"
        assert model_registry.get(db, row.id).state == "candidate"
    from medai.platform.web.i18n import catalogue

    assert all(
        "MEDAI_RED_FLAG_RULES" in m["registry_err_not_served"] for m in catalogue().values()
    )  # the admin page says why, in its language


def test_the_stored_copy_does_not_change_when_the_original_does(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    from medai.core import model_dir as model_dirs
    from medai.platform.lifecycle import model_registry

    source = make_imaging_model_dir(tmp_path / "editable", seed=5, version="editable")
    sealed = _card_hash(source)
    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        with p.db.session() as db:
            row = model_registry.register(db, p.home, source, _actor())[0]
            stored = p.home / row.path
        weights = next(source.glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:-1] + b"\x01")  # edited in place afterwards
        assert model_dirs.load(stored).identity.content_hash == sealed
        with pytest.raises(model_dirs.ModelLoadError):
            model_dirs.load(source)


def test_a_new_model_that_does_not_load_leaves_the_old_one_serving(
    tmp_path, tfidf_model_dir, tiny_imaging_dir, second_cxr
):
    from medai.platform.lifecycle import model_registry, serving, validation

    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        p.models.get("cxr")
        with p.db.session() as db:
            row = model_registry.register(db, p.home, second_cxr, _actor())[0]
            validation.promote(db, row.id, _actor(), "try it", override=True)
        weights = next((p.home / row.path).glob("*.safetensors"))
        weights.write_bytes(b"broken")  # the store damaged on disk
        assert serving.watch(p, every_s=3600).poll_once() == {}
        assert p.models.get("cxr").identity.content_hash == _card_hash(tiny_imaging_dir)
        report = p.models.readiness()["cxr"]
        assert report["ready"] and "differ" in report["swap_error"]
        p.stop_watching()


def test_a_job_finishes_with_its_model_and_the_next_names_the_new_one(
    tmp_path, tfidf_model_dir, tiny_imaging_dir, second_cxr
):
    from medai.platform.lifecycle import model_registry, serving, validation
    from medai.platform.reading.analysis import analyse_study
    from medai.platform.records.tables import AIResultRow, User
    from medai.platform.worklist import filing

    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        made = []
        for seed in (1, 2):
            sha = p.store.put_bytes(png_bytes(seed))
            with p.db.session() as db:
                user = db.scalar(select(User))
                made.append(
                    filing.create(
                        db,
                        Arrival(
                            sha=sha,
                            size=1,
                            content_type="image/png",
                            task="cxr",
                            uploaded_by=user.id,
                        ),
                    )[0].id
                )
        real_get = p.models.get
        promoted = threading.Event()

        def get_then_promote(task: str):
            """The analysis took its model; a promotion lands while it runs."""
            predictor = real_get(task)
            if not promoted.is_set():
                promoted.set()
                with p.db.session() as db:
                    row = model_registry.register(db, p.home, second_cxr, _actor())[0]
                    validation.promote(db, row.id, _actor(), "mid-job", override=True)
                serving.watch(p, every_s=3600).poll_once()
            return predictor

        p.models.get = get_then_promote
        assert analyse_study(p, made[0]) == "ai_drafted"
        p.models.get = real_get
        assert analyse_study(p, made[1]) == "ai_drafted"
        with p.db.session() as db:
            hashes = {(r.study_id, r.kind): r.model_hash for r in db.scalars(select(AIResultRow))}
        old, new = _card_hash(tiny_imaging_dir), _card_hash(second_cxr)
        assert hashes == {
            (made[0], "imaging"): old,
            (made[0], "draft"): old,
            (made[1], "imaging"): new,
            (made[1], "draft"): new,
        }
        p.stop_watching()


def test_a_second_process_follows_the_registry(
    tmp_path, tfidf_model_dir, tiny_imaging_dir, second_cxr
):
    """A Celery worker or another serve process: its own handles on the same database."""
    from medai.platform.boot import open_platform
    from medai.platform.lifecycle import model_registry, serving, validation
    from medai.services.model_handles import ModelHandles

    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        url = str(p.db.engine.url)
        # started with another model configured: the active one serves, the other waits
        worker = open_platform(url, models=ModelHandles({"cxr": str(second_cxr)}), home=p.home)
        assert worker.models.get("cxr").identity.content_hash == _card_hash(tiny_imaging_dir)
        with p.db.session() as db:
            waiting = model_registry.find(db, "cxr", _card_hash(second_cxr))
            assert waiting.state == "candidate"
            validation.promote(db, waiting.id, _actor(), "go", override=True)
        serving.watch(worker, every_s=3600).poll_once()
        assert worker.models.get("cxr").identity.content_hash == _card_hash(second_cxr)
        worker.stop_watching()
        worker.db.dispose()


def test_admin_api_registers_promotes_and_rolls_back_with_audit(
    tmp_path, monkeypatch, tfidf_model_dir, tiny_imaging_dir
):
    home = tmp_path / "home"
    models_dir = tmp_path / "hospital-models"
    monkeypatch.setenv("MEDAI_MODELS_DIR", str(models_dir))
    candidate = make_imaging_model_dir(models_dir / "cxr-site-1", seed=7, version="site-1")
    with clinic("sqlite", home, tfidf_model_dir, tiny_imaging_dir) as (app, client):
        admin, rad = bearer(client, "admin"), bearer(client, "rad1")
        listed = client.get("/api/v1/models/registry", headers=admin).json()["items"]
        assert {m["task"]: m["state"] for m in listed} == {
            "triage": "active",
            "cxr": "active",
            "mri": "active",
        }
        assert client.get("/api/v1/models/registry", headers=rad).status_code == 403
        r = client.post("/api/v1/models/registry", headers=rad, json={"path": "cxr-site-1"})
        assert r.status_code == 403
        r = client.post("/api/v1/models/registry", headers=admin, json={"path": "/etc"})
        assert r.status_code == 422 and r.json()["code"] == "path_not_allowed"
        r = client.post(
            "/api/v1/models/registry", headers=admin, json={"path": "cxr-site-1", "task": "mri"}
        )
        assert r.status_code == 422 and r.json()["code"] == "model_refused"
        r = client.post("/api/v1/models/registry", headers=admin, json={"path": "cxr-site-1"})
        assert r.status_code == 201, r.text
        new = r.json()
        assert new["state"] == "candidate" and new["content_hash"] == _card_hash(candidate)
        assert new.get("display_version") == f"site-1 · {new['content_hash'][7:19]}"
        r = client.post("/api/v1/models/registry", headers=admin, json={"path": "cxr-site-1"})
        assert r.status_code == 201 and not r.json()["new"] and r.json()["id"] == new["id"]
        assert "model_card.json" in r.json()["note"] and f"#{new['id']}" in r.json()["note"]
        edited = _copy_with_card(
            candidate, models_dir / "cxr-site-1-renamed", name="cxr-site", version="2026-12"
        )
        r = client.post("/api/v1/models/registry", headers=admin, json={"path": edited.name})
        assert r.status_code == 409 and r.json()["code"] == "already_registered", r.text
        for part in (
            f"model #{new['id']} tiny-efficientnet-lite0 version site-1 (candidate",
            "content hash of its files",
            "model_card.json",
            f"Use model {new['id']}",
        ):
            assert part in r.json()["detail"], part
        other = make_imaging_model_dir(models_dir / "cxr-site-1b", seed=8, version="site-1")
        r = client.post("/api/v1/models/registry", headers=admin, json={"path": other.name})
        assert r.status_code == 409 and r.json()["code"] == "version_taken", r.text
        assert "version 'site-1'" in r.json()["detail"] and f"#{new['id']}" in r.json()["detail"]
        r = client.post("/api/v1/models/site-sets", headers=admin, json={"task": "cxr"})
        assert r.status_code == 409 and r.json()["code"] == "empty_site_set", r.text
        assert "no signed cxr study with labels" in r.json()["detail"]
        url = f"/api/v1/models/registry/{new['id']}"
        r = client.post(f"{url}/promote", headers=admin, json={"reason": "  "})
        assert r.status_code == 422
        r = client.post(f"{url}/promote", headers=admin, json={"reason": "better AUROC"})
        assert r.status_code == 409 and r.json()["code"] == "no_site_set"
        r = client.post(f"{url}/shadow", headers=admin, json={"reason": "watch it first"})
        assert r.status_code == 200 and r.json()["state"] == "shadow"
        r = client.post(
            f"{url}/promote",
            headers=admin,
            json={"reason": "radiology lead approved", "override": True},
        )
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "active" and r.json()["served_here"]
        assert app.state.models.get("cxr").identity.content_hash == new["content_hash"]
        listed = {
            m["id"]: m for m in client.get("/api/v1/models/registry", headers=admin).json()["items"]
        }
        first_id = next(
            m["id"]
            for m in listed.values()
            if m["task"] == "cxr" and m["content_hash"] == _card_hash(tiny_imaging_dir)
        )
        target = listed[new["id"]]["rollback_to"]  # named before anyone confirms
        assert target["id"] == first_id and target["content_hash"] == _card_hash(tiny_imaging_dir)
        assert target["display_version"] == f"test · {_card_hash(tiny_imaging_dir)[7:19]}"
        r = client.post(
            "/api/v1/models/rollback",
            headers=admin,
            json={"task": "cxr", "reason": "stale page", "to": new["id"]},
        )
        assert r.status_code == 409 and r.json()["code"] == "rollback_target_changed"
        r = client.post(f"{url}/retire", headers=admin, json={"reason": "no"})
        assert r.status_code == 409 and r.json()["code"] == "state_conflict"
        r = client.post(
            "/api/v1/models/rollback",
            headers=admin,
            json={"task": "cxr", "reason": "false positives at night", "to": first_id},
        )
        assert r.status_code == 200 and r.json()["replaced"] == new["id"]
        assert app.state.models.get("cxr").identity.content_hash == _card_hash(tiny_imaging_dir)
        # no second rollback: the model rolled back from never comes back this way
        listed = {
            m["id"]: m for m in client.get("/api/v1/models/registry", headers=admin).json()["items"]
        }
        assert listed[first_id]["state"] == "active" and listed[first_id]["rollback_to"] is None
        r = client.post(
            "/api/v1/models/rollback", headers=admin, json={"task": "cxr", "reason": "again"}
        )
        assert r.status_code == 409 and r.json()["code"] == "no_rollback_target", r.text
        assert f"#{new['id']}" in r.json()["detail"]
        assert app.state.models.get("cxr").identity.content_hash == _card_hash(tiny_imaging_dir)
        detail = client.get(url, headers=admin).json()
        assert [h["to"] for h in detail["history"]] == ["candidate", "shadow", "active", "retired"]
        assert detail["card"]["task"] == "cxr" and "training_command" not in detail["card"]
        events = client.get(
            "/api/v1/audit", headers=admin, params={"action": "model", "target_id": str(new["id"])}
        ).json()
        reasons = [e["detail"]["reason"] for e in events["items"]]
        assert "radiology lead approved" in reasons and any(
            "false positives at night" in r for r in reasons
        )
        assert client.get("/api/v1/models/registry/999", headers=admin).status_code == 404


def test_cli_register_promote_and_rollback(tmp_path, monkeypatch, tiny_imaging_dir, second_cxr):
    import subprocess
    import sys

    env = {**__import__("os").environ, "MEDAI_HOME": str(tmp_path / "home")}

    def cli(*args: str, code: int = 0) -> dict:
        r = subprocess.run(
            [sys.executable, "-m", "medai.cli", "models", *args, "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert r.returncode == code, r.stdout + r.stderr
        return json.loads(r.stdout)

    first = cli("register", str(tiny_imaging_dir))
    assert {"id", "task", "content_hash", "state"} <= first.keys()
    assert (first["task"], first["state"]) == ("cxr", "candidate")
    refused = cli("register", str(second_cxr), "--task", "mri", code=2)
    assert refused["error_type"] == "model_refused"
    second = cli("register", str(second_cxr))
    assert cli("promote", str(first["id"]), "--reason", "x", code=1)["error_type"] == "no_site_set"
    assert (
        cli("promote", str(first["id"]), "--reason", "first model", "--override")["state"]
        == "active"
    )
    assert (
        cli("promote", str(second["id"]), "--reason", "newer", "--override")["replaced"]
        == first["id"]
    )
    back = cli("rollback", "--task", "cxr", "--reason", "regression")
    assert (back["id"], back["replaced"]) == (first["id"], second["id"])
    again = cli("rollback", "--task", "cxr", "--reason", "again", code=1)
    assert again["error_type"] == "no_rollback_target" and f"#{second['id']}" in again["error"]
    same = cli("register", str(tiny_imaging_dir))
    assert (same["id"], same["new"]) == (first["id"], False)
    assert "content hash of its files" in same["note"]
    edited = _copy_with_card(
        tiny_imaging_dir, tmp_path / "renamed", name="cxr-renamed", version="2"
    )
    refused = cli("register", str(edited), code=1)
    assert refused["error_type"] == "already_registered"
    assert (
        f"model #{first['id']} tiny-efficientnet-lite0 version test (active" in refused["error"]
        and "model_card.json" in refused["error"]
    )
    taken = make_imaging_model_dir(tmp_path / "taken", seed=6, version="b")
    refused = cli("register", str(taken), code=1)
    assert refused["error_type"] == "version_taken" and "version 'b'" in refused["error"]
    states = {m["id"]: m["state"] for m in cli("list", "--task", "cxr")["models"]}
    assert states == {first["id"]: "active", second["id"]: "retired"}
    shown = cli("show", str(second["id"]))
    assert [h["to"] for h in shown["history"]] == ["candidate", "active", "retired"]


def _copy_with_card(source: Path, target: Path, **card_fields) -> Path:
    """A copy of a model directory whose card alone was edited (its files, and so its
    content hash, are the source's)."""
    import shutil

    shutil.copytree(source, target)
    card = json.loads((target / "model_card.json").read_text())
    card.update(card_fields)
    (target / "model_card.json").write_text(json.dumps(card))
    return target


def test_a_copy_whose_card_was_edited_is_refused_naming_the_model_it_is(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    """A model is identified by the content hash of its files, not its card: an identical
    copy gives the registered entry (and says so); a copy renamed in its card is refused,
    saying what the hash covers, which model holds it (id, name, version, state) and what
    to do instead."""
    from medai.platform.lifecycle import model_registry

    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        with p.db.reader() as db:
            first = model_registry.active(db, "cxr").id
        edited = _copy_with_card(
            tiny_imaging_dir,
            tmp_path / "edited",
            name="cxr-2026",
            version="2026-12",
            description="retuned thresholds",
        )
        with p.db.session() as db, pytest.raises(model_registry.LifecycleError) as refused:
            model_registry.register(db, p.home, edited, _actor())  # it used to say "already there"
        said = str(refused.value)
        assert (refused.value.status, refused.value.code) == (409, "already_registered")
        for part in (
            f"model #{first} tiny-efficientnet-lite0 version test (active, "
            f"sha256:{_card_hash(tiny_imaging_dir)[7:19]}…)",
            "identified by the sha256 content hash of its files",
            "except model_card.json, evaluation/ and checkpoints/",
            "a copy with only its card edited is the same model",
            f"Use model {first}, or change the files",
            "reseal",
        ):
            assert part in said, part
        assert len(said) <= 400  # the API's error detail (at most 400 characters) keeps it all
        with p.db.reader() as db:
            assert [r.id for r in model_registry.listing(db, "cxr")] == [first]
        with p.db.session() as db:  # the same files and card: the registered entry, said so
            same, new = model_registry.register(
                db, p.home, _copy_with_card(tiny_imaging_dir, tmp_path / "same"), _actor()
            )
            assert (same.id, new) == (first, False)
            note = model_registry.already_note(same)
        assert f"#{first} tiny-efficientnet-lite0 version test (active" in note
        assert "every file in its directory except model_card.json" in note
        # a server's first start configured with the edited copy serves the registered model
        with p.db.session() as db:
            row, new = model_registry.register(db, p.home, edited, _actor(), edited_card="existing")
            assert (row.id, new) == (first, False)


def test_other_files_under_a_name_and_version_already_registered_are_refused(
    tmp_path, tfidf_model_dir, tiny_imaging_dir
):
    """A name and version name one set of files: a second model that reuses them is refused
    with ``version_taken`` (the admin gives it its own version in its card), and wherever a
    version is shown it carries a short content hash, so rows registered before this rule
    read apart too."""
    from medai.platform.lifecycle import model_registry
    from medai.platform.records.tables import RegisteredModel

    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        other = make_imaging_model_dir(tmp_path / "other", seed=9)  # version "test" too
        with p.db.session() as db, pytest.raises(model_registry.LifecycleError) as refused:
            model_registry.register(db, p.home, other, _actor())  # it used to register it
        said = str(refused.value)
        assert (refused.value.status, refused.value.code) == (409, "version_taken")
        assert "cxr model 'tiny-efficientnet-lite0' version 'test' is already registered" in said
        assert f"sha256:{_card_hash(other)[7:19]}" in said and "model_card.json" in said
        assert len(said) <= 400
        with p.db.session() as db:
            first = model_registry.active(db, "cxr")
            # a duplicate left by the code before the rule, written behind the registry's back
            legacy = RegisteredModel(
                task="cxr",
                name=first.name,
                version=first.version,
                model_type=first.model_type,
                content_hash=_card_hash(other),
                path="registry/x",
                state="retired",
                source="old",
                card=first.card,
                registered_by="old",
                registered_at=first.registered_at,
                state_at=first.state_at,
            )
            db.add(legacy)
            db.flush()
            shown = {model_registry.as_dict(r)["display_version"] for r in (first, legacy)}
        assert shown == {
            f"test · {_card_hash(tiny_imaging_dir)[7:19]}",
            f"test · {_card_hash(other)[7:19]}",
        }


def test_rollback_goes_back_and_never_to_a_model_rolled_back_from(
    tmp_path, tfidf_model_dir, tiny_imaging_dir, second_cxr
):
    """A active → B promoted → rollback to A → a second rollback is refused (it used to
    re-activate B). A → B → C: rollbacks walk back C → B → A, then are refused."""
    from medai.platform.lifecycle import model_registry, validation

    with bare_platform("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir) as p:
        with p.db.session() as db:
            a = model_registry.active(db, "cxr").id
            b = model_registry.register(db, p.home, second_cxr, _actor())[0].id
            validation.promote(db, b, _actor(), "newer", override=True)
            restored, replaced = model_registry.rollback(db, "cxr", _actor(), "regression")
            assert (restored.id, replaced.id) == (a, b)
        with p.db.session() as db, pytest.raises(model_registry.MoveRefused) as refused:
            model_registry.rollback(db, "cxr", _actor(), "again")  # it used to re-activate B
        assert (refused.value.status, refused.value.code) == (409, "no_rollback_target")
        assert f"rolled back from, so never re-activated by a rollback: #{b}" in str(refused.value)
        with p.db.reader() as db:
            assert model_registry.active(db, "cxr").id == a  # nothing moved
            assert model_registry.rollback_preview(db, "cxr") is None  # what the page offers

        with p.db.session() as db:
            c_dir = make_imaging_model_dir(tmp_path / "cxr-c", seed=2, version="c")
            c = model_registry.register(db, p.home, c_dir, _actor())[0].id
            validation.promote(db, b, _actor(), "B again, on purpose", override=True)
            validation.promote(db, c, _actor(), "newest", override=True)
        walked = []
        for _ in range(2):
            with p.db.session() as db:
                walked.append(model_registry.rollback(db, "cxr", _actor(), "back")[0].id)
        assert walked == [b, a]  # it used to go from B forward to C again
        with p.db.session() as db, pytest.raises(model_registry.MoveRefused) as refused:
            model_registry.rollback(db, "cxr", _actor(), "once more")
        assert refused.value.code == "no_rollback_target"
        with p.db.session() as db:
            validation.promote(db, c, _actor(), "newest again", override=True)
            assert model_registry.rollback_preview(db, "cxr")["id"] == a
        with p.db.session() as db, pytest.raises(model_registry.RollbackTargetChanged):
            model_registry.rollback(db, "cxr", _actor(), "a page loaded earlier", expected=b)


def test_a_shadow_model_analyses_live_studies_and_is_never_shown(
    tmp_path, tfidf_model_dir, tiny_imaging_dir, second_cxr
):
    from medai.platform.lifecycle import model_registry

    with clinic("sqlite", tmp_path / "home", tfidf_model_dir, tiny_imaging_dir, job_threads=1) as (
        app,
        client,
    ):
        admin, rad = bearer(client, "admin"), bearer(client, "rad1")
        p = app.state.platform
        with p.db.session() as db:
            model = model_registry.register(db, p.home, second_cxr, _actor())[0]
            model_registry.set_state(db, model.id, "shadow", _actor(), "watch it on live studies")
            shadow_id = model.id
        from helpers.platform import wait_status

        sid = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "cxr"},
            files={"file": ("x.png", png_bytes(4), "image/png")},
        ).json()["id"]
        study = wait_status(client, rad, sid, {"ai_drafted", "refused"})
        shown = json.dumps(study)
        assert _card_hash(second_cxr) not in shown  # the clinician sees the active model only
        assert study["ai_result"]["model"]["content_hash"] == _card_hash(tiny_imaging_dir)
        report = None
        for _ in range(300):  # the shadow runs just after the study is done
            report = client.get(f"/api/v1/models/registry/{shadow_id}/shadow", headers=admin).json()
            if report["studies"]:
                break
            __import__("time").sleep(0.1)
        assert report["studies"] == 1 and report["agreement"] in (0.0, 1.0)
        # signed: the shadow model is compared with the radiologist too
        version = client.get(f"/api/v1/studies/{sid}/report", headers=rad).json()["version"]
        assert (
            client.post(
                f"/api/v1/studies/{sid}/report/sign",
                headers=rad,
                json={
                    "version": version,
                    "labels": decided(client, rad, sid, {"Pneumonia": True, "No Finding": False}),
                },
            ).status_code
            == 200
        )
        report = client.get(f"/api/v1/models/registry/{shadow_id}/shadow", headers=admin).json()
        assert report["signed_studies"] == 1
        pneumonia = report["signatures"]["Pneumonia"]
        assert set(pneumonia) == {"shadow", "active"}
        assert pneumonia["shadow"]["sensitivity"][0] in (0.0, 1.0)
        # retired: no more shadow analyses
        with p.db.session() as db:
            model_registry.set_state(db, shadow_id, "retired", _actor(), "enough")
        sid2 = client.post(
            "/api/v1/studies",
            headers=rad,
            data={"task": "cxr"},
            files={"file": ("y.png", png_bytes(5), "image/png")},
        ).json()["id"]
        wait_status(client, rad, sid2, {"ai_drafted", "refused"})
        assert (
            client.get(f"/api/v1/models/registry/{shadow_id}/shadow", headers=admin).json()[
                "studies"
            ]
            == 1
        )


def test_processes_storing_one_model_at_once_leave_one_good_copy(tmp_path, second_cxr):
    """serve's workers start together on a fresh home: each copies the bundled models; a
    copy another process already renamed into place is kept, never removed under it."""
    from concurrent.futures import ThreadPoolExecutor

    from medai.core import model_dir as model_dirs
    from medai.platform.lifecycle import model_store

    content_hash = _card_hash(second_cxr)
    with ThreadPoolExecutor(6) as pool:
        paths = list(
            pool.map(
                lambda _: model_store.store(tmp_path, second_cxr, content_hash, "cxr-b"), range(6)
            )
        )
    assert len(set(paths)) == 1
    assert model_dirs.load(tmp_path / paths[0]).identity.content_hash == content_hash
    assert not [p for p in (tmp_path / paths[0]).parent.iterdir() if p.name.startswith(".")]
