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
import time
from collections.abc import Iterator
from pathlib import Path

import copier
import jinja2
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
    "test_ci",
    "test_team_tracker",
    "test_tensorflow",
    "test_model_lifecycle",
    "test_monitoring",
    "test_spark",
    "test_stacks",
    "test_data_sources",
    "test_pipeline_serving",
    "test_zenml_server",
    "test_update",
    "test_regression",
    "test_lifecycle",
    "test_auth",
    "test_remote_serving",
    "test_validators",
    "test_fuzz_answers",
    "test_team_docs",
    "test_render",
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


# Copier compiles every file, path and answer of the template with Jinja again at each render
# (about 1,500 compilations: 0.7 s of a 1.1 s render, over 100 renders a session). Compiling is a
# pure function of the source and the options that shape the generated code, so each test
# process compiles each source once.
_jinja_compile = jinja2.Environment.compile
_compiled: dict[tuple, object] = {}


@functools.wraps(_jinja_compile)
def _compile_once(self, source, name=None, filename=None, raw=False, defer_init=False):
    shaped_by = (self.lexer, tuple(sorted(self.extensions)), self.optimized, self.is_async)
    shaped_by += (self.autoescape, self.finalize is not None)
    key = (source, name, filename, raw, defer_init, shaped_by)
    if key not in _compiled:
        _compiled[key] = _jinja_compile(self, source, name, filename, raw, defer_init)
    return _compiled[key]


