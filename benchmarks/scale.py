"""Scale table: batch inference of a generated project on large batches, against the plain-pandas
floor in the same environment (read_parquet -> the champion's pyfunc -> predict -> to_parquet).

Renders a classification project (breast cancer, 30 numeric columns) and a regression project
(diabetes, 10 columns), trains each on its bundled dataset, resamples that dataset (seeded, with
noise, an `id` column) to each size as Parquet, and runs `batch-infer` (Parquet in and out, the
id passed through) and the floor, one after the other, each under /usr/bin/time for wall time
and peak RSS. Prints a table; asserts nothing.

    uv run python benchmarks/scale.py --rows 200000,2000000,20000000
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
TABLES = {"classification": "breast_cancer", "regression": "diabetes"}

FLOOR = """
import sys, mlflow, pandas as pd
rows = pd.read_parquet(sys.argv[1])
model = mlflow.pyfunc.load_model(f"models:/{sys.argv[3]}@champion")
inputs = rows.drop(columns=["id"]).astype("float64")
pd.concat([rows[["id"]], model.predict(inputs)], axis=1).to_parquet(sys.argv[2], index=False)
"""

MAKE_BATCH = """
import sys, numpy as np, pandas as pd
from sklearn import datasets
frame = getattr(datasets, "load_" + sys.argv[1])(as_frame=True).frame.drop(columns="target")
rows, rng = int(sys.argv[2]), np.random.default_rng(0)
batch = frame.sample(rows, replace=True, random_state=0).reset_index(drop=True)
batch = batch * rng.normal(1.0, 0.01, size=batch.shape)  # rows differ, as real ones do
batch.insert(0, "id", np.arange(rows))
batch.to_parquet(sys.argv[3], index=False, row_group_size=100_000)
"""


def timed(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in GB of the largest process, output)"""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-v", *command], cwd=cwd, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return wall, int(peak.group(1)) / 1024**2, done.stdout + done.stderr


def project(base: Path, task: str, env: dict) -> Path:
    destination = base / task
    subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--vcs-ref", "HEAD",
         "-d", "project_name=Scale Bench", "-d", f"task={task}", str(TEMPLATE), str(destination)],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    for target in ("setup", "train"):
        subprocess.run(["make", target], cwd=destination, check=True, capture_output=True, env=env)
    return destination


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="200000,2000000", help="comma-separated batch sizes")
    parser.add_argument("--tasks", default="classification,regression")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="scale-", dir=TEMPLATE / "build"))
    env = {
        **os.environ,
        "ZENML_CONFIG_PATH": str(base / "zenml"),
        "ZENML_ANALYTICS_OPT_IN": "false",
    }
    os.environ.update(env)
    print(
        "| table | rows | batch-infer s | floor s | ratio | batch-infer GB | floor GB | rows/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for task in args.tasks.split(","):
        root = project(base, task, env)
        python = root / ".venv" / "bin" / "python"
        package = "scale_bench"
        for rows in (int(n) for n in args.rows.split(",")):
            batch, out = root / "data" / f"batch-{rows}.parquet", root / "outputs" / "floor.parquet"
            batch.parent.mkdir(exist_ok=True)
            subprocess.run(
                [python, "-c", MAKE_BATCH, TABLES[task], str(rows), str(batch)], check=True
            )
            config = root / "configs" / "batch_inference.yaml"
            text = re.sub(r"(?m)^input: .*$", f"input: {batch}", config.read_text())
            text = re.sub(r"(?m)^output: .*$", "output: outputs/predictions.parquet", text)
            text = re.sub(r"(?m)^pass_through: .*$", "pass_through: [id]", text)
            text = re.sub(r"(?m)^chunk_rows: .*$", f"chunk_rows: {args.chunk_rows}", text)
            config.write_text(text)
            wall, peak, _ = timed([str(root / ".venv" / "bin" / package), "batch-infer"], root)
            os.environ["MLFLOW_TRACKING_URI"] = (
                f"sqlite:///{root / '.zenml-artifacts' / 'mlflow.db'}"
            )
            floor, floor_peak, _ = timed(
                [str(python), "-c", FLOOR, str(batch), str(out), package], root
            )
            del os.environ["MLFLOW_TRACKING_URI"]
            print(
                f"| {TABLES[task]} | {rows:,} | {wall:.1f} | {floor:.1f} | {wall / floor:.2f} | "
                f"{peak:.2f} | {floor_peak:.2f} | {rows / wall:,.0f} |",
                flush=True,
            )
            batch.unlink()


if __name__ == "__main__":
    main()
