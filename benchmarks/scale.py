"""Scale table: batch inference of a generated project on large batches, against the plain-pandas
floor in the same environment (read_parquet -> the champion's pyfunc -> predict -> to_parquet).

Renders a classification project (breast cancer, 30 numeric columns) and a regression project
(diabetes, 10 columns), trains each on its bundled dataset, resamples that dataset (seeded, with
noise, an `id` column) to each size as Parquet, and runs `batch-infer` (Parquet in and out, the
id passed through) with each engine, and the floor, one after the other, each under
/usr/bin/time for wall time and peak RSS. Spark's outputs are compared with the pandas
engine's, row for row by id. Prints a table; asserts nothing.

    uv run python benchmarks/scale.py --rows 200000,2000000,20000000
    uv run python benchmarks/scale.py --ref fdd89dd --engines pandas   # an older template
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TEMPLATE / "tests"))
TABLES = {"classification": "breast_cancer", "regression": "diabetes"}
PACKAGE = "scale_bench"

FLOOR = """
import sys, mlflow, pandas as pd
rows = pd.read_parquet(sys.argv[1])
model = mlflow.pyfunc.load_model(f"models:/{sys.argv[3]}@champion")
inputs = rows.drop(columns=["id"]).astype("float64")
pd.concat([rows[["id"]], model.predict(inputs)], axis=1).to_parquet(sys.argv[2], index=False)
"""

MAKE_BATCH = """
import sys, numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
from sklearn import datasets
frame = getattr(datasets, "load_" + sys.argv[1])(as_frame=True).frame.drop(columns="target")
rows, rng = int(sys.argv[2]), np.random.default_rng(0)
schema = pa.Schema.from_pandas(frame.assign(id=0)[["id", *frame]], preserve_index=False)
with pq.ParquetWriter(sys.argv[3], schema) as out:
    for start in range(0, rows, 1_000_000):  # in pieces: 20M rows would not fit twice
        n = min(1_000_000, rows - start)
        part = frame.sample(n, replace=True, random_state=start).reset_index(drop=True)
        part = part * rng.normal(1.0, 0.01, size=part.shape)  # rows differ, as real ones do
        part.insert(0, "id", np.arange(start, start + n))
        out.write_table(pa.Table.from_pandas(part, preserve_index=False), row_group_size=100_000)
"""

SAME = """
import sys, numpy as np, pandas as pd
one, other = (pd.read_parquet(p).sort_values("id", ignore_index=True) for p in sys.argv[1:3])
assert len(one) == len(other), (len(one), len(other))
assert list(one.columns) == list(other.columns), (list(one.columns), list(other.columns))
for column in one.columns.drop(["scored_at"]):
    a, b = one[column], other[column]
    if a.dtype.kind == "f":
        assert np.allclose(a, b, rtol=1e-9, atol=1e-12), column
    else:
        assert (a.astype(str) == b.astype(str)).all(), column
