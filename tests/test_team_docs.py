"""The generated docs/team-tracker.md and its files (docs/team-tracker/), checked without a
container engine, a cluster or the network:

- compose.yaml against the Compose Specification's JSON schema (the copy check-jsonschema
  vendors), every document of kubernetes.yaml against the Kubernetes API's JSON schemas of a
  recent release (kubernetes-validate's bundled ones, strict: no unknown fields);
- the doc, compose.yaml and kubernetes.yaml run one and the same `mlflow server` command line,
  whose flags, settings, routes and client calls exist in the MLflow these tests run (the one
  uv.lock pins), at the version the images name;
- the files agree with each other (ini, SQL, secrets' names, probes, references), and none
  holds a real-looking secret: placeholders only.

Each check is shown to reject a broken copy, so none can pass by checking nothing.
"""

import configparser
import copy
import functools
import json
import math
import re
import shlex
import subprocess
import sys
import tomllib
from importlib import resources
from importlib.metadata import distribution
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement

from conftest import render

ANSWER_SETS = {  # the docs come with a tracker URI
    "http-none": {"mlflow_tracking_uri": "http://mlflow.internal:5000"},
    "kubernetes-https-basic": {
        "project_name": "Churn Guard",
        "mlflow_tracking_uri": "https://mlflow.acme.io",
        "mlflow_auth": "basic",
        "mlflow_username": "ana",
        "production_stack": "kubernetes",
    },
}
MLFLOW = distribution("mlflow")
VERSION = MLFLOW.version  # the MLflow of uv.lock, that the other tests' servers run
KUBERNETES = kubernetes_validate.latest_version()
# The server's secrets, by the names .env.example, compose.yaml and the Secret share.
SECRETS = {
    "POSTGRES_PASSWORD",
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
}
NOT_SECRET = {"MLFLOW_AUTH_ADMIN_USERNAME": "admin"}  # the only value they may hold
DOC_PASSWORD = "<first-password>"  # the doc's placeholder for a new user's password


@pytest.fixture(scope="module", params=list(ANSWER_SETS), ids=list(ANSWER_SETS))
def rendered(request, tmp_path_factory) -> tuple[Path, dict]:
    answers = ANSWER_SETS[request.param]
    project = render(tmp_path_factory.mktemp(request.param) / "project", **answers)
    return project, yaml.safe_load((project / ".copier-answers.yml").read_text())


def folder(project: Path) -> Path:
    return project / "docs" / "team-tracker"


def compose(project: Path) -> dict:
    return yaml.safe_load((folder(project) / "compose.yaml").read_text())


def kubernetes(project: Path) -> list[dict]:
    return list(yaml.safe_load_all((folder(project) / "kubernetes.yaml").read_text()))


