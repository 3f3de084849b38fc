"""Batch inference pipeline: resolve @champion -> load a batch -> drift check against the
training data -> validate it like training data, score it, write and log the predictions."""

import re
import time
from pathlib import Path
from typing import Annotated

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from pydantic import BaseModel
from zenml import pipeline, step
from zenml.enums import ExecutionMode
from zenml.types import MarkdownString

from ..config import BatchInferenceConfig, DataConfig, DriftConfig
from ..errors import DriftError
from ..lifecycle.aliases import resolve_version
from ..lifecycle.registration import ZENML_VERSION_TAG
from ..ml.batch import output_rows, validate_batch
from ..ml.data import load_dataset
from ..ml.drift import REFERENCE_ARTIFACT, columns_seen, detect_drift
from ..ml.predictions import clipped_count, score_rows, unseen_counts
from ..ml.sources import is_sql, write_table
from ..platform.datasets import log_dataset
from ..platform.pipeline_runs import (
    pipeline_settings,
    point_mlflow_at_stack,
    retry_if_tracker_lost,
)

METRIC_UNSAFE = re.compile(r"[^\w.-]")  # characters MLflow refuses in a metric's name


class DriftCheck(BaseModel):
    result: str  # one line: what was found, or why nothing was checked
    report: str = ""  # the Markdown report's path
    drifted: bool = False


class BatchResult(BaseModel):
    model_name: str
    version: str
    output: str
    rows: int
    drift: DriftCheck
    mlflow_run_id: str
    mlflow_experiment_id: str
    # Rows with a category training never saw, per column; predictions clipped to the range.
    unseen_categories: dict[str, int] = {}
    clipped: int = 0


def load_reference(model_name: str, version: str) -> pd.DataFrame | None:
    """The training features logged with the version, or None for versions trained before
    references were logged."""
    run_id = mlflow.MlflowClient().get_model_version(model_name, version).run_id
    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=REFERENCE_ARTIFACT)
    except (MlflowException, OSError):
        return None
    return pd.read_csv(path)


@step(enable_cache=False)
@retry_if_tracker_lost
def resolve(
    model_name: str, alias: str, version: str | None = None
) -> tuple[
    Annotated[str, "version"], Annotated[str, "zenml_model_version"], Annotated[str, "source"]
]:
    """The version the alias points at (or `version`), also the deployment pipeline's first
    step: its ZenML model version (if trained by ZenML) and its logged model."""
    point_mlflow_at_stack()
    found = resolve_version(mlflow.MlflowClient(), model_name, alias, version)
    return str(found.version), found.tags.get(ZENML_VERSION_TAG, ""), found.source or ""


@step(enable_cache=False)
def load_batch(source: str) -> Annotated[pd.DataFrame, "batch"]:
    """Any training-style source. A target column, if present, is checked for drift but is
    not an input."""
    return load_dataset(source)


@step(experiment_tracker=True, enable_cache=False)
@retry_if_tracker_lost
def check_drift(
    batch: pd.DataFrame, model_name: str, version: str, target: str, drift: DriftConfig
) -> tuple[Annotated[DriftCheck, "drift"], Annotated[MarkdownString, "drift_report"]]:
    """Write the report (Markdown + JSON, also logged to MLflow); in `fail` mode a drifted
    batch stops the pipeline before anything is scored."""
    if drift.mode == "disabled":
        return DriftCheck(result="not checked (drift.mode: disabled)"), MarkdownString("-")
    reference = load_reference(model_name, version)
    if reference is None:
        note = f"not checked: v{version} has no training reference (retrain it)"
        return DriftCheck(result=note), MarkdownString(note)
    from ..ml.model import load_model  # on use: a Keras model's module imports TensorFlow

    model_uri = f"models:/{model_name}/{version}"
    # What the model sees (its add_features output), and the target when the batch has it.
    reference, rows, what = columns_seen(lambda: load_model(model_uri), reference, batch, target)
    report = detect_drift(reference, rows, None, drift.p_value, drift.drift_share, what)
    markdown = report.to_markdown(f"Data drift: batch vs {model_name} v{version}")
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
    checked = DriftCheck(result=report.summary(), report=str(path), drifted=report.dataset_drift)
    return checked, MarkdownString(markdown)


@step(experiment_tracker=True, enable_cache=False)
@retry_if_tracker_lost
def score_batch(
    batch: pd.DataFrame,
    model_name: str,
    version: str,
    max_missing_fraction: float,
    output: str,
    drift: DriftCheck,
    source: str = "",
    pass_through: list | None = None,
    output_mode: str = "replace",
) -> Annotated[BatchResult, "batch_predictions"]:
    model_uri = f"models:/{model_name}/{version}"
    loaded = mlflow.pyfunc.load_model(model_uri)
    features = loaded.metadata.get_input_schema().input_names()
    log_dataset(batch, source, "batch", "inference")  # MLflow's Datasets panel
    inputs = validate_batch(batch, features, max_missing_fraction)
    predictions = score_rows(loaded, inputs)
    # The rows as they came (validation made integers floats for the model), then the answers.
    scored_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    scored = output_rows(
        batch, features, predictions, pass_through or [], model_version=version, scored_at=scored_at
    )
    written = write_table(scored, output, output_mode)  # a file, or a table: no credentials
    mlflow.log_params({"model_uri": model_uri, "rows": len(scored), "output": written})
    unseen = unseen_counts(predictions.get("unseen_categories", pd.Series(dtype=str)))
    clipped = clipped_count(loaded, predictions)
    metrics = {"unseen_categories." + METRIC_UNSAFE.sub("_", c): n for c, n in unseen.items()}
    mlflow.log_metrics({**metrics, "clipped_predictions": clipped})
    if not is_sql(output):
        mlflow.log_artifact(output, artifact_path="predictions")
    run = mlflow.active_run()
    return BatchResult(
        model_name=model_name,
        version=version,
        output=written,
        rows=len(scored),
        drift=drift,
        mlflow_run_id=run.info.run_id,
        mlflow_experiment_id=run.info.experiment_id,
        unseen_categories=unseen,
        clipped=clipped,
    )


@pipeline(execution_mode=ExecutionMode.FAIL_FAST, enable_cache=False)
def batch_inference_pipeline(
    model_name: str,
    alias: str,
    source: str,
    target: str,
    max_missing_fraction: float,
    output: str,
    drift: DriftConfig,
    pass_through: list | None = None,
    output_mode: str = "replace",
) -> None:
    version, _, _ = resolve(model_name, alias)
    batch = load_batch(source)
    checked, _ = check_drift(batch, model_name, version, target, drift=drift)
    score_batch(
        batch,
        model_name,
        version,
        max_missing_fraction=max_missing_fraction,
        output=output,
        drift=checked,
        source=source,
        pass_through=pass_through,
        output_mode=output_mode,
    )


def run_batch_inference(config: BatchInferenceConfig, data: DataConfig) -> BatchResult:
    """Score `config.input` with the model under `config.alias`, using the training data rules."""
    run = batch_inference_pipeline.with_options(
        settings=pipeline_settings(experiment=config.model_name)
    )(
        model_name=config.model_name,
        alias=config.alias,
        source=config.input,
        target=data.target,
        max_missing_fraction=data.max_missing_fraction,
        output=config.output,
        drift=config.drift,
        pass_through=config.pass_through,
        output_mode=config.output_mode,
    )
    return run.steps["score_batch"].outputs["batch_predictions"][0].load()
