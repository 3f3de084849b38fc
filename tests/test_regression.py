"""`task: regression`: a generated project predicts a number through the whole lifecycle, against
a real MLflow server: errors judged against maximums, regression plots, a numeric endpoint and
batch output; a regressor checked before any pipeline; a changed problem named by the gate.
The project runs on the newest Python it supports, 3.13."""

import csv
import json
import math
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from sklearn.datasets import load_diabetes

from conftest import project_command, python_on_path, render, run

pytestmark = pytest.mark.lifecycle

PACKAGE = "house_prices"


@pytest.fixture(scope="module")
def project(tmp_path_factory, mlflow_server) -> Path:
    project = render(
        tmp_path_factory.mktemp("regression") / "house-prices",
        project_name="House Prices",
        task="regression",
        large_data=True,  # training on a sample (data.sample_rows), batches streamed
        python_version="3.13",  # the newest supported (test_data_sources: the oldest)
    )
    # Set up as a user whose MLFLOW_TRACKING_URI names a server: no embedded database is made.
    env = {**python_on_path("3.13"), "MLFLOW_TRACKING_URI": mlflow_server}
    run(["make", "setup"], cwd=project, env=env)
    assert not list(project.glob("*/mlflow.db"))
    version = run([".venv/bin/python", "--version"], cwd=project).stdout
    assert version.startswith("Python 3.13."), version
    yield project
    run(["make", "undeploy"], cwd=project, env={"MLFLOW_TRACKING_URI": mlflow_server})