def one(documents: list[dict], kind: str, name: str = "") -> dict:
    found = [d for d in documents if d["kind"] == kind and name in ("", d["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} {name}"
    return found[0]


def mlflow_container(documents: list[dict]) -> dict:
    (container,) = one(documents, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"]
    return container


def doc_command(project: Path) -> list[str]:
    """The `mlflow server` command of the doc's first code block that has one."""
    text = (project / "docs" / "team-tracker.md").read_text()
    blocks = re.findall(r"^```bash\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    block = next(b for b in blocks if b.startswith("mlflow server"))
    return shlex.split(block.replace("\\\n", " "))


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


# --- Schemas -------------------------------------------------------------------------------------


def compose_errors(document: dict) -> list[str]:
    """What the Compose Specification's schema says about a compose file (none: valid)."""
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(vendored.read_text())
    validator = jsonschema.validators.validator_for(schema)
    checker = validator(schema, format_checker=validator.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message}" for e in checker.iter_errors(document)]


def kubernetes_errors(document: dict) -> list[str]:
    try:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{document['kind']}: {error.message}"]
    return []


def test_compose_file_follows_the_compose_specification(rendered):
    project, _ = rendered
    document = compose(project)
    assert compose_errors(document) == []
    assert set(document["services"]) == {"postgres", "mlflow"}
    broken = copy.deepcopy(document)
    broken["services"]["mlflow"]["comand"] = broken["services"]["mlflow"].pop("command")
    broken["services"]["mlflow"]["depends_on"]["postgres"]["condition"] = "when_it_feels_like_it"
    assert len(compose_errors(broken)) == 2


def test_every_kubernetes_document_passes_the_api_schemas(rendered):
    project, _ = rendered
    documents = kubernetes(project)
    assert [kubernetes_errors(d) for d in documents] == [[]] * len(documents)
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == sorted(
        ["Namespace", "Secret", "ConfigMap", "Service", "Service", "StatefulSet"]
        + ["PersistentVolumeClaim", "Deployment"]
    )
    broken = copy.deepcopy(one(documents, "Deployment"))
    broken["spec"]["replica"] = broken["spec"].pop("replicas")  # a typo: strict rejects it
    assert kubernetes_errors(broken)
    wrong_type = copy.deepcopy(one(documents, "StatefulSet"))
    wrong_type["spec"]["replicas"] = "one"
    assert kubernetes_errors(wrong_type)


# --- One command line, in the MLflow these tests run ---------------------------------------------


def test_doc_compose_and_kubernetes_run_one_mlflow_command_line(rendered):
    project, _ = rendered
    command = compose(project)["services"]["mlflow"]["command"]
    assert command == mlflow_container(kubernetes(project))["command"]
    assert command == doc_command(project)
    assert command[:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in command and flag(command, "--artifacts-destination")
    assert flag(command, "--app-name") == "basic-auth"
    assert flag(command, "--workers") == "2"
    backend = flag(command, "--backend-store-uri")
    assert backend.startswith("postgresql+psycopg://")
    assert ":" not in backend.split("://", 1)[1].split("@")[0]  # no password in the URI
    # The auth database: PostgreSQL too, on the same server, a database of its own.
    auth = configparser.ConfigParser()
    auth.read_string((folder(project) / "basic_auth.ini").read_text())
    database = auth["mlflow"]["database_uri"]
    assert database.rsplit("/", 1)[0] == backend.rsplit("/", 1)[0]
    assert database.rsplit("/", 1)[1] not in ("", backend.rsplit("/", 1)[1])
    assert auth["mlflow"]["default_permission"] == "READ"
    assert "admin_password" not in auth["mlflow"]  # it comes from the secret
    sql = (folder(project) / "init-auth-db.sql").read_text()
    assert f"CREATE DATABASE {database.rsplit('/', 1)[1]} OWNER mlflow;" in sql


@functools.cache
def server_help() -> str:
    mlflow = str(Path(sys.executable).parent / "mlflow")
    return subprocess.run(
        [mlflow, "server", "--help"], capture_output=True, text=True, timeout=120, check=True
    ).stdout


def mlflow_source(path: str) -> str:
    return Path(MLFLOW.locate_file(f"mlflow/{path}")).read_text()


def test_flags_settings_routes_and_calls_exist_in_the_pinned_mlflow(rendered):
    project, _ = rendered
    command = compose(project)["services"]["mlflow"]["command"]
    assert [f for f in command if f.startswith("--") and f not in server_help()] == []
    assert "--app-name [basic-auth]" in server_help()
    config = mlflow_source("server/auth/config.py")
    ini = configparser.ConfigParser()
    ini.read_string((folder(project) / "basic_auth.ini").read_text())
    assert [key for key in ini["mlflow"] if f'"{key}"' not in config] == []
    variables = mlflow_source("environment_variables.py")
    environment = compose(project)["services"]["mlflow"]["environment"]
    named = [name for name in environment if name.startswith("MLFLOW_")]
    assert [name for name in named if f'"{name}"' not in variables] == []
    # The REST routes and Python client calls the doc shows.
    doc = (project / "docs" / "team-tracker.md").read_text()
    routes = mlflow_source("server/auth/routes.py")
    tracking = mlflow_source("server/handlers.py") + mlflow_source("protos/service_pb2.py")
    route = re.compile(r"/api/(2\.0|3\.0)(/mlflow/[a-z/-]+[a-z])")
    blocks = "".join(re.findall(r"^```\w*\n(.*?)^```", doc, re.DOTALL | re.MULTILINE))

    def exists(version: str, path: str) -> bool:
        in_auth = f'_get_rest_path("{path}"' + (", version=3)" if version == "3.0" else ")")
        return in_auth in routes or (version == "2.0" and path in tracking)

    in_code = set(route.findall(blocks))
    assert len(in_code) >= 3 and [r for r in in_code if not exists(*r)] == []
    # Prose names the routes to use, and the legacy one 3.17 dropped (it must be gone).
    for version, path in set(route.findall(doc)) - in_code:
        assert exists(version, path) != ("experiments/permissions/create" in path), path
    client = mlflow_source("server/auth/client.py")
    calls = set(re.findall(r"auth\.(\w+)\(", doc))
    assert calls == {"create_user", "grant_user_permission", "get_user_permission"}
    assert [call for call in calls if f"def {call}(" not in client] == []
    assert 'get_app_client("basic-auth", tracking_uri=' in doc
    assert "def get_app_client(" in mlflow_source("server/__init__.py")


def test_images_name_the_pinned_mlflow(rendered):
    project, _ = rendered
    dockerfile = (folder(project) / "Dockerfile").read_text()
    assert f"FROM ghcr.io/mlflow/mlflow:v{VERSION}\n" in dockerfile
    assert f'"mlflow[auth]=={VERSION}"' in dockerfile and '"psycopg[binary]' in dockerfile
    assert compose(project)["services"]["mlflow"]["image"].endswith(f":v{VERSION}")
    assert mlflow_container(kubernetes(project))["image"].endswith(
        f"/mlflow-team-server:v{VERSION}"
    )
    assert f"MLflow {VERSION}" in (project / "docs" / "team-tracker.md").read_text()
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    (pin,) = [Requirement(d) for d in pyproject["dependencies"] if d.startswith("mlflow")]
    assert pin.specifier.contains(VERSION)


# --- The files agree -----------------------------------------------------------------------------


def env_file(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and line[0] != "#"]
    return {name: value for name, value in pairs}


def test_compose_and_kubernetes_agree(rendered):
    project, _ = rendered
    documents, services = kubernetes(project), compose(project)["services"]
    config = one(documents, "ConfigMap", "mlflow-config")["data"]
    for name in ("basic_auth.ini", "init-auth-db.sql"):
        assert config[name] == (folder(project) / name).read_text(), name
    assert one(documents, "Secret")["stringData"].keys() == SECRETS
    assert env_file((folder(project) / ".env.example").read_text()).keys() == SECRETS
    interpolated = set(re.findall(r"\$\{(\w+)", (folder(project) / "compose.yaml").read_text()))
    assert interpolated == SECRETS
    # The same environment for the server, PGPASSWORD from the database's password.
    container = mlflow_container(documents)
    in_kubernetes = {
        e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in container["env"]
    }
    assert in_kubernetes.keys() - {"MLFLOW_SERVER_ALLOWED_HOSTS"} == set(
        services["mlflow"]["environment"]
    )
    assert in_kubernetes["PGPASSWORD"]["key"] == "POSTGRES_PASSWORD"
    assert services["mlflow"]["environment"]["PGPASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    (database,) = one(documents, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert database["image"] == services["postgres"]["image"]
    # Mounts: the ini where MLFLOW_AUTH_CONFIG_PATH says, the artifacts where the command puts them.
    ini_path = services["mlflow"]["environment"]["MLFLOW_AUTH_CONFIG_PATH"]
    destination = flag(services["mlflow"]["command"], "--artifacts-destination")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {ini_path, destination} <= mounts
    assert f"./basic_auth.ini:{ini_path}:ro" in services["mlflow"]["volumes"]
    assert f"mlflow-artifacts:{destination}" in services["mlflow"]["volumes"]


def test_kubernetes_pieces_fit_together(rendered):
    project, _ = rendered
    documents = kubernetes(project)
    names = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert {d["metadata"].get("namespace", "mlflow") for d in documents} == {"mlflow"}
    for workload in ("Deployment", "StatefulSet"):
        spec = one(documents, workload)["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        services = [d for d in documents if d["kind"] == "Service"]
        assert [s for s in services if s["spec"]["selector"].items() <= labels.items()], workload
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
            assert container["readinessProbe"] and container["livenessProbe"]
            for ref in [
                e["valueFrom"]["secretKeyRef"] for e in container.get("env", []) if "valueFrom" in e
            ]:
                assert ("Secret", ref["name"]) in names and ref["key"] in SECRETS
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in names
    statefulset = one(documents, "StatefulSet")["spec"]
    headless = one(documents, "Service", statefulset["serviceName"])
    assert headless["spec"]["clusterIP"] == "None" and statefulset["volumeClaimTemplates"]
    server = mlflow_container(documents)
    port = server["ports"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"] == {"path": "/health", "port": port["name"]}
    assert flag(server["command"], "--port") == str(port["containerPort"])
    assert one(documents, "Deployment")["spec"]["strategy"]["type"] == "Recreate"  # RWO volume


def test_kubernetes_names_the_projects_registry_and_tracker_host(rendered):
    project, answers = rendered
    documents = kubernetes(project)
    image = mlflow_container(documents)["image"]
    hosts = {e["name"]: e.get("value") for e in mlflow_container(documents)["env"]}
    allowed = hosts["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert "mlflow.mlflow.svc:5000" in allowed
    doc = (project / "docs" / "team-tracker.md").read_text()
    if answers["production_stack"] == "none":
        assert image.startswith("registry.example.com/")
    else:
        assert image.startswith(answers["container_registry_uri"] + "/")
    assert answers["mlflow_tracking_uri"].split("/")[2] in allowed
    assert f"MLFLOW_TRACKING_URI={answers['mlflow_tracking_uri']}\n" in doc
    assert f"experiment_name={answers['package_name']}" in doc
    assert f'"resource_id": "{answers["package_name"]}"' in doc


# --- Placeholders only ---------------------------------------------------------------------------

ASSIGNED = re.compile(  # KEY=value, key: value, "key": "value"
    r"""(?i)["']?[\w.-]*(password|secret|token|passwd|_key)["']?[ \t]*[:=][ \t]*"""
    r"""["']?([^"'\s,}]*)"""
)
CREDENTIALS_IN_URL = re.compile(r"\w+://[^/\s:@]+:[^/\s@]+@")
WORD = re.compile(r"[A-Za-z0-9+=_-]{16,}")  # a token, a key, base64 without its slashes


def entropy(word: str) -> float:
    return -sum(word.count(c) / len(word) * math.log2(word.count(c) / len(word)) for c in set(word))


def secret_looking(text: str) -> list[str]:
    """Values assigned to secret-named keys that are not empty, a variable's name, an
    interpolation or the doc's example; credentials in URLs; random-looking words."""
    allowed = r"|[A-Z][A-Z0-9_]*|\$\{\w+(:\?.*)?|" + re.escape(DOC_PASSWORD)
    found = [value for _, value in ASSIGNED.findall(text) if not re.fullmatch(allowed, value)]
    found += CREDENTIALS_IN_URL.findall(text)
    found += [
        word
        for word in WORD.findall(text)
        if entropy(word) > 4.0 and re.search(r"\d", word) and re.search(r"[a-z]", word)
    ]
    return found


def test_placeholders_only_no_real_looking_secret(rendered):
    project, _ = rendered
    paths = [project / "docs" / "team-tracker.md", *sorted(folder(project).iterdir())]
    assert len(paths) == 7
    assert {p.name: secret_looking(p.read_text()) for p in paths} == {p.name: [] for p in paths}
    example = env_file((folder(project) / ".env.example").read_text())
    assert {k: v for k, v in example.items() if v} == NOT_SECRET
    secret = one(kubernetes(project), "Secret")["stringData"]
    assert {k: v for k, v in secret.items() if v} == NOT_SECRET
    environment = compose(project)["services"]
    for service in environment.values():
        for name, value in service["environment"].items():
            if name in SECRETS - NOT_SECRET.keys() or name == "PGPASSWORD":
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", value), name
    doc = (project / "docs" / "team-tracker.md").read_text()
    assert re.findall(r'"password": "([^"]*)"', doc) == [DOC_PASSWORD]
    # The scanner does flag real-looking ones.
    leaks = [
        "POSTGRES_PASSWORD=hunter2hunter2",
        'MLFLOW_AUTH_ADMIN_PASSWORD: "s3cr3t-admin"',
        "--backend-store-uri postgresql+psycopg://mlflow:hunter2@postgres:5432/mlflow",
        "MLFLOW_FLASK_SERVER_SECRET_KEY=",  # empty: fine
        "key = Zq3xV9kLm2Tp8RwYb4NcHs7JdGf6",
    ]
    assert [bool(secret_looking(line)) for line in leaks] == [True, True, True, False, True]
