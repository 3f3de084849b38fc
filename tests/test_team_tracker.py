"""A team's MLflow server, set up as the generated docs/team-tracker.md says: runs and users in
PostgreSQL, artifacts proxied by the server (`--serve-artifacts`), basic auth with default
permission READ, 2 workers. Two users, alice and bob, each with a project for the same model on
a machine of their own (a ZenML store each):

- the whole lifecycle runs through it, its artifacts on the server's side only;
- `doctor` says what the server stores runs in, where artifacts go, and the user's permission;
- a user who may only read the experiment is stopped in seconds, before any pipeline, by one
  line naming the experiment, the missing permission and who can grant it;
- once granted EDIT, two trainings at once both land, as distinct versions, with one champion,
  even when both gates create the aliases at the same moment.
"""

import dataclasses
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient

import servers
from conftest import cli_calls, project_command, render

pytestmark = pytest.mark.lifecycle

MODEL = "fraud_detector"
CLI = f".venv/bin/{MODEL}"


@dataclass
class Member:
    """A team member's project on a machine of their own."""

    name: str
    password: str
    path: Path
    zenml: Path  # their ZenML store

    def env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
        return {**inherited, "ZENML_CONFIG_PATH": str(self.zenml)}

    def cli(self, *args: str) -> tuple[subprocess.CompletedProcess, float]:
        return project_command(self.path, list(args), self.env())

    def succeed(self, *args: str) -> float:
        result, seconds = self.cli(*args)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return seconds

    def client(self, uri: str) -> MlflowClient:
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = (
            self.name,
            self.password,
        )
        return MlflowClient(uri)


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    started = time.perf_counter()
    with servers.mlflow_team_server(tmp_path_factory.mktemp("team-tracker")) as server:
        seconds = time.perf_counter() - started
        print(f"\n[timing] team tracker (PostgreSQL, 2 workers) ready in {seconds:.1f} s")
        yield server
    os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
    os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)


def member(tmp_path_factory, team, name: str) -> Member:
    username, password = team.users[name]
    folder = tmp_path_factory.mktemp(f"machine-{name}")
    path = render(
        folder / "fraud-detector",
        mlflow_tracking_uri=team.uri,
        mlflow_auth="basic",
        mlflow_username=username,
        mlflow_password=password,
    )
    person = Member(name, password, path, folder / "zenml")
    result = subprocess.run(
        ["make", "setup"], cwd=path, env=person.env(), capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return person


@pytest.fixture(scope="module")
def alice(tmp_path_factory, team) -> Iterator[Member]:
    person = member(tmp_path_factory, team, "alice")
    yield person
    person.cli("undeploy")  # if a test stopped before its own undeploy


@pytest.fixture(scope="module")
def bob(tmp_path_factory, team) -> Member:
    return member(tmp_path_factory, team, "bob")


def versions(client: MlflowClient) -> dict[str, set[str]]:
    """Each version of the model with its aliases."""
    found = client.search_model_versions(f"name='{MODEL}'")
    return {str(v.version): set(client.get_model_version(MODEL, v.version).aliases) for v in found}


PHASES: dict[str, float] = {}  # the lifecycle's phase times on this server, printed at the end


def test_all_runs_through_the_team_server_its_data_on_the_server_side(alice, team):
    PHASES["all"] = alice.succeed("all")
    client = alice.client(team.uri)
    assert versions(client) == {"1": {"champion", "challenger"}}
    experiment = client.get_experiment_by_name(MODEL)  # the project's own experiment
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    assert len(client.search_runs([experiment.experiment_id])) == 1
    # The server holds the runs, the registry and the users in PostgreSQL, the artifacts in
    # its own folder: a client never writes storage itself.
    assert team.postgres.psql(f"SELECT version FROM model_versions WHERE name = '{MODEL}'") == (
        "1\n"
    )
    auth_database = dataclasses.replace(team.postgres, database="mlflow_auth")
    users = auth_database.psql("SELECT username FROM users ORDER BY username").split()
    assert users == ["admin", "alice", "bob"]
    assert len(list(team.artifacts.rglob("model_card.md"))) == 1
    assert not (alice.path / "mlruns").exists()


def test_doctor_reports_the_backend_the_artifacts_and_the_permission(alice):
    result, _ = alice.cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines()}
    assert "backend store: a SQL database" in lines["server:"]
    assert "artifacts proxied by the server" in lines["server:"]
    assert lines["permission:"].split(None, 2)[2] == (
        f"alice: MANAGE on experiment '{MODEL}', MANAGE on registered model '{MODEL}'"
    )


READER_REFUSALS = [
    (["train"], "experiment", "training"),
    (["batch-infer"], "experiment", "batch inference"),
    (["promote", "--version", "1"], "registered model", "promote"),
    (["rollback"], "registered model", "rollback"),
]


@pytest.fixture(scope="module")
def reader_refusals(alice, bob, team) -> tuple[dict, tuple[int, int]]:
    """bob (READ) runs each command of READER_REFUSALS (each a process of its own:
    conftest.cli_calls): {command: (result, seconds)}, and the experiment's runs before and
    after them all."""
    client = alice.client(team.uri)
    experiment = client.get_experiment_by_name(MODEL).experiment_id
    before = len(client.search_runs([experiment]))
    results = cli_calls(bob.path, [(command, bob.env()) for command, _, _ in READER_REFUSALS])
    after = len(client.search_runs([experiment]))
    commands = [" ".join(command) for command, _, _ in READER_REFUSALS]
    return dict(zip(commands, results, strict=True)), (before, after)


