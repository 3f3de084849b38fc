"""A project generated for a tracking server with authentication, against a real
`mlflow server --app-name basic-auth`: it trains with the user's credentials, fails fast and
clearly when they are wrong, and its secrets never leave .env and ZenML's secrets store."""

import base64
import json
import os
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from conftest import cli_calls, project_command, render, run
from servers import free_port

pytestmark = pytest.mark.lifecycle

PACKAGE = "fraud_detector"
SECRET = f"{PACKAGE}-remote-mlflow-mlflow"
REJECTED = "credentials rejected by {uri}: set MLFLOW_TRACKING_USERNAME/PASSWORD in .env"


@pytest.fixture(scope="module")
def project(tmp_path_factory, mlflow_auth_server) -> Path:
    """Rendered for basic auth with the user's password, then `make setup`."""
    username, password = mlflow_auth_server.user
    project = render(
        tmp_path_factory.mktemp("auth") / "fraud-detector",
        mlflow_tracking_uri=mlflow_auth_server.uri,
        mlflow_auth="basic",
        mlflow_username=username,
        mlflow_password=password,
    )
    result = run(["make", "setup"], cwd=project)
    assert f"created secret {SECRET}" in result.stdout
    return project


@pytest.fixture
def as_user(monkeypatch, mlflow_auth_server):
    """MLflow calls of the test itself authenticate as the non-admin user."""
    username, password = mlflow_auth_server.user
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    return MlflowClient(mlflow_auth_server.uri)


def cli(
    project: Path, *args: str, cwd: Path | None = None, **env: str
) -> tuple[subprocess.CompletedProcess, float]:
    """Run the project's command (may fail) in cwd (default: the project); return the result
    and its wall time."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    return project_command(project, list(args), {**base, **env}, cwd)


def test_train_with_basic_auth_registers_a_version_the_user_can_read(project, as_user):
    result = run(["make", "train"], cwd=project)
    versions = as_user.search_model_versions(f"name='{PACKAGE}'")
    assert versions, "no model version registered"
    latest = max(versions, key=lambda version: int(version.version))
    assert f"{PACKAGE} v{latest.version}" in result.stdout
    assert as_user.get_run(latest.run_id).data.metrics["roc_auc"] > 0.95


def test_env_file_holds_the_credentials_readable_by_the_owner_only(project, mlflow_auth_server):
    env_file = project / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600  # fixed by the CLI on first use
    text = env_file.read_text()
    assert f"MLFLOW_TRACKING_USERNAME={mlflow_auth_server.user[0]}\n" in text
    assert f"MLFLOW_TRACKING_PASSWORD={mlflow_auth_server.user[1]}\n" in text
    example = (project / ".env.example").read_text()
    assert "MLFLOW_TRACKING_PASSWORD=\n" in example and mlflow_auth_server.user[1] not in example


def test_doctor_reports_every_check_ok(project, mlflow_auth_server):
    result, seconds = cli(project, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [  # no ZenML server: no zenml line
        ["ok", "tracker:"],
        ["ok", "credentials:"],
        ["ok", "registry:"],
        ["ok", "server:"],
        ["ok", "permission:"],
        ["ok", "stack:"],
    ]
    assert "accepted (basic auth as alice)" in lines[1]
    assert "backend store: a SQL database" in lines[3]
    # alice trained first (the test above): she created the experiment and the model.
    held = f"alice: MANAGE on experiment '{PACKAGE}', MANAGE on registered model '{PACKAGE}'"
    assert lines[4].endswith(held)
    print(f"\n[timing] doctor, all ok: {seconds:.1f} s")


def test_stack_registration_is_idempotent_and_updates_the_secret_only_on_change(project):
    assert "Stack 'remote-mlflow' is up to date" in run(["make", "stack"], cwd=project).stdout
    changed = run(["make", "stack"], cwd=project, env={"MLFLOW_TRACKING_PASSWORD": "changed"})
    assert f"updated secret {SECRET}" in changed.stdout
    assert "experiment_tracker" not in changed.stdout  # the config only refers to the secret
    restored = run(["make", "stack"], cwd=project)  # back to .env's password
    assert f"updated secret {SECRET}" in restored.stdout


@pytest.fixture(scope="module")
def fast_failures(project) -> tuple[str, dict]:
    """doctor and train with a wrong password, then with an unreachable tracker (each call a
    process of its own: conftest.cli_calls): (the unreachable URI, {(command, "password" |
    "down"): (result, seconds)})."""
    uri = f"http://127.0.0.1:{free_port()}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    cases = [
        (command, "password", {"MLFLOW_TRACKING_PASSWORD": "wrong-password"})
        for command in ("doctor", "train")
    ]
    cases += [(command, "down", {"MLFLOW_TRACKING_URI": uri}) for command in ("doctor", "train")]
    results = cli_calls(project, [([command], {**base, **env}) for command, _, env in cases])
    return uri, {
        (command, why): result for (command, why, _), result in zip(cases, results, strict=True)
    }


@pytest.mark.parametrize("command", ["doctor", "train"])
def test_a_wrong_password_fails_fast_with_one_clear_line(
    fast_failures, mlflow_auth_server, command
):
    result, seconds = fast_failures[1][command, "password"]
    print(f"\n[timing] {command} with a wrong password: {seconds:.1f} s")
    assert result.returncode == 1
    assert REJECTED.format(uri=mlflow_auth_server.uri) in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("command", ["doctor", "train"])
def test_an_unreachable_tracker_fails_fast_with_one_clear_line(fast_failures, command):
    uri, results = fast_failures
    result, seconds = results[command, "down"]
    print(f"\n[timing] {command} with an unreachable tracker: {seconds:.1f} s")
    assert result.returncode == 1
    assert f"MLflow tracking server {uri} is unreachable" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def _files(root: Path, skip: set[str]) -> list[Path]:
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and not set(path.relative_to(root).parts[:1]) & skip
    ]


def _zenml_secret_values(database: Path) -> list[str]:
    """The decoded values of every secret in ZenML's local SQL secrets store (base64 JSON)."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute("select `values` from secret").fetchall()
    return [base64.b64decode(value).decode() for (value,) in rows]


