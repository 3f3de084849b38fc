"""Training at scale: wall time and peak memory of training on a large Parquet table.

    python benchmarks/train_scale.py build/demo                   # 500,000 and 5,000,000 rows
    python benchmarks/train_scale.py build/demo --rows 500000 --sample-rows 100000

PROJECT is a rendered project after `make setup` (classification; `--sample-rows` needs the
large_data answer, which also makes training read only its columns). For each
row count, scikit-learn's breast_cancer table (30 numeric columns, a 0/1 target) is resampled to
that many rows (seeded, with noise of 1 % of each column's spread, so rows differ) plus an `id`
column, written to PROJECT/data/train_scale_<rows>.parquet; configs/training.yaml is pointed at
it (`data.exclude: [id]`) for the run and restored afterwards, and `make train`'s command runs
with `--no-cache` (every step computed). Prints a table: wall time, the peak RSS summed over the
process tree (polled from /proc every 0.2 s), the largest single process's peak
(`/usr/bin/time -v`) and ZenML's time per step. Numbers, no assertions.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAKE_TABLE = """
import sys
import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

rows, path = int(sys.argv[1]), sys.argv[2]
frame = load_breast_cancer(as_frame=True).frame
rng = np.random.default_rng(0)
table = frame.iloc[rng.integers(0, len(frame), rows)].reset_index(drop=True)
features = table.columns.drop("target")
noise = rng.normal(size=(rows, len(features))) * (frame[features].std().to_numpy() * 0.01)
table[features] = table[features].to_numpy() + noise
table.insert(0, "id", np.arange(rows))
table.to_parquet(path, index=False)
"""
STEP = re.compile(r"Step `?(\w+)`? has finished in `?((?:\d+[dhm])*[\d.]+s)")
STEPS = ("prepare_data", "train", "evaluate", "register", "promote")


def seconds(text: str) -> float:
    """ZenML's durations: 12.345s, 1m12s, 1h2m3s."""
    total, units = 0.0, {"d": 86400, "h": 3600, "m": 60, "s": 1}
    for number, unit in re.findall(r"([\d.]+)([dhms])", text):
        total += float(number) * units[unit]
    return total


def tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants, from /proc."""
    children, rss = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def run_train(project: Path) -> dict:
    """`make train`'s command, with --no-cache (a cold run: the data steps too), under
    /usr/bin/time -v, polling the tree's RSS."""
    package = re.search(r"(?m)^PACKAGE := (\w+)", (project / "Makefile").read_text()).group(1)
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        train = [f".venv/bin/{package}", "train", "--no-cache"]
        command = ["/usr/bin/time", "-v", "-o", report.name, *train]
        started, peak = time.perf_counter(), 0
        with tempfile.TemporaryFile("w+") as log:
            process = subprocess.Popen(command, cwd=project, stdout=log, stderr=subprocess.STDOUT)
            while process.poll() is None:
                peak = max(peak, tree_rss(process.pid))
                time.sleep(0.2)
            wall = time.perf_counter() - started
            log.seek(0)
            output = re.sub(r"\x1b\[[0-9;]*m", "", log.read())  # ZenML colours its logs
        largest = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report.read())
    if process.returncode:
        sys.exit(f"make train failed ({process.returncode}):\n{output[-3000:]}")
    steps = {name: seconds(duration) for name, duration in STEP.findall(output)}
    card = project / "outputs" / "model_card.md"  # what the model card says of samples
    for line in card.read_text().splitlines() if card.is_file() else []:
        if "sample" in line:
            print(f"  model card: {line}", flush=True)
    return {
        "wall": wall,
        "tree": peak / 2**30,
        "largest": int(largest.group(1)) / 2**20 if largest else float("nan"),
        "steps": steps,
    }


def point_config(text: str, source: Path, sample_rows: int | None) -> str:
    text = re.sub(r"(?m)^  source: .*$", f"  source: {source}", text, count=1)
    text = re.sub(r"(?m)^  exclude: .*$", "  exclude: [id]", text, count=1)
    if sample_rows is not None:
        text = re.sub(r"(?m)^  sample_rows: .*\n", "", text)
        text = text.replace("  exclude: [id]\n", f"  exclude: [id]\n  sample_rows: {sample_rows}\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", type=Path, help="a rendered project after `make setup`")
    parser.add_argument("--rows", type=int, nargs="+", default=[500_000, 5_000_000])
    parser.add_argument("--sample-rows", type=int, help="data.sample_rows for the runs")
    args = parser.parse_args()
    project = args.project.resolve()
    python, config = project / ".venv" / "bin" / "python", project / "configs" / "training.yaml"
    original = config.read_text()
    results = []
    try:
        for rows in args.rows:
            table = project / "data" / f"train_scale_{rows}.parquet"
            if not table.is_file():
                table.parent.mkdir(exist_ok=True)
                made = time.perf_counter()
                subprocess.run([str(python), "-c", MAKE_TABLE, str(rows), str(table)], check=True)
                print(f"made {table} in {time.perf_counter() - made:.1f} s", flush=True)
            config.write_text(point_config(original, table, args.sample_rows))
            print(f"make train on {rows:,} rows ...", flush=True)
            results.append((rows, run_train(project)))
    finally:
        config.write_text(original)
    columns = [name for name in STEPS if any(name in r["steps"] for _, r in results)]
    print()
    print("| rows | wall s | peak RSS tree GB | largest process GB | " + " | ".join(columns) + " |")
    print("| ---: " * (4 + len(columns)) + "|")
    for rows, r in results:
        steps = " | ".join(f"{r['steps'].get(name, float('nan')):.1f}" for name in columns)
        print(f"| {rows:,} | {r['wall']:.1f} | {r['tree']:.2f} | {r['largest']:.2f} | {steps} |")
    print(f"\nload average {os.getloadavg()[0]:.2f} (2 shared cores: numbers move with it)")


if __name__ == "__main__":
    main()
