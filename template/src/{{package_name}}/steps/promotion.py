"""Promotion step: the validation gate at the end of training, and the ZenML stage in step."""

from typing import Annotated

import pandas as pd
from mlflow import MlflowClient
from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.enums import ModelStages

from ..config import PromotionConfig
from ..evaluation.metrics import evaluate_classifier
from ..models import as_classifier, load_model
from ..registry.promotion import audit_context, run_gate


def held_out_scorer(test_set: pd.DataFrame, target: str, labels: list):
    """Score any registered version on exactly this held-out data."""
    features, y = test_set.drop(columns=[target]), test_set[target]

    def score(model_uri: str) -> dict[str, float]:
        return evaluate_classifier(as_classifier(load_model(model_uri), labels), features, y)

    return score


def mark_production_in_zenml(model_name: str, zenml_version: str | None) -> bool:
    """Keep the ZenML Model Control Plane in step: its production version is the champion.

    A version trained against another ZenML store (a CI runner's, a colleague's) is not in this
    one: MLflow's champion alias still moves, and False says ZenML was left as it was.
    """
    if not zenml_version:
        return False
    try:
        Client().update_model_version(
            model_name_or_id=model_name,
            version_name_or_id=zenml_version,
            stage=ModelStages.PRODUCTION,
            force=True,
        )
    except KeyError:
        return False
    return True


@step(experiment_tracker=True, enable_cache=False)
def promote(
    registered: dict[str, str],
    metrics: dict[str, float],
    test_set: pd.DataFrame,
    target: str,
    labels: list,
    promotion: PromotionConfig,
) -> Annotated[dict, "promotion"]:
    context = get_step_context()
    name, version = registered["model_name"], registered["version"]
    verdict = run_gate(
        MlflowClient(),
        name,
        version,
        metrics,
        held_out_scorer(test_set, target, labels),
        promotion.mode,
        promotion.min_metrics,
        promotion.min_improvement,
        audit_context(zenml_pipeline_run=context.pipeline_run.name),
    )
    if verdict.promote:
        mark_production_in_zenml(name, str(context.model_version.number))
    log_metadata(metadata={"promotion": verdict.as_dict()}, infer_model=True)
    return verdict.as_dict()
