"""A project generated for a ZenML server, against a real one on loopback (`zenml[server]` in an
environment of its own) whose database is MariaDB (Debian's `mariadb-server`, a server of its
own on a free port), as a team runs ZenML: `make setup` logs in with a service account's API
key taken from the environment; `make train`, then `all` (train, promote, deploy),
`batch-infer` and `undeploy` run through the server, and their runs, the production model
version and the model server's record are there, in MariaDB; a wrong key or a server that is
down is one clear line; the key is written nowhere, the server's database included.

A sqlite-backed ZenML server (what `zenml login --local` runs) is no longer tested here: the
project talks to either over the same REST API, MariaDB is the stricter backend (types,
lengths, character sets), and running this module on both would double its cost.
`servers.zenml_server()` still defaults to sqlite (benchmarks/bench.py times that one)."""

import base64
import csv
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer

import servers
from conftest import cli_calls, outcome, render
from servers import SERVICE_ACCOUNT, MariadbServer, ZenmlServer, free_port

pytestmark = pytest.mark.lifecycle

PACKAGE = "fraud_detector"
OUTPUTS: list[str] = []  # everything the project's commands printed, searched for the key


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariadbServer]:
    started = time.perf_counter()
    with servers.mariadb_server() as server:
        print(f"\n[timing] MariaDB ready in {time.perf_counter() - started:.1f} s")
        yield server


@pytest.fixture(scope="module")
def zenml_server(tmp_path_factory, mariadb) -> Iterator[ZenmlServer]:
    started = time.perf_counter()
    with servers.zenml_server(tmp_path_factory.mktemp("zenml-server"), mariadb.url) as server:
        seconds = time.perf_counter() - started
        print(f"\n[timing] ZenML server on MariaDB ready in {seconds:.1f} s")
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
    result = outcome(command, project, project_env(**env))
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


def test_stack_is_registered_on_the_server_by_the_service_account(project, zenml_server, mariadb):
    stacks = zenml_server.api("/stacks", zenml_server.token(), name="fraud_detector-local")
    assert stacks["total"] == 1
    owner = stacks["items"][0]["resources"]["user"]["name"]
    assert owner == SERVICE_ACCOUNT
    # The server keeps it in MariaDB (beside ZenML's own default stack), and has no sqlite
    # database of its own.
    assert mariadb.sql("SELECT name FROM stack ORDER BY name") == "default\nfraud_detector-local\n"
    assert not list(zenml_server.workdir.rglob("*.db"))
    # ZenML's client settings for the server live in the project, without credentials.
    store = yaml.safe_load((project / ".zenml-server" / "config.yaml").read_text())["store"]
    assert (store["type"], store["url"]) == ("rest", zenml_server.url)
    assert not (project / ".zenml-server" / "credentials.yaml").exists()


