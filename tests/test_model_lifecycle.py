"""The model lifecycle of a generated project against a real MLflow server: hyperparameter
search, the validation gate and aliases, model cards, rollback, deployment with ZenML's MLflow
deployer, batch inference with its data drift gate.

The tests run in order and share one project, as a user would work through the lifecycle.
"""

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer

from conftest import logged_reports, outcome, render, run

pytestmark = pytest.mark.lifecycle

PACKAGE = "churn_guard"
WORSE_MODEL = """
model:
  estimator: sklearn.dummy.DummyClassifier
  params:
    strategy: most_frequent
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory, mlflow_server) -> Path:
    workdir = tmp_path_factory.mktemp("model-lifecycle")
    project = render(
        workdir / "churn",
        project_name="Churn Guard",
        # A production stack needs a tracker its cloud can reach (a loopback answer is refused);
        # every command here is pointed at the local test server by MLFLOW_TRACKING_URI.
        mlflow_tracking_uri="https://mlflow.team.example.com",
        production_stack="kubernetes",  # for the `deploy --target kubernetes` test
        hyperparameter_tuning=True,
        monitoring=True,  # batch inference's drift check comes with it
    )
    run(["make", "setup"], cwd=project, env={"MLFLOW_TRACKING_URI": mlflow_server})
    for mode in ("enforce", "dry_run"):  # a deliberately worse model, judged in each mode
        config = (project / "configs" / "training.yaml").read_text().split("\ntuning:")[0]
        config = re.sub(r"\nmodel:\n(  .*\n)+", WORSE_MODEL, config)
        (project / "configs" / f"worse_{mode}.yaml").write_text(
            config.replace("mode: enforce", f"mode: {mode}")
        )
    yield project
    run_cli(project, mlflow_server, "undeploy", check=False)


@pytest.fixture(scope="module")
def client(mlflow_server) -> MlflowClient:
    return MlflowClient(mlflow_server)


def run_cli(project: Path, server: str, *args: str, check: bool = True):
    command = [str(project / ".venv" / "bin" / PACKAGE), *args]
    if check:
        return run(command, cwd=project, env={"MLFLOW_TRACKING_URI": server})
    return outcome(command, project, {**os.environ, "MLFLOW_TRACKING_URI": server})


def alias(client: MlflowClient, name: str) -> str:
    return str(client.get_model_version_by_alias(PACKAGE, name).version)


def local_predictions(server: str, version: str, frame: pd.DataFrame) -> pd.DataFrame:
    """What the version answers in this process: a label and one probability per class."""
    mlflow.set_tracking_uri(server)
    return mlflow.pyfunc.load_model(f"models:/{PACKAGE}/{version}").predict(frame)


def same(served: list[dict], local: pd.DataFrame) -> bool:
    """The served JSON records and the local frame: the same labels, probabilities up to the
    JSON encoding's rounding."""
    served_frame = pd.DataFrame(served)
    if list(served_frame.columns) != list(local.columns):
        return False
    try:
        pd.testing.assert_frame_equal(served_frame, local, check_dtype=False, atol=1e-6)
    except AssertionError:
        return False
    return True


