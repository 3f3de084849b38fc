"""Measurements that must run inside a generated project's virtualenv (its ZenML, MLflow and
package), started by bench.py as `.venv/bin/python probe.py COMMAND PACKAGE ...` in the
project's root, with the benchmark's ZenML store and the stack already set up.

Prints one JSON object on the last line of stdout.
"""

import importlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from zenml import step

# Steps at module level: ZenML loads them by their source (this file, copied under src/).


@step(enable_cache=False)
def noop(value: int) -> int:
    return value + 1


@step(enable_cache=False, experiment_tracker=True)
def tracked_noop(value: int) -> int:
    return value + 1


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def ml_work(package: str) -> dict[str, float]:
    """The ML work of the training pipeline as plain function calls: no ZenML, no MLflow."""
    config = importlib.import_module(f"{package}.config")
    data_module = importlib.import_module(f"{package}.ml.data")
    model_module = importlib.import_module(f"{package}.ml.model")
    metrics = importlib.import_module(f"{package}.ml.metrics")
    plots = importlib.import_module(f"{package}.ml.plots")

    settings = config.load_training_config(Path("configs/training.yaml"))
    data = settings.data
    times = {}
    started = time.perf_counter()
    dataset = data_module.load_validated(data)
    train_set, test_set = data_module.split_data(dataset, data, settings.split)
    times["data"] = time.perf_counter() - started
    mark = time.perf_counter()
    features, y = train_set.drop(columns=[data.target]), train_set[data.target]
    model = model_module.train_model(features, y, settings.model, data.task)
    times["fit"] = time.perf_counter() - mark
    mark = time.perf_counter()
    test_features, test_y = test_set.drop(columns=[data.target]), test_set[data.target]
    average = [data.average] if data.task == "classification" else []  # only the task's code
    metrics.evaluate(model, test_features, test_y, *average)
    with tempfile.TemporaryDirectory() as folder:
        plots.plot_evaluation(model, test_features, test_y, Path(folder))
    times["evaluate"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - started
    return times


def _prepare(package: str) -> None:
    app = importlib.import_module(f"{package}.app")
    app.project_root()
    app.prepare(importlib.import_module(f"{package}.config").DEFAULT_STACK)


def overhead(package: str, steps: int) -> dict:
    """Pipelines of no-op steps (with and without the MLflow experiment tracker), the ML work
    as plain calls, and the real training pipeline, all in this one process."""
    from zenml import pipeline

    _prepare(package)

    def chain(step_function, length: int):
        @pipeline(enable_cache=False, name=f"bench_{step_function.name}_{length}")
        def chained() -> None:
            value = 0
            for _ in range(length):
                value = step_function(value)

        return chained

    chain(noop, 1)()  # warm-up: the first run in a process pays one-time imports
    result: dict = {"steps": steps}
    for label, function in (("noop", noop), ("tracked_noop", tracked_noop)):
        for length in (1, steps):
            started = time.perf_counter()
            chain(function, length)()
            result[f"{label}_{length}"] = time.perf_counter() - started
        # Fitted on one run of 1 step and one of N: the cost of each further step.
        per_step = (result[f"{label}_{steps}"] - result[f"{label}_1"]) / (steps - 1)
        result[f"{label}_per_step"] = per_step
        result[f"{label}_fixed"] = result[f"{label}_1"] - per_step

    ml_work(package)  # warm-up (imports, first figure), so that both sides below run warm
    training = importlib.import_module(f"{package}.pipelines.training")
    config = importlib.import_module(f"{package}.config")
    settings = config.load_training_config(Path("configs/training.yaml"))
    started = time.perf_counter()
    training.run_training(settings, enable_cache=False)
    result["training_pipeline"] = time.perf_counter() - started
    result["ml_work"] = ml_work(package)
    return result


def floor(package: str, version: str, requests: int) -> dict:
    """In-process `model.predict` on the first row of the model's input example: what the
    endpoint cannot beat. Also prints the HTTP payload for the same row."""
    import mlflow

    _prepare(package)
    model = mlflow.pyfunc.load_model(f"models:/{package}/{version}")
    row = model.input_example.head(1)
    for _ in range(20):  # warm-up
        model.predict(row)
    latencies = []
    started = time.perf_counter()
    for _ in range(requests):
        mark = time.perf_counter()
        model.predict(row)
        latencies.append(time.perf_counter() - mark)
    elapsed = time.perf_counter() - started
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * _percentile(latencies, 0.95),
        "p99_ms": 1000 * _percentile(latencies, 0.99),
        "rps": requests / elapsed,
        "payload": {"dataframe_split": json.loads(row.to_json(orient="split", index=False))},
    }


def main() -> None:
    command, package, *args = sys.argv[1:]
    if command == "overhead":
        result = overhead(package, int(args[0]))
    elif command == "floor":
        result = floor(package, args[0], int(args[1]))
    else:
        raise SystemExit(f"unknown probe {command}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
