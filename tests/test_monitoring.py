"""After deployment, against a real MLflow server: batch predictions meet the labels that arrive
later, window by window. A window like the training data is ok; one where the relation between
features and target changed is degraded, retrained on that evidence, promoted and served; the
next window of the new relation is ok on the new version. A challenger scored in shadow is
promoted on live evidence, or kept back.

The tests run in order and share one project, as the days of a deployment follow each other.
"""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from conftest import project_command, render, run
from servers import browser_page

pytestmark = pytest.mark.lifecycle

PACKAGE = "loop_guard"
WORSE_MODEL = "  estimator: sklearn.dummy.DummyClassifier\n  params:\n    strategy: most_frequent\n"


def draw(rng, rows: int, new_relation: bool, first_id: int, day: str = "") -> pd.DataFrame:
    """Three numeric features; the label follows x1 (the old relation) or x1 + x2 (the new)."""
    x = rng.normal(size=(rows, 3))
    logit = 4 * (x[:, 0] + x[:, 1]) if new_relation else 4 * x[:, 0]
    target = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame({"id": np.arange(first_id, first_id + rows), "day": day})
    frame[["x1", "x2", "x3"]] = x
    return frame.assign(target=target)


@pytest.fixture(scope="module")
def project(tmp_path_factory, mlflow_server) -> Path:
    project = render(
        tmp_path_factory.mktemp("monitoring") / "loop",
        project_name="Loop Guard",
        monitoring=True,
        shadow_challenger=True,  # the last two days score a challenger beside the champion
    )
    data = project / "data"
    data.mkdir()
    rng = np.random.default_rng(7)
    draw(rng, 1000, False, 0).drop(columns="day").to_csv(data / "train.csv", index=False)
    # Five days of batches: like training, then the new relation; labels apart (they come later).
    days = [(500, False), (1500, True), (500, True), (800, True), (800, True)]
    for day, (rows, new) in enumerate(days, 1):
        batch = draw(rng, rows, new, day * 10_000, f"2026-11-0{day}")
        batch.drop(columns="target").to_csv(data / f"batch_{day}.csv", index=False)
        batch[["id", "target"]].to_csv(data / f"labels_{day}.csv", index=False)
    draw(rng, 1500, True, 90_000).drop(columns="day").to_csv(data / "recent.csv", index=False)

    configs = project / "configs"
    training = (configs / "training.yaml").read_text()
    training = training.replace("source: sklearn:breast_cancer", "source: data/train.csv")
    training = training.replace("exclude: []", "exclude: [id]")
    (configs / "training.yaml").write_text(training)
    # Challengers the gate holds back: one trained on recent rows only (it needs +0.5 roc_auc
    # over the champion), one that always answers the most frequent class.
    recent = training.replace("data/train.csv", "data/recent.csv")
    (configs / "recent.yaml").write_text(recent.replace("roc_auc: 0.0", "roc_auc: 0.5"))
    worse = re.sub(r"\nmodel:\n(  .*\n)+", "\nmodel:\n" + WORSE_MODEL, training)
    (configs / "worse.yaml").write_text(worse)
    monitoring = (configs / "monitoring.yaml").read_text()
    for old, new in {
        "predictions: outputs/predictions.csv": "predictions: outputs/predictions/*.parquet",
        "time_column: scored_at": "time_column: day",
        "on_degradation: report": "on_degradation: retrain",
    }.items():
        monitoring = monitoring.replace(old, new)
    (configs / "monitoring.yaml").write_text(monitoring)
    run(["make", "setup"], cwd=project, env={"MLFLOW_TRACKING_URI": mlflow_server})
    yield project
    cli(project, mlflow_server, "undeploy")


@pytest.fixture(scope="module")
def client(mlflow_server) -> MlflowClient:
    return MlflowClient(mlflow_server)


def cli(project: Path, server: str, *args: str) -> subprocess.CompletedProcess:
    return project_command(project, list(args), {**os.environ, "MLFLOW_TRACKING_URI": server})[0]


def score_day(project: Path, server: str, day: int, shadow: bool = False) -> str:
    """Batch-infer day N into its own output file, then deliver that day's labels."""
    path = project / "configs" / "batch_inference.yaml"
    config = yaml.safe_load(path.read_text())
    config.update(
        input=f"data/batch_{day}.csv",
        output=f"outputs/predictions/day_{day}.parquet",
        pass_through=["id", "day"],
        shadow=shadow,
    )
    path.write_text(yaml.safe_dump(config))
    scored = cli(project, server, "batch-infer")
    assert scored.returncode == 0, scored.stdout[-2000:] + scored.stderr[-2000:]
    labels = [pd.read_csv(project / f"data/labels_{n}.csv") for n in range(1, day + 1)]
    pd.concat(labels).to_csv(project / "data" / "labels.csv", index=False)
    return scored.stdout