def served_predictions(url: str, frame: pd.DataFrame) -> list:
    body = frame.to_json(orient="split", index=False)
    request = urllib.request.Request(
        url,
        data=f'{{"dataframe_split": {body}}}'.encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["predictions"]


def endpoint_of(output: str) -> str:
    return re.search(r"endpoint: +(http://\S+)", output).group(1)


def test_first_model_is_tuned_and_becomes_champion(project, mlflow_server, client, tmp_path):
    output = run_cli(project, mlflow_server, "train").stdout
    assert "gate:              promoted (enforce)" in output
    assert alias(client, "champion") == alias(client, "challenger") == "1"

    # Hyperparameter search: one child run per candidate of configs/training.yaml (a grid of
    # four values of C), and the registered version trained with the best candidate's C.
    version = client.get_model_version(PACKAGE, "1")
    parent = client.get_run(version.run_id)
    trials = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{version.run_id}'"
    )
    assert sorted(float(t.data.params["params.C"]) for t in trials) == [0.01, 0.1, 1.0, 10.0]
    best = max(trials, key=lambda t: (t.data.metrics["cv_roc_auc"], -int(t.data.params["trial"])))
    assert parent.data.params["estimator__C"] == best.data.params["params.C"]  # autologged
    assert parent.data.params["tuning.best_trial"] == best.data.params["trial"]
    assert f"tuning:            best of 4 grid trials: trial-{best.data.params['trial']}" in output
    card = logged_reports(client, version, tmp_path)
    assert "**Gate verdict: promoted** (mode `enforce`)" in card
    assert f"- `estimator__C`: {best.data.params['params.C']}" in card
    # The registry's Versions table stays readable: a few tags (verdict, lineage); the metrics
    # live in the run, the verdict and its checks in the version's description.
    tags = client.get_model_version(PACKAGE, "1").tags
    assert set(tags) == {
        "gate",
        "model_card",
        "zenml_model_version",
        "zenml_pipeline_run_id",
        "training_fingerprint",
    }
    assert tags["gate"] == "promoted"
    assert parent.data.metrics["roc_auc"] > 0.9
    assert "Validation gate (enforce): promoted" in version.description
    assert (
        "The alias `champion` is the version in production"
        in client.get_registered_model(PACKAGE).description
    )

    stage = run(
        [
            ".venv/bin/python",
            "-c",
            "from zenml.client import Client; "
            f"print(Client().get_model_version('{PACKAGE}', 'production').number)",
        ],
        cwd=project,
    ).stdout.split()[-1]
    assert stage == tags["zenml_model_version"]  # ZenML's production version is the champion


def test_worse_model_is_rejected_in_enforce_mode(project, mlflow_server, client, tmp_path):
    worse = "configs/worse_enforce.yaml"
    output = run_cli(project, mlflow_server, "train", "--config", worse).stdout
    assert "gate:              rejected (enforce)" in output
    # The most frequent class: no better than the baseline, worse than the champion.
    assert (
        "roc_auc 0.5000 vs baseline 0.5000 (the class shares): +0.0000 better, needs +0.0500: "
        "FAILED" in output
    )
    assert alias(client, "champion") == "1"
    assert alias(client, "challenger") == "2"
    version = client.get_model_version(PACKAGE, "2")
    assert version.tags["gate"] == "rejected"
    worse = r"roc_auc 0\.\d+ vs champion v1 0\.9\d+: -0\.\d+ better, needs \+0\.0000: FAILED"
    assert re.search(worse, version.description)
    assert "Validation gate (enforce): rejected" in version.description
    card = logged_reports(client, version, tmp_path)
    assert "**Gate verdict: rejected** (mode `enforce`)" in card
    header = "| metric | this version | baseline | threshold | champion v1 | better by | needed |"
    assert header in card and "| roc_auc | 0.5000 | 0.5000 | baseline +0.0500 |" in card
    assert "- `estimator`: DummyClassifier(" in card  # autologged, as scikit-learn prints it


def test_dry_run_reports_the_failure_and_promotes_anyway(project, mlflow_server, client):
    worse = "configs/worse_dry_run.yaml"
    output = run_cli(project, mlflow_server, "train", "--config", worse).stdout
    assert "promoted (dry run: would fail)" in output and "better, needs +0.0500: FAILED" in output
    assert alias(client, "champion") == alias(client, "challenger") == "3"
    assert client.get_model_version(PACKAGE, "3").tags["previous_champion"] == "1"


def test_rollback_moves_the_champion_back(project, mlflow_server, client):
    output = run_cli(project, mlflow_server, "rollback").stdout
    assert "champion rolled back from v3 to v1" in output
    assert alias(client, "champion") == "1"
    assert "to v1" in client.get_model_version(PACKAGE, "3").tags["rolled_back"]


def test_promote_runs_the_gate_unless_forced(project, mlflow_server, client):
    refused = run_cli(project, mlflow_server, "promote", "--version", "2", check=False)
    assert refused.returncode == 1 and "rejected" in refused.stdout
    assert alias(client, "champion") == "1"