jinja2.Environment.compile = _compile_once


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
    what `env` says (mlflow.set_tracking_uri in a test exports MLFLOW_TRACKING_URI). A
    project's command (`.venv/bin/<package>`) runs through project_command()."""
    base = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    result = outcome(command, cwd, {**base, **(env or {})}, timeout)
    if result.returncode != 0:
        pytest.fail(
            f"{command} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )
    return result


# The project's command, each call in a process of its own forked from one that has imported
# the libraries every command imports (ZenML, MLflow and their stores, scikit-learn, pandas):
# ~4 s of a 6-12 s command, and most of the suite's CPU. The project's own package is imported
# in the forked process, so an edit a test makes to its code is what runs. The call gets its
# working directory and environment (a server per set of the settings ZenML reads on import),
# arguments, exit code, stdout and stderr, as from `.venv/bin/<package> ARGS`.
_FORK_SERVER = r"""
import importlib, json, os, signal, sys, warnings
# Answers go to the test through a copy of stdout; what the libraries print goes to stderr.
answers = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
# numpy's BLAS starts its threads on import (Python 3.12+ warns of them); it is fork-safe.
warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
PRELOADED = '''
pandas pyarrow.parquet matplotlib.figure sklearn.pipeline sklearn.compose sklearn.ensemble
sklearn.linear_model sklearn.metrics sklearn.inspection mlflow mlflow.sklearn
mlflow.store.tracking.sqlalchemy_store mlflow.store.model_registry.sqlalchemy_store zenml.client
zenml.zen_stores.sql_zen_store zenml.integrations.mlflow.flavors zenml.deployers zenml.log_stores
zenml.orchestrators.local.local_orchestrator
'''
for name in PRELOADED.split():
    try:
        importlib.import_module(name)
    except ImportError:  # a library this project does not have
        pass
for line in sys.stdin:
    call = json.loads(line)
    pid = os.fork()
    if pid == 0:
        answers.close()
        signal.alarm(call["timeout"])  # a call that hangs ends (SIGALRM); the test sees it fail
        os.chdir(call["cwd"])
        os.environ.clear()
        os.environ.update(call["env"])
        for fd, path in ((0, os.devnull), (1, call["stdout"]), (2, call["stderr"])):
            handle = os.open(path, os.O_RDONLY if fd == 0 else os.O_WRONLY | os.O_CREAT, 0o600)
            os.dup2(handle, fd)
            os.close(handle)
        sys.argv = [call["program"], *call["args"]]
        sys.path[0] = os.path.dirname(call["program"])  # as for a script, not -c's directory
        program = importlib.import_module(call["package"] + ".__main__")
        sys.exit(program.run())  # as the console script: exit handlers, then the exit code
    _, status = os.waitpid(pid, 0)
    answers.write(json.dumps(os.waitstatus_to_exitcode(status)) + "\n")
    answers.flush()
"""

_FORK_SERVERS: dict[tuple, subprocess.Popen] = {}


# ZenML reads its other settings (zenml/constants.py) when it is imported; these when used.
_READ_WHEN_USED = ("ZENML_STORE_", "ZENML_CONFIG_PATH")


def _fork_server(project: Path, env: dict[str, str]) -> subprocess.Popen:
    """The project's fork server for the settings in `env` that ZenML reads on import."""
    on_import = [(k, v) for k, v in env.items() if k.startswith("ZENML_")]
    on_import = [(k, v) for k, v in on_import if not k.startswith(_READ_WHEN_USED)]
    key = (project, tuple(sorted(on_import)), env.get("PATH"))
    server = _FORK_SERVERS.get(key)
    if server is None or server.poll() is not None:
        python = str(project / ".venv" / "bin" / "python")
        server = subprocess.Popen(
            [python, "-c", _FORK_SERVER, project.name],
            cwd=project,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        _FORK_SERVERS[key] = server
    return server


@atexit.register
def stop_fork_servers() -> None:
    for server in _FORK_SERVERS.values():
        server.stdin.close()
        server.wait(timeout=60)
    _FORK_SERVERS.clear()


@pytest.fixture(scope="module", autouse=True)
def fork_servers_per_module() -> Iterator[None]:
    """Each keeps ~0.4 GB of libraries: those of a module's projects stop with the module."""
    yield
    stop_fork_servers()


def outcome(
    command: list[str] | str, cwd: Path, env: dict[str, str], timeout: int = 900
) -> subprocess.CompletedProcess:
    """A command's result, failed or not, with exactly the environment `env`; a project's
    command (`.venv/bin/<package>`) through project_command()."""
    if isinstance(command, list) and (project := _project_of(Path(cwd, command[0]))):
        return project_command(project, command[1:], env, cwd, timeout)[0]
    shell = isinstance(command, str)
    return subprocess.run(
        command, cwd=cwd, env=env, shell=shell, capture_output=True, text=True, timeout=timeout
    )


def _project_of(path: Path) -> Path | None:
    """The project whose console script `path` is (`<project>/.venv/bin/<package>`)."""
    project = path.parents[2] if len(path.parents) > 2 else None
    is_script = project and path.parent == project / ".venv" / "bin"
    return (
        project if is_script and (project / "src" / path.name / "__main__.py").is_file() else None
    )


def project_command(
    project: Path, args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: int = 900
) -> tuple[subprocess.CompletedProcess, float]:
    """`project/.venv/bin/<package> ARGS` with exactly the environment `env`, in `cwd` (default:
    the project); its result and wall time (not counting the one-time imports)."""
    package = next(p.name for p in (project / "src").iterdir() if (p / "__main__.py").is_file())
    program = str(project / ".venv" / "bin" / package)
    server = _fork_server(project, env)
    with tempfile.TemporaryDirectory(prefix="project-command-") as scratch:
        call = {
            "package": package,
            "program": program,
            "args": list(args),
            "env": dict(env),
            "cwd": str(cwd or project),
            "timeout": timeout,
            "stdout": f"{scratch}/out",
            "stderr": f"{scratch}/err",
        }
        started = time.perf_counter()
        server.stdin.write(json.dumps(call) + "\n")
        server.stdin.flush()
        answer = server.stdout.readline()
        seconds = time.perf_counter() - started
        assert answer, f"the fork server of {project} stopped (exit code {server.poll()})"
        out, err = Path(call["stdout"]).read_text(), Path(call["stderr"]).read_text()
        return subprocess.CompletedProcess([program, *args], json.loads(answer), out, err), seconds


def cli_calls(
    project: Path, calls: list[tuple[list[str], dict[str, str]]], cwd: Path | None = None
) -> list[tuple[subprocess.CompletedProcess, float]]:
    """project_command() for each (arguments, environment) of `calls`, in order."""
    return [project_command(project, args, env, cwd) for args, env in calls]


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