def monitor(project: Path, server: str, expected_exit: int) -> tuple[str, dict]:
    result = cli(project, server, "monitor", "--summary-json", "monitor-summary.json")
    assert result.returncode == expected_exit, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout, json.loads((project / "monitor-summary.json").read_text())


def judged(summary: dict) -> tuple[str, str, str]:
    return summary["verdict"], summary["latest_window"], summary["version"]


def champion(client: MlflowClient) -> str:
    return str(client.get_model_version_by_alias(PACKAGE, "champion").version)


def test_a_window_like_the_training_data_is_ok(project, mlflow_server, client):
    assert cli(project, mlflow_server, "train").returncode == 0
    score_day(project, mlflow_server, 1)
    output, summary = monitor(project, mlflow_server, 0)
    assert judged(summary) == ("ok", "2026-11-01", "1")
    assert "500 predictions, 500 of them labelled" in output
    (window,) = summary["windows"]
    assert window["labelled"] == 500 and window["roc_auc"] > 0.9 and window["drift_share"] == 0.0
    assert summary["retrain"] is False and summary["retrained"] is None


def test_a_changed_relation_is_degraded_retrained_on_the_evidence_promoted_and_served(
    project, mlflow_server, client
):
    deployed = cli(project, mlflow_server, "deploy")
    assert deployed.returncode == 0, deployed.stderr[-2000:]
    score_day(project, mlflow_server, 2)
    labels = pd.read_csv(project / "data" / "labels.csv")  # a late duplicate, an unknown ID
    extra = pd.DataFrame({"id": [20_000, 777_777], "target": [labels.target.iloc[500], 1]})
    pd.concat([labels, extra]).to_csv(project / "data" / "labels.csv", index=False)

    started = time.perf_counter()
    output, summary = monitor(project, mlflow_server, 5)
    print(f"monitor + retrain + redeploy: {time.perf_counter() - started:.1f} s")
    assert judged(summary) == ("degraded", "2026-11-02", "1")
    failed = [check for check in summary["checks"] if check.endswith("FAILED")]
    assert failed[0].startswith("roc_auc 0.8") and "held-out" in failed[0]
    assert "1 labels for keys no prediction has" in output
    assert "1 repeated labels of a key" in output

    retrained = summary["retrained"]
    assert retrained["version"] == "2" and retrained["verdict"]["promote"], output[-3000:]
    checks = retrained["verdict"]["checks"]
    live = [check for check in checks if "on 2026-11-02" in check]
    assert len(live) == 1 and live[0].endswith(": ok")  # beat v1 where v1 failed
    assert any(check.startswith("roc_auc") and "champion v1" in check and "on 2026" not in check
               for check in checks)  # fmt: skip
    assert champion(client) == "2"
    version = client.get_model_version(PACKAGE, "2")
    assert "monitoring: v1 degraded on 2026-11-02" in version.description
    card = client.download_artifacts(version.run_id, "model_card.md")
    assert "**Trained because** monitoring: v1 degraded on 2026-11-02" in Path(card).read_text()
    # Trained on the training rows plus every labelled row.
    (data_file,) = (project / "outputs" / "retraining").glob("data_*.parquet")
    assert len(pd.read_parquet(data_file)) == 1000 + 2000

    assert "redeployed:" in output
    record = json.loads((project / ".serving" / f"{PACKAGE}.json").read_text())
    assert record["version"] == "2"
    answered = cli(project, mlflow_server, "predict")
    assert answered.returncode == 0 and "probability_1" in answered.stdout


def test_the_new_relation_is_ok_on_the_new_version(project, mlflow_server, client):
    score_day(project, mlflow_server, 3)
    output, summary = monitor(project, mlflow_server, 0)
    assert judged(summary) == ("ok", "2026-11-03", "2")
    verdicts = [(w["window"], w["version"], w["verdict"]) for w in summary["windows"]]
    assert verdicts == [
        ("2026-11-01", "1", "ok"),
        ("2026-11-02", "1", "degraded"),
        ("2026-11-03", "2", "ok"),
    ]
    print(output)