def test_deploy_serves_the_champion_and_answers_its_input_example(project, mlflow_server):
    output = run_cli(project, mlflow_server, "deploy").stdout
    assert f"{PACKAGE} v1" in output
    url = endpoint_of(output)
    mlflow.set_tracking_uri(mlflow_server)
    example = mlflow.pyfunc.load_model(f"models:/{PACKAGE}/1").input_example
    served = served_predictions(url, example)
    assert same(served, local_predictions(mlflow_server, "1", example))
    assert set(served[0]) == {"prediction", "probability_0", "probability_1"}

    predicted = run_cli(project, mlflow_server, "predict").stdout.splitlines()
    assert len(predicted) == len(example)  # one JSON object per row
    assert json.loads(predicted[0]).keys() == served[0].keys()


def test_bad_payloads_get_one_line_and_the_server_keeps_serving(project, mlflow_server, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("nope,columns\n1,2\n")
    result = run_cli(project, mlflow_server, "predict", "--input", str(bad), check=False)
    assert result.returncode == 1
    assert "rejected the request (400): Model is missing inputs" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli(project, mlflow_server, "predict").stdout.strip()


def test_redeploy_after_promotion_serves_the_new_version(project, mlflow_server, client, tmp_path):
    run_cli(project, mlflow_server, "promote", "--version", "2", "--force")
    assert alias(client, "champion") == "2"
    card = logged_reports(client, client.get_model_version(PACKAGE, "2"), tmp_path)
    assert "**Gate verdict: promoted (forced)** (mode `forced`)" in card  # written again
    url = endpoint_of(run_cli(project, mlflow_server, "deploy").stdout)

    rows = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    v1, v2 = (local_predictions(mlflow_server, version, rows) for version in ("1", "2"))
    assert not v1["prediction"].equals(v2["prediction"])  # v2: one class for every row
    assert same(served_predictions(url, rows), v2)

    status = run_cli(project, mlflow_server, "status").stdout
    assert status.count("endpoint:") == 1, status  # one server per model
    assert "serving v2 (running)" in status


def test_batch_inference_scores_every_row_with_the_champion(project, mlflow_server, client):
    output = run_cli(project, mlflow_server, "batch-infer").stdout
    assert f"{PACKAGE} v2" in output
    predictions = pd.read_csv(project / "outputs" / "predictions.csv")
    assert len(predictions) == 569  # the bundled breast-cancer set, one row per input row
    assert set(predictions["model_version"].astype(str)) == {"2"}
    assert predictions["prediction"].notna().all()

    # The batch is the data the model was trained on (and more): no drift, and the report says
    # so, in the project and in the batch run's MLflow artifacts.
    # 30 features and the target, which this batch holds too.
    assert "drift:             no drift: 0 of 31 columns drifted" in output
    report = json.loads((project / "outputs" / "drift_report.json").read_text())
    assert report["dataset_drift"] is False and len(report["columns"]) == 31
    assert "target" in {column["column"] for column in report["columns"]}
    assert report["compared"] == "the model's features (its add_features output)"
    run_id = re.search(r"runs/(\w+)", output).group(1)
    logged = {a.path for a in client.list_artifacts(run_id, "drift")}
    assert logged == {"drift/drift_report.md", "drift/drift_report.json"}
    # MLflow keeps a description of the batch and a sample of the output, not a copy of either.
    (batch,) = client.get_run(run_id).inputs.dataset_inputs
    assert json.loads(batch.dataset.profile) == {"num_rows": 569}
    assert batch.dataset.source_type == "sklearn" and len(batch.dataset.digest) == 16
    assert [a.path for a in client.list_artifacts(run_id, "predictions")] == [
        "predictions/sample.json"
    ]


def test_a_bad_chunk_half_way_stops_and_leaves_the_previous_output(project, mlflow_server):
    """Scored 100 rows at a time, a text value in a number column at row 401 stops batch
    inference in one line that names the rows; the last run's predictions stay as they were."""
    output = project / "outputs" / "predictions.csv"
    before = output.read_bytes()
    rows = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    rows = rows.astype({"mean radius": object})
    rows.loc[400, "mean radius"] = "abc"
    rows.to_csv(project / "bad_row.csv", index=False)
    config = (project / "configs" / "batch_inference.yaml").read_text()
    config = config.replace("input: sklearn:breast_cancer", "input: bad_row.csv")
    path = project / "configs" / "bad_row.yaml"
    path.write_text(config.replace("chunk_rows: 100000", "chunk_rows: 100"))
    result = run_cli(project, mlflow_server, "batch-infer", "--config", str(path), check=False)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: the batch (rows 401-500) does not fit the model: column 'mean radius' holds "
        "numbers and text ('abc'): a number column must hold only numbers; leave a cell empty "
        "to count it as missing"
    ]
    assert "Traceback" not in result.stdout + result.stderr
    assert output.read_bytes() == before
    assert sorted(p.name for p in output.parent.glob("*predictions*")) == ["predictions.csv"]


