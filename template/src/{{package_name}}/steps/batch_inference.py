"""Batch inference steps: compare the batch with the training data (drift), validate it like
training data, score it with the champion, write the predictions and log them to MLflow."""

import time
from pathlib import Path
from typing import Annotated

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from zenml import step
from zenml.types import MarkdownString

from ..config import DriftConfig
from ..data.drift import REFERENCE_ARTIFACT, detect_drift
from ..data.load import load_dataset
from ..data.validate import validate_features
from ..errors import ProjectError
from ..serving.predictions import prediction_columns
from . import TRACKER_RETRY


class DriftError(ProjectError):
    """The batch drifted from the training data and drift.mode is `fail`."""

    hint = "read the report; `drift.mode: warn` in configs/batch_inference.yaml scores anyway"


def load_reference(model_name: str, version: str) -> pd.DataFrame | None:
    """The training features logged with the version, or None for versions trained before
    references were logged."""
    run_id = MlflowClient().get_model_version(model_name, version).run_id
    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=REFERENCE_ARTIFACT)
    except (MlflowException, OSError):
        return None
    return pd.read_csv(path)


@step(enable_cache=False)
def load_batch(source: str, target: str) -> Annotated[pd.DataFrame, "batch"]:
    """Any training-style source; a label column, if present, is not an input."""
    return load_dataset(source).drop(columns=[target], errors="ignore")


@step(experiment_tracker=True, enable_cache=False, retry=TRACKER_RETRY)
def check_drift(
    batch: pd.DataFrame, model: dict[str, str], drift: DriftConfig
) -> tuple[Annotated[dict[str, str], "drift"], Annotated[MarkdownString, "drift_report"]]:
    """Write the report (Markdown + JSON, also logged to MLflow); in `fail` mode a drifted
    batch stops the pipeline before anything is scored."""
    if drift.mode == "disabled":
        return {"result": "not checked (drift.mode: disabled)"}, MarkdownString("Not checked.")
    reference = load_reference(model["model_name"], model["version"])
    if reference is None:
        note = f"not checked: v{model['version']} has no training reference (retrain it)"
        return {"result": note}, MarkdownString(note)
    report = detect_drift(reference, batch, None, drift.p_value, drift.drift_share)
    markdown = report.to_markdown(f"Data drift: batch vs {model['model_name']} v{model['version']}")
    path = Path(drift.report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown)
    path.with_suffix(".json").write_text(report.to_json())
    mlflow.log_artifact(str(path), artifact_path="drift")
    mlflow.log_artifact(str(path.with_suffix(".json")), artifact_path="drift")
    mlflow.log_metrics({"drift_share": report.share, "drifted_columns": len(report.drifted)})
    if report.dataset_drift and drift.mode == "fail":
        raise DriftError(
            f"the batch drifted from the training data: {report.details()}; "
            f"nothing was scored (drift.mode: fail); report: {path}"
        )
    result = {"result": report.summary(), "report": str(path), "drifted": str(report.dataset_drift)}
    return result, MarkdownString(markdown)


@step(experiment_tracker=True, enable_cache=False, retry=TRACKER_RETRY)
def score_batch(
    batch: pd.DataFrame,
    model: dict[str, str],
    labels: list,
    max_missing_fraction: float,
    output: str,
    drift: dict[str, str],
) -> Annotated[dict[str, str], "batch_predictions"]:
    model_uri = f"models:/{model['model_name']}/{model['version']}"
    loaded = mlflow.pyfunc.load_model(model_uri)
    features = loaded.metadata.get_input_schema().input_names()
    inputs = validate_features(batch, features, max_missing_fraction)
    predictions = prediction_columns(loaded.predict(inputs), labels)
    # The rows as they came (validation made integers floats for the model), then the answers.
    rows = batch[features].reset_index(drop=True)
    scored = pd.concat([rows, predictions], axis=1).assign(
        model_version=model["version"],
        scored_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    scored.to_csv(path, index=False)
    mlflow.log_params({"model_uri": model_uri, "rows": len(scored)})
    mlflow.log_artifact(str(path), artifact_path="predictions")
    run = mlflow.active_run()
    return {
        **model,
        "output": str(path),
        "rows": str(len(scored)),
        "drift": drift["result"],
        "drift_report": drift.get("report", ""),
        "drifted": drift.get("drifted", "False"),
        "mlflow_run_id": run.info.run_id,
        "mlflow_experiment_id": run.info.experiment_id,
    }
