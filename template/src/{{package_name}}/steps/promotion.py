"""Promotion step: the validation gate at the end of training, and the ZenML stage in step."""

from typing import Annotated

import mlflow
import pandas as pd
from mlflow import MlflowClient
from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.enums import ModelStages
from zenml.types import MarkdownString

from ..config import PromotionConfig, find_project_root
from ..evaluation.metrics import evaluate_classifier
from ..evaluation.model_card import data_summary, render_model_card, template_version
from ..evaluation.plots import PLOT_NAMES
from ..models import as_classifier, load_model
from ..registry.gate import Verdict
from ..registry.promotion import audit_context, publish_model_card, run_gate
from ..tracker import run_link
from . import TRACKER_RETRY
from .evaluation import PLOTS_FOLDER


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


def _plots(client: MlflowClient, run_id: str) -> list[str]:
    """The run's plots, in the order of PLOT_NAMES (confusion matrix first)."""
    paths = [artifact.path for artifact in client.list_artifacts(run_id, PLOTS_FOLDER)]
    order = {f"{PLOTS_FOLDER}/{name}.png": index for index, name in enumerate(PLOT_NAMES)}
    return sorted(paths, key=lambda path: order.get(path, len(order)))


def write_model_card(
    client: MlflowClient,
    name: str,
    version: str,
    verdict: Verdict,
    metrics: dict[str, float],
    promotion: PromotionConfig,
    data: dict,
    context: dict[str, str],
) -> tuple[str, str]:
    """Render the version's model card from the gate's verdict and what its MLflow run holds
    (plots, hyperparameters), and publish it with the version; returns (card, its URI)."""
    found = client.get_model_version(name, str(version))
    run = client.get_run(found.run_id)
    pipeline_run = found.tags.get("zenml_pipeline_run", "-")
    lineage = {
        "registered model": f"{name} v{version}",
        "ZenML pipeline run": f"{pipeline_run} ({found.tags.get('zenml_pipeline_run_id', '-')})",
        "ZenML model version": f"{name} {found.tags.get('zenml_model_version', '-')}",
        "MLflow run": run_link(mlflow.get_tracking_uri(), run.info.experiment_id, found.run_id),
        "git commit": context.get("git_commit", "none (not a git checkout)"),
        "template version": template_version(find_project_root()),
        "gate run": f"{context['time']} by {context['user']}",
    }
    champion = (verdict.champion_version, verdict.champion_metrics)
    card = render_model_card(
        name,
        str(version),
        verdict.as_dict(),
        metrics,
        promotion.min_metrics,
        promotion.min_improvement,
        champion if verdict.champion_version else None,
        data,
        dict(run.data.params),
        _plots(client, found.run_id),
        lineage,
    )
    return card, publish_model_card(client, name, str(version), card)


@step(experiment_tracker=True, enable_cache=False, retry=TRACKER_RETRY)
def promote(
    registered: dict[str, str],
    metrics: dict[str, float],
    train_set: pd.DataFrame,
    test_set: pd.DataFrame,
    target: str,
    labels: list,
    source: str,
    promotion: PromotionConfig,
) -> tuple[Annotated[dict, "promotion"], Annotated[MarkdownString, "model_card"]]:
    step_context = get_step_context()
    name, version = registered["model_name"], registered["version"]
    client = MlflowClient()
    context = audit_context(zenml_pipeline_run=step_context.pipeline_run.name)
    verdict = run_gate(
        client,
        name,
        version,
        metrics,
        held_out_scorer(test_set, target, labels),
        promotion.mode,
        promotion.min_metrics,
        promotion.min_improvement,
        context,
    )
    if verdict.promote:
        mark_production_in_zenml(name, str(step_context.model_version.number))
    data = data_summary(train_set, test_set, target, source)
    card, card_uri = write_model_card(
        client, name, version, verdict, metrics, promotion, data, context
    )
    log_metadata(metadata={"promotion": verdict.as_dict()}, infer_model=True)
    return {**verdict.as_dict(), "model_card": card_uri}, MarkdownString(card)
