"""Evaluation step: score the model on the held-out set and log the metrics to MLflow."""

from typing import Annotated

import mlflow
import pandas as pd
from zenml import log_metadata, step

from ..evaluation.metrics import evaluate_classifier
from ..models import TrainedModel, as_classifier


@step(experiment_tracker=True, enable_cache=False)
def evaluate(
    model: TrainedModel, test_set: pd.DataFrame, target: str, labels: list
) -> Annotated[dict[str, float], "metrics"]:
    features = test_set.drop(columns=[target])
    metrics = evaluate_classifier(as_classifier(model, labels), features, test_set[target])
    mlflow.log_metrics(metrics)
    mlflow.log_param("test_rows", len(test_set))
    log_metadata(metadata={"metrics": metrics}, infer_model=True)
    return metrics
