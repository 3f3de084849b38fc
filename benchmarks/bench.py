"""Benchmarks of the generated project: `make bench` (see README, "Benchmarks").

For each run, each template ref and each backend (the embedded MLflow default, and a local
`mlflow server` this script starts), a fresh project is rendered and taken through what a user
does: copy -> `make setup` -> `make all` (trained, registered, promoted, deployed, first
prediction), then on the same project: the serving endpoint under load, a cold and a cached
re-run of training, and ZenML's per-step overhead. Every figure is the median over the runs;
ratios are computed inside each run, then their median is taken. The load average is recorded
with every run: on a shared machine numbers move with it, so compare refs with `--ref A --ref B`
(interleaved: run 1 of A, run 1 of B, run 2 of A, ...).

Writes build/bench/results.json and results.md, and prints the Markdown table.
"""

import argparse
import http.client
import itertools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from contextlib import ExitStack, suppress
from pathlib import Path
from urllib.parse import urlparse

TEMPLATE = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).resolve().parent / "probe.py"
BIN = Path(sys.executable).parent  # the template's dev environment: copier, mlflow, uv
SERVINGS = ["mlflow-deployer", "pipeline-deployment"]
WORKTREE = "WORKTREE"  # --ref value: the working tree, uncommitted changes included
BACKENDS = {
    "embedded": "ZenML's local store, the project's embedded MLflow (the default project)",
    "server": "ZenML's local store, a local `mlflow server`",
    "server-auth": "ZenML's local store, a local `mlflow server --app-name basic-auth`",
    "zenml-server": "a local ZenML server (service account key), the embedded MLflow",
    "team-postgres": "a team's `mlflow server` (docs/team-tracker.md): PostgreSQL for runs and "
    "users, proxied artifacts, basic auth, 2 workers",
    "team-sqlite": "the same team server on sqlite files",
}

sys.path.insert(0, str(TEMPLATE / "tests"))
from servers import mlflow_auth_server, mlflow_server, mlflow_team_server, zenml_server  # noqa: E402 (the tests' loopback servers)

# --- processes ---------------------------------------------------------------------------


def load_average() -> float:
    return os.getloadavg()[0]