print("equal")
"""


def timed(command: list[str], cwd: Path, env: dict, required: bool = True) -> tuple:
    """(wall seconds, or None if it failed and is not `required`; peak RSS in GB of the largest
    process; output)"""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-v", *command], cwd=cwd, capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - started
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    peak = int(peak.group(1)) / 1024**2 if peak else float("nan")
    if done.returncode and required:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return (None if done.returncode else wall), peak, done.stdout + done.stderr


def project(base: Path, task: str, ref: str, spark: bool, large_data: bool, env: dict) -> Path:
    destination = base / task
    subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--vcs-ref", ref,
         "-d", "project_name=Scale Bench", "-d", f"task={task}",
         "-d", f"spark_engine={str(spark).lower()}", "-d", f"large_data={str(large_data).lower()}",
         str(TEMPLATE), str(destination)],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    for target in ("setup", "train"):
        subprocess.run(["make", target], cwd=destination, check=True, capture_output=True, env=env)
    return destination


def configure(root: Path, batch: Path, output: str, engine: str, master: str, chunk_rows: int):
    config = root / "configs" / "batch_inference.yaml"
    text = config.read_text()
    for key, value in {
        "input": str(batch),
        "output": output,
        "pass_through": "[id]",
        "chunk_rows": str(chunk_rows),
        "engine": engine,
        "  master": master,
    }.items():
        text = re.sub(rf"(?m)^{key}: .*$", f"{key}: {value}", text)
    config.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="200000,2000000", help="comma-separated batch sizes")
    parser.add_argument("--tasks", default="classification,regression")
    parser.add_argument("--engines", default="pandas", help="pandas,spark-local,spark-cluster")
    parser.add_argument("--ref", default="HEAD", help="template git ref (HEAD: the work tree)")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument(
        "--large-data",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the large_data answer (--no-large-data: batches read whole, the default answers)",
    )
    parser.add_argument(
        "--floor-max-rows",
        type=int,
        default=5_000_000,
        help="no floor above (20M rows: pandas was killed at 24 GB on a 24 GB machine)",
    )
    args = parser.parse_args()
    engines = args.engines.split(",")
    base = Path(tempfile.mkdtemp(prefix="scale-", dir=TEMPLATE / "build"))
    env = {
        **os.environ,
        "ZENML_CONFIG_PATH": str(base / "zenml"),
        "ZENML_ANALYTICS_OPT_IN": "false",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    print(
        f"template {args.ref}, large_data {args.large_data}, chunk_rows {args.chunk_rows:,}, "
        f"{os.cpu_count()} cores"
    )
    print(
        "| table | rows | engine | wall s | floor s | ratio | peak GB | floor GB | rows/s | same |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with ExitStack() as stack:
        for task in args.tasks.split(","):
            spark = any(e != "pandas" for e in engines)
            root = project(base, task, args.ref, spark, args.large_data, env)
            python = root / ".venv" / "bin" / "python"
            master = "local[*]"
            if "spark-cluster" in engines:
                import servers  # tests/servers.py: the cluster the template's tests use

                master = stack.enter_context(servers.spark_cluster(python, memory="4g")).master
            tracker = {
                **env,
                "MLFLOW_TRACKING_URI": f"sqlite:///{root / '.zenml-artifacts' / 'mlflow.db'}",
            }
            for rows in (int(n) for n in args.rows.split(",")):
                batch = root / "data" / f"batch-{rows}.parquet"
                batch.parent.mkdir(exist_ok=True)
                subprocess.run(
                    [python, "-c", MAKE_BATCH, TABLES[task], str(rows), str(batch)], check=True
                )
                floor, floor_peak, skipped = None, float("nan"), "not run"
                if rows <= args.floor_max_rows:
                    skipped = "failed"
                    floor, floor_peak, _ = timed(
                        [
                            str(python),
                            "-c",
                            FLOOR,
                            str(batch),
                            str(root / "floor.parquet"),
                            PACKAGE,
                        ],
                        root,
                        tracker,
                        required=False,  # out of memory: reported as failed
                    )
                outputs = {}
                for engine in engines:
                    outputs[engine] = f"outputs/{engine}.parquet"
                    spark_master = master if engine == "spark-cluster" else "local[*]"
                    configure(
                        root,
                        batch,
                        outputs[engine],
                        engine.split("-")[0],
                        spark_master,
                        args.chunk_rows,
                    )
                    wall, peak, _ = timed(
                        [str(root / ".venv" / "bin" / PACKAGE), "batch-infer"], root, env
                    )
                    same = ""
                    if engine != "pandas" and "pandas" in outputs:
                        check = subprocess.run(
                            [python, "-c", SAME, outputs["pandas"], outputs[engine]],
                            cwd=root, capture_output=True, text=True,
                        )  # fmt: skip
                        same = "yes" if check.returncode == 0 else f"NO: {check.stderr[-300:]}"
                    print(
                        f"| {TABLES[task]} | {rows:,} | {engine} | {wall:.1f} | "
                        + (f"{floor:.1f} | {wall / floor:.2f}" if floor else f"{skipped} | -")
                        + f" | {peak:.2f} | {floor_peak:.2f} "
                        f"| {rows / wall:,.0f} | {same} |",
                        flush=True,
                    )
                batch.unlink()
                for output in outputs.values():
                    subprocess.run(["rm", "-rf", str(root / output)], check=True)


if __name__ == "__main__":
    main()
