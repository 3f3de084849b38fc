"""A project generated for a ZenML server, against a real one on loopback (`zenml[server]`, its
own sqlite database, in an environment of its own): `make setup` logs in with a service
account's API key taken from the environment, the training pipeline runs through the server and
the run is visible there; a wrong key or a server that is down is one clear line; the key is
written nowhere."""

import base64
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

import servers
from conftest import render
from servers import SERVICE_ACCOUNT, ZenmlServer, free_port

pytestmark = pytest.mark.lifecycle

PACKAGE = "fraud_detector"
OUTPUTS: list[str] = []  # everything the project's commands printed, searched for the key


@pytest.fixture(scope="module")
def zenml_server(tmp_path_factory) -> Iterator[ZenmlServer]:
    started = time.perf_counter()
    with servers.zenml_server(tmp_path_factory.mktemp("zenml-server")) as server:
        print(f"\n[timing] ZenML server ready in {time.perf_counter() - started:.1f} s")
        yield server


def project_env(**env: str) -> dict[str, str]:
    """The user's environment: no session ZenML config (the project keeps its own in
    .zenml-server/, as a user's would), no tracker settings but the ones given."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ZENML_STORE_", "MLFLOW_TRACKING_")) and k != "ZENML_CONFIG_PATH"
    }
    return {**base, **env}


def execute(command: list[str], project: Path, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, cwd=project, env=project_env(**env), capture_output=True, text=True, timeout=900
    )
    OUTPUTS.append(result.stdout + result.stderr)
    return result


def succeed(command: list[str], project: Path, **env: str) -> subprocess.CompletedProcess:
    result = execute(command, project, **env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory, zenml_server, mlflow_server) -> Path:
    """Rendered for the server; `make setup` with the API key in the environment (no .env)."""
    project = render(
        tmp_path_factory.mktemp("zenml-server-project") / "fraud-detector",
        zenml_server_url=zenml_server.url,
    )
    assert not (project / ".env").exists()
    started = time.perf_counter()
    result = succeed(["make", "setup"], project, ZENML_STORE_API_KEY=zenml_server.api_key)
    print(f"\n[timing] make setup against the ZenML server: {time.perf_counter() - started:.1f} s")
    assert f"logged in to ZenML server {zenml_server.url} as {SERVICE_ACCOUNT}" in result.stdout
    assert "created stack fraud_detector-local" in result.stdout
    return project


def cli(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return execute([str(project / ".venv" / "bin" / PACKAGE), *args], project, **env)


@pytest.fixture(scope="module")
def trained(project, zenml_server, mlflow_server) -> str:
    """`make train` through the server, tracking to the MLflow server; returns its output."""
    started = time.perf_counter()
    result = succeed(
        ["make", "train"],
        project,
        ZENML_STORE_API_KEY=zenml_server.api_key,
        MLFLOW_TRACKING_URI=mlflow_server,
    )
    timing = re.search(r"time: +([\d.]+) s pipeline", result.stdout)
    assert timing, result.stdout[-2000:]
    wall = time.perf_counter() - started
    print(f"\n[timing] train through the ZenML server: {timing.group(1)} s pipeline, {wall:.1f} s")
    return result.stdout


def test_stack_is_registered_on_the_server_by_the_service_account(project, zenml_server):
    stacks = zenml_server.api("/stacks", zenml_server.token(), name="fraud_detector-local")
    assert stacks["total"] == 1
    owner = stacks["items"][0]["resources"]["user"]["name"]
    assert owner == SERVICE_ACCOUNT
    # ZenML's client settings for the server live in the project, without credentials.
    store = yaml.safe_load((project / ".zenml-server" / "config.yaml").read_text())["store"]
    assert (store["type"], store["url"]) == ("rest", zenml_server.url)
    assert not (project / ".zenml-server" / "credentials.yaml").exists()


def test_training_runs_through_the_server_and_the_run_is_visible_there(
    trained, zenml_server, mlflow_server
):
    # ZenML's MLflow tracker names the MLflow run after the ZenML pipeline run.
    run_id = re.search(r"MLflow run: +\S+/runs/(\w+)", trained).group(1)
    run_name = MlflowClient(mlflow_server).get_run(run_id).info.run_name
    runs = zenml_server.api("/runs", zenml_server.token(), name=run_name)
    assert runs["total"] == 1, runs
    run = runs["items"][0]
    assert run["body"]["status"] == "completed"
    assert run["resources"]["user"]["name"] == SERVICE_ACCOUNT
    assert run["resources"]["stack"]["name"] == "fraud_detector-local"
    models = zenml_server.api("/models", zenml_server.token(), name=PACKAGE)
    assert models["total"] == 1  # the Model Control Plane is on the server too


def test_doctor_reports_the_server_login(project, zenml_server):
    result = cli(project, "doctor", ZENML_STORE_API_KEY=zenml_server.api_key)
    assert result.returncode == 0, result.stdout + result.stderr
    line = result.stdout.splitlines()[0]
    assert line.split()[:2] == ["ok", "zenml:"]
    assert f"logged in to ZenML server {zenml_server.url} as {SERVICE_ACCOUNT}" in line


def error_line(result) -> str:
    """The one error line; the only other output is the hint that follows it."""
    error, hint = (result.stdout + result.stderr).strip().splitlines()
    assert hint.startswith("hint: ") and "login" in hint
    return error


@pytest.mark.parametrize("command", ["login", "train"])
def test_a_wrong_api_key_is_one_clear_line(project, zenml_server, command):
    result = cli(project, command, ZENML_STORE_API_KEY="ZENKEY_wrong")
    assert result.returncode == 1
    assert error_line(result) == (
        f"error: API key rejected by ZenML server {zenml_server.url}: set ZENML_STORE_API_KEY "
        "in .env (a service account's API key, see README.md 'ZenML server')"
    )


@pytest.mark.parametrize("command", ["login", "train"])
def test_a_server_that_is_down_is_one_clear_line(project, zenml_server, command):
    down = f"http://127.0.0.1:{free_port()}"
    result = cli(project, command, ZENML_STORE_URL=down, ZENML_STORE_API_KEY=zenml_server.api_key)
    assert result.returncode == 1
    assert error_line(result).startswith(f"error: ZenML server {down} is unreachable")


def test_a_missing_api_key_is_one_clear_line(project, zenml_server):
    result = cli(project, "login")
    assert result.returncode == 1
    assert error_line(result) == (
        f"error: ZenML server {zenml_server.url} needs an API key: set ZENML_STORE_API_KEY in "
        ".env or the environment (a service account's API key, see README.md 'ZenML server')"
    )


def test_the_api_key_is_written_nowhere(project, trained, zenml_server, mlflow_server):
    key = zenml_server.api_key
    secret_part = json.loads(base64.b64decode(key.removeprefix("ZENKEY_")))["key"]
    needles = [key.encode(), secret_part.encode()]
    found = []

    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["zenml_server_url"] == zenml_server.url

    # Every file of the project but the virtualenv: what git would commit, .zen, .zenml-server
    # (ZenML's client config), .zenml-artifacts (artifacts, step logs, the embedded MLflow).
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.split()
    assert ".copier-answers.yml" in tracked and ".zenml-server/config.yaml" not in tracked
    files = [p for p in project.rglob("*") if p.is_file() and ".venv" not in p.parts]
    assert any(".zenml-server" in path.parts for path in files)
    # The server's side: its database (API keys are stored hashed) and config.
    files += [p for p in zenml_server.workdir.rglob("*") if p.is_file()]
    found += [str(p) for p in files if any(needle in p.read_bytes() for needle in needles)]

    # Everything the project's commands printed.
    assert len(OUTPUTS) >= 2  # at least `make setup` and `make train`
    found += [f"output #{i}" for i, out in enumerate(OUTPUTS) if key in out or secret_part in out]

    # MLflow: params, tags and artifacts of every run on the tracking server.
    client = MlflowClient(mlflow_server)
    for experiment in client.search_experiments():
        for mlflow_run in client.search_runs([experiment.experiment_id]):
            record = json.dumps([mlflow_run.data.params, mlflow_run.data.tags])
            found += [f"run {mlflow_run.info.run_id}"] if secret_part in record else []
            with tempfile.TemporaryDirectory() as download:
                client.download_artifacts(mlflow_run.info.run_id, "", download)
                found += [
                    f"run {mlflow_run.info.run_id} artifact {path.name}"
                    for path in Path(download).rglob("*")
                    if path.is_file() and any(needle in path.read_bytes() for needle in needles)
                ]
    print(f"\n[secrets] API key occurrences: {found}")
    assert found == []
