"""What a generated project does under faults and bad input, against real processes.

One project, set up for a tracking server with basic auth, runs against its own `mlflow server`
(not the session's: these tests kill it and start it again on the same port, over the same
database). The model server is ZenML's MLflow deployer daemon, as users get it. Each test is one
rule: a failure is one `error:` line and exit 1, never a traceback; nothing half-done is left
behind (no registered version, no orphaned server).
"""

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer

from conftest import cli_calls, project_command, render, run
from servers import basic_auth_env, create_user, cutting_proxy, free_port, wait_until_healthy

pytestmark = pytest.mark.lifecycle

PACKAGE = "fault_finder"
SECRET = f"{PACKAGE}-remote-mlflow-mlflow"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Tracker:
    """A basic-auth `mlflow server` that a test can kill (like a crash: SIGKILL to its process
    group) and start again on the same port, database and artifacts."""

    def __init__(self, workdir: Path):
        self.workdir, self.port = workdir, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.admin = ("admin", f"admin-{secrets.token_hex(8)}")
        self.user = ("ci-bot", f"pw-{secrets.token_hex(10)}")
        self.env = {
            **os.environ,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            **basic_auth_env(workdir, self.admin),
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the server; `ready()` waits for it."""
        mlflow = str(Path(sys.executable).parent / "mlflow")
        command = [mlflow, "server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--workers", "1", "--app-name", "basic-auth"]
        command += ["--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}"]
        command += ["--artifacts-destination", str(self.workdir / "artifacts")]
        self.process = subprocess.Popen(
            command,
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "server.log").open("a"),
            start_new_session=True,
        )

    def ready(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.start()
        wait_until_healthy(self.uri, self.process, self.workdir / "server.log")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def tracker(tmp_path_factory) -> Tracker:
    server = Tracker(tmp_path_factory.mktemp("fault-tracker"))
    server.ready()
    create_user(server.uri, server.admin, server.user)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def project(tmp_path_factory, tracker) -> Path:
    """Rendered for the tracker with the user's credentials (in .env), then `make setup`."""
    project = render(
        tmp_path_factory.mktemp("faults") / "fault-finder",
        project_name="Fault Finder",
        mlflow_tracking_uri=tracker.uri,
        mlflow_auth="basic",
        mlflow_username=tracker.user[0],
        mlflow_password=tracker.user[1],
    )
    run(["make", "setup"], cwd=project)
    # The training's experiment (named after the model) exists before any test kills the
    # tracker: MLflow's basic-auth app grants a new experiment's creator access only after
    # creating it, so a kill between the two (a race in MLflow's server) would lock the user
    # out of it for the whole module.
    user, password = tracker.user
    credentials = {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
    create = "import mlflow; mlflow.set_experiment('fault_finder')"
    run(
        [".venv/bin/python", "-c", create],
        project,
        {"MLFLOW_TRACKING_URI": tracker.uri, **credentials},
    )
    yield project
    tracker.ready()
    cli(project, "undeploy")
    for pid, _ in server_processes(project):  # only if a test failed half-way
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def client(tracker) -> MlflowClient:
    """The test's own view of the registry, as the admin (MLflow reads these per request)."""
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = tracker.admin
    yield MlflowClient(tracker.uri)
    del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]


def command(project: Path) -> str:
    """The project's console script: its package name, from its folder name."""
    return str(project / ".venv" / "bin" / project.name.replace("-", "_"))


def cli(project: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run the project's command as a user would (credentials from .env unless `env` says
    otherwise); return the result, without colours, and its wall time."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    result, seconds = project_command(project, list(args), {**base, **env})
    result.stdout, result.stderr = ANSI.sub("", result.stdout), ANSI.sub("", result.stderr)
    return result, seconds


def succeeded(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """A failure as the CLI promises it: exit 1, one `error:` line, no traceback."""
    output = result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1, output[-3000:]
    assert len(errors) == 1, output[-3000:]
    assert "Traceback" not in output
    return errors[0]


class Watched:
    """A command running in the background whose output a test waits on, line by line."""

    def __init__(self, project: Path, *args: str, **env: str):
        base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
        self.process = subprocess.Popen(
            [command(project), *args],
            cwd=project,
            env={**base, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(ANSI.sub("", line))

    def wait_for(self, text: str, seconds: int = 300) -> None:
        deadline = time.monotonic() + seconds
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, f"exited before {text!r}:\n{self.output[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} in {seconds} s"
            time.sleep(0.1)

    def finish(self, seconds: int = 600) -> tuple[int, str]:
        code = self.process.wait(timeout=seconds)
        self._reader.join(timeout=10)
        return code, self.output

    @property
    def output(self) -> str:
        return "".join(self.lines)


def versions(client: MlflowClient) -> dict[str, object]:
    return {v.version: v for v in client.search_model_versions(f"name='{PACKAGE}'")}


def run_ids(client: MlflowClient) -> set[str]:
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    return {found.info.run_id for found in client.search_runs(experiments)}


def model_version(output: str) -> str:
    return re.search(rf"model version: +{PACKAGE} v(\d+)", output).group(1)


def server_processes(project: Path) -> list[tuple[int, str]]:
    """This project's model-server processes: ZenML's daemon (which serves the model itself
    with one worker) and MLflow's scoring server (with more workers)."""
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    found = [line.strip().split(" ", 1) for line in ps.splitlines() if str(project) in line]
    return [
        (int(pid), args)
        for pid, args in found
        if "local_daemon_entrypoint" in args or "scoring_server" in args
    ]


def listening_pid(project: Path, url: str) -> int:
    """The process that answers on the port of `url` (psutil, from the project's environment)."""
    code = (
        "import sys, psutil; port = int(sys.argv[1]); print(*{c.pid for c in "
        "psutil.net_connections('tcp') if c.status == 'LISTEN' and c.laddr.port == port})"
    )
    python = str(project / ".venv" / "bin" / "python")
    port = url.split(":")[2].split("/")[0]
    found = subprocess.run([python, "-c", code, port], capture_output=True, text=True)
    (pid,) = found.stdout.split()
    return int(pid)


# ---- The tracker dies during a run ---------------------------------------------------------


def test_a_tracker_restart_during_training_is_survived(project, tracker, client):
    """MLflow's client retries each request with backoff (about 4 minutes by default), and the
    body of a step that talks to MLflow runs again (a request the dying server was answering is
    cut off beyond the client's retries): the server is killed as the first tracked step
    starts and comes back ~20 s later; the run completes and registers its version."""
    tracker.ready()
    training = Watched(project, "train")
    training.wait_for("Step train has started")
    tracker.kill()
    killed = time.monotonic()
    tracker.ready()  # the same port, database and artifacts
    print(f"\n[fault] tracker down for {time.monotonic() - killed:.1f} s during training")
    code, output = training.finish()
    assert code == 0, output[-3000:]
    # The outage was hit, and retried: by MLflow's client, or by running the step's body again.
    assert "Retrying (Retry(" in output or "step train runs again in 5 s" in output, output
    version = versions(client)[model_version(output)]
    run_info = client.get_run(version.run_id)
    assert run_info.info.status == "FINISHED"
    assert run_info.data.metrics["roc_auc"] > 0.95
    assert client.get_model_version_by_alias(PACKAGE, "champion").version == version.version


def test_answers_cut_off_by_the_tracker_are_survived_by_step_retries(project, tracker, client):
    """The restart above, made deterministic: a server dying while it answers cuts the answer
    off, which MLflow's client does not retry. Here the answers to the creation of the
    training's MLflow run (ZenML opens it before the train step's body), to the first request
    in that body (its dataset input) and to the model version's creation (register) are cut;
    each runs once more, and the training completes with one MLflow run and one registered
    version."""
    tracker.ready()
    cut = (b"/api/2.0/mlflow/runs/create", b"/api/2.0/mlflow/runs/log-inputs")
    cut += (b"/api/2.0/mlflow/model-versions/create",)
    with cutting_proxy(tracker.uri, *cut) as proxy:
        result, _ = cli(project, "train", "--no-cache", MLFLOW_TRACKING_URI=proxy)
    output = succeeded(result)
    retried = re.findall(
        r"stopped answering during the command .*; step (\w+) runs again in 5 s", output
    )
    assert retried == ["train", "train", "register"], output  # each was hit, and run again
    version = versions(client)[model_version(output)]
    run_info = client.get_run(version.run_id)
    assert run_info.info.status == "FINISHED"
    same_name = f"attributes.run_name = '{run_info.info.run_name}'"
    assert len(client.search_runs([run_info.info.experiment_id], same_name)) == 1
    by_this_run = version.tags["zenml_pipeline_run_id"]
    query = f"name='{PACKAGE}' and tags.zenml_pipeline_run_id='{by_this_run}'"
    assert [v.version for v in client.search_model_versions(query)] == [version.version]


def test_a_tracker_gone_for_longer_than_the_retries_stops_with_one_line(project, tracker):
    """Beyond MLflow's retries (none here, to keep the test short) the command stops, naming
    the server instead of MLflow's nested connection error."""
    tracker.ready()
    training = Watched(project, "train", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    training.wait_for("Step train has started")
    tracker.kill()
    code, output = training.finish()
    tracker.start()  # back in the background; the next tests that need it wait for it
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 1 and "Traceback" not in output, output[-3000:]
    assert len(errors) == 1, output[-3000:]
    print(f"\n[fault] {errors[0]}")
    # The reason: refused, or reset under a request in flight, depending on when it died.
    assert re.fullmatch(
        f"error: MLflow tracking server {re.escape(tracker.uri)} stopped answering during the "
        r"command \((\[Errno \d+\] |Remote end |Connection )[^()]+\); MLflow gave up after its "
        "retries",
        errors[0],
    ), errors[0]
    assert "hint: run the command again once `fault_finder doctor` passes" in output


# ---- The tracker is down, or refuses the credentials, when a command starts ----------------

# train and doctor: tests/test_auth.py. Every other command that talks to MLflow (`predict`
# talks to the endpoint only: test_predict_answers_while_the_tracker_is_down):
COMMANDS = {
    "promote": ["promote", "--version", "1"],
    "rollback": ["rollback"],
    "status": ["status"],
    "deploy": ["deploy"],
    "undeploy": ["undeploy"],
    "batch-infer": ["batch-infer"],
    "all": ["all"],
}


def user_calls(project: Path, calls: list[tuple[list[str], dict[str, str]]]) -> list:
    """Like cli() for each (arguments, environment) of `calls`, in one go (conftest.cli_calls:
    each call a process of its own, without importing the program again)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    results = cli_calls(project, [(args, {**base, **env}) for args, env in calls])
    for result, _ in results:
        result.stdout, result.stderr = ANSI.sub("", result.stdout), ANSI.sub("", result.stderr)
    return results


@pytest.fixture(scope="module")
def refusals(project, tracker) -> tuple[str, dict]:
    """Every command of COMMANDS run with the tracker down (an unused port), then with a wrong
    password: (the port's URI, {(command, "down" | "password"): (result, seconds)})."""
    tracker.ready()
    down = f"http://127.0.0.1:{free_port()}"
    cases = [(command, "down", {"MLFLOW_TRACKING_URI": down}) for command in COMMANDS]
    cases += [
        (command, "password", {"MLFLOW_TRACKING_PASSWORD": "wrong-password"})
        for command in COMMANDS
    ]
    results = user_calls(project, [(COMMANDS[command], env) for command, _, env in cases])
    return down, {
        (command, why): result for (command, why, _), result in zip(cases, results, strict=True)
    }


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_stops_in_one_line_when_the_tracker_is_down(refusals, command):
    uri, results = refusals
    result, seconds = results[command, "down"]
    print(f"\n[timing] {command} with the tracker down: {seconds:.1f} s")
    assert one_error_line(result).startswith(f"error: MLflow tracking server {uri} is unreachable")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_stops_in_one_line_when_the_credentials_are_wrong(refusals, tracker, command):
    result, seconds = refusals[1][command, "password"]
    print(f"\n[timing] {command} with a wrong password: {seconds:.1f} s")
    assert one_error_line(result) == (
        f"error: credentials rejected by {tracker.uri}: "
        "set MLFLOW_TRACKING_USERNAME/PASSWORD in .env"
    )


def test_stack_registration_needs_no_tracker(project):
    """`stack` only writes ZenML's records (production stacks register for clouds that are not
    reachable from here); the commands that use the tracker check it first, and re-register
    the stack from stacks/ and .env."""
    down = f"http://127.0.0.1:{free_port()}"
    settings = [{"MLFLOW_TRACKING_URI": down}, {"MLFLOW_TRACKING_PASSWORD": "wrong-password"}, {}]
    (result, seconds), (changed, changed_seconds), (restored, _) = user_calls(
        project, [(["stack"], env) for env in settings]
    )
    print(f"\n[timing] stack with the tracker down: {seconds:.1f} s")
    assert "Stack 'remote-mlflow' is ready and active." in succeeded(result)
    print(f"[timing] stack with a wrong password: {changed_seconds:.1f} s")
    assert f"updated secret {SECRET}" in succeeded(changed)
    assert "(tracking_uri)" in changed.stdout  # back to stacks/remote-mlflow.yaml's URI
    # The third: what every other command does first.
    assert f"updated secret {SECRET}" in succeeded(restored)


# ---- Bad data ------------------------------------------------------------------------------


def _breast_cancer() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame


def _with_text_in_a_number_column(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype({"mean radius": object})
    frame.loc[3, "mean radius"] = "?"  # pandas reads 'n/a' as missing, but not '?'
    return frame


def _with_gaps(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[frame.index % 10 == 0, "mean area"] = None  # 10 %, above the 5 % allowed
    return frame


def _with_an_unknown_label(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[frame.index % 50 == 0, "target"] = 2
    return frame


def _ten_times_as_wide(frame: pd.DataFrame) -> pd.DataFrame:
    features = frame.drop(columns=["target"])
    return pd.concat([features] * 10 + [frame[["target"]]], axis=1)


BAD_DATA = {
    "missing column": (
        lambda frame: frame.drop(columns=["target"]),
        "error: data.target 'target' (configs/training.yaml) is not a column of the data; its "
        "columns: mean radius, mean texture, mean perimeter, mean area, mean smoothness, mean "
        "compactness, mean concavity, mean concave points, mean symmetry, mean fractal "
        "dimension and 20 more",
    ),
    "wrong dtype": (
        _with_text_in_a_number_column,
        "error: column 'mean radius' holds numbers and text ('?'): a number column must hold "
        "only numbers; leave a cell empty to count it as missing",
    ),
    "missing values over the limit": (
        _with_gaps,
        "error: column 'mean area' has 10.0% missing values "
        "(data.max_missing_fraction allows 5.0%)",
    ),
    "unseen label": (
        _with_an_unknown_label,
        "error: target column 'target' has label(s) ['2'] not in data.labels [0, 1]: list your "
        "labels there (configs/training.yaml), or [] for any",
    ),
    "an id and a date": (
        lambda frame: frame.assign(
            order_id=range(len(frame)),
            day=pd.date_range("2024-01-01", periods=len(frame)).strftime("%d/%m/%Y"),
        ),
        "error: the model cannot learn from these columns: 'order_id' has a distinct whole "
        "number in every row: an identifier; 'day' holds dates: derive what matters in "
        "add_features() (ml/features.py), e.g. pd.to_datetime(frame['day']).dt.month, and drop "
        "the raw column there. In configs/training.yaml, leave a column out with data.exclude "
        "(an ID: keep it in the output with pass_through in configs/batch_inference.yaml) or "
        "list the features in data.features; keep a category of many values on purpose with "
        "data.high_cardinality",
    ),
    "empty file": (None, "error: data file is empty: {path}"),
    "header only": (lambda frame: frame.iloc[0:0], "error: dataset has no rows"),
    "10x wide": (
        _ten_times_as_wide,
        "error: column(s) 'mean radius' (10x), 'mean texture' (10x), 'mean perimeter' (10x) "
        "and 27 more appear more than once in the header of {path}: column names must be unique",
    ),
}


@pytest.fixture(scope="module")
def bad_data_trainings(project, tracker, client, tmp_path_factory) -> dict:
    """`train --config` on each case of BAD_DATA (its own data.csv and training.yaml), and the
    registry's versions and the tracker's runs before and after them all:
    {case: (result, seconds, data path)}, (before, after)."""
    config = (project / "configs" / "training.yaml").read_text()
    calls, paths = [], {}
    for index, (case, (change, _)) in enumerate(BAD_DATA.items()):
        folder = tmp_path_factory.mktemp(f"bad-data-{index}")
        path = paths[case] = folder / "data.csv"
        if change is None:
            path.write_text("")
        else:
            change(_breast_cancer()).to_csv(path, index=False)
        (folder / "training.yaml").write_text(
            config.replace("source: sklearn:breast_cancer", f"source: {path}")
        )
        calls.append((["train", "--config", str(folder / "training.yaml")], {}))
    tracker.ready()
    before = versions(client).keys(), run_ids(client)
    results = user_calls(project, calls)
    after = versions(client).keys(), run_ids(client)
    found = {case: (*result, paths[case]) for case, result in zip(BAD_DATA, results, strict=True)}
    return found, (before, after)


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_is_one_line_naming_the_column_or_rule_and_nothing_is_registered(
    bad_data_trainings, case
):
    found, (before, after) = bad_data_trainings
    result, seconds, path = found[case]
    print(f"\n[timing] train on bad data ({case}): {seconds:.1f} s")
    assert one_error_line(result) == BAD_DATA[case][1].format(path=path)
    assert "hint: fix the data, or the `data:` rules in configs/training.yaml" in result.stderr
    assert after == before  # no version, no run, by any of the cases


# ---- A first training the gate rejects ------------------------------------------------------


def test_all_stops_before_deploying_when_the_gate_rejects_and_there_is_no_champion(
    project, tracker, client
):
    """A new model whose first training misses the thresholds: nothing may be served, and `all`
    says why instead of failing later in the deployment."""
    training = project / "configs" / "training.yaml"
    original = training.read_text()
    strict = original.replace(f"model_name: {PACKAGE}\n", "model_name: fault_rejected\n")
    strict = strict.replace("  min_metrics: {}\n", "  min_metrics: {accuracy: 0.9999}\n")
    assert "accuracy: 0.9999" in strict  # the shipped config still has this key
    training.write_text(strict)
    tracker.ready()
    try:
        result, _ = cli(project, "all")
    finally:
        training.write_text(original)
    assert one_error_line(result) == (
        "error: nothing to deploy: the gate rejected fault_rejected v1 and no version has passed "
        "it yet (thresholds: `promotion:` in configs/training.yaml)"
    )
    assert "promote --version N --force" in result.stderr  # the hint
    assert re.search(r"accuracy 0\.\d+, needs >= 0\.9999: FAILED", result.stdout)
    assert "Deploying" not in result.stdout
    assert client.get_registered_model("fault_rejected").aliases == {"challenger": "1"}


# ---- The model server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint(project, tracker, client) -> str:
    """The champion served by `deploy` (trained first if this module's earlier tests did not
    run)."""
    tracker.ready()
    if not versions(client) or "champion" not in client.get_registered_model(PACKAGE).aliases:
        succeeded(cli(project, "train")[0])
    result, seconds = cli(project, "deploy")
    print(f"\n[timing] deploy: {seconds:.1f} s")
    return re.search(r"endpoint: +(http://\S+)", succeeded(result)).group(1)


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def rows(count: int) -> pd.DataFrame:
    features = _breast_cancer().drop(columns=["target"])
    return pd.concat([features] * (count // len(features) + 1)).head(count)


def payload(frame: pd.DataFrame) -> dict:
    return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}


def test_deploying_twice_keeps_one_server(project, tracker, endpoint):
    daemons = [pid for pid, args in server_processes(project) if "daemon" in args]
    result, seconds = cli(project, "deploy")
    print(f"\n[timing] deploy again: {seconds:.1f} s")
    assert f"endpoint:          {endpoint}" in succeeded(result)
    assert [pid for pid, args in server_processes(project) if "daemon" in args] == daemons
    assert len(daemons) == 1
    status = succeeded(cli(project, "status")[0])
    assert status.count("endpoint:") == 1 and "(running)" in status, status


def _missing_column() -> bytes:
    return json.dumps(payload(rows(2).drop(columns=["mean radius"]))).encode()


def _wrong_type() -> bytes:
    return json.dumps(
        payload(rows(2).astype({"mean radius": object}).assign(**{"mean radius": "big"}))
    ).encode()


def _ten_megabytes_in_one_cell() -> bytes:
    frame = rows(2).astype({"mean radius": object})
    frame.loc[frame.index[0], "mean radius"] = "x" * 10_000_000
    return json.dumps(payload(frame)).encode()


BAD_PAYLOADS = {
    "missing column": (_missing_column, "Model is missing inputs ['mean radius']"),
    "wrong type": (_wrong_type, "Failed to convert column mean radius to type 'float64'"),
    "empty body": (lambda: b"", "Ensure that input is a valid JSON formatted string"),
    "not JSON": (lambda: b"{'dataframe_split':", "Ensure that input is a valid JSON"),
    "no input field": (lambda: b"{}", "exactly one of the input fields"),
    "10 MB in one cell": (_ten_megabytes_in_one_cell, "Failed to convert column mean radius"),
}


@pytest.mark.parametrize("case", list(BAD_PAYLOADS))
def test_a_bad_request_gets_400_and_the_server_keeps_serving(endpoint, case):
    make_body, message = BAD_PAYLOADS[case]
    good = json.dumps(payload(rows(5))).encode()
    status, answer = post(endpoint, good)
    assert status == 200 and len(answer["predictions"]) == 5
    body = make_body()
    status, error = post(endpoint, body)
    print(f"\n[fault] {case} ({len(body):,} bytes): HTTP {status} {str(error)[:160]}")
    assert status == 400 and message in error["message"]
    assert post(endpoint, good) == (200, answer)


def test_a_large_body_of_valid_rows_is_scored(endpoint):
    """No size limit of its own: ten megabytes of valid rows get one prediction per row."""
    frame = rows(42_000)
    body = json.dumps(payload(frame)).encode()
    assert len(body) > 10_000_000
    status, answer = post(endpoint, body)
    assert status == 200 and len(answer["predictions"]) == len(frame)
    assert {row["prediction"] for row in answer["predictions"]} == {0, 1}


def test_clients_at_once_each_get_their_own_answer(endpoint):
    """The server scores one request at a time (one thread: make bench's throughput); eight
    clients at once are queued, not refused, and none gets another's answer."""
    bodies = [json.dumps(payload(rows(count))).encode() for count in range(1, 9)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda body: post(endpoint, body), bodies * 4))
    assert [status for status, _ in answers] == [200] * 32
    assert [len(answer["predictions"]) for _, answer in answers] == list(range(1, 9)) * 4


def test_predict_answers_while_the_tracker_is_down(project, endpoint):
    """`predict` finds the endpoint in the record `deploy` wrote: no MLflow, no ZenML."""
    down = f"http://127.0.0.1:{free_port()}"
    result, seconds = cli(project, "predict", MLFLOW_TRACKING_URI=down)
    print(f"\n[timing] predict (the recorded example, 5 rows), tracker down: {seconds:.2f} s")
    answers = [json.loads(line) for line in succeeded(result).splitlines()]
    assert len(answers) == 5 and all(answer["prediction"] in (0, 1) for answer in answers)


def test_a_dead_model_server_is_reported_down_and_deploy_restarts_it(project, endpoint):
    os.kill(listening_pid(project, endpoint), signal.SIGKILL)
    status = succeeded(cli(project, "status")[0])
    assert re.search(r"endpoint: .* serving v\d+ \(DOWN\)", status), status
    result, seconds = cli(project, "deploy")
    print(f"\n[timing] deploy after the scoring server died: {seconds:.1f} s")
    url = re.search(r"endpoint: +(http://\S+)", succeeded(result)).group(1)
    assert post(url, json.dumps(payload(rows(3))).encode())[0] == 200
    assert len([p for p, args in server_processes(project) if "daemon" in args]) == 1


def test_a_change_of_workers_is_served_by_the_next_deploy(project, tracker, endpoint):
    """`workers` in configs/deployment.yaml: the running server has one, so `deploy` replaces
    it (MLflow's scoring server with two uvicorn workers), and back."""
    config = project / "configs" / "deployment.yaml"
    original = config.read_text()
    assert "\nworkers: 1\n" in original
    try:
        config.write_text(original.replace("\nworkers: 1\n", "\nworkers: 2\n"))
        url = re.search(r"endpoint: +(http://\S+)", succeeded(cli(project, "deploy")[0])).group(1)
        servers = [args for _, args in server_processes(project)]
        assert any("--workers 2" in args for args in servers), servers
        assert post(url, json.dumps(payload(rows(3))).encode())[0] == 200
    finally:
        config.write_text(original)
    succeeded(cli(project, "deploy")[0])
    assert not any("--workers" in args for _, args in server_processes(project))


def test_ctrl_c_during_all_leaves_no_server_behind(project, tracker, endpoint):
    """Ctrl-C while `all` starts the new model server: the half-started daemon is stopped too,
    not left running unknown to ZenML."""
    tracker.ready()
    running = {pid for pid, _ in server_processes(project)}
    lifecycle = Watched(project, "all")
    lifecycle.wait_for("Deploying")
    deadline = time.monotonic() + 120
    while not {pid for pid, _ in server_processes(project)} - running:
        assert lifecycle.process.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    lifecycle.process.send_signal(signal.SIGINT)
    code, output = lifecycle.finish()
    assert code != 0 and "Traceback" not in output, output[-3000:]
    deadline = time.monotonic() + 30
    while server_processes(project) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert server_processes(project) == []
    assert "endpoint: not deployed" in succeeded(cli(project, "status")[0])


@pytest.mark.usefixtures("endpoint")  # this project has a champion
def test_two_projects_deploying_at_once_each_serve_their_own_model(
    project, tracker, client, tmp_path_factory
):
    """Both deployers look for a free port from 8000 at the same moment and may pick the same
    one; the server that cannot bind it must not pass for the other's (whose health check
    answers): the deployment notices and takes another port. The other project's champion is
    a copy of this one's (registered under its own name: a training would only cost time)."""
    other = render(
        tmp_path_factory.mktemp("faults-other") / "other-finder",
        project_name="Other Finder",
        mlflow_tracking_uri=tracker.uri,
        mlflow_auth="basic",
        mlflow_username=tracker.user[0],
        mlflow_password=tracker.user[1],
    )
    run(["make", "setup"], cwd=other)
    tracker.ready()
    champion = client.get_model_version_by_alias(PACKAGE, "champion")
    copy = client.copy_model_version(f"models:/{PACKAGE}/{champion.version}", "other_finder")
    client.delete_model_version_tag("other_finder", copy.version, "zenml_model_version")
    client.set_registered_model_alias("other_finder", "champion", copy.version)
    try:
        succeeded(cli(project, "undeploy")[0])
        deploying = [Watched(project, "deploy"), Watched(other, "deploy")]
        outputs = []
        for deployment in deploying:
            code, output = deployment.finish()
            assert code == 0, output[-3000:]
            outputs.append(output)
        urls = [re.search(r"endpoint: +(http://\S+)", output).group(1) for output in outputs]
        print(f"\n[fault] two projects deployed at once: {urls}")
        assert len(set(urls)) == 2
        for served_by, url in zip((project, other), urls, strict=True):
            assert post(url, json.dumps(payload(rows(3))).encode())[0] == 200
            # Answered by this project's own server process, not the other's.
            assert listening_pid(served_by, url) in {pid for pid, _ in server_processes(served_by)}
            assert "(running)" in succeeded(cli(served_by, "status")[0])
    finally:
        cli(other, "undeploy")


@pytest.mark.usefixtures("endpoint")  # this project has versions
def test_a_same_named_model_on_another_tracker_is_not_served_in_its_place(
    project, tracker, mlflow_server
):
    """A ZenML store may serve models of the same name from two trackers (two projects, or one
    pointed elsewhere), each with a v1. Deploy compares the served version's logged model, not
    only its name and number: v1 of the other tracker replaces this tracker's v1 server instead
    of passing for it."""
    tracker.ready()
    first = succeeded(cli(project, "deploy", "--version", "1")[0])
    url = re.search(r"endpoint: +(http://\S+)", first).group(1)
    serving = listening_pid(project, url)
    elsewhere = {"MLFLOW_TRACKING_URI": mlflow_server}  # no fault_finder there yet
    output = succeeded(cli(project, "all", **elsewhere)[0])
    assert model_version(output) == "1"
    url = re.search(r"endpoint: +(http://\S+)", output).group(1)
    assert listening_pid(project, url) != serving
    daemons = [pid for pid, args in server_processes(project) if "local_daemon_entrypoint" in args]
    assert len(daemons) == 1  # one server per model name in a ZenML store


def test_undeploy_stops_the_recorded_server_when_zenml_no_longer_knows_it(
    project, tracker, endpoint, tmp_path
):
    """A command run with another ZenML store (a login, another ZENML_CONFIG_PATH) does not see
    the store that started the server; undeploy still stops the process deploy recorded."""
    tracker.ready()
    succeeded(cli(project, "deploy")[0])  # the champion, whatever the tests before left
    assert server_processes(project)
    repo_config = project / ".zen" / "config.yaml"
    points_at = repo_config.read_text()
    try:
        result, _ = cli(project, "undeploy", ZENML_CONFIG_PATH=str(tmp_path / "another-store"))
        assert "(started with another ZenML store)" in succeeded(result)
        assert server_processes(project) == []
        assert not (project / ".serving" / f"{PACKAGE}.json").exists()
    finally:
        repo_config.write_text(points_at)  # ZenML pointed the project at the other store