def test_mlflow_charts_each_metric_over_the_windows_dates(project, mlflow_server, client):
    experiment = client.get_experiment_by_name(f"{PACKAGE}-monitoring").experiment_id
    (latest,) = client.search_runs([experiment], order_by=["start_time DESC"], max_results=1)
    run_id = latest.info.run_id
    assert latest.data.tags["verdict"] == "ok" and latest.data.tags["window"] == "2026-11-03"
    history = client.get_metric_history(run_id, "live/roc_auc")
    days = [time.strftime("%Y-%m-%d", time.gmtime(point.timestamp / 1000)) for point in history]
    assert days == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert [point.step for point in history] == [0, 1, 2]
    first, degraded, recovered = (point.value for point in history)
    assert degraded < first - 0.05 and recovered > degraded + 0.05
    held_out = [point.value for point in client.get_metric_history(run_id, "held_out/roc_auc")]
    assert held_out[0] == held_out[1] != held_out[2]  # v1's, then v2's
    curves = {"v1/roc_auc", "v2/roc_auc", "live/labelled_rows", "live/drift_share"}
    assert curves <= set(latest.data.metrics)
    artifacts = {artifact.path for artifact in client.list_artifacts(run_id, "monitoring")}
    assert artifacts == {"monitoring/monitoring_report.md", "monitoring/windows.json"}


def test_mlflow_ui_draws_the_live_and_held_out_curves(project, mlflow_server, client, tmp_path):
    """As a user sees it, in headless Chromium: the latest monitoring run's tags, and its
    "Model metrics" tab with a section of curves for the served model and for held-out."""
    experiment = client.get_experiment_by_name(f"{PACKAGE}-monitoring").experiment_id
    (latest,) = client.search_runs([experiment], order_by=["start_time DESC"], max_results=1)
    page = f"{mlflow_server}/#/experiments/{experiment}/runs/{latest.info.run_id}"
    overview = browser_page(page, wait_for=["Tags", "verdict"])
    assert re.search(r"^verdict\n: ok$", overview, re.M), overview
    assert re.search(r"^window\n: 2026-11-03$", overview, re.M), overview
    screenshot = tmp_path / "model-metrics.png"
    charts = browser_page(
        f"{page}/model-metrics",
        screenshot,
        wait_for=["(live/roc_auc)", "(held_out/roc_auc)", "(live/labelled_rows)"],
        size=(1600, 2400),  # MLflow draws a chart once it is in the window
    )
    for section in ("live", "held_out"):
        assert re.search(rf"^{section}\n\(\d+\)$", charts, re.M), charts
    assert charts.count("\nroc_auc\n") >= 2 and "\nStep\n" in charts, charts
    assert screenshot.stat().st_size > 50_000
    print(f"screenshot: {screenshot}")


def test_a_shadow_challenger_that_does_worse_is_kept_back(project, mlflow_server, client):
    trained = cli(project, mlflow_server, "train", "--config", "configs/worse.yaml")
    assert "gate:              rejected" in trained.stdout, trained.stdout[-2000:]
    challenger = str(client.get_model_version_by_alias(PACKAGE, "challenger").version)
    score_day(project, mlflow_server, 4, shadow=True)
    output = pd.read_parquet(project / "outputs" / "predictions" / "day_4.parquet")
    assert set(output["model_version"]) == {"2"}
    assert set(output["challenger_version"]) == {challenger}
    shadow_columns = [
        "challenger_prediction",
        "challenger_probability_0",
        "challenger_probability_1",
    ]
    assert set(shadow_columns) <= set(output.columns)
    # The endpoint keeps serving the champion.
    assert json.loads((project / ".serving" / f"{PACKAGE}.json").read_text())["version"] == "2"

    _, summary = monitor(project, mlflow_server, 0)
    shadow = [w for w in summary["windows"] if w["role"] == "shadow"]
    assert [(w["window"], w["version"]) for w in shadow] == [("2026-11-04", challenger)]
    promoted = cli(project, mlflow_server, "promote", "--version", challenger, "--live")
    assert promoted.returncode == 1 and "rejected" in promoted.stdout
    assert "on 2026-11-04" in promoted.stdout and champion(client) == "2"


def test_a_shadow_challenger_better_on_live_data_is_promoted(project, mlflow_server, client):
    trained = cli(project, mlflow_server, "train", "--config", "configs/recent.yaml")
    assert "gate:              rejected" in trained.stdout, trained.stdout[-2000:]  # needs +0.5
    challenger = str(client.get_model_version_by_alias(PACKAGE, "challenger").version)
    score_day(project, mlflow_server, 5, shadow=True)
    _, summary = monitor(project, mlflow_server, 0)
    day_5 = {w["role"]: w for w in summary["windows"] if w["window"] == "2026-11-05"}
    assert day_5["shadow"]["version"] == challenger
    assert day_5["shadow"]["roc_auc"] > day_5["served"]["roc_auc"]

    promoted = cli(project, mlflow_server, "promote", "--version", challenger, "--live")
    assert promoted.returncode == 0, promoted.stdout[-2000:] + promoted.stderr[-2000:]
    (live,) = [line for line in promoted.stdout.splitlines() if "on 2026-11-05" in line]
    assert "champion v2" in live and live.endswith(": ok")
    assert champion(client) == challenger
