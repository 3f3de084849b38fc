"""The TensorFlow/Keras variant: the same lifecycle as scikit-learn, against a real MLflow server.

TensorFlow is heavy (about 1.4 GB installed, ~12 s to import), so this module runs the whole
lifecycle once with `make all` (hyperparameter search on), then the generated project's own unit
tests.
"""

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer

from conftest import logged_reports, render, run

pytestmark = pytest.mark.lifecycle

PACKAGE = "tensor_guard"


@pytest.fixture(scope="module")
def project(tmp_path_factory, mlflow_server) -> Path:
    project = render(
        tmp_path_factory.mktemp("tensorflow") / "tensor-guard",
        project_name="Tensor Guard",
        model_framework="tensorflow",
        hyperparameter_tuning=True,
    )
    run(["make", "setup"], cwd=project, env={"MLFLOW_TRACKING_URI": mlflow_server})
    size = subprocess.run(["du", "-sm", ".venv"], cwd=project, capture_output=True, text=True)
    print(f"\n[size] tensorflow project .venv: {size.stdout.split()[0]} MB")
    yield project
    run(["make", "undeploy"], cwd=project, env={"MLFLOW_TRACKING_URI": mlflow_server})


def test_only_the_chosen_framework_is_installed(project):
    packages = run(["uv", "pip", "list", "--python", ".venv/bin/python"], cwd=project).stdout
    assert re.search(r"^tensorflow-cpu ", packages, re.M)
    assert re.search(r"^keras +3\.", packages, re.M)
    assert not (project / "src" / PACKAGE / "models" / "sklearn.py").exists()


def test_all_trains_promotes_deploys_and_serves_probabilities(project, mlflow_server, tmp_path):
    result = run(["make", "all"], cwd=project, env={"MLFLOW_TRACKING_URI": mlflow_server})
    phase = r"^  (train \+ promote|deploy|first prediction|total): +([\d.]+) s"
    phases = dict(re.findall(phase, result.stdout, re.M))
    print(f"\n[timing] tensorflow make all: {phases}")
    assert set(phases) == {"train + promote", "deploy", "first prediction", "total"}

    client = MlflowClient(mlflow_server)
    champion = client.get_model_version_by_alias(PACKAGE, "champion")
    run_data = client.get_run(champion.run_id).data
    assert run_data.metrics["roc_auc"] > 0.9  # the same metric names as scikit-learn
    # Autologged: the Pipeline's parameters, Keras's fit settings and losses per epoch
    assert "hidden_units=[32, 16]" in run_data.params["estimator__config"]
    assert len(client.get_metric_history(champion.run_id, "loss")) > 1

    # Two learning rates searched (15 epochs each), one child run each; the best one trained.
    trials = client.search_runs(
        [client.get_run(champion.run_id).info.experiment_id],
        f"tags.mlflow.parentRunId = '{champion.run_id}'",
    )
    assert sorted(float(t.data.params["learning_rate"]) for t in trials) == [0.001, 0.01]
    best = max(trials, key=lambda t: (t.data.metrics["cv_roc_auc"], -int(t.data.params["trial"])))
    learning_rate = float(run_data.params["optimizer_learning_rate"])
    assert learning_rate == pytest.approx(float(best.data.params["learning_rate"]))
    assert run_data.params["epochs"] == "15"
    card = logged_reports(client, champion, tmp_path)  # the same plots as scikit-learn's
    assert "**Gate verdict: promoted** (mode `enforce`)" in card

    url = re.search(r"serving: +v\d+ at (http://\S+)", result.stdout).group(1)
    # Rows as a user would send them (TensorFlow is not installed in this test environment).
    rows = load_breast_cancer(as_frame=True).frame.drop(columns=["target"]).head(5)
    payload = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        predictions = json.loads(response.read())["predictions"]
    assert len(predictions) == len(rows)
    for row in predictions:
        assert row["prediction"] in (0, 1)
        assert row["probability_0"] + row["probability_1"] == pytest.approx(1.0, abs=1e-4)
        assert row["prediction"] == int(row["probability_1"] > row["probability_0"])


def test_batch_inference_writes_labels_and_probabilities(project, mlflow_server):
    run(["make", "batch-infer"], cwd=project, env={"MLFLOW_TRACKING_URI": mlflow_server})
    header, *rows = (project / "outputs" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 569
    assert header.endswith("prediction,probability_0,probability_1,model_version,scored_at")


def test_generated_unit_tests_pass_for_tensorflow_with_a_feature_of_its_own_data(project):
    # The project's end-to-end test trains the same model `make all` trained above: its unit
    # tests are what is left to check (the e2e test runs for scikit-learn in test_ci.py), after
    # the first edit a user makes: a feature from columns only their data has.
    features = project / "src" / PACKAGE / "ml" / "features.py"
    size = '    return frame.assign(size=frame["mean radius"] * frame["mean texture"])\n'
    features.write_text(features.read_text().replace("    return frame\n", size, 1))
    result = run(["make", "test-unit"], cwd=project, timeout=1500)
    assert re.search(r"\d+ passed", result.stdout) and "skipped" not in result.stdout
