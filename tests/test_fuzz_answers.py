"""Fuzzed answers: seeded random strings (unicode, quotes, backslashes, newlines, template
syntax, very long ones) into every text question. Copier either rejects an answer with a
validator's message, or renders a project that passes the render checks and holds the answer
exactly as given (pyproject, stacks, configs, .env, the answers file)."""

import ast
import json
import random
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import TEMPLATE, render

SEED = 20261124
FRAGMENTS = [
    *("é", "中文", "🚀", "\u202e", "\u200b"),  # accents, wide characters, emoji, bidi, zero-width
    *("'", '"', '"""', "'''", "`", "\\", "\\N", "\\x", "\\n"),  # quotes and escapes
    *("\n", "\t", "\r", "\x00"),  # control characters
    *("{{", "}}", "{%", "%}", "{#", "{{ 7 * 7 }}", "${HOME}", "$(id)"),  # template syntax
    *("#", ": ", "- ", "---", "&", "*", "!", "@", "%", "<", ">", "|", ";", "=", ",", " "),
    "x" * 300,
]
PRODUCTION = {"mlflow_tracking_uri": "https://mlflow.example.com"}
KUBERNETES = {**PRODUCTION, "production_stack": "kubernetes"}
# Each text question, the answers that make Copier ask it, and a valid value to embed fuzz in.
QUESTIONS = {
    "project_name": ({}, "Fuzz {}"),
    "package_name": ({}, "fuzz_{}"),
    "project_description": ({}, "Predicts {} well"),
    "author_name": ({}, "Ana {}"),
    "author_email": ({}, "{}@example.com"),
    "mlflow_tracking_uri": ({}, "https://mlflow.example.com/{}"),
    "zenml_server_url": ({}, "https://zenml.example.com/{}"),
    "mlflow_username": ({**PRODUCTION, "mlflow_auth": "basic"}, "ana{}"),
    "mlflow_password": ({**PRODUCTION, "mlflow_auth": "basic"}, "pw-{}-1"),
    "mlflow_token": ({**PRODUCTION, "mlflow_auth": "token"}, "tok-{}-1"),
    "artifact_store_uri": ({**PRODUCTION, "production_stack": "sagemaker"}, "s3://b-1/{}"),
    "cloud_region": ({**PRODUCTION, "production_stack": "sagemaker"}, "eu-{}-1"),
    "sagemaker_execution_role": (
        {**PRODUCTION, "production_stack": "sagemaker"},
        "arn:aws:iam::123456789012:role/{}",
    ),
    "container_registry_uri": (
        {**PRODUCTION, "production_stack": "vertex"},
        "europe-west1-docker.pkg.dev/acme/{}",
    ),
    "gcp_project": ({**PRODUCTION, "production_stack": "vertex"}, "acme-{}"),
    "kubernetes_context": ({**KUBERNETES, "ci_provider": "gitlab"}, "ctx-{}"),
    "kubernetes_namespace": ({**KUBERNETES, "ci_provider": "gitlab"}, "ns-{}"),
}
SECRETS = {"mlflow_password", "mlflow_token"}
# Answers that must render (what users type), beside the random ones; with other answers.
EDGE_CASES = [
    ("project_name", 'Ana\'s "Model" \\ 2 — çà 中文'),
    ("project_name", "Churn " + "x" * 54, {"package_name": "churn"}),  # the longest allowed
    ("package_name", "customer_churn_prediction_servic"),  # 32 characters: the longest
    ("project_description", 'Uses """ and \\N{DASH} and \\x; ' + "long " * 60),
    ("author_name", 'O\'Neil "Data" \\ Team 🚀'),
    ("mlflow_username", '"ana"'),
    ("mlflow_password", "'quoted' {{ not a template }} #; $HOME \\"),
    ("mlflow_token", '"tok'),
    ("mlflow_tracking_uri", "https://mlflow.example.com/a;b=c/%7E'x'"),
    ("kubernetes_context", "arn:aws:eks:eu-west-1:123456789012:cluster/prod"),
    ("artifact_store_uri", "s3://b-1/a'b/c=d"),
]


def _fuzz(rng: random.Random) -> str:
    parts = rng.choices(FRAGMENTS, k=rng.randint(1, 4))
    parts.append("".join(rng.choices("abcXYZ019_-.", k=rng.randint(1, 6))))
    rng.shuffle(parts)
    return "".join(parts)


def _cases() -> list[tuple]:
    rng = random.Random(SEED)
    cases = []
    for question, (_, shape) in QUESTIONS.items():
        cases.append((f"{question}-raw", question, _fuzz(rng)))
        cases.append((f"{question}-shaped", question, shape.format(_fuzz(rng))))
    for n, (question, value, *extra) in enumerate(EDGE_CASES):
        cases.append((f"{question}-edge{n}", question, value, *extra))
    return cases


CASES = _cases()


@dataclass
class Outcome:
    answers: dict
    project: Path | None = None
    rejection: str | None = None
    lint: str = ""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    """Render every case once; lint every rendered project with one ruff run per check."""
    results = {}
    for case, question, value, *extra in CASES:
        answers = {"project_name": "Fuzz Project", **QUESTIONS[question][0], question: value}
        answers.update(*extra)
        destination = tmp_path_factory.mktemp("fuzz") / "project"
        try:
            results[case] = Outcome(answers, project=render(destination, **answers))
        except ValueError as error:
            results[case] = Outcome(answers, rejection=str(error))
    projects = {o.project: o for o in results.values() if o.project}
    ruff = [sys.executable, "-m", "ruff"]
    for check in (["check", "--output-format", "concise"], ["format", "--check"]):
        result = subprocess.run(
            [*ruff, *check, "--no-cache", *map(str, projects)], capture_output=True, text=True
        )
        for line in result.stdout.splitlines():
            for project, outcome in projects.items():
                if str(project) in line:
                    outcome.lint += line + "\n"
    return results


