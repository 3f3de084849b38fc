"""Registration step: log the model to MLflow and register it in the MLflow Model Registry,
linked to this run's ZenML Model Control Plane version."""

from typing import Annotated

import mlflow
import pandas as pd
from zenml import get_step_context, log_metadata, step

from ..data.drift import REFERENCE_ARTIFACT, reference_sample
from ..models import TrainedModel, log_model
from ..registry.registration import (
    FINGERPRINT_TAG,
    PIPELINE_RUN_TAG,
    ZENML_VERSION_TAG,
    newest_version_tagged,
    register_logged_model,
)
from . import TRACKER_RETRY


@step(experiment_tracker=True, enable_cache=False, retry=TRACKER_RETRY)
def register(
    model: TrainedModel,
    train_set: pd.DataFrame,
    target: str,
    labels: list,
    metrics: dict[str, float],
    model_name: str,
    fingerprint: str = "",
) -> Annotated[dict[str, str], "registered_model"]:
    run = mlflow.active_run()
    context = get_step_context()
    pipeline_run_id = str(context.pipeline_run.id)
    # A retried step (TRACKER_RETRY) reuses the version its first attempt registered.
    client = mlflow.MlflowClient()
    version = newest_version_tagged(client, model_name, PIPELINE_RUN_TAG, pipeline_run_id)
    if version is None:
        features = train_set.drop(columns=[target])
        model_info = log_model(model, features, labels)
        # What batch inference compares new data with (drift), even when the source changes.
        mlflow.log_text(reference_sample(features).to_csv(index=False), REFERENCE_ARTIFACT)
        scores = ", ".join(f"{name}={value:.4f}" for name, value in metrics.items())
        version = register_logged_model(
            model_info.model_uri,
            model_name,
            description=f"Trained by ZenML run {context.pipeline_run.name}: {scores}",
            tags={
                "zenml_pipeline_name": context.pipeline.name,
                "zenml_pipeline_run": context.pipeline_run.name,
                PIPELINE_RUN_TAG: pipeline_run_id,
                ZENML_VERSION_TAG: str(context.model_version.number),
                **({FINGERPRINT_TAG: fingerprint} if fingerprint else {}),
            },
        )
    registered = {
        "model_name": model_name,
        "version": str(version.version),
        "model_uri": f"models:/{model_name}/{version.version}",
        "mlflow_run_id": run.info.run_id,
        "mlflow_experiment_id": run.info.experiment_id,
    }
    log_metadata(metadata={"mlflow": registered}, infer_model=True)
    return registered
