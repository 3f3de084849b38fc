"""`engine: spark` on a real Spark standalone cluster: a master and two workers on loopback
(tests/servers.py, pyspark's own `bin/spark-class`). A project rendered with `spark_engine`
trains, then `batch-infer` scores the same Parquet batch with the pandas engine and on the
cluster: the outputs are equal row for row (ids, every input, prediction, probabilities). A batch
that does not fit the model stops the Spark run with one line and leaves no output.
"""

import os
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import servers
from conftest import project_command, render, run

pytestmark = pytest.mark.lifecycle

PACKAGE = "spark_scoring"
# scikit-learn's breast cancer data resampled to 3,000 rows with an id (the model's own data);
# `bad`: the same with text among the numbers of one column.
MAKE_BATCHES = """
import numpy as np
from sklearn.datasets import load_breast_cancer

frame = load_breast_cancer(as_frame=True).frame.drop(columns="target")
frame = frame.sample(3000, replace=True, random_state=0).reset_index(drop=True)
frame.insert(0, "id", np.arange(100_000, 103_000))
frame.to_parquet("data/batch.parquet", index=False)
frame = frame.astype({"mean radius": str})
frame.loc[[7, 2500], "mean radius"] = ["n/a", "?"]
frame.to_parquet("data/bad.parquet", index=False)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory, mlflow_server) -> Path:
    project = render(
        tmp_path_factory.mktemp("spark") / "spark-scoring",
        project_name="Spark Scoring",
        spark_engine=True,
    )
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    run(["make", "setup"], cwd=project, env=env)
    run(["make", "train"], cwd=project, env=env)
    (project / "data").mkdir(exist_ok=True)
    run([".venv/bin/python", "-c", MAKE_BATCHES], cwd=project)
    return project


@pytest.fixture(scope="module")
def cluster(project):
    with servers.spark_cluster(project / ".venv" / "bin" / "python") as cluster:
        yield cluster


def batch_infer(project: Path, server: str, name: str, **settings) -> subprocess.CompletedProcess:
    """`batch-infer` with configs/batch_inference.yaml changed by `settings`, saved as NAME."""
    config = yaml.safe_load((project / "configs" / "batch_inference.yaml").read_text())
    config.update(pass_through=["id"], **settings)
    (project / "configs" / name).write_text(yaml.safe_dump(config, sort_keys=False))
    args = ["batch-infer", "--config", f"configs/{name}"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": server}
    return project_command(project, args, env, timeout=600)[0]


def completed_apps(cluster, seconds: float = 30) -> list[dict]:
    """The project's applications the master lists as completed: the driver's JVM ends on its
    own once the command has exited."""
    deadline = time.monotonic() + seconds
    while True:
        apps = [app for app in cluster.status()["completedapps"] if app["name"] == PACKAGE]
        if apps or time.monotonic() > deadline:
            return apps
        time.sleep(0.5)


def test_the_cluster_writes_the_rows_the_pandas_engine_writes(project, mlflow_server, cluster):
    pandas = batch_infer(
        project, mlflow_server, "pandas.yaml", input="data/batch.parquet", output="outputs/a.pq"
    )
    assert pandas.returncode == 0, pandas.stdout[-2000:] + pandas.stderr[-2000:]
    spark = {"master": cluster.master, "conf": {"spark.executor.memory": "512m"}}
    on_spark = batch_infer(
        project,
        mlflow_server,
        "spark.yaml",
        input="data/batch.parquet",
        output="outputs/b.parquet",
        engine="spark",
        spark=spark,
    )
    assert on_spark.returncode == 0, on_spark.stdout[-3000:] + on_spark.stderr[-3000:]
    assert "3000" in on_spark.stdout.replace(",", "")  # the rows scored, in the summary
    # It ran on the cluster: an application of the project's name, with both workers' cores.
    apps = completed_apps(cluster)
    assert apps and apps[-1]["cores"] == 2
    expected = pd.read_parquet(project / "outputs" / "a.pq")
    assert (project / "outputs" / "b.parquet").is_dir()  # Spark's part files
    scored = pd.read_parquet(project / "outputs" / "b.parquet").sort_values("id")
    assert list(scored.columns) == list(expected.columns)
    assert list(expected.columns[:2]) == ["id", "mean radius"]
    assert {"prediction", "probability_0", "probability_1"} <= set(expected.columns)
    assert scored["scored_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    same = ["scored_at"]  # each run's own time
    pd.testing.assert_frame_equal(
        scored.drop(columns=same).reset_index(drop=True),
        expected.drop(columns=same),
        check_exact=False,
        rtol=1e-9,
        atol=1e-12,
    )
    assert expected["id"].is_unique and len(expected) == 3000


def test_a_batch_that_does_not_fit_stops_the_cluster_run_in_one_line(
    project, mlflow_server, cluster
):
    result = batch_infer(
        project,
        mlflow_server,
        "bad.yaml",
        input="data/bad.parquet",
        output="outputs/bad.parquet",
        engine="spark",
        spark={"master": cluster.master},
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: the batch does not fit the model: column 'mean radius' holds numbers and text "
        "('n/a', '?'): a number column must hold only numbers; leave a cell empty to count it "
        "as missing"
    ], result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    leftovers = [path.name for path in (project / "outputs").iterdir() if "bad" in path.name]
    assert leftovers == []