def cli(project: Path, server: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": server}
    return project_command(project, list(args), env, timeout=600)[0]


def training_config(project: Path, name: str, change) -> str:
    config = yaml.safe_load((project / "configs" / "training.yaml").read_text())
    change(config)
    (project / "configs" / name).write_text(yaml.safe_dump(config))
    return f"configs/{name}"


def test_all_trains_a_regressor_judged_on_errors_and_serves_numbers(project, mlflow_server):
    result = run(["make", "all"], cwd=project, env={"MLFLOW_TRACKING_URI": mlflow_server})
    client = MlflowClient(mlflow_server)
    champion = client.get_model_version_by_alias(PACKAGE, "champion")
    run_data = client.get_run(champion.run_id).data
    assert set(run_data.metrics) >= {"rmse", "mae", "r2", "mape", "baseline_r2", "baseline_rmse"}
    assert run_data.metrics["r2"] > 0.3 and run_data.metrics["rmse"] < 65
    assert abs(run_data.metrics["baseline_r2"]) < 0.05  # the training mean
    assert "training_r2_score" in run_data.metrics  # autologged
    plots = {Path(a.path).name for a in client.list_artifacts(champion.run_id, "plots")}
    assert plots == {"predicted_vs_actual.png", "residuals.png", "permutation_importance.png"}
    baseline_line = r"r2 0\.\d+ vs baseline -?0\.\d+ \(the training mean\): \+0\.\d+ better"
    assert re.search(baseline_line + r", needs \+0\.0500: ok", champion.description)
    prediction = re.search(r"prediction: +(\[.*\]) for the first", result.stdout).group(1)
    answer = json.loads(prediction.replace("'", '"'))
    assert isinstance(answer[0]["prediction"], float) and 25 < answer[0]["prediction"] < 346
    card = (project / "outputs" / "model_card.md").read_text()
    assert "| rmse |" in card and "| baseline +0.0500 |" in card  # r2's margin
    assert (project / "outputs" / "plots" / "residuals.png").is_file()  # the card's links resolve


def test_batch_inference_writes_one_number_per_row(project, mlflow_server):
    result = cli(project, mlflow_server, "batch-infer")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    with (project / "outputs" / "predictions.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 442 and "probability_0" not in rows[0]
    assert all(float(row["prediction"]) > 0 for row in rows)


def test_a_classifier_for_a_regression_task_fails_before_any_pipeline(project, mlflow_server):
    def classifier(config):
        config["model"] = {"estimator": "sklearn.linear_model.LogisticRegression", "params": {}}

    before = len(MlflowClient(mlflow_server).search_model_versions(f"name='{PACKAGE}'"))
    config = training_config(project, "classifier.yaml", classifier)
    result = cli(project, mlflow_server, "train", "--config", config)
    assert result.returncode == 1
    assert (
        "error: model.estimator: 'sklearn.linear_model.LogisticRegression' is not a "
        "scikit-learn regressor, and data.task is regression"
    ) in result.stderr.splitlines()
    assert "Traceback" not in result.stdout + result.stderr
    assert "Initiating a new run" not in result.stdout  # no pipeline started
    assert len(MlflowClient(mlflow_server).search_model_versions(f"name='{PACKAGE}'")) == before


def test_a_worse_regressor_is_rejected_on_its_error(project, mlflow_server):
    def dummy(config):
        config["model"] = {"estimator": "sklearn.dummy.DummyRegressor", "params": {}}

    config = training_config(project, "dummy.yaml", dummy)
    result = cli(project, mlflow_server, "train", "--config", config)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rejected" in result.stdout
    # The training mean, as the baseline: no gain over it, and worse than the champion.
    no_gain = r"r2 -?0\.\d+ vs baseline -?0\.\d+ \(the training mean\): [+-]0\.0000 better"
    assert re.search(no_gain + r", needs \+0\.0500: FAILED", result.stdout)
    worse = r"rmse \d+\.\d+ vs champion v\d+ \d+\.\d+: -\d+\.\d+ better, needs \+0\.0000: FAILED"
    assert re.search(worse, result.stdout)


def test_a_target_with_zeros_has_no_mape_and_a_threshold_on_it_fails(project, mlflow_server):
    """Counts and amounts hold zeros, where a percentage error has no value (scikit-learn's is
    then ~1e15): mape is nan in MLflow, null in the summary, and a maximum on it fails."""
    frame = load_diabetes(as_frame=True).frame
    frame["target"] = (frame["target"] - 100).clip(lower=0)  # a third of the rows are 0
    (project / "data").mkdir(exist_ok=True)
    frame.to_csv(project / "data" / "visits.csv", index=False)

    def zeros(config):
        config["data"]["source"] = "data/visits.csv"
        config["promotion"]["max_metrics"] = {"mape": 0.5}

    config = training_config(project, "zeros.yaml", zeros)
    summary = project / "outputs" / "zeros.json"
    result = cli(
        project, mlflow_server, "train", "--config", config, "--summary-json", str(summary)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mape nan, needs <= 0.5000: FAILED" in result.stdout
    trained = json.loads(summary.read_text())
    assert trained["metrics"]["mape"] is None and trained["metrics"]["rmse"] > 0
    assert trained["verdict"]["result"] == "rejected"
    metrics = MlflowClient(mlflow_server).get_run(trained["mlflow_run_id"]).data.metrics
    assert math.isnan(metrics["mape"]) and math.isnan(metrics["baseline_mape"])


def test_a_changed_input_schema_is_named_and_only_forced_through(project, mlflow_server):
    def fewer_columns(config):
        config["data"]["features"] = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5"]
        config["data"]["sample_rows"] = 300  # trained on a sample, which the card says

    client = MlflowClient(mlflow_server)
    champion = client.get_model_version_by_alias(PACKAGE, "champion").version
    config = training_config(project, "fewer.yaml", fewer_columns)
    result = cli(project, mlflow_server, "train", "--config", config)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "the problem changed since the champion (input columns removed ['s6']), "
        "needs promotion.allow_schema_change or promote --force: FAILED"
    ) in result.stdout
    assert client.get_model_version_by_alias(PACKAGE, "champion").version == champion
    card = (project / "outputs" / "model_card.md").read_text()
    assert "- trained on a sample of 300 of 353 rows (`data.sample_rows`)" in card
    version = max(int(v.version) for v in client.search_model_versions(f"name='{PACKAGE}'"))
    forced = cli(
        project, mlflow_server, "promote", "--version", str(version), "--force", "--config", config
    )
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert client.get_model_version_by_alias(PACKAGE, "champion").version == str(version)


def test_generated_unit_tests_pass_for_regression(project):
    run(["make", "test-unit"], cwd=project)
