"""What `copier copy` generates, for a matrix of answers covering every value of every choice."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import render

ANSWER_SETS = {
    "defaults": {},
    "mit-312-https": {
        "project_name": "Churn Model",
        "license": "MIT",
        "python_version": "3.12",
        "mlflow_tracking_uri": "https://mlflow.example.com",
        "mlflow_auth": "basic",
        "mlflow_username": "ana",
        "mlflow_password": "pw-render-'quoted' #1",
        "mlflow_insecure_tls": True,
        "production_stack": "sagemaker",
        "task": "regression",
        "cloud_region": "eu-west-1",
        "container_registry_uri": "210987654321.dkr.ecr.eu-west-1.amazonaws.com",
        "zenml_server_url": "https://zenml.example.com",
        "hyperparameter_tuning": True,
        "large_data": True,
        "spark_engine": True,
        "monitoring": True,
        "shadow_challenger": True,  # with spark: the config refuses shadow on engine: spark
        "sql_database": True,  # with spark (JDBC) and monitoring (sql: predictions and labels)
        "serving": "pipeline-deployment",
        "ci_provider": "gitlab",
        "author_name": 'Ana "Data" O\'Neil',
        "project_description": 'Predicts churn; has "quotes", \\backslashes\\ and is long enough '
        "to "
        "run well past the one hundred characters a line may have in the generated code.",
    },
    "bsd-310-http-tensorflow": {
        "project_name": "credit-risk",
        "package_name": "credit_risk_v2",
        "license": "BSD-3-Clause",
        "python_version": "3.10",
        "model_framework": "tensorflow",
        "task": "regression",
        "mlflow_tracking_uri": "http://10.0.0.5:5000",
        "mlflow_auth": "token",
        "mlflow_token": "tok-render-123",
        "production_stack": "vertex",
        "gcp_project": "credit-risk-prod",
        "cloud_region": "europe-west4",
        "zenml_server_url": "http://127.0.0.1:8237/",
        "hyperparameter_tuning": True,
        "monitoring": True,  # without the shadow challenger
        "ci_provider": "github",
    },
    "proprietary-313-ipv6-tensorflow": {
        "project_name": "Ops",
        "package_name": "ops_models",
        "license": "Proprietary",
        "python_version": "3.13",
        "model_framework": "tensorflow",
        "mlflow_tracking_uri": "http://[fd00::1]:8080/mlflow",
        "production_stack": "kubernetes",
        "artifact_store": "azure",
        "artifact_store_uri": "az://ops-artifacts/zenml",
        "kubernetes_namespace": "ml-serving",
        "zenml_server_url": "http://[::1]:8237/zenml",
        "ci_provider": "none",
    },
}

# The layout users find their way by (DESIGN.md section 2): ml/ plain ML, lifecycle/ MLflow
# only, pipelines/ thin ZenML steps, platform/ every ZenML or MLflow internal.
PACKAGE_FILES = [
    "__init__.py",
    "__main__.py",
    "app.py",
    "cli.py",
    "config.py",
    "errors.py",
    "ml/__init__.py",
    "ml/batch.py",
    "ml/data.py",
    "ml/dataset.py",
    "ml/features.py",
    "ml/metrics.py",
    "ml/model.py",
    "ml/plots.py",
    "ml/predictions.py",
    "ml/sources.py",
    "ml/streams.py",
    "lifecycle/__init__.py",
    "lifecycle/aliases.py",
    "lifecycle/gate.py",
    "lifecycle/model_card.py",
    "lifecycle/registration.py",
    "pipelines/__init__.py",
    "pipelines/batch_inference.py",
    "pipelines/training.py",
    "platform/credentials.py",
    "platform/datasets.py",
    "platform/endpoint_record.py",
    "platform/http_json.py",
    "platform/pipeline_runs.py",
    "platform/scoring.py",
    "platform/quick_exit.py",
    "platform/server_log.py",
    "platform/stack.py",
    "platform/tracker.py",
]
PROJECT_FILES = [
    ".copier-answers.yml",
    ".env.example",
    ".gitignore",
    ".pre-commit-config.yaml",
    ".python-version",
    "LICENSE",
    "Makefile",
    "README.md",
    "pyproject.toml",
    "configs/batch_inference.yaml",
    "configs/deployment.yaml",
    "configs/training.yaml",
    "stacks/local.yaml",
    "tests/conftest.py",
    "tests/test_cli.py",
    "tests/test_config.py",
    "tests/test_credentials.py",
    "tests/test_data.py",
    "tests/test_e2e.py",
    "tests/test_gate.py",
    "tests/test_internals.py",
    "tests/test_metrics.py",
    "tests/test_model_card.py",
    "tests/test_plots.py",
    "tests/test_promotion.py",
    "tests/test_serving.py",
    "tests/test_sources.py",
    "tests/test_stack.py",
    "tests/test_your_code.py",
]
CI_FILES = {
    "github": [
        ".github/workflows/ci.yml",
        ".github/workflows/deploy.yml",
        ".github/workflows/template-update.yml",
        ".github/workflows/train.yml",
        ".github/dependabot.yml",
    ],
    "gitlab": [".gitlab-ci.yml", "renovate.json"],
    "none": [],
}
FRAMEWORK_FILES = {
    "sklearn": ["src/{package}/ml/sklearn.py", "tests/test_model_sklearn.py"],
    "tensorflow": ["src/{package}/ml/keras.py", "tests/test_model_keras.py"],
}


SECRET_ANSWERS = ("mlflow_password", "mlflow_token")


def expected_files(
    package: str, framework: str = "sklearn", env: bool = False, ci: str = "github"
) -> set[str]:
    files = {*PROJECT_FILES, *(f"src/{package}/{name}" for name in PACKAGE_FILES)}
    files |= {".env"} if env else set()
    files |= set(CI_FILES[ci])
    return files | {name.format(package=package) for name in FRAMEWORK_FILES[framework]}


@pytest.fixture(scope="module", params=list(ANSWER_SETS), ids=list(ANSWER_SETS))
def rendered(request, tmp_path_factory) -> tuple[Path, dict]:
    answers = ANSWER_SETS[request.param]
    project = render(tmp_path_factory.mktemp(request.param) / "project", **answers)
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return project, {**recorded, **{k: answers[k] for k in SECRET_ANSWERS if k in answers}}


def test_exact_file_set(rendered):
    project, answers = rendered
    files = {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}
    credentials = any(answers.get(k) for k in ("mlflow_username", *SECRET_ANSWERS))
    expected = expected_files(
        answers["package_name"], answers["model_framework"], credentials, answers["ci_provider"]
    )
    package = answers["package_name"]
    if answers["mlflow_tracking_uri"]:  # the team's tracker: credentials, checks, its docs
        expected |= {
            "stacks/remote-mlflow.yaml",
            f"src/{package}/platform/team_tracker.py",
            "tests/test_team_tracker.py",
            # The team's MLflow server (tests/test_team_docs.py)
            "docs/team-tracker.md",
            "docs/team-tracker/.env.example",
            "docs/team-tracker/Dockerfile",
            "docs/team-tracker/basic_auth.ini",
            "docs/team-tracker/compose.yaml",
            "docs/team-tracker/init-auth-db.sql",
            "docs/team-tracker/kubernetes.yaml",
        }
    if answers["zenml_server_url"]:  # the login to a ZenML server
        expected |= {f"src/{package}/platform/zenml_server.py", "tests/test_zenml_server.py"}
    if answers["production_stack"] != "none":  # remote serving only where it can be used
        package = answers["package_name"]
        expected |= {
            "stacks/production.yaml",
            f"src/{package}/platform/remote.py",
            f"src/{package}/platform/connectors.py",
        }
        expected |= {"tests/test_remote.py"}
        # ZenML schedules as code: only a production orchestrator runs them
        expected |= {
            "configs/schedules.yaml",
            f"src/{package}/platform/schedules.py",
            "tests/test_schedules.py",
        }
    package = answers["package_name"]
    if answers["serving"] == "pipeline-deployment":  # ZenML's Deployer and the served pipeline
        expected |= {
            f"src/{package}/platform/pipeline_server.py",
            f"src/{package}/pipelines/inference.py",
        }
    else:  # ZenML's MLflow model deployer and its deployment pipeline
        expected |= {
            f"src/{package}/platform/model_server.py",
            f"src/{package}/pipelines/deployment.py",
        }
    if answers["spark_engine"]:  # batch inference on Spark, and its test against pandas
        expected |= {f"src/{package}/ml/spark.py", "tests/test_spark.py"}
    if answers["hyperparameter_tuning"]:  # the search, and its test
        expected |= {f"src/{package}/ml/tuning.py", "tests/test_tuning.py"}
    if answers["sql_database"]:  # sql: sources and outputs, and their tests on SQLite
        expected |= {f"src/{package}/ml/sql.py", "tests/test_sql.py"}
    if answers["monitoring"]:  # drift, live performance, retraining, its daily CI schedule
        expected |= {
            f"src/{package}/cli_monitoring.py",
            f"src/{package}/ml/drift.py",
            f"src/{package}/ml/monitoring.py",
            f"src/{package}/pipelines/monitoring.py",
            "configs/monitoring.yaml",
            "tests/test_drift.py",
            "tests/test_monitoring.py",
        }
        if answers["ci_provider"] == "github":
            expected.add(".github/workflows/monitor.yml")
    assert files == expected


def test_secrets_are_written_to_env_only(rendered):
    project, answers = rendered
    secrets = [answers[k] for k in SECRET_ANSWERS if answers.get(k)]
    for path in project.rglob("*"):
        if path.is_file() and path.name != ".env":
            assert not [s for s in secrets if s in path.read_text()], path.relative_to(project)
    if secrets:
        env = (project / ".env").read_text()
        assert all(f"={secret}\n" in env for secret in secrets)
        assert ".env\n" in (project / ".gitignore").read_text()


def test_no_template_syntax_is_left_over(rendered):
    project, _ = rendered
    for path in project.rglob("*"):
        if path.is_file():
            text = path.read_text()
            if ".github" in path.parts:  # GitHub Actions expressions are ${{ ... }}
                text = re.sub(r"\$\{\{ [^}]* \}\}", "", text)
            for marker in ("{{", "{%", "{#"):
                assert marker not in text, f"{marker!r} left in {path.relative_to(project)}"


def test_generated_code_is_ruff_clean_as_rendered(rendered):
    project, _ = rendered
    ruff = [sys.executable, "-m", "ruff"]
    for check in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        result = subprocess.run(ruff + check, cwd=project, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_answers_file_records_every_answer(rendered):
    project, answers = rendered
    for question in ("project_name", "package_name", "license", "python_version"):
        assert question in answers
    assert {"model_framework", "mlflow_tracking_uri", "author_email", "_src_path"} <= set(answers)
    assert "hyperparameter_tuning" in answers
    assert answers["ci_provider"] in ("github", "gitlab", "none")
    assert "reserved_package_names" not in answers


def test_pyproject_describes_the_package(rendered):
    project, answers = rendered
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    package = answers["package_name"]
    assert pyproject["project"]["name"] == package.replace("_", "-")
    assert pyproject["project"]["requires-python"] == f">={answers['python_version']}"
    assert pyproject["project"]["scripts"] == {package: f"{package}.__main__:run"}
    assert pyproject["project"]["authors"][0]["name"] == answers["author_name"]
    dependencies = pyproject["project"]["dependencies"]
    assert "zenml[local]==0.98.*" in dependencies and "mlflow>=3.17,<3.19" in dependencies
    assert {"rich>=13", "matplotlib>=3.8"} <= set(dependencies)
    assert ("scipy>=1.11" in dependencies) == answers["monitoring"]  # the drift statistics
    tensorflow = [d for d in dependencies if d.startswith(("tensorflow", "keras"))]
    if answers["model_framework"] == "tensorflow":
        assert any(d.startswith("tensorflow-cpu") and "x86_64" in d for d in tensorflow)
        assert any(d.startswith("tensorflow>=") and "!= 'x86_64'" in d for d in tensorflow)
    else:
        assert not tensorflow
    assert pyproject["dependency-groups"]["dev"] == ["pytest>=8", "ruff>=0.8"]
    if answers["license"] == "Proprietary":
        assert "license" not in pyproject["project"]
    else:
        assert pyproject["project"]["license"] == answers["license"]
    assert (project / ".python-version").read_text().strip() == answers["python_version"]


def test_license_file_matches_the_answer(rendered):
    project, answers = rendered
    text = (project / "LICENSE").read_text()
    first_line = {
        "Apache-2.0": "Apache License",
        "MIT": "MIT License",
        "BSD-3-Clause": "BSD 3-Clause License",
        "Proprietary": f"Copyright (c) {answers['author_name']}. All rights reserved.",
    }[answers["license"]]
    assert text.strip().splitlines()[0].strip() == first_line
    if answers["license"] != "Apache-2.0":
        assert answers["author_name"] in text


def serves_with(components: dict, answers: dict) -> bool:
    """The serving answer's component only: ZenML's MLflow model deployer, or its Deployer
    (local flavor) without the deprecated Model Deployer."""
    if answers["serving"] == "pipeline-deployment":
        return "model_deployer" not in components and components["deployer"]["flavor"] == "local"
    return "deployer" not in components and components["model_deployer"]["flavor"] == "mlflow"


def test_local_stack_keeps_everything_on_this_machine(rendered):
    project, answers = rendered
    stack = yaml.safe_load((project / "stacks" / "local.yaml").read_text())
    assert stack["name"] == f"{answers['package_name']}-local"
    components = stack["components"]
    assert components["experiment_tracker"]["configuration"]["tracking_uri"] == ""
    assert {components[c]["flavor"] for c in ("orchestrator", "artifact_store")} == {"local"}
    assert components["model_registry"]["flavor"] == "mlflow"
    assert serves_with(components, answers)


def test_remote_mlflow_stack_tracks_to_the_answered_uri(rendered):
    project, answers = rendered
    path = project / "stacks" / "remote-mlflow.yaml"
    if not answers["mlflow_tracking_uri"]:
        assert not path.exists()
        return
    stack = yaml.safe_load(path.read_text())
    assert stack["name"] == f"{answers['package_name']}-remote-mlflow"
    tracker = stack["components"]["experiment_tracker"]
    assert tracker["flavor"] == "mlflow"
    assert tracker["configuration"]["tracking_uri"] == answers["mlflow_tracking_uri"]
    assert tracker["auth"] == answers.get("mlflow_auth", "none")
    if answers["mlflow_tracking_uri"].startswith("https://"):
        assert tracker["configuration"]["tracking_insecure_tls"] == answers["mlflow_insecure_tls"]
    else:
        assert "tracking_insecure_tls" not in tracker["configuration"]
    assert stack["components"]["model_registry"]["flavor"] == "mlflow"
    assert serves_with(stack["components"], answers)


CLOUDS = {"s3": ("aws", "s3"), "gcs": ("gcp", "gcp"), "azure": ("azure", "azure")}


def test_production_stack_follows_the_answers(rendered):
    project, answers = rendered
    path = project / "stacks" / "production.yaml"
    deployment = yaml.safe_load((project / "configs" / "deployment.yaml").read_text())
    extras = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    if answers["production_stack"] == "none":
        assert not path.exists()
        assert not {"kubernetes", "sagemaker", "vertex"} & set(deployment)
        assert "optional-dependencies" not in extras
        return
    stack = yaml.safe_load(path.read_text())
    components = stack["components"]
    cloud, store_flavor = CLOUDS[answers["artifact_store"]]
    assert components["orchestrator"]["flavor"] == answers["production_stack"]
    assert components["artifact_store"]["flavor"] == store_flavor
    assert components["artifact_store"]["configuration"]["path"] == answers["artifact_store_uri"]
    assert components["container_registry"]["flavor"] == cloud
    assert (
        components["container_registry"]["configuration"]["uri"]
        == (answers["container_registry_uri"])
    )
    assert components["image_builder"]["flavor"] == "local"
    tracker = components["experiment_tracker"]
    assert tracker["configuration"]["tracking_uri"] == answers["mlflow_tracking_uri"]
    assert tracker["auth"] == answers["mlflow_auth"]
    connector = stack["service_connector"]
    assert connector["type"] == cloud
    # Credentials are names of environment variables, never values.
    assert all(name.isupper() for name in connector["from_environment"].values())
    assert answers["production_stack"] in deployment  # the serving target's settings
    assert any(
        d.startswith("zenml[connectors-") for d in extras["optional-dependencies"]["production"]
    )


def test_pipeline_configs_name_the_package_model(rendered):
    project, answers = rendered
    configs = project / "configs"
    training = yaml.safe_load((configs / "training.yaml").read_text())
    assert training["model_name"] == answers["package_name"]
    assert "registry" not in training  # moved in 0.2.0: the same key in every pipeline config
    demo = "sklearn:diabetes" if answers.get("task") == "regression" else "sklearn:breast_cancer"
    assert training["data"]["source"] == demo
    assert training["data"]["task"] == answers.get("task", "classification")
    promotion = training["promotion"]
    assert promotion["mode"] == "enforce"
    # The default gate fits any table: a margin over a naive baseline, no absolute thresholds.
    margin = {"r2": 0.05} if answers.get("task") == "regression" else {"roc_auc": 0.05}
    assert promotion["min_gain_over_baseline"] == margin
    assert promotion["min_metrics"] == promotion["max_metrics"] == {}
    for name in ("deployment.yaml", "batch_inference.yaml"):
        config = yaml.safe_load((configs / name).read_text())
        assert config["model_name"] == answers["package_name"]
        assert config["alias"] == "champion"
    drift = yaml.safe_load((configs / "batch_inference.yaml").read_text()).get("drift")
    if answers["monitoring"]:  # the drift check comes with monitoring
        assert drift == {
            "mode": "warn",
            "p_value": 0.05,
            "drift_share": 0.0,
            "ignore": [],
            "report": "outputs/drift_report.md",
        }
    else:
        assert drift is None


def test_sql_follows_the_answer(rendered):
    """SQL code, its drivers, DATABASE_URL and its docs only with sql_database; without it the
    README says how to add it."""
    project, answers = rendered
    asked = answers["sql_database"]
    readme = (project / "README.md").read_text()
    assert ("copier update -d sql_database=true" in readme) != asked
    assert ("DATABASE_URL" in readme) == ("DATABASE_URL" in (project / ".env.example").read_text())
    assert ("DATABASE_URL" in readme) == asked
    dependencies = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert ("sqlalchemy>=2.0" in dependencies["dependencies"]) == asked
    batch = yaml.safe_load((project / "configs" / "batch_inference.yaml").read_text())
    assert ("output_mode" in batch) == asked


def test_large_data_follows_the_answer(rendered):
    """Streaming batches, training on a sample and reading only the training columns come with
    large_data; without it batches are read whole and the README says how to switch."""
    project, answers = rendered
    asked = answers["large_data"]
    package = project / "src" / answers["package_name"]
    readme = (project / "README.md").read_text()
    assert ("copier update -d large_data=true" in readme) != asked
    training = yaml.safe_load((project / "configs" / "training.yaml").read_text())
    assert ("sample_rows" in training["data"]) == asked
    streams = (package / "ml" / "streams.py").read_text()
    assert all((name in streams) == asked for name in ("def read_ahead", "class Progress"))
    assert ("columns: Sequence" in (package / "ml" / "dataset.py").read_text()) == asked


def test_tuning_section_follows_the_answer(rendered):
    project, answers = rendered
    training = yaml.safe_load((project / "configs" / "training.yaml").read_text())
    if not answers["hyperparameter_tuning"]:
        assert "tuning" not in training
        return
    tuning = training["tuning"]
    regression = answers.get("task") == "regression"
    assert tuning["strategy"] == "grid"
    assert tuning["metric"] == ("rmse" if regression else "roc_auc")  # an error: the lowest wins
    space = tuning["search_space"]
    if answers["model_framework"] == "sklearn":
        expected = (
            {"params.alpha": [0.1, 1.0, 10.0]}
            if regression
            else {"params.C": [0.01, 0.1, 1.0, 10.0]}
        )
        assert space == expected
    else:  # few epochs keep the Keras trials small
        assert space["epochs"] == [15] and len(space["learning_rate"]) == 2


def test_monitoring_and_its_shadow_challenger_follow_the_answers(rendered):
    """Monitoring's code (the drift check of batches too), Makefile targets, CI schedule, ZenML
    schedule, README sections and tests come only with its answer (without it, the README says
    how to turn it on); the shadow challenger, asked only then, likewise on top of it."""
    project, answers = rendered
    package = project / "src" / answers["package_name"]
    code = "".join(path.read_text() for path in package.rglob("*.py"))
    readme = (project / "README.md").read_text()
    makefile = (project / "Makefile").read_text()
    asked = answers["monitoring"]
    assert ("def monitor(" in code) == ("def retrain(" in code) == ("live_only" in code) == asked
    assert ("def detect_drift(" in code) == ("def check_drift(" in code) == asked
    assert ("- **Data drift.**" in readme) == ('"scipy' in (project / "pyproject.toml").read_text())
    assert ("- **Data drift.**" in readme) == asked
    assert ("\nmonitor:" in makefile) == ("\nretrain:" in makefile) == asked
    assert ("promote --version N --live" in readme) == asked
    assert ("copier update -d monitoring=true" in readme) != asked
    gitlab = project / ".gitlab-ci.yml"
    if gitlab.is_file():
        assert ('$SCHEDULED_JOB == "monitor"' in gitlab.read_text()) == asked
    schedules = project / "configs" / "schedules.yaml"
    if schedules.is_file():
        assert ("monitoring" in yaml.safe_load(schedules.read_text())) == asked

    shadow = answers.get("shadow_challenger", False)  # not recorded when not asked
    assert not shadow or asked
    batch = yaml.safe_load((project / "configs" / "batch_inference.yaml").read_text())
    assert ("shadow" in batch) == ("challenger_" in code) == shadow
    assert ("A challenger in shadow" in readme) == shadow
    if asked:
        tests = (project / "tests" / "test_monitoring.py").read_text()
        assert ("shadow" in tests) == shadow


def test_readme_tells_what_to_run(rendered):
    project, answers = rendered
    readme = (project / "README.md").read_text()
    assert readme.startswith(f"# {answers['project_name']}\n")
    for command in ("make setup", "make train", "make test", "make mlflow-ui"):
        assert command in readme
    if answers["mlflow_tracking_uri"]:
        assert answers["mlflow_tracking_uri"] in readme
    else:
        assert "embedded" in readme


def test_makefile_has_the_documented_targets(rendered):
    project, _ = rendered
    makefile = (project / "Makefile").read_text()
    targets = ("setup", "stack", "train", "status", "deploy", "undeploy", "predict", "batch-infer")
    for target in (*targets, "all", "test", "lint", "mlflow-ui", "install"):
        assert f"\n{target}:" in makefile
    assert "sync --python $(PYTHON_VERSION)" in makefile


def test_zenml_server_url_reaches_the_cli_and_make_setup(rendered):
    """The login to a ZenML server only with its answer (the README says how to get it)."""
    project, answers = rendered
    server = answers["zenml_server_url"]
    platform = project / "src" / answers["package_name"] / "platform"
    makefile = (project / "Makefile").read_text()
    setup = makefile.split("\nsetup:")[1].split("\n\n")[0]
    assert ("$(PACKAGE) login" in setup) == ("\nlogin:" in makefile) == bool(server)
    assert ("ZENML_STORE_API_KEY=\n" in (project / ".env.example").read_text()) == bool(server)
    readme = (project / "README.md").read_text()
    assert "## ZenML server" in readme
    if server:
        module = (platform / "zenml_server.py").read_text()
        assert f'SERVER_URL = "{server}"\n' in module
        assert ".zenml-server/\n" in (project / ".gitignore").read_text()
        assert f"ZenML server **{server}**" in readme and "zenml service-account create" in readme
    else:
        assert not (platform / "zenml_server.py").exists()
        assert "copier update -d\nzenml_server_url=" in readme


def _functions(tree):
    import ast

    return [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]


def test_code_is_layered_small_and_its_cli_only_formats(rendered):
    """ZenML only in pipelines/ and platform/; cli.py at most 350 lines; no function over 60
    lines; every exception class in errors.py."""
    import ast

    project, answers = rendered
    package = project / "src" / answers["package_name"]
    assert len((package / "cli.py").read_text().splitlines()) <= 350
    for path in package.rglob("*.py"):
        where = path.relative_to(package).as_posix()
        tree = ast.parse(path.read_text())
        imported = [
            alias.name if isinstance(node, ast.Import) else node.module or ""
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in getattr(node, "names", [])
        ]
        if not where.startswith(("pipelines/", "platform/")):
            assert not [name for name in imported if name.startswith("zenml")], where
        for function in _functions(tree):
            length = function.end_lineno - function.lineno + 1
            assert length <= 60, f"{where}: {function.name} is {length} lines"
        classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
        errors = [c.name for c in classes if c.name.endswith(("Error", "Exception"))]
        assert where == "errors.py" or not errors, f"{where} defines {errors}"


# Whose each file is, in its first line: the user's (CUSTOMIZE: `copier update` merges into
# their edits) or the template's (kept current by `copier update`).
YOURS, TEMPLATES = "# CUSTOMIZE:", "# Template's:"
USER_FILES = ("ml/features.py", "ml/metrics.py", "ml/dataset.py", "ml/sklearn.py", "ml/keras.py")


def test_every_file_says_whose_it_is_and_the_readme_sends_users_to_theirs(rendered):
    project, answers = rendered
    package = f"src/{answers['package_name']}/"
    owners = {}
    for path in sorted(project.rglob("*")):
        where = path.relative_to(project).as_posix()
        commented = path.suffix in {".py", ".yaml", ".yml", ".toml"} or path.name == "Makefile"
        if path.is_file() and commented and not where.startswith((".copier", "docs/")):
            first = path.read_text().split("\n", 1)[0]
            assert first.startswith((YOURS, TEMPLATES)), f"{where}: {first!r}"
            owners[where] = first.startswith(YOURS)
    yours = {where for where, mine in owners.items() if mine}
    expected = {f"{package}{name}" for name in USER_FILES if f"{package}{name}" in owners}
    expected |= {w for w in owners if w.startswith(("configs/", "stacks/"))} | {"pyproject.toml"}
    assert yours == expected
    table = (project / "README.md").read_text().split("| to change | edit | how |", 1)[1]
    rows = table.split("\n\n", 1)[0].splitlines()[2:]
    named = {path for row in rows for path in re.findall(r"`([\w./*-]+)`", row.split("|")[2])}
    named_files = {f for pattern in named for f in owners if Path(f).match(pattern)}
    assert named_files and named_files <= yours, sorted(named_files - yours)
