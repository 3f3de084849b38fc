"""`serving: pipeline-deployment`: the generated project's own commands serve the champion with
ZenML's local Deployer (an inference pipeline), against a real MLflow server."""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import project_command, render, run

pytestmark = pytest.mark.lifecycle

# A model name of its own: the session's MLflow server holds other modules' fraud_detector.
PACKAGE = "pipeline_scorer"
CLI = f".venv/bin/{PACKAGE}"


@pytest.fixture(scope="module")
def project(tmp_path_factory, mlflow_server) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("pipeline-serving")
    project = render(
        folder / "pipeline-scorer", project_name="Pipeline Scorer", serving="pipeline-deployment"
    )
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    run(["make", "setup"], cwd=project, env=env)
    yield project, env
    subprocess.run([CLI, "undeploy"], cwd=project, env={**os.environ, **env}, timeout=300)


def daemons(project: Path) -> list[int]:
    """This project's deployment daemons (their interpreter is the project's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"zenml.deployers.server.app" in command and command[0].startswith(
                str(project).encode()
            ):
                found.append(int(entry.name))
    return found


def in_process(project: Path, env: dict) -> list:
    """The champion's own answer for its input example, in the project's interpreter."""
    code = (
        "import json, mlflow\n"
        f"from {PACKAGE}.ml.predictions import score_rows\n"
        f"m = mlflow.pyfunc.load_model('models:/{PACKAGE}@champion')\n"
        "print(score_rows(m, m.input_example).to_json(orient='records'))\n"
    )
    return json.loads(run([".venv/bin/python", "-c", code], cwd=project, env=env).stdout)


def test_all_deploys_the_inference_pipeline(project):
    path, env = project
    result = run([CLI, "all"], cwd=path, env=env)
    assert "/invoke" in result.stdout and "prediction:" in result.stdout
    assert len(daemons(path)) == 1


def test_predict_answers_as_the_model_does_in_process(project):
    path, env = project
    lines = run([CLI, "predict"], cwd=path, env=env).stdout.strip().splitlines()
    served = [json.loads(line) for line in lines]
    expected = in_process(path, env)
    assert len(served) == len(expected)
    for got, want in zip(served, expected, strict=True):
        assert got["prediction"] == want["prediction"]
        assert got.keys() == want.keys()
        assert all(abs(got[k] - want[k]) < 1e-6 for k in got if k.startswith("probability_"))
    status = run([CLI, "status"], cwd=path, env=env).stdout
    assert "/invoke serving v1 (running)" in status


def endpoint(path: Path, env: dict) -> str:
    status = run([CLI, "status"], cwd=path, env=env).stdout
    return next(w for w in status.split() if w.endswith("/invoke"))


def test_a_request_missing_a_column_is_a_400_naming_it(project):
    path, env = project
    body = {"parameters": {"payload": {"dataframe_records": [{"mean radius": 10.0}]}}}
    request = urllib.request.Request(
        endpoint(path, env),
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=120)
    assert answer.value.code == 400
    message = json.loads(answer.value.read())["message"]
    assert "mean texture" in message and "\n" not in message


def test_a_killed_server_is_down_and_deploy_starts_it_again(project):
    path, env = project
    for pid in daemons(path):
        os.kill(pid, signal.SIGKILL)
    time.sleep(1)
    assert "(DOWN)" in run([CLI, "status"], cwd=path, env=env).stdout
    result, _ = project_command(path, ["predict"], {**os.environ, **env})
    assert result.returncode == 1
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1
    run([CLI, "deploy"], cwd=path, env=env)
    assert "(running)" in run([CLI, "status"], cwd=path, env=env).stdout
    assert len(daemons(path)) == 1


def test_deploying_twice_keeps_the_daemon(project):
    path, env = project
    before = daemons(path)
    run([CLI, "deploy"], cwd=path, env=env)
    assert daemons(path) == before and len(before) == 1
    status = run([CLI, "status"], cwd=path, env=env).stdout
    assert status.count("endpoint:") == 1 and "(running)" in status, status


def test_redeploy_after_promotion_serves_the_new_version(project):
    path, env = project
    run([CLI, "train", "--no-cache"], cwd=path, env=env)  # v2
    run([CLI, "promote", "--version", "2", "--force"], cwd=path, env=env)
    run([CLI, "deploy"], cwd=path, env=env)
    status = run([CLI, "status"], cwd=path, env=env).stdout
    assert status.count("endpoint:") == 1 and "/invoke serving v2 (running)" in status, status
    assert len(daemons(path)) == 1
    assert json.loads(run([CLI, "predict"], cwd=path, env=env).stdout.splitlines()[0])


def test_undeploy_leaves_no_daemon(project):
    path, env = project
    pids = daemons(path)
    assert pids
    run([CLI, "undeploy"], cwd=path, env=env)
    time.sleep(1)
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert "not deployed" in run([CLI, "status"], cwd=path, env=env).stdout


def test_ctrl_c_during_deploy_leaves_no_daemon(project):
    """Ctrl-C once the deployment's daemon exists, before it answers: no daemon outlives it."""
    path, env = project
    deploying = subprocess.Popen(
        [CLI, "deploy"],
        cwd=path,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as in a terminal: a suite started in the background (`make test &`) ignores
        # SIGINT, and its children would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 300
    while not daemons(path):
        assert deploying.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    deploying.send_signal(signal.SIGINT)
    _, errors = deploying.communicate(timeout=300)
    assert deploying.returncode != 0 and "Traceback" not in errors, errors[-3000:]
    deadline = time.monotonic() + 30
    while daemons(path) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert daemons(path) == []
    assert "not deployed" in run([CLI, "status"], cwd=path, env=env).stdout