@pytest.fixture(scope="module")
def drifted_batch(project) -> Path:
    """The breast-cancer rows with every feature shifted by one standard deviation."""
    rows = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    rows = rows.sample(200, random_state=1)
    path = project / "drifted.csv"
    (rows + rows.std()).to_csv(path, index=False)
    return path


def batch_config(project: Path, mode: str) -> str:
    config = (project / "configs" / "batch_inference.yaml").read_text()
    config = config.replace("input: sklearn:breast_cancer", "input: drifted.csv")
    path = project / "configs" / f"drifted_{mode}.yaml"
    path.write_text(config.replace("mode: warn", f"mode: {mode}"))
    return str(path)


def test_a_drifted_batch_is_scored_with_a_warning_in_warn_mode(
    project, mlflow_server, drifted_batch
):
    config = batch_config(project, "warn")
    result = run_cli(project, mlflow_server, "batch-infer", "--config", config)
    assert "drift:             DRIFT: 30 of 30 columns drifted" in result.stdout
    assert "warning: data drift: DRIFT: 30 of 30 columns drifted" in result.stderr
    assert len(pd.read_csv(project / "outputs" / "predictions.csv")) == 200


def test_a_drifted_batch_stops_batch_inference_in_fail_mode(project, mlflow_server, drifted_batch):
    config = batch_config(project, "fail")
    result = run_cli(project, mlflow_server, "batch-infer", "--config", config, check=False)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: the batch drifted from the training data: 30 of 30 columns drifted (100%; "
        "threshold: any column at adjusted p < 0.05); nothing was scored (drift.mode: "
        f"fail); report: {project / 'outputs' / 'drift_report.md'}"
    ]
    assert "hint: read the report" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    report = json.loads((project / "outputs" / "drift_report.json").read_text())
    assert report["dataset_drift"] is True and report["batch_rows"] == 200


def test_a_batch_without_a_model_column_stops_before_the_pipeline(project, mlflow_server):
    """The champion's input columns come from its signature: a batch without one of them is
    refused by the preflight, naming the batch's config, before ZenML runs a step."""
    rows = load_breast_cancer(as_frame=True).frame.drop(columns=["target", "mean radius"])
    rows.head(20).to_csv(project / "partial.csv", index=False)
    config = (project / "configs" / "batch_inference.yaml").read_text()
    path = project / "configs" / "partial.yaml"
    path.write_text(config.replace("input: sklearn:breast_cancer", "input: partial.csv"))

    result = run_cli(project, mlflow_server, "batch-infer", "--config", str(path), check=False)

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: the batch does not fit the model: missing required column(s): 'mean radius'"
    ]
    assert "hint: fix the batch (`input` in configs/batch_inference.yaml)" in result.stderr
    assert "Batch inference:" not in result.stdout + result.stderr  # no pipeline started
    assert "Traceback" not in result.stdout + result.stderr


