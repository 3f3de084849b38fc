"""Your own data in a generated project, against a real PostgreSQL server (tests/servers.py)
and the session's MLflow server: train from a query, batch-infer into a table, `train
--if-changed` following the query's result, bad database settings refused in one line before
the pipeline, and the project's own `make test` passing on those configs (training from
PostgreSQL, the batch from a Parquet file). The database password must land nowhere but .env.
The project runs on the oldest Python it supports, 3.10.

The tests run in order and share one project, as a user would work through it.
"""

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

import servers
from conftest import cli_calls, project_command, python_on_path, render, run

pytestmark = pytest.mark.lifecycle

PACKAGE = "shop_risk"
FEATURES = ("radius", "texture", "smoothness", "worst_area", "channel")
TRAINING_QUERY = f"SELECT {', '.join(FEATURES)}, target FROM transactions ORDER BY id"
BATCH_QUERY = "SELECT * FROM transactions ORDER BY id"
OUTPUTS: list[str] = []  # every command's output, searched for the password at the end
# Five columns of scikit-learn's breast cancer data, a text category and gaps: the table the
# tests query, written with the project's own pandas and SQLAlchemy.
MAKE_TABLE = """
import sys
import numpy as np
import sqlalchemy
from sklearn.datasets import load_breast_cancer

names = {"mean radius": "radius", "mean texture": "texture",
         "mean smoothness": "smoothness", "worst area": "worst_area", "target": "target"}
frame = load_breast_cancer(as_frame=True).frame[list(names)].rename(columns=names)
rng = np.random.default_rng(0)
frame["channel"] = rng.choice(["web", "store", "phone"], len(frame))
frame.loc[rng.choice(len(frame), 10, replace=False), "texture"] = np.nan
frame.insert(0, "id", range(1, len(frame) + 1))
frame.to_sql("transactions", sqlalchemy.create_engine(sys.argv[1]), index=False)
"""


@pytest.fixture(scope="module")
def postgres():
    with servers.postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def project(tmp_path_factory, postgres) -> Path:
    """Rendered, set up, its configs pointed at the PostgreSQL table, DATABASE_URL in .env."""
    project = render(
        tmp_path_factory.mktemp("data-sources") / "shop-risk",
        project_name="Shop Risk",
        sql_database=True,
        large_data=True,  # tables of millions of rows: queries read and written in chunks
        python_version="3.10",  # the oldest supported (test_regression: the newest)
    )
    run(["make", "setup"], cwd=project, env=python_on_path("3.10"))
    version = run([".venv/bin/python", "--version"], cwd=project).stdout
    assert version.startswith("Python 3.10."), version
    run([".venv/bin/python", "-c", MAKE_TABLE, postgres.url], cwd=project)
    (project / ".env").write_text(f"DATABASE_URL={postgres.url}\n")
    (project / ".env").chmod(0o600)

    def training(config: dict) -> None:
        config["data"]["source"] = f"sql:{TRAINING_QUERY}"

    def batch(config: dict) -> None:
        config.update(input=f"sql:{BATCH_QUERY}", output="sql:predictions", pass_through=["id"])

    edit_yaml(project / "configs" / "training.yaml", training)
    edit_yaml(project / "configs" / "batch_inference.yaml", batch)
    return project


@pytest.fixture(scope="module")
def client(mlflow_server) -> MlflowClient:
    return MlflowClient(mlflow_server)


def edit_yaml(path: Path, edit) -> None:
    content = yaml.safe_load(path.read_text())
    edit(content)
    path.write_text(yaml.safe_dump(content, sort_keys=False))


