"""Batch inference steps: validate a batch like training data, score it with the champion,
write the predictions and log them to MLflow."""

import time
from pathlib import Path
from typing import Annotated

import mlflow
import pandas as pd
from zenml import step

from ..data.load import load_dataset
from ..data.validate import validate_features
from ..serving.predictions import prediction_columns


@step(enable_cache=False)
def load_batch(source: str, target: str) -> Annotated[pd.DataFrame, "batch"]:
    """Any training-style source; a label column, if present, is not an input."""
    return load_dataset(source).drop(columns=[target], errors="ignore")


@step(experiment_tracker=True, enable_cache=False)
def score_batch(
    batch: pd.DataFrame,
    model: dict[str, str],
    labels: list,
    max_missing_fraction: float,
    output: str,
) -> Annotated[dict[str, str], "batch_predictions"]:
    model_uri = f"models:/{model['model_name']}/{model['version']}"
    loaded = mlflow.pyfunc.load_model(model_uri)
    features = loaded.metadata.get_input_schema().input_names()
    inputs = validate_features(batch, features, max_missing_fraction)
    predictions = prediction_columns(loaded.predict(inputs), labels)
    scored = pd.concat([inputs, predictions], axis=1).assign(
        model_version=model["version"],
        scored_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    scored.to_csv(path, index=False)
    mlflow.log_params({"model_uri": model_uri, "rows": len(scored)})
    mlflow.log_artifact(str(path), artifact_path="predictions")
    return {**model, "output": str(path), "rows": str(len(scored))}