def test_kubernetes_target_writes_an_image_of_the_champion_and_valid_manifests(
    project, mlflow_server, tmp_path
):
    output = run_cli(project, mlflow_server, "deploy", "--target", "kubernetes").stdout
    out = project / "build" / "deploy" / "kubernetes" / "churn-guard-v2"
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/churn-guard-server:v2"
    assert f"docker push {image}" in output
    assert "kubectl --context churn-guard-cluster --namespace churn-guard apply" in output

    dockerfile = (out / "image" / "Dockerfile").read_text()  # mlflow models generate-dockerfile
    assert dockerfile.startswith("# Build an image that can serve mlflow models.")
    assert "COPY model_dir /opt/ml/model" in dockerfile
    assert "\nUSER 10001:10001\n" in dockerfile  # appended: the server runs unprivileged
    assert "run_id" in (out / "image" / "model_dir" / "MLmodel").read_text()

    validate = [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict"]
    manifests = out / "manifests.yaml"
    checked = run([*validate, str(manifests)], cwd=project).stdout
    assert "passed for resource deployment/churn-guard" in checked
    assert "passed for resource service/churn-guard" in checked
    assert "passed for resource poddisruptionbudget/churn-guard" in checked  # 2 replicas
    documents = list(yaml.safe_load_all(manifests.read_text()))
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image and documents[0]["spec"]["replicas"] == 2
    # The validator does catch a broken manifest.
    documents[0]["spec"]["replicas"] = "two"
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump_all(documents))
    broken = subprocess.run([*validate, str(tmp_path / "broken.yaml")], capture_output=True)
    assert broken.returncode != 0


DERIVED_FEATURE = '    return frame.assign(area_ratio=frame["worst area"] / frame["mean area"])\n'


def test_a_feature_added_in_features_py_is_computed_by_the_served_model(
    project, mlflow_server, client
):
    """The extension point for feature engineering: one function in ml/features.py. The model
    computes the feature itself, so serving, predict and batch-infer take the raw columns."""
    features = project / "src" / PACKAGE / "ml" / "features.py"
    original = features.read_text()
    features.write_text(original.replace("    return frame\n", DERIVED_FEATURE))
    try:
        trained = run_cli(project, mlflow_server, "train").stdout
        version = re.search(rf"model version: +{PACKAGE} v(\d+)", trained).group(1)
        assert alias(client, "champion") == version, trained
        url = endpoint_of(run_cli(project, mlflow_server, "deploy").stdout)
        predicted = run_cli(project, mlflow_server, "predict").stdout.splitlines()
        batch = run_cli(project, mlflow_server, "batch-infer").stdout
    finally:
        features.write_text(original)
    mlflow.set_tracking_uri(mlflow_server)
    served = mlflow.pyfunc.load_model(f"models:/{PACKAGE}/{version}")
    raw = list(load_breast_cancer(as_frame=True).feature_names)
    assert served.metadata.get_input_schema().input_names() == raw  # callers send raw columns
    model = served.unwrap_python_model().model  # the fitted Pipeline
    encoded = model.named_steps["inputs"].named_steps["encode"].get_feature_names_out()
    assert "numeric__area_ratio" in encoded
    rows = load_breast_cancer(as_frame=True).frame.drop(columns=["target"]).head(5)
    # A fresh process loads the version with the code it was logged with (this one has
    # imported the package's modules of earlier versions).
    load = (
        "import json, sys, mlflow, pandas as pd; "
        f"model = mlflow.pyfunc.load_model('models:/{PACKAGE}/{version}'); "
        "rows = pd.read_json(sys.stdin, orient='split'); "
        "print(json.dumps([int(p) for p in model.predict(rows)['prediction']]))"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", load],
        input=rows.to_json(orient="split", index=False),
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_server},
        capture_output=True,
        text=True,
        check=True,
    )
    labels = [row["prediction"] for row in served_predictions(url, rows)]
    assert labels == json.loads(fresh.stdout.splitlines()[-1])
    assert len(predicted) == len(served.input_example)
    # Drift compares what the model sees: the 30 raw columns, area_ratio and the target.
    assert f"{PACKAGE} v{version}" in batch and "0 of 32 columns drifted" in batch


def test_undeploy_leaves_no_process_behind(project, mlflow_server):
    url = endpoint_of(run_cli(project, mlflow_server, "status").stdout)
    port = url.split(":")[2].split("/")[0]
    output = run_cli(project, mlflow_server, "undeploy").stdout
    assert "stopped 1 server(s)" in output
    with pytest.raises(OSError):
        urllib.request.urlopen(url.replace("/invocations", "/health"), timeout=2)
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"--port {port}" not in processes
    assert "local_daemon_entrypoint" not in "".join(
        line for line in processes.splitlines() if str(project) in line
    )
