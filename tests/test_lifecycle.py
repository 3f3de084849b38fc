"""A generated project, set up and used as its README says, against real MLflow backends."""

import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from conftest import logged_reports, render, run

pytestmark = pytest.mark.lifecycle

PACKAGE = "fraud_detector"
METRICS = {"accuracy", "precision", "recall", "f1", "roc_auc"}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The default answers, rendered and set up with `make setup` (uv, install, stack)."""
    project = render(tmp_path_factory.mktemp("lifecycle") / "fraud-detector")
    result = run(["make", "setup"], cwd=project)
    assert "Stack 'local' is ready and active." in result.stdout
    return project


def train(project: Path, **env: str):
    result = run(["make", "train"], cwd=project, env=env)
    timing = re.search(r"time: +([\d.]+) s pipeline, ([\d.]+) s in this command", result.stdout)
    assert timing, result.stdout[-2000:]
    print(
        f"\n[timing] make train ({env or 'embedded'}): {timing.group(2)} s command, "
        f"{timing.group(1)} s pipeline"
    )
    return result


def latest_version(client: MlflowClient, name: str = PACKAGE):
    versions = client.search_model_versions(f"name='{name}'")
    assert versions, f"no version of {name} registered"
    return max(versions, key=lambda version: int(version.version))


def test_cli_offers_every_documented_command(project):
    help_text = run([f".venv/bin/{PACKAGE}", "--help"], cwd=project).stdout
    commands = ["stack", "train", "promote", "rollback", "status", "deploy", "predict"]
    commands += ["undeploy", "batch-infer", "all", "doctor", "mlflow-ui"]
    for command in commands:
        assert re.search(rf"^  {command} ", help_text, re.M), f"{command} missing:\n{help_text}"
    assert not re.search(r"^  login ", help_text, re.M)  # only with a ZenML server


def test_setup_is_idempotent(project):
    result = run(["make", "stack"], cwd=project)
    assert "Stack 'local' is up to date and active." in result.stdout


def test_train_against_an_mlflow_server_logs_and_registers(project, mlflow_server, tmp_path):
    result = train(project, MLFLOW_TRACKING_URI=mlflow_server)

    client = MlflowClient(mlflow_server)
    version = latest_version(client)
    run_data = client.get_run(version.run_id).data
    assert set(run_data.metrics) >= METRICS
    assert run_data.metrics["roc_auc"] > 0.95
    # Autologged: every parameter of the Pipeline's steps, defaults included.
    assert run_data.params["estimator"] == "LogisticRegression(max_iter=1000)"
    assert run_data.params["estimator__C"] == "1.0" and "training_roc_auc" in run_data.metrics
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.pyfunc.load_model(f"models:/{PACKAGE}/{version.version}")
    example = model.input_example
    assert list(example.columns) == model.metadata.get_input_schema().input_names()
    assert set(model.predict(example)["prediction"]) <= {0, 1}
    assert f"{PACKAGE} v{version.version}" in result.stdout
    assert f"{mlflow_server}/#/experiments/" in result.stdout

    # ZenML's side, in one process (each imports ZenML): the Model Control Plane version of
    # this run records the MLflow registration; the run shows the same plots and card as
    # visualizations (the dashboard shows those).
    query = (
        "from zenml.client import Client; "
        "from zenml.artifacts.utils import load_artifact_visualization as load; "
        f"version = Client().get_model_version('{PACKAGE}', 'latest'); "
        "print(version.run_metadata['mlflow']['version'], version.run_metadata['metrics']); "
        f"run = Client().get_pipeline_run('{version.tags['zenml_pipeline_run_id']}'); "
        "html = run.steps['evaluate'].outputs['evaluation_report'][0]; "
        "card = run.steps['promote'].outputs['model_card'][0]; "
        "print(html.visualizations[0].type.value, load(html).value.count('data:image/png')); "
        "print(card.visualizations[0].type.value, load(card).value.splitlines()[0])"
    )
    *_, registered, html, markdown = run(
        [".venv/bin/python", "-c", query], cwd=project
    ).stdout.splitlines()
    assert registered.split()[0] == version.version
    assert [html, markdown] == ["html 5", f"markdown # Model card: {PACKAGE} v{version.version}"]

    # Plots and the model card in the MLflow run, and a local copy of the card.
    card = logged_reports(client, version, tmp_path)
    assert "**Gate verdict: promoted** (mode `enforce`)" in card
    assert "| roc_auc |" in card and "![confusion matrix](plots/confusion_matrix.png)" in card
    assert "| template version |" in card and "| ZenML pipeline run |" in card
    assert (project / "outputs" / "model_card.md").read_text() == card
    assert "model card:        outputs/model_card.md" in result.stdout


def test_train_with_the_embedded_default_keeps_mlflow_in_the_project(project, tmp_path):
    train(project)  # no MLFLOW_TRACKING_URI: the answer (empty) means embedded MLflow

    database = project / ".zenml-artifacts" / "mlflow.db"
    assert database.is_file()
    client = MlflowClient(f"sqlite:///{database}")
    version = latest_version(client)
    assert set(client.get_run(version.run_id).data.metrics) >= METRICS
    with sqlite3.connect(database) as connection:
        (count,) = connection.execute("select count(*) from model_versions").fetchone()
    assert count >= 1
    assert not (project / "mlruns").exists() and not Path("mlruns").exists()


def test_a_second_training_registers_the_next_version_reusing_no_lost_artifact(
    project, mlflow_server
):
    """`make clean` deletes .zenml-artifacts while ZenML's store keeps its cache of the data
    steps: the next training must not be handed cached artifacts whose files are gone. (A
    second training with the artifacts in place: the embedded one above, and every module
    that trains twice.)"""
    client = MlflowClient(mlflow_server)
    before = int(latest_version(client).version)
    shutil.rmtree(project / ".zenml-artifacts")
    train(project, MLFLOW_TRACKING_URI=mlflow_server)
    assert int(latest_version(client).version) == before + 1

    # Nothing changed since: `train --if-changed` names that version and trains nothing.
    command = [f".venv/bin/{PACKAGE}", "train", "--if-changed"]
    result = run(command, cwd=project, env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert f"Unchanged: the data, config, code and uv.lock of {PACKAGE} v{before + 1}." in (
        result.stdout
    )
    assert int(latest_version(client).version) == before + 1
    assert "nothing trained" in result.stdout


# The generated project's `make lint` and `make test` run in tests/test_ci.py, as its CI job
# runs them (test_ci_test_job_runs_as_written_and_passes).


# The oldest and newest supported Python (3.11, the default, runs everywhere else): the
# projects of tests/test_data_sources.py (3.10) and tests/test_regression.py (3.13) install,
# run their whole lifecycle and pass their own tests on them.


# Last in this module: it changes the shared project's MLflow for good.
def test_internals_pass_on_mlflow_3_18_0(project):
    """The range allows mlflow 3.18, but uv resolves 3.17.2 (mlflow 3.18.0 needs
    mlflow-tracing==3.18.0, which is not on PyPI), so every other test runs on the floor.
    mlflow and mlflow-skinny 3.18.0, installed without their dependencies (plus the one new to
    3.18), prove the project's ZenML and MLflow internals on the newest version allowed."""
    venv = ["--python", ".venv/bin/python"]
    wheels = ["mlflow==3.18.0", "mlflow-skinny==3.18.0", "python-multipart>=0.0.18,<1"]
    install = ["uv", "pip", "install", *venv, "--no-deps", *wheels]
    installed = subprocess.run(install, cwd=project, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-500:]  # from PyPI, as every install
    version = "import mlflow; print(mlflow.__version__)"
    assert run([".venv/bin/python", "-c", version], cwd=project).stdout.strip() == "3.18.0"
    result = run([".venv/bin/pytest", "tests/test_internals.py", "-q"], cwd=project)  # exit 0
    assert re.search(r"\d+ passed", result.stdout), result.stdout[-2000:]