def test_the_password_is_in_no_tracked_file_config_or_mlflow_record(
    project, mlflow_auth_server, isolated_zenml, as_user
):
    password = mlflow_auth_server.user[1]
    found = []

    # The generated project as git sees it: every file it would commit.
    run(["git", "init", "-q"], cwd=project)
    run(["git", "add", "-A"], cwd=project)
    tracked = run(["git", "ls-files"], cwd=project).stdout.split()
    assert ".copier-answers.yml" in tracked and ".env.example" in tracked
    assert ".env" not in tracked
    found += [name for name in tracked if password in (project / name).read_text(errors="ignore")]
    # Everything else on disk except .env and the virtualenv: ZenML's .zen, the artifact store.
    found += [
        str(path)
        for path in _files(project, {".env", ".venv", ".git"})
        if password.encode() in path.read_bytes()
    ]

    # ZenML's whole config dir. Its local store is a sqlite file in it: the secrets table keeps
    # values base64-encoded, so a raw search must find nothing, and decoding that table must
    # show that the password is there and only there (it is the secrets store).
    zenml_files = _files(isolated_zenml, set())
    assert any(path.name == "zenml.db" for path in zenml_files)
    found += [str(path) for path in zenml_files if password.encode() in path.read_bytes()]
    database = next(path for path in zenml_files if path.name == "zenml.db")
    assert sum(password in values for values in _zenml_secret_values(database)) == 1
    with sqlite3.connect(database) as connection:
        tables = [row[0] for row in connection.execute("select name from sqlite_master")]
        for table in set(tables) - {"secret"}:
            try:
                rows = connection.execute(f"select * from `{table}`").fetchall()
            except sqlite3.OperationalError:
                continue  # an index, not a table
            found += [f"zenml.db:{table}" for row in rows if password in repr(row)]

    # MLflow: params, tags and artifacts of every run, and the registered versions.
    for experiment in as_user.search_experiments():
        for mlflow_run in as_user.search_runs([experiment.experiment_id]):
            record = json.dumps([mlflow_run.data.params, mlflow_run.data.tags])
            found += [f"run {mlflow_run.info.run_id} params/tags"] if password in record else []
            with tempfile.TemporaryDirectory() as download:
                as_user.download_artifacts(mlflow_run.info.run_id, "", download)
                found += [
                    f"run {mlflow_run.info.run_id} artifact {path.name}"
                    for path in _files(Path(download), set())
                    if password.encode() in path.read_bytes()
                ]
    versions = as_user.search_model_versions(f"name='{PACKAGE}'")
    assert versions
    found += [
        f"{PACKAGE} v{version.version}"
        for version in versions
        if password in json.dumps([version.tags, version.description])
    ]
    print(f"\n[secrets] password occurrences outside .env and ZenML's secrets store: {found}")
    assert found == []


def test_token_auth_registers_the_token_as_the_trackers_auth(project, tmp_path, mlflow_auth_server):
    """MLflow's basic-auth app issues no tokens: the token is registered, and rejected there."""
    token = "tok-" + os.urandom(8).hex()
    other = render(
        tmp_path / "token-project",
        project_name="Token Project",
        mlflow_tracking_uri=mlflow_auth_server.uri,
        mlflow_auth="token",
        mlflow_token=token,
    )
    assert f"MLFLOW_TRACKING_TOKEN={token}\n" in (other / ".env").read_text()
    assert token not in (other / ".copier-answers.yml").read_text()
    # The first project's environment holds the same code; stacks/ and .env come from cwd.
    env = {"ZENML_CONFIG_PATH": str(tmp_path / "zenml")}
    result, _ = cli(project, "stack", cwd=other, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "created secret token_project-remote-mlflow-mlflow" in result.stdout
    query = (
        "from zenml.client import Client; from zenml.enums import StackComponentType as T; "
        "c = Client(); t = c.active_stack_model.components[T.EXPERIMENT_TRACKER][0]; "
        "import json; print(json.dumps([t.configuration, "
        "c.get_secret('token_project-remote-mlflow-mlflow').secret_values]))"
    )
    python = str(project / ".venv" / "bin" / "python")
    configuration, values = json.loads(
        run([python, "-c", query], cwd=other, env=env).stdout.splitlines()[-1]
    )
    assert configuration["tracking_token"] == "{{token_project-remote-mlflow-mlflow.token}}"
    assert "tracking_username" not in configuration or not configuration["tracking_username"]
    assert values == {"token": token}

    doctor, _ = cli(project, "doctor", cwd=other, **env)
    # The bearer token reaches the server, which refuses it (MLflow's basic-auth app does not
    # answer a token with 401 but with an error status): the credentials line fails, clearly.
    line = next(line for line in doctor.stdout.splitlines() if "credentials:" in line)
    print(f"\n[token] {line}")
    assert doctor.returncode == 1
    assert line.startswith("FAIL") and mlflow_auth_server.uri in line
    assert "Traceback" not in doctor.stdout + doctor.stderr


def test_answers_record_the_auth_method_but_no_secret(project):
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["mlflow_auth"] == "basic"
    assert answers["mlflow_username"] == "alice"
    assert "mlflow_password" not in answers and "mlflow_token" not in answers
    assert "mlflow_insecure_tls" not in answers  # http:// only
