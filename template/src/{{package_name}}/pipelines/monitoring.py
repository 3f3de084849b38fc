"""Monitoring pipeline: the batch outputs joined with the labels that came later -> a verdict per
window and model version -> the report, and MLflow's monitoring experiment, where each metric is
a curve over the windows' dates (live/<metric>: the served model; v<N>/<metric>: each version)."""

import functools
from pathlib import Path
from typing import Annotated

import mlflow
import pandas as pd
from pydantic import BaseModel
from zenml import pipeline, step
from zenml.config.schedule import Schedule
from zenml.enums import ExecutionMode
from zenml.types import MarkdownString

from ..config import DataConfig, DriftConfig, MonitoringConfig, PromotionConfig
from ..lifecycle.aliases import CHAMPION, version_by_alias
from ..ml import METRICS
from ..ml.data import load_dataset
from ..ml.drift import columns_seen, detect_drift
from ..ml.model import load_model
from ..ml.monitoring import (
    WindowResult,
    current,
    join_labels,
    judge_windows,
    load_predictions,
    to_markdown,
)
from ..platform.pipeline_runs import pipeline_settings, retry_if_tracker_lost
from .batch_inference import load_reference


class Monitored(BaseModel):
    verdict: str  # of the champion's latest judged window (ml.monitoring.current)
    window: str = ""
    version: str = ""
    checks: list[str] = []
    counts: list[str] = []
    windows: list[dict] = []  # one row per window and version
    report: str
    mlflow_run_id: str
    mlflow_experiment_id: str


def experiment_of(model_name: str) -> str:
    return f"{model_name}-monitoring"


def log_curves(results: list[WindowResult]) -> None:
    """A point per window at the window's date, so MLflow's UI draws each metric over time:
    live/ (the served version), held_out/ (its value before deployment), v<N>/ (each version);
    and the windows as a table."""
    windows = list(dict.fromkeys(r.window for r in results))
    for r in results:
        when, index = int(r.start.timestamp() * 1000), windows.index(r.window)
        points = {f"v{r.version}/{k}": v for k, v in r.metrics.items()}
        if r.role == "served":
            points |= {f"live/{k}": v for k, v in r.metrics.items()}
            points |= {f"held_out/{k}": v for k, v in r.held_out.items()}
            points["live/labelled_rows"] = r.labelled
            if r.drift_share is not None:
                points["live/drift_share"] = r.drift_share
        for key, value in points.items():
            if value == value:  # not nan: a metric the window could not define
                mlflow.log_metric(key, value, step=index, timestamp=when)
    if results:
        table = pd.DataFrame([r.row() for r in results])
        mlflow.log_table(data=table, artifact_file="monitoring/windows.json")


@step(experiment_tracker=True, enable_cache=False)
@retry_if_tracker_lost
def monitor(
    config: MonitoringConfig,
    data: DataConfig,
    promotion: PromotionConfig,
    drift: DriftConfig,
) -> tuple[Annotated[Monitored, "monitoring"], Annotated[MarkdownString, "monitoring_report"]]:
    """Join, judge each window, write the report; log the curves to the monitoring run."""
    client, name, target = mlflow.MlflowClient(), config.model_name, data.target
    predictions, labels = load_predictions(config.predictions), load_dataset(config.labels)
    joined = join_labels(predictions, labels, config, target)
    champion = version_by_alias(client, name, CHAMPION)

    @functools.cache
    def held_out_of(version: str) -> dict[str, float]:
        run = client.get_run(client.get_model_version(name, version).run_id)
        return {k: v for k, v in run.data.metrics.items() if k in METRICS[data.task]}

    @functools.cache
    def reference_of(version: str):
        return load_reference(name, version), load_model(f"models:/{name}/{version}")

    def drift_of(version: str, rows):
        if drift.mode == "disabled":
            return None
        reference, model = reference_of(version)
        if reference is None:
            return f"not checked: v{version} has no training reference", None, False
        inputs = rows.drop(columns=[target])
        reference, seen, what = columns_seen(lambda: model, reference, inputs, target)
        report = detect_drift(reference, seen, None, drift.p_value, drift.drift_share, what)
        return report.summary(), report.share, report.dataset_drift

    thresholds = promotion.min_metrics, promotion.max_metrics
    results = judge_windows(
        joined, config, data.task, target, held_out_of, drift_of, thresholds, data.average
    )
    now = current(results, str(champion.version) if champion else None)
    verdict = now.verdict if now else "not enough labels"
    title = f"Monitoring {name}" + (f": v{now.version}, {now.window}" if now else "")
    markdown = to_markdown(results, joined, verdict, title)
    path = Path(config.report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown)

    log_curves(results)
    mlflow.log_artifact(str(path), artifact_path="monitoring")
    mlflow.set_tags({"verdict": verdict, "window": now.window if now else "-"})
    run = mlflow.active_run()
    monitored = Monitored(
        verdict=verdict,
        window=now.window if now else "",
        version=now.version if now else "",
        checks=now.checks if now else [],
        counts=joined.counts(),
        windows=[r.row() for r in results],
        report=str(path),
        mlflow_run_id=run.info.run_id,
        mlflow_experiment_id=run.info.experiment_id,
    )
    return monitored, MarkdownString(markdown)


@pipeline(execution_mode=ExecutionMode.FAIL_FAST, enable_cache=False)
def monitoring_pipeline(
    config: MonitoringConfig,
    data: DataConfig,
    promotion: PromotionConfig,
    drift: DriftConfig,
) -> None:
    monitor(config, data, promotion, drift)


def run_monitoring(
    config: MonitoringConfig,
    data: DataConfig,
    promotion: PromotionConfig,
    drift: DriftConfig,
    schedule: Schedule | None = None,
) -> Monitored | None:
    """Judge the champion's live performance (configs/monitoring.yaml); with `schedule`,
    register it to run on that instead."""
    run = monitoring_pipeline.with_options(
        settings=pipeline_settings(experiment=experiment_of(config.model_name)), schedule=schedule
    )(config=config, data=data, promotion=promotion, drift=drift)
    return run and run.steps["monitor"].outputs["monitoring"][0].load()