def cli(project: Path, server: str, *args: str, env: dict | None = None):
    """The project's command; its exit code and output (kept for the password search)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": server, **(env or {})}
    result, seconds = project_command(project, list(args), env, timeout=600)
    OUTPUTS.append(result.stdout + result.stderr)
    print(f"\n[timing] {PACKAGE} {' '.join(args)}: {seconds:.1f} s")
    return result


def versions(client: MlflowClient) -> list:
    return client.search_model_versions(f"name='{PACKAGE}'")


def test_bad_database_settings_stop_training_in_one_line(project, mlflow_server, client, postgres):
    """Each before the pipeline starts: nothing registered, no traceback, no password."""
    env_file, hidden = project / ".env", project / ".env.hidden"
    config = project / "configs" / "training.yaml"
    original, port, user = config.read_text(), postgres.port, postgres.user
    closed = f"postgresql://{user}:{postgres.password}@127.0.0.1:9/shop"  # nothing listens
    wrong = f"postgresql+psycopg://{user}:wrong-password@127.0.0.1:{port}/shop"
    cases = [  # (DATABASE_URL, query edit, the error line)
        ("", None, "needs the database URL in DATABASE_URL"),
        (
            closed,
            None,
            "connect to the database postgresql[+]psycopg://127.0.0.1:9/shop: .*refused",
        ),
        (wrong, None, f"127.0.0.1:{port}/shop: .*password authentication failed"),
        ("oracle+nosuch://u:p@h/d", None, "unknown database driver 'oracle[+]nosuch'"),
        (None, ("FROM transactions", "FROM transactionz"), '"transactionz" does not exist'),
        (None, ("SELECT radius", "SELEC radius"), 'syntax error at or near "SELEC"'),
    ]
    try:
        env_file.rename(hidden)  # the first case: no .env either
        results = [cli(project, mlflow_server, "train", env={"DATABASE_URL": ""})]
        hidden.rename(env_file)
        # The others in one go (conftest.cli_calls: each a process of its own); a changed query
        # in a config of its own, as configs/training.yaml holds it.
        calls = []
        for index, (url, edit, _) in enumerate(cases[1:]):
            args = ["train"]
            if edit:
                changed = project / "configs" / f"bad_query_{index}.yaml"
                changed.write_text(original)
                query = f"sql:{TRAINING_QUERY.replace(*edit)}"
                edit_yaml(changed, lambda content, q=query: content["data"].update(source=q))
                args += ["--config", str(changed)]
            env = {} if url is None else {"DATABASE_URL": url}
            calls.append((args, {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, **env}))
        for result, seconds in cli_calls(project, calls):
            OUTPUTS.append(result.stdout + result.stderr)
            print(f"\n[timing] {PACKAGE} {' '.join(result.args[1:])}: {seconds:.1f} s")
            results.append(result)
    finally:
        if hidden.exists():
            hidden.rename(env_file)
        for changed in (project / "configs").glob("bad_query_*.yaml"):
            changed.unlink()
    for (_, _, message), result in zip(cases, results, strict=True):
        output = result.stdout + result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 1 and len(errors) == 1, output
        assert re.search(message, errors[0]), errors[0]
        assert "Traceback" not in output and "Pipeline run" not in output  # before ZenML
        print(f"[bad input] exit {result.returncode}: {errors[0]}")
    assert config.read_text() == original
    assert versions(client) == []


def test_train_from_a_postgresql_query(project, mlflow_server, client, postgres):
    result = cli(project, mlflow_server, "train")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (version,) = versions(client)
    run_ = client.get_run(version.run_id)
    assert run_.data.params["train_rows"] == "455" and run_.data.params["test_rows"] == "114"
    assert run_.data.params["estimator"].startswith("LogisticRegression(")  # autologged
    # The splits in MLflow's Datasets panel: the query and its database, without credentials.
    inputs = {i.tags[0].value: i.dataset for i in run_.inputs.dataset_inputs}
    assert set(inputs) == {"training", "evaluation"}
    for context, dataset in inputs.items():
        assert dataset.source_type == "sql"
        assert json.loads(dataset.source) == {
            "query": TRAINING_QUERY,
            "database": f"postgresql+psycopg://127.0.0.1:{postgres.port}/shop",
        }
        names = [column["name"] for column in json.loads(dataset.schema)["mlflow_colspec"]]
        assert names == [*FEATURES, "target"]
        rows = json.loads(dataset.profile)["num_rows"]
        assert rows == {"training": 455, "evaluation": 114}[context]
    assert len({dataset.digest for dataset in inputs.values()}) == 2


def test_batch_inference_writes_a_postgresql_table(project, mlflow_server, client, postgres):
    postgres.psql("CREATE TABLE predictions (stale integer)")  # replaced, not appended to
    result = cli(project, mlflow_server, "batch-infer")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    where = f"table predictions (replace) on postgresql+psycopg://127.0.0.1:{postgres.port}/shop"
    assert f"569 rows in {where}" in result.stdout

    columns = postgres.psql(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'predictions' ORDER BY ordinal_position"
    ).split()
    assert columns == [
        "id",
        *FEATURES,
        "prediction",
        "probability_0",
        "probability_1",
        "unseen_categories",  # the model has a categorical column: channel
        "model_version",
        "scored_at",
    ]
    counted = postgres.psql(
        "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM predictions"
    )
    assert counted.strip() == "569|569|1|569"
    labels = postgres.psql("SELECT DISTINCT prediction FROM predictions ORDER BY 1").split()
    assert set(labels) <= {"0", "1"} and labels
    # The same ids, joined back to the table they came from.
    joined = postgres.psql(
        "SELECT count(*) FROM predictions p JOIN transactions t USING (id) "
        "WHERE p.radius = t.radius AND p.channel = t.channel"
    )
    assert joined.strip() == "569"
    batch_run = client.get_run(re.search(r"MLflow run: .*/runs/(\w+)", result.stdout).group(1))
    (logged,) = batch_run.inputs.dataset_inputs
    assert logged.tags[0].value == "inference" and logged.dataset.source_type == "sql"
    assert batch_run.data.params["output"] == where


def test_train_if_changed_follows_the_query_result(project, mlflow_server, client, postgres):
    result = cli(project, mlflow_server, "train", "--if-changed")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Unchanged: the data, config, code and uv.lock of {PACKAGE} v1." in result.stdout
    assert len(versions(client)) == 1

    postgres.psql("UPDATE transactions SET radius = radius + 0.5 WHERE id = 3")  # one row
    result = cli(project, mlflow_server, "train", "--if-changed")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Training finished" in result.stdout and f"{PACKAGE} v2" in result.stdout
    assert len(versions(client)) == 2
    assert "Using cached version of step prepare_data" not in result.stdout + result.stderr


def test_the_projects_own_tests_pass_on_this_data(project, postgres, tmp_path_factory):
    """`make test` (unit tests + its end-to-end test, which trains from the PostgreSQL query)
    with the batch to score in a Parquet file, written as a user would export one."""
    export = "import sys, pandas as pd; pd.read_sql_table('transactions', sys.argv[1])"
    export += ".to_parquet('data/new_transactions.parquet', index=False)"
    (project / "data").mkdir(exist_ok=True)
    run([".venv/bin/python", "-c", export, postgres.url], cwd=project)

    def parquet_batch(config: dict) -> None:
        config.update(input="data/new_transactions.parquet", output="outputs/scored.parquet")

    edit_yaml(project / "configs" / "batch_inference.yaml", parquet_batch)
    # The first edit a user makes: a feature from columns only their data has.
    features = project / "src" / PACKAGE / "ml" / "features.py"
    ratio = '    return frame.assign(area_per_radius=frame["worst_area"] / frame["radius"])\n'
    features.write_text(features.read_text().replace("    return frame\n", ratio, 1))
    basetemp = tmp_path_factory.mktemp("generated-tests") / "pytest"
    started = time.perf_counter()
    result = run(["make", "test"], cwd=project, env={"PYTEST_ADDOPTS": f"--basetemp={basetemp}"})
    OUTPUTS.append(result.stdout + result.stderr)
    print(f"\n[timing] make test: {time.perf_counter() - started:.1f} s")
    assert re.search(r"\d+ passed", result.stdout) and "failed" not in result.stdout
    assert "test_e2e.py ...." in result.stdout  # the end-to-end tests ran, and passed
    assert not (project / "mlruns").exists()  # no test left MLflow's default store behind
    # The end-to-end test wrote its predictions under its scratch directory, from the Parquet
    # batch, with the pass-through column.
    scored = list(basetemp.rglob("outputs/scored.parquet"))
    assert scored, "the end-to-end test wrote no Parquet predictions"
    check = "import sys, pandas as pd; f = pd.read_parquet(sys.argv[1]); "
    check += "batch = pd.read_parquet('data/new_transactions.parquet'); "
    check += "print(len(f), f['id'].tolist() == batch['id'].tolist())"  # in the batch's order
    shown = run([".venv/bin/python", "-c", check, str(scored[0])], cwd=project).stdout.split()
    assert shown == ["569", "True"]
    # ... and never touched the project's table (the last `batch-infer` wrote 569 rows).
    assert postgres.psql("SELECT count(*) FROM predictions").strip() == "569"


def files_holding(secret: str, *folders: Path, skip=(".venv",)) -> tuple[list[Path], int]:
    """The files under `folders` whose bytes contain `secret`, and how many were searched."""
    found, searched = [], 0
    for folder in folders:
        for path in folder.rglob("*"):
            if any(part in skip for part in path.relative_to(folder).parts) or not path.is_file():
                continue
            searched += 1
            if secret.encode() in path.read_bytes():
                found.append(path)
    return found, searched


def test_the_database_password_is_only_in_env(project, client, postgres, tmp_path_factory):
    password = postgres.password
    assert OUTPUTS and not [output for output in OUTPUTS if password in output]
    # MLflow: every run's params, tags and dataset sources, every version's tags.
    experiments = [e.experiment_id for e in client.search_experiments()]
    for found in client.search_runs(experiments):
        sources = [logged.dataset.source for logged in found.inputs.dataset_inputs]
        logged = json.dumps([found.data.params, found.data.tags, sources])
        assert password not in logged and postgres.user not in logged
    for version in versions(client):
        assert password not in json.dumps(version.tags)
    # On disk: the project (its ZenML and MLflow state, outputs), the session's ZenML store, the
    # MLflow server's database and artifacts, and what the project's own tests left.
    basetemp = tmp_path_factory.getbasetemp()
    folders = [project, Path(os.environ["ZENML_CONFIG_PATH"]), *basetemp.glob("mlflow-server*")]
    folders += list(basetemp.glob("generated-tests*"))
    found, searched = files_holding(password, *folders)
    assert found == [project / ".env"], found  # .env itself: the search can find it
    assert searched > 100
    # What a user would commit: .env is ignored.
    run(["git", "init", "-q"], cwd=project)
    run(["git", "add", "-A"], cwd=project)
    committed = run(["git", "ls-files"], cwd=project).stdout.split()
    assert ".env" not in committed and ".env.example" in committed
    staged = subprocess.run(["git", "grep", "--cached", "-l", password], cwd=project)
    assert staged.returncode == 1  # no match
    shutil.rmtree(project / ".git")
