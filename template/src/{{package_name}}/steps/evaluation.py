"""Evaluation step: score the model on the held-out set, log the metrics and the plots to
MLflow, and show the plots in ZenML's dashboard (an HTML artifact)."""

import tempfile
from pathlib import Path
from typing import Annotated

import mlflow
import pandas as pd
from zenml import log_metadata, step
from zenml.types import HTMLString

from ..evaluation.metrics import evaluate_classifier
from ..evaluation.plots import html_report, plot_evaluation
from ..models import TrainedModel, as_classifier
from . import TRACKER_RETRY

PLOTS_FOLDER = "plots"  # in the MLflow run; the model card links to the files there


@step(experiment_tracker=True, enable_cache=False, retry=TRACKER_RETRY)
def evaluate(
    model: TrainedModel, test_set: pd.DataFrame, target: str, labels: list
) -> tuple[Annotated[dict[str, float], "metrics"], Annotated[HTMLString, "evaluation_report"]]:
    features, y = test_set.drop(columns=[target]), test_set[target]
    classifier = as_classifier(model, labels)
    metrics = evaluate_classifier(classifier, features, y)
    mlflow.log_metrics(metrics)
    mlflow.log_param("test_rows", len(test_set))
    log_metadata(metadata={"metrics": metrics}, infer_model=True)
    with tempfile.TemporaryDirectory() as folder:
        images = plot_evaluation(classifier, features, y, Path(folder))
        mlflow.log_artifacts(folder, artifact_path=PLOTS_FOLDER)
        report = HTMLString(html_report("Evaluation on the held-out split", metrics, images))
    return metrics, report
