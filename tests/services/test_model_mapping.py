"""Issue 49: one mapping, ``MEDAI_MODELS`` / ``medai serve --model TASK=DIR``, names the model
folder of each task, and one function (``core.model_dir.resolve_model``) decides which folder
serves it: a command's own ``--model``, else the mapping, else the bundled default."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medai.core import model_dir
from medai.settings import Settings, get_settings, parse_models


@pytest.fixture
def fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_models_are_read_as_task_dir_pairs(monkeypatch):
    monkeypatch.setenv("MEDAI_MODELS", " triage=/models/my-triage , cxr=/models/my-cxr,")
    assert Settings().models.models == {
        "triage": Path("/models/my-triage"),
        "cxr": Path("/models/my-cxr"),
    }
    monkeypatch.setenv("MEDAI_MODELS", "")
    assert Settings().models.models == {}
    monkeypatch.delenv("MEDAI_MODELS")
    assert Settings().models.models == {}


def test_models_are_read_as_a_json_object(monkeypatch):
    """A folder whose name holds a comma (or an equals sign) fits in the JSON form."""
    monkeypatch.setenv("MEDAI_MODELS", json.dumps({"triage": "/models/a,b", "mri": "/m/x=y"}))
    assert Settings().models.models == {"triage": Path("/models/a,b"), "mri": Path("/m/x=y")}
    assert parse_models("cxr=/m/x=y") == {"cxr": Path("/m/x=y")}  # split at the first '='


@pytest.mark.parametrize(
    "value, said",
    [
        ("triage", "'triage' is not TASK=DIR"),
        ("triage=", "'triage=' is not TASK=DIR"),
        ("=/models/x", "is not TASK=DIR"),
        ("triage=/a,triage=/b", "task 'triage' is given twice"),
        ("{not json", "not a valid JSON object"),
        ('["triage", "/a"]', "give TASK=DIR pairs"),
        ('{"triage": 3}', "the folder of task 'triage' is not a path"),
    ],
)
def test_a_malformed_mapping_is_refused_naming_the_variable(monkeypatch, value, said):
    monkeypatch.setenv("MEDAI_MODELS", value)
    with pytest.raises(ValueError) as err:
        Settings()
    assert "MEDAI_MODELS" in str(err.value) and said in str(err.value)


def test_an_unknown_task_is_refused_with_the_known_ones(monkeypatch, fresh_settings):
    from medai.core import task_registry
    from medai.services.model_handles import ModelHandles, configured_models

    monkeypatch.setenv("MEDAI_MODELS", "triage=/models/t,kne=/models/k")
    get_settings.cache_clear()
    for build in (configured_models, ModelHandles):
        with pytest.raises(ValueError) as err:
            build()
        message = str(err.value)
        assert message.startswith("MEDAI_MODELS: unknown task 'kne'")
        assert f"known tasks: {', '.join(task_registry.names())}" in message
    monkeypatch.delenv("MEDAI_MODELS")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="models: unknown task 'kne'"):
        ModelHandles({"kne": "/models/k"})


def test_resolve_model_order(tmp_path):
    """A command's --model, else the task's folder in the mapping, else the bundled default;
    another task's folder is not this task's."""
    mine, mapped = tmp_path / "mine", tmp_path / "mapped"
    mine.mkdir()
    mapped.mkdir()
    bundled = model_dir.bundled_models_dir() / "triage-default"
    assert model_dir.resolve_model(mine, "triage", {"triage": mapped}) == mine
    assert model_dir.resolve_model(None, "triage", {"triage": mapped}) == mapped
    assert model_dir.resolve_model(None, "triage", {"cxr": mapped}) == bundled
    assert model_dir.resolve_model(None, "triage") == bundled
    with pytest.raises(model_dir.ModelLoadError, match="'/nowhere/x': no such directory"):
        model_dir.resolve_model(None, "triage", {"triage": "/nowhere/x"})
    with pytest.raises(model_dir.ModelLoadError) as err:
        model_dir.resolve_model(None, "caption", {})  # no default captioner is bundled
    assert "MEDAI_MODELS (caption=DIR)" in str(err.value)


def test_model_handles_serve_given_over_configured_over_bundled(
    monkeypatch, tmp_path, fresh_settings
):
    """What the app is built with goes over MEDAI_MODELS, which goes over the bundled default;
    the registry's pin replaces the task's folder, read by the same function."""
    from medai.services.model_handles import ModelHandles

    for name in ("t", "c", "given", "pinned"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("MEDAI_MODELS", f"triage={tmp_path / 't'},cxr={tmp_path / 'c'}")
    get_settings.cache_clear()
    handles = ModelHandles({"cxr": str(tmp_path / "given"), "mri": None})
    assert handles.configured_path("triage") == tmp_path / "t"
    assert handles.configured_path("cxr") == tmp_path / "given"
    assert handles.configured_path("mri") == model_dir.bundled_models_dir() / "mri-default"
    handles.pin("triage", tmp_path / "pinned")
    assert handles.configured_path("triage") == tmp_path / "pinned"
    assert handles.served_path("triage") == str(tmp_path / "pinned")


def _serve(*args: str, env: dict[str, str] | None = None):
    from medai.cli import app

    get_settings.cache_clear()  # the settings of this call's environment
    return CliRunner().invoke(app, ["serve", *args], env=env)


@pytest.mark.parametrize(
    "value, said",
    [
        ("triage", "--model 'triage': give TASK=DIR"),
        ("=/models/x", "give TASK=DIR"),
        ("kne=/models/k", "unknown task 'kne'; medai serve serves triage, cxr, mri"),
        ("caption=/models/c", "unknown task 'caption'"),  # serve serves no captioner
    ],
)
def test_serve_refuses_a_wrong_model_option(value, said, fresh_settings):
    result = _serve("--model", value)
    assert result.exit_code == 2, result.output
    assert said in result.output
    assert "triage, cxr, mri" in result.output  # the tasks it serves, to choose from


def test_serve_refuses_a_task_given_twice_or_unknown_in_the_setting(fresh_settings):
    result = _serve("--model", "triage=/a", "--model", "triage=/b")
    assert result.exit_code == 2 and "task 'triage' is given twice" in result.output
    result = _serve(env={"MEDAI_MODELS": "kne=/models/k"})
    assert result.exit_code == 2 and "MEDAI_MODELS: unknown task 'kne'" in result.output


def test_serve_hands_its_workers_settings_not_a_side_channel(monkeypatch, fresh_settings):
    """--model goes over MEDAI_MODELS into the workers' MEDAI_MODELS; --dicom-port becomes
    MEDAI_DICOM_IN_SERVE, MEDAI_DICOM_PORT and MEDAI_DICOM_HOST (serve's bind address), which
    the worker's app factory reads as settings."""
    import uvicorn

    from medai.cli import serve as serve_module
    from medai.platform import app as app_module

    class Database:
        def has_admin(self) -> bool:
            return True

        def dispose(self) -> None:
            pass

    saved = dict(os.environ)  # serve writes its workers' settings into the environment
    for var in ("MEDAI_DICOM_IN_SERVE", "MEDAI_DICOM_PORT", "MEDAI_DICOM_HOST", "MEDAI_WORKERS"):
        os.environ.pop(var, None)
    os.environ["MEDAI_MODELS"] = "triage=/models/t,cxr=/models/c"
    monkeypatch.setattr(serve_module, "open_database", lambda: Database())
    seen: dict = {}

    def run(target: str, **options) -> None:
        seen["env"] = {k: os.environ.get(k) for k in ("MEDAI_MODELS", "MEDAI_DICOM_IN_SERVE")}
        seen["dicom"] = (os.environ.get("MEDAI_DICOM_HOST"), os.environ.get("MEDAI_DICOM_PORT"))
        seen["target"], seen["host"] = target, options["host"]
        seen["environ"] = dict(os.environ)
        made: dict = {}
        monkeypatch.setattr(app_module, "create_platform_app", lambda **kw: made.update(kw))
        app_module.platform_app_from_env()
        seen["factory"] = made

    monkeypatch.setattr(uvicorn, "run", run)
    try:
        result = _serve(
            "--host", "127.0.0.2", "--workers", "1", "--model", "cxr=/models/mine",
            "--dicom-port", "11199",
        )  # fmt: skip
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert result.exit_code == 0, result.output
    assert json.loads(seen["env"]["MEDAI_MODELS"]) == {
        "triage": "/models/t",
        "cxr": "/models/mine",
    }
    assert seen["env"]["MEDAI_DICOM_IN_SERVE"] == "true"
    assert seen["dicom"] == ("127.0.0.2", "11199") and seen["host"] == "127.0.0.2"
    assert seen["target"] == "medai.platform.app:platform_app_from_env"
    assert seen["factory"] == {"dicom_port": 11199}  # models: MEDAI_MODELS, read by the handles
    assert not [k for k in seen["environ"] if k.startswith("MEDAI_SERVE_")]


def test_serve_help_shows_the_model_option():
    from medai.cli import app

    text = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200).output
    assert "--model" in text and "TASK=DIR" in text and "MEDAI_MODELS" in text
    assert "--triage-model" not in text and "--cxr-model" not in text
