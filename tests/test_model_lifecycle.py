"""The model lifecycle of a generated project against a real MLflow server: the validation
gate and aliases, rollback, deployment with ZenML's MLflow deployer, batch inference.

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

from conftest import render, run

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
        mlflow_tracking_uri=mlflow_server,
        production_stack="kubernetes",  # for the `deploy --target kubernetes` test
    )
    run(["make", "setup"], cwd=project)
    for mode in ("enforce", "dry_run"):  # a deliberately worse model, judged in each mode
        config = (project / "configs" / "training.yaml").read_text()
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
    return subprocess.run(
        command,
        cwd=project,
        env={**os.environ, "MLFLOW_TRACKING_URI": server},
        capture_output=True,
        text=True,
    )


def alias(client: MlflowClient, name: str) -> str:
    return str(client.get_model_version_by_alias(PACKAGE, name).version)


def local_predictions(server: str, version: str, frame: pd.DataFrame) -> list:
    mlflow.set_tracking_uri(server)
    return list(mlflow.pyfunc.load_model(f"models:/{PACKAGE}/{version}").predict(frame))


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


def test_first_model_becomes_champion(project, mlflow_server, client):
    output = run_cli(project, mlflow_server, "train").stdout
    assert "gate:              promoted (enforce)" in output
    assert alias(client, "champion") == alias(client, "challenger") == "1"
    tags = client.get_model_version(PACKAGE, "1").tags
    assert tags["gate.result"] == "promoted" and tags["gate.mode"] == "enforce"
    assert {"gate.user", "gate.time", "gate.zenml_pipeline_run", "metric.roc_auc"} <= set(tags)

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


def test_worse_model_is_rejected_in_enforce_mode(project, mlflow_server, client):
    worse = "configs/worse_enforce.yaml"
    output = run_cli(project, mlflow_server, "train", "--config", worse).stdout
    assert "gate:              rejected (enforce)" in output
    assert "FAILED: roc_auc" in output
    assert alias(client, "champion") == "1"
    assert alias(client, "challenger") == "2"
    version = client.get_model_version(PACKAGE, "2")
    assert version.tags["gate.passed"] == "false"
    assert version.tags["gate.champion_version"] == "1"
    assert float(version.tags["champion_metric.roc_auc"]) > float(version.tags["metric.roc_auc"])
    assert "Validation gate (enforce): rejected" in version.description


def test_dry_run_reports_the_failure_and_promotes_anyway(project, mlflow_server, client):
    worse = "configs/worse_dry_run.yaml"
    output = run_cli(project, mlflow_server, "train", "--config", worse).stdout
    assert "promoted (dry run: would fail)" in output and "FAILED: roc_auc" in output
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
    assert served_predictions(url, example) == local_predictions(mlflow_server, "1", example)

    predicted = run_cli(project, mlflow_server, "predict").stdout.split()
    assert len(predicted) == len(example)


def test_bad_payloads_get_one_line_and_the_server_keeps_serving(project, mlflow_server, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("nope,columns\n1,2\n")
    result = run_cli(project, mlflow_server, "predict", "--input", str(bad), check=False)
    assert result.returncode == 1
    assert "rejected the request (400): Model is missing inputs" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli(project, mlflow_server, "predict").stdout.strip()


def test_redeploy_after_promotion_serves_the_new_version(project, mlflow_server, client):
    run_cli(project, mlflow_server, "promote", "--version", "2", "--force")
    assert alias(client, "champion") == "2"
    url = endpoint_of(run_cli(project, mlflow_server, "deploy").stdout)

    rows = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    v1, v2 = (local_predictions(mlflow_server, version, rows) for version in ("1", "2"))
    assert v1 != v2  # v2 predicts one class for every row; v1 does not
    assert served_predictions(url, rows) == v2

    status = run_cli(project, mlflow_server, "status").stdout
    assert status.count("endpoint:") == 1, status  # one server per model
    assert "serving v2 (running)" in status


def test_batch_inference_scores_every_row_with_the_champion(project, mlflow_server):
    output = run_cli(project, mlflow_server, "batch-infer").stdout
    assert f"{PACKAGE} v2" in output
    predictions = pd.read_csv(project / "outputs" / "predictions.csv")
    assert len(predictions) == 569  # the bundled breast-cancer set, one row per input row
    assert set(predictions["model_version"].astype(str)) == {"2"}
    assert predictions["prediction"].notna().all()


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
    assert "run_id" in (out / "image" / "model_dir" / "MLmodel").read_text()

    validate = [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict"]
    manifests = out / "manifests.yaml"
    checked = run([*validate, str(manifests)], cwd=project).stdout
    assert "passed for resource deployment/churn-guard" in checked
    assert "passed for resource service/churn-guard" in checked
    documents = list(yaml.safe_load_all(manifests.read_text()))
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image and documents[0]["spec"]["replicas"] == 2
    # The validator does catch a broken manifest.
    documents[0]["spec"]["replicas"] = "two"
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump_all(documents))
    broken = subprocess.run([*validate, str(tmp_path / "broken.yaml")], capture_output=True)
    assert broken.returncode != 0


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