def test_training_runs_through_the_server_and_the_run_is_visible_there(
    trained, zenml_server, mlflow_server, mariadb
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
    assert mariadb.sql(f"SELECT status FROM pipeline_run WHERE name = '{run_name}'") == (
        "completed\n"
    )


@pytest.fixture(scope="module")
def lifecycle(project, trained, zenml_server, mlflow_server) -> Iterator[str]:
    """`make all` through the server after `make train`: a second version, judged against the
    first as champion, promoted and served; returns its output. Stops what it served."""
    started = time.perf_counter()
    result = succeed(
        ["make", "all"],
        project,
        ZENML_STORE_API_KEY=zenml_server.api_key,
        MLFLOW_TRACKING_URI=mlflow_server,
    )
    wall = time.perf_counter() - started
    phases = dict(
        re.findall(r"^  (train \+ promote|deploy|total): +([\d.]+) s", result.stdout, re.M)
    )
    print(f"\n[timing] all through the ZenML server on MariaDB: {phases}, {wall:.1f} s")
    yield result.stdout
    if model_servers(zenml_server)["total"]:  # a test failed before `undeploy`
        env = {"ZENML_STORE_API_KEY": zenml_server.api_key, "MLFLOW_TRACKING_URI": mlflow_server}
        cli(project, "undeploy", **env)


def model_servers(server: ZenmlServer) -> dict:
    """The model server records of this model on the ZenML server, with their configs."""
    return server.api("/services", server.token(), name=f"zenml-{PACKAGE}", hydrate="true")


def runs_of(server: ZenmlServer, pipeline: str) -> list[tuple[str, str]]:
    """(status, user) of each run of `pipeline` on the ZenML server."""
    runs = server.api("/runs", server.token(), pipeline_name=pipeline)["items"]
    return [(run["body"]["status"], run["resources"]["user"]["name"]) for run in runs]


def test_all_trains_promotes_and_deploys_through_the_server(
    lifecycle, trained, zenml_server, mlflow_server
):
    first = int(re.search(rf"model version: +{PACKAGE} v(\d+)", trained).group(1))
    trained_now = re.search(rf"trained: +{PACKAGE} v(\d+) \(([^)]*)\)", lifecycle)
    assert int(trained_now.group(1)) == first + 1
    assert "champion" in trained_now.group(2).split(", ")  # as good as the first: promoted
    served, url = re.search(r"serving: +v(\d+) at (http://\S+)", lifecycle).groups()
    assert served == trained_now.group(1)

    champion = MlflowClient(mlflow_server).get_model_version_by_alias(PACKAGE, "champion")
    assert champion.version == served
    done = ("completed", SERVICE_ACCOUNT)
    assert runs_of(zenml_server, "training_pipeline") == [done, done]
    assert runs_of(zenml_server, "deployment_pipeline") == [done]
    # The Model Control Plane on the server: the champion's ZenML version is the production
    # one, and the only one.
    production = zenml_server.api(
        "/model_versions", zenml_server.token(), model=PACKAGE, stage="production"
    )
    assert [v["name"] for v in production["items"]] == [champion.tags["zenml_model_version"]]

    # The model server's record is on the server, linked to that version; it answers.
    records = model_servers(zenml_server)
    assert records["total"] == 1, records
    record = records["items"][0]
    assert record["body"]["state"] == "active"
    assert record["metadata"]["config"]["registry_model_version"] == served
    assert record["metadata"]["prediction_url"] == url
    linked = record["resources"]["model_version"]
    assert linked["name"] == champion.tags["zenml_model_version"]
    rows = load_breast_cancer(as_frame=True).frame.drop(columns=["target"]).head(5)
    payload = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        predictions = json.loads(response.read())["predictions"]
    assert [row["prediction"] in (0, 1) for row in predictions] == [True] * 5


def through_server(project: Path, command: str, server: ZenmlServer, tracker: str):
    """The project's command through the ZenML server, tracking to `tracker`; must succeed."""
    started = time.perf_counter()
    result = cli(project, command, ZENML_STORE_API_KEY=server.api_key, MLFLOW_TRACKING_URI=tracker)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    print(f"\n[timing] {command} through the ZenML server: {time.perf_counter() - started:.1f} s")
    return result


def test_batch_inference_runs_through_the_server(
    project, lifecycle, zenml_server, mlflow_server, mariadb
):
    result = through_server(project, "batch-infer", zenml_server, mlflow_server)
    champion = MlflowClient(mlflow_server).get_model_version_by_alias(PACKAGE, "champion")
    assert f"model version:     {PACKAGE} v{champion.version}" in result.stdout
    with (project / "outputs" / "predictions.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 569  # the bundled breast-cancer set, one row per input row
    assert {row["model_version"] for row in rows} == {champion.version}
    assert {row["prediction"] for row in rows} == {"0", "1"}
    assert runs_of(zenml_server, "batch_inference_pipeline") == [("completed", SERVICE_ACCOUNT)]
    # Every run of this module, in MariaDB: two trainings, a deployment, a batch.
    assert mariadb.sql("SELECT status, COUNT(*) FROM pipeline_run GROUP BY status") == (
        "completed\t4\n"
    )


def test_undeploy_through_the_server_stops_the_model_server_and_drops_its_record(
    project, lifecycle, zenml_server, mlflow_server, mariadb
):
    url = re.search(r"serving: +v\d+ at (http://\S+)", lifecycle).group(1)
    served = re.search(r"serving: +v(\d+)", lifecycle).group(1)
    result = through_server(project, "undeploy", zenml_server, mlflow_server)
    assert f"stopped 1 server(s) of {PACKAGE} v{served}" in result.stdout
    with pytest.raises(OSError):
        urllib.request.urlopen(url.replace("/invocations", "/ping"), timeout=2)
    assert model_servers(zenml_server)["total"] == 0
    assert mariadb.sql("SELECT COUNT(*) FROM service") == "0\n"


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


@pytest.fixture(scope="module")
def refused(project, zenml_server) -> tuple[str, dict]:
    """login and train with a wrong API key, then with the server down, then login without a
    key, each a process of its own (conftest.cli_calls): (the URL that is down,
    {(command, "wrong key" | "down" | "no key"): result})."""
    down = f"http://127.0.0.1:{free_port()}"
    settings = {
        "wrong key": {"ZENML_STORE_API_KEY": "ZENKEY_wrong"},
        "down": {"ZENML_STORE_URL": down, "ZENML_STORE_API_KEY": zenml_server.api_key},
    }
    cases = [(command, why) for why in settings for command in ("login", "train")]
    calls = [([command], project_env(**settings[why])) for command, why in cases]
    cases.append(("login", "no key"))
    calls.append((["login"], project_env()))
    found = {}
    for case, (result, _) in zip(cases, cli_calls(project, calls), strict=True):
        OUTPUTS.append(result.stdout + result.stderr)
        found[case] = result
    return down, found


@pytest.mark.parametrize("command", ["login", "train"])
def test_a_wrong_api_key_is_one_clear_line(refused, zenml_server, command):
    result = refused[1][command, "wrong key"]
    assert result.returncode == 1
    assert error_line(result) == (
        f"error: API key rejected by ZenML server {zenml_server.url}: set ZENML_STORE_API_KEY "
        "in .env (a service account's API key, see README.md 'ZenML server')"
    )


@pytest.mark.parametrize("command", ["login", "train"])
def test_a_server_that_is_down_is_one_clear_line(refused, command):
    down, results = refused
    result = results[command, "down"]
    assert result.returncode == 1
    assert error_line(result).startswith(f"error: ZenML server {down} is unreachable")


def test_a_missing_api_key_is_one_clear_line(refused, zenml_server):
    result = refused[1]["login", "no key"]
    assert result.returncode == 1
    assert error_line(result) == (
        f"error: ZenML server {zenml_server.url} needs an API key: set ZENML_STORE_API_KEY in "
        ".env or the environment (a service account's API key, see README.md 'ZenML server')"
    )


def test_the_api_key_is_written_nowhere(
    project, trained, lifecycle, zenml_server, mlflow_server, mariadb
):
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
    # The server's side: its config, and its database (API keys are stored hashed): MariaDB's
    # data directory (tables, redo log), its log and its start-up files.
    files += [p for p in zenml_server.workdir.rglob("*") if p.is_file()]
    database = [p for p in mariadb.workdir.rglob("*") if p.is_file()]
    assert any(p.name == "ibdata1" for p in database) and any(p.suffix == ".ibd" for p in database)
    files += database
    found += [str(p) for p in files if any(needle in p.read_bytes() for needle in needles)]

    # Everything the project's commands printed.
    assert len(OUTPUTS) >= 5  # `make setup`, `make train`, `make all`, batch-infer, undeploy
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
