"""Training runs in MLflow (issue 26): with MLFLOW_TRACKING_URI set, ``train`` logs parameters,
metrics (with the per-epoch history), plots and the sealed model directory to a real MLflow
store (sqlite here); ``medai models register mlflow:RUN_ID`` registers exactly that model.
A run that does not exist, no tracking store, or a tracking server that is down are named,
and the trained model is never lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow", reason="MLflow is the optional `tracking` extra")
pytestmark = pytest.mark.slow


def _cli(env: dict, *args: str, code: int = 0) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "medai.cli", *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == code, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture()
def env(tmp_path) -> dict:
    store = tmp_path / "tracking"
    store.mkdir()
    return {
        **os.environ,
        "MEDAI_HOME": str(tmp_path / "home"),
        "MEDAI_DATABASE_URL": "",
        "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
        "MLFLOW_EXPERIMENT_NAME": "site-cxr",
    }


def test_imaging_train_logs_to_mlflow_and_the_run_registers(tmp_path, env):
    from helpers.imaging import _pattern_dataset

    (tmp_path / "data").mkdir()
    _pattern_dataset(tmp_path / "data", n_per_class=8)
    summary = _cli(
        env,
        "imaging",
        "train",
        "--task",
        "cxr",
        "--data",
        str(tmp_path / "data" / "manifest.csv"),
        "--out",
        str(tmp_path / "model"),
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--image-size",
        "32",
        "--name",
        "cxr-site-1",
    )
    run_id = summary["mlflow"]["run_id"]

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "2" and run.data.params["task"] == "cxr"
    assert "test.macro_auroc" in run.data.metrics
    assert len(client.get_metric_history(run_id, "val_loss")) == 2  # one per epoch
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    assert run.data.tags["medai.content_hash"] == card["content_hash"]
    assert client.get_experiment(run.info.experiment_id).name == "site-cxr"
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"model", "plots"} <= artifacts
    assert any(a.path.endswith(".png") for a in client.list_artifacts(run_id, "plots"))
    # the artifacts live beside the sqlite store, not in the folder the command ran in
    assert (Path(env["MLFLOW_TRACKING_URI"][len("sqlite:///") :]).parent / "mlartifacts").is_dir()

    registered = _cli(env, "models", "register", f"mlflow:{run_id}")
    assert registered["content_hash"] == card["content_hash"]
    assert (registered["state"], registered["task"]) == ("candidate", "cxr")
    assert registered["source"] == f"mlflow:{run_id}"
    again = _cli(env, "models", "register", f"mlflow:{run_id}")
    assert (again["id"], again["new"]) == (registered["id"], False)


def test_a_missing_run_or_store_is_named(env):
    missing = _cli(env, "models", "register", "mlflow:" + "0" * 32, code=2)
    assert missing["error_type"] == "mlflow_unavailable" and "0" * 32 in missing["error"]
    malformed = _cli(env, "models", "register", "mlflow:../../etc", code=2)
    assert malformed["error_type"] == "model_refused"  # not a run id: the input is wrong
    no_store = _cli(
        {**env, "MLFLOW_TRACKING_URI": ""}, "models", "register", "mlflow:" + "a" * 32, code=2
    )
    assert "MLFLOW_TRACKING_URI" in no_store["error"]


def test_a_tracking_server_that_is_down_never_loses_the_model(tmp_path, env, complaints_csv):
    down = {
        **env,
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",  # nothing listens there
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    summary = _cli(
        down, "triage", "train", "--data", str(complaints_csv), "--out", str(tmp_path / "triage")
    )
    assert "error" in summary["mlflow"]
    assert (tmp_path / "triage" / "model_card.json").is_file()
    assert summary["test"]["accuracy"] > 0