def test_every_text_question_is_fuzzed():
    questions = yaml.safe_load((TEMPLATE / "copier.yml").read_text())
    text = {
        name
        for name, spec in questions.items()
        if not name.startswith("_")
        and spec.get("type") == "str"
        and "choices" not in spec
        and spec.get("when") is not False
    }
    assert text == set(QUESTIONS)


def test_fuzzing_yields_both_outcomes(outcomes):
    rendered = [case for case, outcome in outcomes.items() if outcome.project]
    rejected = [case for case, outcome in outcomes.items() if outcome.rejection]
    print(f"\n[fuzz] {len(outcomes)} answers: {len(rendered)} rendered, {len(rejected)} rejected")
    assert len(rendered) >= len(EDGE_CASES) and len(rejected) >= len(QUESTIONS)


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_a_fuzzed_answer_is_rejected_with_a_message_or_rendered_cleanly(outcomes, case):
    outcome = outcomes[case]
    question, value = next((c[1], c[2]) for c in CASES if c[0] == case)
    if outcome.rejection:
        print(f"\n[fuzz] {question}={value[:60]!r}: {outcome.rejection[:160]}")
        found = re.match(r"Validation error for question '(\w+)': \S", outcome.rejection)
        assert found, outcome.rejection
        # A project name without ASCII letters leaves the derived package name empty.
        assert found.group(1) in {question, "package_name"}
        assert "-edge" not in case, "an edge case must render"
        return
    project, answers = outcome.project, outcome.answers
    assert outcome.lint == "", outcome.lint
    for path in project.rglob("*"):
        if path.is_file() and path.name != ".env":  # .env is read back below instead
            text = path.read_text()
            if ".github" in path.parts:  # GitHub Actions expressions are ${{ ... }}
                text = re.sub(r"\$\{\{ [^}]* \}\}", "", text)
            assert not [m for m in ("{{", "{%", "{#") if m in text], path.relative_to(project)
            if path.suffix in (".yml", ".yaml"):
                list(yaml.safe_load_all(text))  # docs/team-tracker/kubernetes.yaml: several
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    for name, given in answers.items():
        assert recorded.get(name) == (None if name in SECRETS else given), name
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert pyproject["description"] == recorded["project_description"]
    assert pyproject["authors"] == [
        {"name": recorded["author_name"], "email": recorded["author_email"]}
    ]
    package = recorded["package_name"]
    docstring = ast.get_docstring(
        ast.parse((project / "src" / package / "__init__.py").read_text())
    )
    assert docstring.startswith(recorded["project_name"].replace('"', "'").lstrip() + ".")
    configs = {
        path.relative_to(project).as_posix(): yaml.safe_load(path.read_text())
        for folder in ("configs", "stacks")
        for path in (project / folder).glob("*.yaml")
    }
    _answers_reach_the_stacks(configs, recorded)
    module = project / "src" / package / "platform" / "zenml_server.py"
    assert module.exists() == bool(recorded["zenml_server_url"])  # the login only with a server
    if module.exists():
        assigned = {
            node.targets[0].id: node.value.value
            for node in ast.parse(module.read_text()).body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        }
        assert assigned["SERVER_URL"] == recorded["zenml_server_url"]
    if (project / ".env").exists():
        _env_file_reads_back(project, package, answers)
    assert subprocess.run(["make", "-s", "help"], cwd=project, capture_output=True).returncode == 0


def _answers_reach_the_stacks(configs: dict, recorded: dict) -> None:
    if recorded["mlflow_tracking_uri"]:
        tracker = configs["stacks/remote-mlflow.yaml"]["components"]["experiment_tracker"]
        assert tracker["configuration"]["tracking_uri"] == recorded["mlflow_tracking_uri"]
    if recorded.get("production_stack", "none") == "none":
        return
    components = configs["stacks/production.yaml"]["components"]
    assert components["artifact_store"]["configuration"]["path"] == recorded["artifact_store_uri"]
    registry = components["container_registry"]["configuration"]["uri"]
    assert registry == recorded["container_registry_uri"]
    orchestrator = components["orchestrator"]["configuration"]
    serving = configs["configs/deployment.yaml"]
    if recorded["production_stack"] == "kubernetes":
        assert orchestrator["kubernetes_context"] == recorded["kubernetes_context"]
        assert serving["kubernetes"]["context"] == recorded["kubernetes_context"]
    if recorded["production_stack"] == "sagemaker":
        assert orchestrator["execution_role"] == recorded["sagemaker_execution_role"]
        assert serving["sagemaker"]["execution_role_arn"] == recorded["sagemaker_execution_role"]


def _env_file_reads_back(project: Path, package: str, answers: dict) -> None:
    """The project's own .env reader gets back exactly the credentials typed at copy time."""
    read = (
        f"import json; from {package}.platform.credentials import read_env_file; "
        "print(json.dumps(read_env_file(__import__('pathlib').Path('.env'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", read],
        cwd=project,
        env={"PYTHONPATH": str(project / "src")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    names = {
        "mlflow_username": "MLFLOW_TRACKING_USERNAME",
        "mlflow_password": "MLFLOW_TRACKING_PASSWORD",
        "mlflow_token": "MLFLOW_TRACKING_TOKEN",
    }
    expected = {names[k]: v for k, v in answers.items() if k in names and v}
    assert json.loads(result.stdout) == expected