def timed(command: list[str], cwd: Path, env: dict, timeout: int = 1800) -> tuple[float, list]:
    """Run a command; return its wall time and its output lines, each with the time (seconds
    since start) it arrived at."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    lines = []
    timer = threading.Timer(timeout, lambda: os.killpg(process.pid, signal.SIGKILL))
    timer.start()
    try:
        for line in process.stdout:
            lines.append((time.perf_counter() - started, line.rstrip("\n")))
        process.wait()
    finally:
        timer.cancel()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        tail = "\n".join(text for _, text in lines[-40:])
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}:\n{tail}")
    return wall, lines


def first(lines: list, pattern: str) -> tuple[float, re.Match] | tuple[None, None]:
    """The first output line matching `pattern`: (its arrival time, the match)."""
    for at, text in lines:
        found = re.search(pattern, re.sub(r"\x1b\[[0-9;]*m", "", text))
        if found:
            return at, found
    return None, None


def number(lines: list, pattern: str) -> float | None:
    _, found = first(lines, pattern)
    return float(found.group(1)) if found else None


def stop_daemons(zenml_config: Path) -> None:
    """Kill model-server daemons left behind under this run's ZenML store (after a failure):
    only processes whose pid file lies there, i.e. started by this benchmark."""
    for pid_file in zenml_config.glob("local_stores/*/*/service.pid"):
        with suppress(ValueError, OSError):
            os.killpg(int(pid_file.read_text().strip()), signal.SIGTERM)


# --- measurements ------------------------------------------------------------------------


def render(ref: str, destination: Path, answers: dict[str, str], env: dict) -> float:
    command = [str(BIN / "copier"), "copy", "--trust", "--defaults", "--quiet"]
    command += ["--vcs-ref", "HEAD" if ref == WORKTREE else ref]
    for key, value in answers.items():
        command += ["-d", f"{key}={value}"]
    wall, _ = timed([*command, str(TEMPLATE), str(destination)], TEMPLATE, env)
    return wall


def lifecycle(project: Path, package: str, env: dict) -> dict:
    """`make setup` and `make all`, split into phases by the commands' own output and by when
    each line arrived."""
    phases = {}
    wall, lines = timed(["make", "setup"], project, env)
    # make echoes each command; with a ZenML server, `login` comes first (counted with the stack)
    stack_at, _ = first(lines, rf"^\S*bin/{package} (login|stack)")
    phases["install (uv sync)"] = stack_at
    phases["stack registration"] = wall - stack_at
    phases["make setup"] = wall

    wall, lines = timed(["make", "all"], project, env)
    # Boundaries: when each phase's announcement and its "done ... in X s" line arrived.
    preflight_at, _ = first(lines, r"Preflight: ")
    preflight_done, _ = first(lines, r"done Preflight in")
    training_at, _ = first(lines, r"^Training pipeline: ")
    training_done, _ = first(lines, r"done Training pipeline in")
    deploying_at, _ = first(lines, r"^Deploying: ")
    deploying_done, _ = first(lines, r"done Deploying in")
    phases["CLI start-up"] = preflight_at
    phases["preflight (tracker, ZenML, stack)"] = number(lines, r"done Preflight in ([\d.]+) s")
    phases["imports for the pipeline"] = training_at - preflight_done
    phases["training pipeline"] = number(lines, r"done Training pipeline in ([\d.]+) s")
    phases["training summary"] = deploying_at - training_done
    phases["deployment pipeline"] = number(lines, r"done Deploying in ([\d.]+) s")
    phases["first prediction, summary"] = wall - deploying_done
    phases["make all"] = wall
    _, serving = first(lines, r"serving: +v(\d+) at (http://\S+)")
    return {"phases": phases, "version": serving.group(1), "url": serving.group(2)}


def train_times(project: Path, package: str, env: dict, *options: str) -> dict:
    wall, lines = timed([str(project / ".venv" / "bin" / package), "train", *options], project, env)
    return {"command": wall, "pipeline": number(lines, r"time: +([\d.]+) s pipeline")}


def cached_rerun(project: Path, package: str, env: dict) -> dict:
    """Training on unchanged data and config: cold (`--no-cache`), then re-runs. `train` as
    users run it: ZenML reuses the cached data steps; training, evaluation, registration and
    the gate run again, by design (every training is a run and a registered version).
    `train --if-changed` (where the template has it): nothing changed, nothing is trained."""
    cold = train_times(project, package, env, "--no-cache")
    cached = train_times(project, package, env)
    result = {
        "cold": cold,
        "cached": cached,
        "pipeline_ratio": cached["pipeline"] / cold["pipeline"],
        "command_ratio": cached["command"] / cold["command"],
    }
    try:
        skipped = train_times(project, package, env, "--if-changed")
    except RuntimeError:  # an older template: no such option
        return result
    result["if_changed"] = skipped
    result["if_changed_ratio"] = skipped["command"] / cold["command"]
    return result


# What every lifecycle command imports at the least: `make all` is measured against it.
FLOOR_IMPORTS = "import zenml.client, mlflow, sklearn, pandas"


def import_floor(project: Path, env: dict) -> float:
    """Importing zenml, mlflow, scikit-learn and pandas in the project's environment, warm
    (compiled modules cached): the best of three."""
    python = str(project / ".venv" / "bin" / "python")
    return min(timed([python, "-c", FLOOR_IMPORTS], project, env)[0] for _ in range(3))


def command_times(project: Path, package: str, env: dict) -> dict:
    """Each command as a user runs it, in a new process, with the endpoint up: predict (the
    recorded example: 5 rows), status, batch-infer, undeploy, deploy (from nothing)."""
    cli = str(project / ".venv" / "bin" / package)
    times = {}
    for command in ("predict", "status", "batch-infer", "undeploy", "deploy"):
        times[command] = timed([cli, command], project, env)[0]
    return times


def probe(project: Path, package: str, env: dict, *args: str) -> dict:
    python = str(project / ".venv" / "bin" / "python")
    # ZenML loads steps defined in __main__ only from below its source root (src/).
    script = project / "src" / "bench_probe.py"
    shutil.copy(PROBE, script)
    _, lines = timed([python, str(script), args[0], package, *args[1:]], project, env)
    return json.loads(lines[-1][1])


def load_test(url: str, payload: dict, concurrency: int, requests: int) -> dict:
    """POST the same payload `requests` times from `concurrency` threads, each on its own
    keep-alive connection."""
    target = urlparse(url)
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    errors = []
    lock = threading.Lock()

    def worker(count: int) -> None:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        mine = []
        try:
            for _ in range(count):
                mark = time.perf_counter()
                connection.request("POST", target.path, body, headers)
                response = connection.getresponse()
                response.read()
                mine.append(time.perf_counter() - mark)
                if response.status != 200:
                    errors.append(response.status)
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)

    worker(20)  # warm-up
    latencies.clear()
    threads = [
        threading.Thread(target=worker, args=(requests // concurrency,)) for _ in range(concurrency)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} requests to {url} failed: {errors[:5]}")
    ordered = sorted(latencies)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "rps": len(ordered) / elapsed,
    }


def one_run(
    ref: str, backend: str, serving: str, index: int, args, servers: dict, base: Path
) -> dict:
    """copy -> setup -> all, then the measurements that reuse that project. `servers`: the
    running servers by backend name."""
    tag = re.sub(r"\W", "", ref.lower())[:8] or "ref"
    initials = "".join(word[0] for word in f"{backend}-{serving}".split("-"))  # e.g. emd, sp
    package = f"bench_{initials}_{tag}_{index}"  # a fresh registered model on the server
    workdir = base / package
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    zenml_config = workdir / "zenml"  # a fresh ZenML store: a new user's first project
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    if args.bytecode_cache:  # as on a user's machine: Python keeps compiled modules
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:  # every process compiles every module it imports, every time
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(
        ZENML_CONFIG_PATH=str(zenml_config),
        ZENML_ANALYTICS_OPT_IN="false",
        PYTHONUNBUFFERED="1",  # lines arrive when written: phases split by arrival time
        VIRTUAL_ENV="",
    )
    answers = {"project_name": package.replace("_", " ").title(), "package_name": package}
    answers["serving"] = serving
    if backend == "server":
        answers["mlflow_tracking_uri"] = servers[backend]
    elif backend in ("server-auth", "team-postgres", "team-sqlite"):  # typed at copy time
        server = servers[backend]
        username, password = server.user if backend == "server-auth" else server.users["alice"]
        answers.update(mlflow_tracking_uri=server.uri, mlflow_auth="basic")
        answers.update(mlflow_username=username, mlflow_password=password)
    elif backend == "zenml-server":
        answers["zenml_server_url"] = servers[backend].url
        # As a user's .env would; the URL too, for probe.py, which imports ZenML before logging in
        env["ZENML_STORE_API_KEY"] = servers[backend].api_key
        env["ZENML_STORE_URL"] = servers[backend].url
    project = workdir / "project"
    result = {"ref": ref, "backend": backend, "run": index, "load_before": load_average()}
    loads = [load_average()]
    try:
        phases = {"copy": render(ref, project, answers, env)}
        done = lifecycle(project, package, env)
        phases.update(done["phases"])
        phases["lifecycle total"] = phases["copy"] + phases["make setup"] + phases["make all"]
        result["lifecycle"] = phases
        result["floor"] = {"imports": import_floor(project, env)}
        result["floor"]["make_all_ratio"] = phases["make all"] / result["floor"]["imports"]
        loads.append(load_average())
        if "serving" in args.only:
            floor = probe(project, package, env, "floor", done["version"], str(args.requests))
            payload = floor.pop("payload")
            if serving == "pipeline-deployment":  # as the project's client sends it
                payload = {"parameters": {"payload": payload}}
                payload["skip_artifact_materialization"] = True
            result["serving"] = {"in-process predict": floor}
            for concurrency in (1, 8):
                measured = load_test(done["url"], payload, concurrency, args.requests)
                result["serving"][f"HTTP, concurrency {concurrency}"] = measured
            loads.append(load_average())
        if "commands" in args.only:
            result["commands"] = command_times(project, package, env)
            loads.append(load_average())
        timed(["make", "undeploy"], project, env)
        if "cache" in args.only:
            result["cache"] = cached_rerun(project, package, env)
            loads.append(load_average())
        if "overhead" in args.only:
            result["overhead"] = probe(project, package, env, "overhead", str(args.steps))
            loads.append(load_average())
    except Exception as error:  # one failed run is reported; the others still count
        result["error"] = f"{type(error).__name__}: {error}"[-3000:]
        print(f"[bench]   FAILED: {result['error']}", flush=True)
    finally:
        stop_daemons(zenml_config)
        result["load_avg"] = statistics.mean(loads)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


# --- test suite --------------------------------------------------------------------------


def suite_times(junit_files: list[Path]) -> dict[str, dict]:
    """Seconds per test module (setup + call + teardown of its tests, summed) from junit XML."""
    modules: dict[str, dict] = defaultdict(lambda: {"seconds": 0.0, "tests": 0, "failed": 0})
    for path in junit_files:
        for case in ElementTree.parse(path).iter("testcase"):
            module = case.get("classname", "").split(".")
            name = next((part for part in module if part.startswith("test_")), module[0])
            entry = modules[name]
            entry["seconds"] += float(case.get("time") or 0)
            entry["tests"] += 1
            entry["failed"] += any(case.find(tag) is not None for tag in ("failure", "error"))
    return dict(sorted(modules.items(), key=lambda item: -item[1]["seconds"]))


def run_suite(junit: Path, pytest_args: list[str]) -> float:
    """The template's own test suite, once, with a junit report (slow: ~20 min)."""
    junit.parent.mkdir(parents=True, exist_ok=True)
    command = [str(BIN / "pytest"), f"--junitxml={junit}", "-q", *pytest_args]
    started = time.perf_counter()
    subprocess.run(command, cwd=TEMPLATE, check=False)
    return time.perf_counter() - started


