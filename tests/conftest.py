"""Fixtures for the template's tests: rendering, an isolated ZenML store, a real MLflow server.

ZenML state lives in a temporary directory for the whole session (ZENML_CONFIG_PATH), so the
tests never touch ~/.config/zenml; servers are stopped by process group when the session ends.
"""

import atexit
import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import copier
import pytest

import servers

TEMPLATE = Path(__file__).resolve().parents[1]

# Set before anything could import zenml: the whole session uses a throwaway ZenML store.
_SESSION_ZENML = Path(tempfile.mkdtemp(prefix="template-tests-zenml-"))
os.environ["ZENML_CONFIG_PATH"] = str(_SESSION_ZENML)
os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
os.environ.pop("MLFLOW_TRACKING_URI", None)
# As on a user's machine, Python caches compiled modules (in each project's .venv): without the
# cache (some container images set this) every command compiles ZenML and MLflow again, ~15 s.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# Slowest module first (seconds summed per module, docs/benchmarks/README.md): pytest-xdist
# hands whole modules to the two workers in this order (`--no-loadscope-reorder`), so the long
# ones start early and both workers finish at about the same time.
SLOWEST_FIRST = [
    "test_faults",
    "test_model_lifecycle",
    "test_monitoring",
    "test_ci",
    "test_team_tracker",
    "test_pipeline_serving",
    "test_spark",
    "test_data_sources",
    "test_tensorflow",
    "test_stacks",
    "test_regression",
    "test_zenml_server",
    "test_update",
    "test_lifecycle",
    "test_validators",
    "test_auth",
    "test_remote_serving",
    "test_fuzz_answers",
    "test_render",
    "test_team_docs",
    "test_docs",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def weight(item: pytest.Item) -> int:
        module = item.path.stem
        return SLOWEST_FIRST.index(module) if module in SLOWEST_FIRST else len(SLOWEST_FIRST)

    items.sort(key=weight)  # stable: each module's tests keep their order


@functools.cache
def _template_folder() -> Path:
    """The template's working tree (uncommitted changes included) as a plain folder, copied
    once per test process: Copier renders a folder as it is, where it clones a git repository
    for every render (0.2 s of the 0.3-0.8 s a render takes). Its renders record no `_commit`
    in .copier-answers.yml; tests/test_update.py renders from git, as users do."""
    folder = Path(tempfile.mkdtemp(prefix="template-tests-source-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return copy_working_tree(folder)


def copy_working_tree(folder: Path) -> Path:
    """Copy the template's files as git sees them (committed or not, ignored ones left out)."""
    listed = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    names = subprocess.run(listed, cwd=TEMPLATE, capture_output=True, text=True, check=True)
    for name in filter(None, names.stdout.split("\0")):
        if (TEMPLATE / name).is_file():  # deleted but not yet committed: skipped
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(TEMPLATE / name, folder / name)
    return folder


def render(destination: Path, **answers: str) -> Path:
    """Render the template (the working tree, uncommitted changes included) with these answers
    and defaults for the rest."""
    answers.setdefault("project_name", "Fraud Detector")
    if os.environ.get("TEMPLATE_TEST_PYTHON"):  # one Python per cell of the template's CI matrix
        answers.setdefault("python_version", os.environ["TEMPLATE_TEST_PYTHON"])
    source = str(_template_folder())
    copier.run_copy(source, destination, data=answers, defaults=True, unsafe=True, quiet=True)
    return destination


def python_on_path(version: str) -> dict[str, str]:
    """The environment in which `make setup` finds Python `version`: uv cannot download
    interpreters here, so put pyenv's first (pyenv's shims name a version it has not made
    global, and fail)."""
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin"))
    return {"PATH": os.pathsep.join([str(p) for p in pyenv[-1:]] + [os.environ["PATH"]])}


def run(command: list[str] | str, cwd: Path, env: dict | None = None, timeout: int = 900):
    """Run a command, failing the test with its output when it fails. The tracking URI is only
    what `env` says (mlflow.set_tracking_uri in a test exports MLFLOW_TRACKING_URI)."""
    base = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**base, **(env or {})},
        shell=isinstance(command, str),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{command} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )
    return result


# Runs the project's command once per call, each call in its own process forked from one that
# has imported the command's program (<package>.__main__, what the console script imports), then
# given the call's working directory, environment and arguments: the exit code, stdout and
# stderr a user gets, without importing the program again (~1 s) per variation of a check.
_FORKED_CALLS = r"""
import importlib, json, os, signal, sys, time
package, calls = sys.argv[1], json.loads(sys.stdin.read())
program = importlib.import_module(package + ".__main__")
answers = []
for call in calls:
    started = time.perf_counter()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        signal.alarm(600)  # a call that hangs ends (SIGALRM), and the test sees it fail
        os.chdir(call["cwd"])
        os.environ.clear()
        os.environ.update(call["env"])
        for fd, path in ((1, call["stdout"]), (2, call["stderr"])):
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(handle, fd)
            os.close(handle)
        sys.argv = [call["program"], *call["args"]]
        sys.exit(program.run())  # as the console script: exit handlers, then the exit code
    _, status = os.waitpid(pid, 0)
    answers.append([os.waitstatus_to_exitcode(status), time.perf_counter() - started])
print(json.dumps(answers))
"""


def cli_calls(
    project: Path, calls: list[tuple[list[str], dict[str, str]]], cwd: Path | None = None
) -> list[tuple[subprocess.CompletedProcess, float]]:
    """The project's command run once per (arguments, environment) in `calls`, in order, as
    `project/.venv/bin/<package> ARGS` with exactly that environment, in `cwd` (default: the
    project); each result with its wall time (not counting the one-time import)."""
    package = next(p.name for p in (project / "src").iterdir() if (p / "__main__.py").is_file())
    program = str(project / ".venv" / "bin" / package)
    with tempfile.TemporaryDirectory(prefix="cli-calls-") as scratch:
        specs = [
            {
                "args": list(args),
                "env": dict(env),
                "cwd": str(cwd or project),
                "program": program,
                "stdout": f"{scratch}/{index}.out",
                "stderr": f"{scratch}/{index}.err",
            }
            for index, (args, env) in enumerate(calls)
        ]
        driver = subprocess.run(
            [str(project / ".venv" / "bin" / "python"), "-c", _FORKED_CALLS, package],
            cwd=cwd or project,
            env=calls[0][1],
            input=json.dumps(specs),
            capture_output=True,
            text=True,
            timeout=300 + 120 * len(calls),
        )
        assert driver.returncode == 0, driver.stdout[-3000:] + driver.stderr[-3000:]
        answers = json.loads(driver.stdout.splitlines()[-1])
        return [
            (
                subprocess.CompletedProcess(
                    [program, *spec["args"]],
                    code,
                    Path(spec["stdout"]).read_text(),
                    Path(spec["stderr"]).read_text(),
                ),
                seconds,
            )
            for spec, (code, seconds) in zip(specs, answers, strict=True)
        ]


@pytest.fixture(scope="session", autouse=True)
def isolated_zenml() -> Iterator[Path]:
    _SESSION_ZENML.mkdir(parents=True, exist_ok=True)
    yield _SESSION_ZENML
    shutil.rmtree(_SESSION_ZENML, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` without authentication."""
    with servers.mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri


@pytest.fixture(scope="session")
def mlflow_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.AuthServer]:
    """A real `mlflow server --app-name basic-auth` with one non-admin user."""
    with servers.mlflow_auth_server(tmp_path_factory.mktemp("mlflow-auth-server")) as server:
        yield server


PLOTS = ("confusion_matrix", "roc_curve", "precision_recall_curve", "calibration_curve")
PLOTS += ("permutation_importance",)


def logged_reports(client, version, workdir: Path) -> str:
    """Check that a registered version's MLflow run holds the evaluation plots (real PNGs with
    content) and its model card; return the card's text."""
    from PIL import Image  # pillow comes with mlflow (matplotlib)

    run_id = version.run_id
    listed = {Path(artifact.path).name for artifact in client.list_artifacts(run_id, "plots")}
    assert listed == {f"{name}.png" for name in PLOTS}
    folder = Path(client.download_artifacts(run_id, "plots", str(workdir)))
    for name in PLOTS:
        path = folder / f"{name}.png"
        with Image.open(path) as image:
            image.load()  # decodes every pixel
            assert image.format == "PNG" and image.width >= 400 and image.height >= 300
            assert len(image.getcolors(maxcolors=1_000_000)) > 20, f"{name} is blank"
        assert path.stat().st_size > 5_000
    assert version.tags["model_card"] == f"runs:/{run_id}/model_card.md"
    card = Path(client.download_artifacts(run_id, "model_card.md", str(workdir))).read_text()
    assert card.startswith(f"# Model card: {version.name} v{version.version}\n")
    return card
