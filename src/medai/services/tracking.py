"""Training runs tracked where ML teams already look: with ``MLFLOW_TRACKING_URI`` set, a
``train`` logs its parameters, its test metrics (and per-epoch history), its plots and the
sealed model directory to MLflow; ``medai models register mlflow:RUN_ID`` brings that directory
back. Optional (``pip install 'medai[tracking]'``): nothing is imported when the variable is
unset. A tracking server that fails never loses the trained model — it is on disk already; the
failure is reported beside the summary."""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Any

from medai.core import model_dir as model_dirs
from medai.core.errors import MedaiError

log = logging.getLogger("medai.services.tracking")
URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
MODEL_PATH = "model"  # the sealed directory's path inside a run's artifacts
PREFIX = "mlflow:"
_MAX_PARAM = 500  # MLflow's limit on a parameter value
_RUN_ID = re.compile(r"^[0-9a-fA-F]{32}$")


class TrackingError(MedaiError, RuntimeError):
    """MLflow asked for but unusable: not installed, unreachable, or no such run."""

    code = "mlflow_unavailable"


class TrackingSourceError(TrackingError):
    """``mlflow:…`` that is not ``mlflow:RUN_ID``."""

    code = "model_refused"


def enabled() -> bool:
    return bool(os.environ.get(URI_ENV, "").strip())


def _mlflow():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no calls to the internet
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # file:// stores, MLflow 3
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # quiet CLI
    try:
        import mlflow
    except ImportError:
        raise TrackingError(
            f"{URI_ENV} is set but MLflow is not installed: pip install 'medai[tracking]'"
        ) from None
    return mlflow


def _artifact_location(uri: str, experiment: str) -> str | None:
    """A sqlite store keeps artifacts beside its database (MLflow's default would be ./mlruns
    under whatever folder the command ran in); servers and file stores choose their own."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return (db.parent / "mlartifacts" / experiment).resolve().as_uri()
    return None


def _experiment(mlflow, task: str) -> str:
    name = os.environ.get(EXPERIMENT_ENV) or f"medai-{task}"
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return mlflow.create_experiment(
        name, artifact_location=_artifact_location(mlflow.get_tracking_uri(), name)
    )


def _flat(prefix: str, value: Any, out: dict[str, float]) -> None:
    """Numeric leaves of nested metrics as ``a.b.c`` names (MLflow takes numbers only)."""
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, bool):
        out[prefix] = float(value)
    elif isinstance(value, int | float) and math.isfinite(value):
        out[re.sub(r"[^\w\-. /]", "_", prefix)[:250]] = float(value)


def log_training(task: str, params: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """Log one finished training to MLflow; returns {"run_id", "experiment_id", "uri"} or
    {"error"} (never raises: the model is already saved)."""
    try:
        mlflow = _mlflow()
        from mlflow import MlflowClient

        model_dir = Path(summary["model_dir"])
        card = model_dirs.read_card(model_dir)
        experiment_id = _experiment(mlflow, task)
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=card.name or model_dir.name
        ) as run:
            mlflow.log_params({k: str(v)[:_MAX_PARAM] for k, v in params.items() if v is not None})
            metrics: dict[str, float] = {}
            _flat("test", summary.get("test") or {}, metrics)
            if metrics:
                mlflow.log_metrics(metrics)
            for i, epoch in enumerate(summary.get("history") or []):
                step: dict[str, float] = {}
                _flat("", {k: v for k, v in epoch.items() if k != "epoch"}, step)
                if step:
                    mlflow.log_metrics(step, step=int(epoch.get("epoch", i)))
            mlflow.set_tags(
                {
                    "medai.task": task,
                    "medai.model_name": card.name,
                    "medai.content_hash": card.content_hash or "",
                    "medai.model_type": card.model_type,
                }
            )
            plots = model_dir / "evaluation"
            if plots.is_dir():
                mlflow.log_artifacts(str(plots), artifact_path="plots")
            mlflow.log_artifacts(str(model_dir), artifact_path=MODEL_PATH)
            run_id = run.info.run_id
        MlflowClient().get_run(run_id)  # the store answers: the run is really there
        log.info("training logged to MLflow: experiment %s run %s", experiment_id, run_id)
        return {"run_id": run_id, "experiment_id": experiment_id, "uri": mlflow.get_tracking_uri()}
    except Exception as exc:  # broad: a tracking failure must not fail a finished training (logged)
        log.error("MLflow logging failed: %s: %s", type(exc).__name__, str(exc)[:200])
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}


def download_model(source: str, dst: Path) -> Path:
    """The sealed model directory of run ``mlflow:RUN_ID``, downloaded into ``dst``."""
    run_id = source[len(PREFIX) :].strip()
    if not _RUN_ID.match(run_id):
        raise TrackingSourceError(f"{source!r}: expected mlflow:RUN_ID (32 hexadecimal digits)")
    if not enabled():
        raise TrackingError(f"set {URI_ENV} to the tracking store that holds run {run_id}")
    mlflow = _mlflow()
    from mlflow.exceptions import MlflowException

    try:
        mlflow.MlflowClient().get_run(run_id)
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=MODEL_PATH, dst_path=str(dst)
        )
    except MlflowException as exc:
        raise TrackingError(f"MLflow run {run_id}: {exc.message[:200]}") from None
    except OSError as exc:
        raise TrackingError(
            f"MLflow run {run_id}: its {MODEL_PATH!r} artifacts could not "
            f"be read ({type(exc).__name__})"
        ) from None
    model = Path(path)
    if not model.is_dir():
        raise TrackingError(f"MLflow run {run_id} has no {MODEL_PATH!r} directory")
    return model