# --- report ------------------------------------------------------------------------------


def dig(data: dict, path: str):
    for key in path.split("/"):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def median_of(runs: list[dict], path: str) -> float | None:
    values = [v for v in (dig(run, path) for run in runs) if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def paired_ratio(runs: list[dict], refs: list[str], backend: str, path: str) -> float | None:
    """Median over runs of (last ref / first ref), each pair measured back to back."""
    by_run = defaultdict(dict)
    for run in runs:
        if run["backend"] == backend:
            by_run[run["run"]][run["ref"]] = dig(run, path)
    ratios = [
        pair[refs[-1]] / pair[refs[0]]
        for pair in by_run.values()
        if isinstance(pair.get(refs[0]), (int, float)) and pair[refs[0]]
        if isinstance(pair.get(refs[-1]), (int, float))
    ]
    return statistics.median(ratios) if ratios else None


def table(runs: list[dict], refs: list[str], backends: list[str], rows: list[tuple]) -> str:
    """One row per (label, path, format); one column per backend and ref (medians), plus the
    paired after/before ratio when two refs are compared."""
    columns = [(backend, ref) for backend in backends for ref in refs]
    names = [f"{b} ({r})" if len(refs) > 1 else b for b, r in columns]
    if len(refs) > 1:
        names += [f"{b}: {refs[-1]} / {refs[0]}" for b in backends]
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, path, fmt in rows:
        cells = []
        for backend, ref in columns:
            chosen = [r for r in runs if r["backend"] == backend and r["ref"] == ref]
            value = median_of(chosen, path)
            cells.append("-" if value is None else format(value, fmt))
        if len(refs) > 1:
            for backend in backends:
                ratio = paired_ratio(runs, refs, backend, path)
                cells.append("-" if ratio is None else f"{ratio:.2f}x")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


LIFECYCLE_ROWS = [
    "copy",
    "install (uv sync)",
    "stack registration",
    "make setup",
    "CLI start-up",
    "preflight (tracker, ZenML, stack)",
    "imports for the pipeline",
    "training pipeline",
    "training summary",
    "deployment pipeline",
    "first prediction, summary",
    "make all",
    "lifecycle total",
]


def report(results: dict) -> str:
    runs, refs, backends = results["runs"], results["refs"], results["backends"]
    out = [
        f"Runs: {results['config']['runs']} per ref and backend (medians); machine: "
        f"{results['machine']['cpus']} CPUs, load average (1 min) during the runs: "
        f"{results['machine']['load_min']:.1f}-{results['machine']['load_max']:.1f}; "
        f"Python bytecode cache {'on' if results['config']['bytecode_cache'] else 'off'}; "
        f"serving: {', '.join(results['config']['serving'])}; "
        + ", ".join(f"{ref} = {commit[:10]}" for ref, commit in results["commits"].items())
        + "."
    ]
    for run in (run for run in runs if "error" in run):
        out.append(
            f"\nFailed: run {run['run']} {run['backend']} {run['ref']}: {run['error'][:300]}"
        )
    rows = [(phase, f"lifecycle/{phase}", ".1f") for phase in LIFECYCLE_ROWS]
    rows.append(("load average (1 min)", "load_avg", ".1f"))
    out += [
        "",
        "### Lifecycle: copy -> setup -> all (seconds)",
        "",
        table(runs, refs, backends, rows),
    ]
    rows = [
        (f"import floor: `{FLOOR_IMPORTS}` (s)", "floor/imports", ".1f"),
        ("make all (s)", "lifecycle/make all", ".1f"),
        ("make all / import floor", "floor/make_all_ratio", ".1f"),
    ]
    out += ["", "### `make all` against its import floor", "", table(runs, refs, backends, rows)]
    if any("commands" in run for run in runs):
        rows = [
            (f"`{command}` (s)", f"commands/{command}", ".2f")
            for command in ("predict", "status", "batch-infer", "undeploy", "deploy")
        ]
        out += ["", "### Each command, in a new process", "", table(runs, refs, backends, rows)]
    if any("overhead" in run for run in runs):
        rows = [
            ("no-op step, ZenML only (s/step)", "overhead/noop_per_step", ".2f"),
            ("no-op step, ZenML + MLflow run (s/step)", "overhead/tracked_noop_per_step", ".2f"),
            ("pipeline fixed cost (s)", "overhead/noop_fixed", ".2f"),
            ("ML work as plain calls (s)", "overhead/ml_work/total", ".2f"),
            ("  of which data / fit / evaluate+plots (s)", "overhead/ml_work/fit", ".2f"),
            ("training pipeline, 7 steps (s)", "overhead/training_pipeline", ".2f"),
            ("training pipeline / ML work", "overhead/ratio", ".1f"),
        ]
        out += ["", "### ZenML + MLflow overhead per step", "", table(runs, refs, backends, rows)]
    if any("cache" in run for run in runs):
        rows = [
            ("cold: `train --no-cache`, pipeline (s)", "cache/cold/pipeline", ".1f"),
            ("re-run: `train`, pipeline (s)", "cache/cached/pipeline", ".1f"),
            ("re-run / cold, pipeline", "cache/pipeline_ratio", ".0%"),
            ("cold: `train --no-cache`, command (s)", "cache/cold/command", ".1f"),
            ("re-run: `train`, command (s)", "cache/cached/command", ".1f"),
            ("re-run / cold, command", "cache/command_ratio", ".0%"),
            ("re-run: `train --if-changed`, command (s)", "cache/if_changed/command", ".1f"),
            ("`--if-changed` / cold, command", "cache/if_changed_ratio", ".0%"),
        ]
        out += ["", "### Re-run of unchanged training", "", table(runs, refs, backends, rows)]
    if any("serving" in run for run in runs):
        rows = []
        for how in ("in-process predict", "HTTP, concurrency 1", "HTTP, concurrency 8"):
            rows += [
                (f"{how}: p50 (ms)", f"serving/{how}/p50_ms", ".2f"),
                (f"{how}: p95 (ms)", f"serving/{how}/p95_ms", ".2f"),
                (f"{how}: p99 (ms)", f"serving/{how}/p99_ms", ".2f"),
                (f"{how}: requests/s", f"serving/{how}/rps", ".0f"),
            ]
        rows.append(("HTTP c=1 p50 / in-process p50", "serving/floor_ratio", ".0f"))
        out += ["", "### Serving one row", "", table(runs, refs, backends, rows)]
    if results.get("suite"):
        out += ["", "### Template test suite, per module (junit)", ""]
        out += ["| module | tests | seconds | failed |", "|---|---|---|---|"]
        for module, entry in results["suite"]["modules"].items():
            out.append(
                f"| {module} | {entry['tests']} | {entry['seconds']:.0f} | {entry['failed']} |"
            )
        total = sum(entry["seconds"] for entry in results["suite"]["modules"].values())
        out.append(f"| total | | {total:.0f} | |")
        if results["suite"].get("wall"):
            out.append(f"\nWall time of the suite run: {results['suite']['wall']:.0f} s.")
    return "\n".join(out) + "\n"


def derive(run: dict) -> None:
    """Ratios inside one run."""
    overhead = run.get("overhead")
    if overhead:
        overhead["ratio"] = overhead["training_pipeline"] / overhead["ml_work"]["total"]
    serving = run.get("serving")
    if serving:
        serving["floor_ratio"] = (
            serving["HTTP, concurrency 1"]["p50_ms"] / serving["in-process predict"]["p50_ms"]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per ref and backend")
    parser.add_argument(
        "--ref",
        action="append",
        help=f"template git ref to render (repeat to compare, interleaved); {WORKTREE} (default) "
        "is the working tree with uncommitted changes",
    )
    parser.add_argument(
        "--backend",
        action="append",
        choices=list(BACKENDS),
        help="repeat for several; default: embedded and server. "
        + "; ".join(f"{name}: {what}" for name, what in BACKENDS.items()),
    )
    parser.add_argument(
        "--only",
        default="lifecycle,commands,serving,cache,overhead",
        help="comma-separated: lifecycle (always, with the import floor), commands, serving, "
        "cache, overhead",
    )
    parser.add_argument("--requests", type=int, default=400, help="requests per load test")
    parser.add_argument(
        "--serving",
        action="append",
        choices=SERVINGS,
        help="the projects' `serving` answer (repeat for several); default: both",
    )
    parser.add_argument("--steps", type=int, default=7, help="no-op steps per probe pipeline")
    parser.add_argument(
        "--junit",
        type=Path,
        action="append",
        default=[],
        help="junit XML of a template test run (per-module times)",
    )
    parser.add_argument(
        "--run-suite",
        action="store_true",
        help="also run the template's whole test suite once (~20 min)",
    )
    parser.add_argument("--out", type=Path, default=TEMPLATE / "build" / "bench")
    parser.add_argument("--keep", action="store_true", help="keep the generated projects")
    parser.add_argument(
        "--no-bytecode-cache",
        dest="bytecode_cache",
        action="store_false",
        help="run the project with PYTHONDONTWRITEBYTECODE=1 (default: Python's bytecode cache "
        "on, as on a user's machine, even if this environment turns it off)",
    )
    args = parser.parse_args()
    refs = args.ref or [WORKTREE]
    backends = args.backend or ["embedded", "server"]
    servings = args.serving or SERVINGS
    args.only = set(args.only.split(","))
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="bench-", dir=args.out))

    results = {
        "refs": refs,
        "backends": backends,  # the report's columns: one per backend and serving
        "config": {
            "bytecode_cache": args.bytecode_cache,
            "runs": args.runs,
            "requests": args.requests,
            "serving": servings,
            "steps": args.steps,
            "only": sorted(args.only),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "commits": {
            ref: subprocess.run(
                ["git", "rev-parse", "HEAD" if ref == WORKTREE else ref],
                cwd=TEMPLATE,
                capture_output=True,
                text=True,
            ).stdout.strip()
            for ref in refs
        },
        "runs": [],
    }
    started = time.perf_counter()
    with ExitStack() as stack:
        servers = {}
        if "server" in backends:
            servers["server"] = stack.enter_context(mlflow_server(base / "mlflow-server"))
        if "server-auth" in backends:
            auth_server = mlflow_auth_server(
                base / "mlflow-auth-server", username=f"bench-{base.name}"
            )
            servers["server-auth"] = stack.enter_context(auth_server)
        if "zenml-server" in backends:
            servers["zenml-server"] = stack.enter_context(zenml_server(base / "zenml-server"))
        for backend in {"team-postgres", "team-sqlite"} & set(backends):
            database = backend.removeprefix("team-")
            team = mlflow_team_server(base / backend, database=database)
            servers[backend] = stack.enter_context(team)
        for index in range(1, args.runs + 1):
            for backend, serving, ref in itertools.product(backends, servings, refs):
                print(
                    f"[bench] run {index}/{args.runs} {backend} {serving} {ref} "
                    f"(load {load_average():.1f})",
                    flush=True,
                )
                run = one_run(ref, backend, serving, index, args, servers, base)
                derive(run)
                if len(servings) > 1:  # a column per backend and serving
                    run["backend"] = f"{backend}, {serving}"
                results["runs"].append(run)
                if "lifecycle" in run:
                    total = run["lifecycle"]["lifecycle total"]
                    print(f"[bench]   lifecycle {total:.1f} s", flush=True)
                (args.out / "results.json").write_text(json.dumps(results, indent=2))
    if len(servings) > 1:
        results["backends"] = [f"{b}, {s}" for b, s in itertools.product(backends, servings)]
    junits = list(args.junit)
    suite_wall = None
    if args.run_suite:
        junits.append(args.out / "junit.xml")
        suite_wall = run_suite(junits[-1], [])
    if junits:
        results["suite"] = {
            "modules": suite_times(junits),
            "wall": suite_wall,
            "junit": [str(path) for path in junits],
        }
    loads = [run["load_avg"] for run in results["runs"]] or [load_average()]
    results["machine"].update(load_min=min(loads), load_max=max(loads))
    results["bench_seconds"] = time.perf_counter() - started
    text = report(results) + f"\n`make bench` took {results['bench_seconds'] / 60:.1f} min.\n"
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    (args.out / "results.md").write_text(text)
    shutil.rmtree(base, ignore_errors=True) if not args.keep else None
    print(text)


if __name__ == "__main__":
    main()
