"""A project generated for a ZenML server, against a real one on loopback (`zenml[server]`, its
own sqlite database, in an environment of its own): `make setup` logs in with a service
account's API key taken from the environment, the training pipeline runs through the server and
the run is visible there; a wrong key or a server that is down is one clear line; the key is
written nowhere."""

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from conftest import free_port, render, wait_until_healthy

pytestmark = pytest.mark.lifecycle

PACKAGE = "fraud_detector"
SERVICE_ACCOUNT = "fraud-detector-ci"
SERVER_REQUIREMENT = "zenml[server]==0.98.*"
OUTPUTS: list[str] = []  # everything the project's commands printed, searched for the key


@dataclass(frozen=True)
class ZenmlServer:
    url: str
    api_key: str  # the service account's
    workdir: Path  # the server's database and config

    def api(self, path: str, token: str, **query: str) -> dict:
        url = f"{self.url}/api/v1{path}?{urllib.parse.urlencode(query)}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.loads(reply.read())

    def token(self) -> str:
        """Log in as the service account, as the project does."""
        form = {"grant_type": "zenml-api-key", "password": self.api_key}
        return _post(f"{self.url}/api/v1/login", form)["access_token"]


def _post(url: str, form: dict | None = None, json_body: dict | None = None, token: str = ""):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if json_body is not None:
        data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    else:
        data = urllib.parse.urlencode(form or {}).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


@pytest.fixture(scope="module")
def zenml_server(tmp_path_factory) -> Iterator[ZenmlServer]:
    """`uvicorn zenml.zen_server.zen_server_api:app` (the entry point of `zenml login --local`
    and of ZenML's server image) with OAuth2 authentication, activated at start with an admin
    whose password only this fixture knows; a service account and its API key made over the
    REST API as an admin would."""
    workdir = tmp_path_factory.mktemp("zenml-server")
    port, admin_password = free_port(), f"admin-{secrets.token_hex(8)}"
    url = f"http://127.0.0.1:{port}"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_"))}
    env = {
        **inherited,
        "ZENML_SERVER": "true",
        "ZENML_CONFIG_PATH": str(workdir / "config"),
        "ZENML_STORE_URL": f"sqlite:///{workdir / 'server.db'}",
        "ZENML_SERVER_AUTO_ACTIVATE": "true",
        "ZENML_DEFAULT_USER_NAME": "admin",
        "ZENML_DEFAULT_USER_PASSWORD": admin_password,
        "ZENML_SERVER_JWT_SECRET_KEY": secrets.token_hex(32),
        "ZENML_ANALYTICS_OPT_IN": "false",
    }
    uv = Path(sys.executable).parent / "uv"
    command = [str(uv), "run", "--no-project", "--python", sys.executable]
    command += ["--with", SERVER_REQUIREMENT, "uvicorn", "zenml.zen_server.zen_server_api:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-server-header"]
    log = workdir / "server.log"
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        start_new_session=True,
    )
    try:
        wait_until_healthy(url, process, log, seconds=180)
        print(f"\n[timing] ZenML server ready in {time.perf_counter() - started:.1f} s")
        admin = _post(f"{url}/api/v1/login", {"username": "admin", "password": admin_password})
        token = admin["access_token"]
        account = _post(
            f"{url}/api/v1/service_accounts",
            json_body={"name": SERVICE_ACCOUNT, "active": True},
            token=token,
        )
        key = _post(
            f"{url}/api/v1/service_accounts/{account['id']}/api_keys",
            json_body={"name": "laptop"},
            token=token,
        )["body"]["key"]
        yield ZenmlServer(url, key, workdir)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


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