@pytest.mark.parametrize(("command", "kind", "purpose"), READER_REFUSALS)
def test_a_reader_is_stopped_before_any_pipeline_with_one_line(
    reader_refusals, team, command, kind, purpose
):
    results, (runs_before, runs_after) = reader_refusals
    result, seconds = results[" ".join(command)]
    print(f"\n[timing] {' '.join(command)} refused for a reader in {seconds:.1f} s")
    assert result.returncode == 1
    error, hint = (result.stdout + result.stderr).strip().splitlines()[-2:]
    assert error == (
        f"error: bob has READ on {kind} '{MODEL}' at {team.uri}; {purpose} needs EDIT: "
        "an MLflow admin or a user with MANAGE on it (its creator) can grant it"
    )
    assert hint.startswith("hint: docs/team-tracker.md")
    assert "pipeline" not in result.stdout.lower()  # no pipeline started
    assert runs_after == runs_before  # by any of the refused commands


def grant(team, owner: Member, user: str, resource_type: str, resource_id: str) -> None:
    """What the owner of a resource does for a colleague (docs/team-tracker.md): MLflow's
    auth client, as the owner."""
    from mlflow.server import get_app_client

    owner.client(team.uri)  # the owner's credentials in the environment
    auth = get_app_client("basic-auth", tracking_uri=team.uri)
    auth.grant_user_permission(user, resource_type, resource_id, "EDIT")


def test_doctor_names_what_a_reader_may_not_write(bob):
    result, _ = bob.cli("doctor")
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "permission:" in line)
    assert line.split()[0] == "FAIL"
    assert f"bob: READ on experiment '{MODEL}'" in line and "needs EDIT" in line


def test_two_trainings_at_once_both_land_with_one_champion(alice, bob, team):
    """The worst case, on the team's PostgreSQL server with two workers: no aliases yet, so both
    gates create them at the same moment (the store refuses one of two simultaneous inserts of a
    new alias)."""
    client = alice.client(team.uri)
    experiment = client.get_experiment_by_name(MODEL).experiment_id
    grant(team, alice, "bob", "experiment", experiment)
    grant(team, alice, "bob", "registered_model", MODEL)
    for alias in client.get_registered_model(MODEL).aliases:
        client.delete_registered_model_alias(MODEL, alias)
    before = versions(client)
    results = {}

    def train(person: Member) -> None:
        results[person.name] = person.cli("train", "--no-cache")

    threads = [threading.Thread(target=train, args=(p,)) for p in (alice, bob)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, (result, seconds) in results.items():
        assert result.returncode == 0, f"{name}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
        PHASES[f"train ({name}, both at once)"] = seconds
    after = versions(client)
    new = sorted(set(after) - set(before), key=int)
    assert len(new) == 2  # distinct versions
    registered = {
        re.search(r"model version: +\S+ v(\d+)", result.stdout).group(1)
        for result, _ in results.values()
    }
    assert registered == set(new)
    for version in new:  # same data, same metrics: both pass the gate, both runs finished
        found = client.get_model_version(MODEL, version)
        assert found.tags["gate"] == "promoted"
        assert client.get_run(found.run_id).info.status == "FINISHED"
    # One champion and one challenger, both new; a champion the gate saw replaced (the other
    # new version, if its gate ran first) is recorded for rollback and exists.
    (champion,) = [v for v, aliases in after.items() if "champion" in aliases]
    (challenger,) = [v for v, aliases in after.items() if "challenger" in aliases]
    assert {champion, challenger} <= set(new)
    previous = client.get_model_version(MODEL, champion).tags.get("previous_champion")
    assert previous is None or previous in set(after) - {champion}
    experiments = {
        client.get_run(client.get_model_version(MODEL, v).run_id).info.experiment_id for v in new
    }
    assert experiments == {experiment}
    print(f"\n[concurrency] before {before}, after {after}")


def test_promote_rollback_batch_inference_and_undeploy_through_the_team_server(alice, team):
    client = alice.client(team.uri)
    champion = next(v for v, aliases in versions(client).items() if "champion" in aliases)
    other = next(v for v in versions(client) if v != champion)
    PHASES["promote"] = alice.succeed("promote", "--version", other, "--force")
    assert "champion" in versions(client)[other]
    PHASES["rollback"] = alice.succeed("rollback")
    assert "champion" in versions(client)[champion]
    PHASES["batch-infer"] = alice.succeed("batch-infer")
    PHASES["undeploy"] = alice.succeed("undeploy")
    experiment = client.get_experiment_by_name(MODEL).experiment_id
    batch = client.search_runs([experiment], "attributes.run_name LIKE 'batch_inference%'")
    assert len(batch) == 1  # in the project's experiment, beside the trainings
    print(
        "\n[timing] lifecycle on the PostgreSQL server: "
        + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in PHASES.items())
    )
