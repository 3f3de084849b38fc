"""Batch inference pipeline: resolve @champion -> drift check of a sample of the batch against the
training data -> stream the batch through validation and the model into the output. Steps pass
the batch's source and a summary, never the rows: nothing large lands in the artifact store."""

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
from ..ml.batch import score_chunks
from ..ml.drift import REFERENCE_ARTIFACT, columns_seen, detect_drift
from ..ml.sources import describe_output, is_sql
from ..ml.streams import Progress, output_writer, read_chunks, sample_rows
from ..platform.datasets import log_dataset
from ..platform.pipeline_runs import (
    pipeline_settings,
    point_mlflow_at_stack,
    retry_if_tracker_lost,
)

METRIC_UNSAFE = re.compile(r"[^\w.-]")  # characters MLflow refuses in a metric's name
# Batch rows the drift check compares with the reference (at most 5,000 training rows): the
# two-sample tests' verdicts hardly move beyond, and memory stays bounded.
DRIFT_SAMPLE_ROWS = 50_000


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


@step(experiment_tracker=True, enable_cache=False)
@retry_if_tracker_lost
def check_drift(
    source: str,
    model_name: str,
    version: str,
    target: str,
    drift: DriftConfig,
    chunk_rows: int = 100_000,
) -> tuple[Annotated[DriftCheck, "drift"], Annotated[MarkdownString, "drift_report"]]:
    """Write the report (Markdown + JSON, also logged to MLflow) on a random sample of the batch
    (the tests' power is bounded by the reference's rows, not the batch's); in `fail` mode a
    drifted batch stops the pipeline before anything is scored."""
    if drift.mode == "disabled":
        return DriftCheck(result="not checked (drift.mode: disabled)"), MarkdownString("-")
    reference = load_reference(model_name, version)
    if reference is None:
        note = f"not checked: v{version} has no training reference (retrain it)"
        return DriftCheck(result=note), MarkdownString(note)
    from ..ml.model import load_model  # on use: a Keras model's module imports TensorFlow

    batch = sample_rows(read_chunks(source, chunk_rows), DRIFT_SAMPLE_ROWS)
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
    config: BatchInferenceConfig,
    version: str,
    max_missing_fraction: float,
    drift: DriftCheck,
) -> Annotated[BatchResult, "batch_predictions"]:
    """Stream the batch through the model into the output: ZenML keeps this summary, MLflow
    the batch as a dataset input (digest, schema, rows) and a sample of the predictions."""
    model_uri = f"models:/{config.model_name}/{version}"
    loaded = mlflow.pyfunc.load_model(model_uri)
    features = loaded.metadata.get_input_schema().input_names()
    scored_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    progress = Progress()
    with output_writer(config.output, config.output_mode) as write:
        scored = score_chunks(
            read_chunks(config.input, config.chunk_rows),
            loaded,
            features,
            max_missing_fraction,
            write,
            config.pass_through,
            progress,
            model_version=version,
            scored_at=scored_at,
        )
    progress.done()
    written = describe_output(config.output, config.output_mode)
    log_dataset(scored.head, config.input, "batch", "inference", scored.rows, scored.digest)
    mlflow.log_params({"model_uri": model_uri, "rows": scored.rows, "output": written})
    unseen = scored.unseen.items()
    metrics = {"unseen_categories." + METRIC_UNSAFE.sub("_", c): n for c, n in unseen}
    mlflow.log_metrics({**metrics, "clipped_predictions": scored.clipped})
    if config.log_predictions == "full" and not is_sql(config.output):
        mlflow.log_artifact(config.output, artifact_path="predictions")
    else:
        mlflow.log_table(scored.sample, artifact_file="predictions/sample.json")
    run = mlflow.active_run()
    return BatchResult(
        model_name=config.model_name,
        version=version,
        output=written,
        rows=scored.rows,
        drift=drift,
        mlflow_run_id=run.info.run_id,
        mlflow_experiment_id=run.info.experiment_id,
        unseen_categories=scored.unseen,
        clipped=scored.clipped,
    )


@pipeline(execution_mode=ExecutionMode.FAIL_FAST, enable_cache=False)
def batch_inference_pipeline(
    config: BatchInferenceConfig, target: str, max_missing_fraction: float
) -> None:
    version, _, _ = resolve(config.model_name, config.alias)
    checked, _ = check_drift(
        config.input, config.model_name, version, target, config.drift, config.chunk_rows
    )
    score_batch(config, version, max_missing_fraction, drift=checked)


def run_batch_inference(config: BatchInferenceConfig, data: DataConfig) -> BatchResult:
    """Score `config.input` with the model under `config.alias`, using the training data rules."""
    run = batch_inference_pipeline.with_options(
        settings=pipeline_settings(experiment=config.model_name)
    )(config=config, target=data.target, max_missing_fraction=data.max_missing_fraction)
    return run.steps["score_batch"].outputs["batch_predictions"][0].load()
