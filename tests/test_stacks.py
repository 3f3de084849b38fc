"""Every stack file of the generated project registers in ZenML through `<package> stack`:
flavors resolved and configurations validated by ZenML, the cloud credentials in a service
connector, twice in a row without prompts, and `--dry-run` changes nothing.

One render per production flavor: together they cover every orchestrator (kubernetes,
sagemaker, vertex) and every artifact store (s3, gcs, azure). No cloud is reachable here, so
the connectors are registered without verifying their credentials (as `stack` always does).
"""

import json
import os
import re
from pathlib import Path

import pytest

from conftest import cli_calls, outcome, render, run

pytestmark = pytest.mark.lifecycle

TRACKER = "https://mlflow.example.com"
FAKE_CLOUD_SECRET = "fake-cloud-secret-6f1d"
CLOUD_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEKEY000000000",
    "AWS_SECRET_ACCESS_KEY": FAKE_CLOUD_SECRET,
    "AZURE_TENANT_ID": "00000000-0000-0000-0000-00000000000a",
    "AZURE_CLIENT_ID": "00000000-0000-0000-0000-00000000000b",
    "AZURE_CLIENT_SECRET": FAKE_CLOUD_SECRET,
    "GCP_SERVICE_ACCOUNT_JSON": json.dumps(
        {
            "type": "service_account",
            "project_id": "acme-ml-prod",
            "private_key_id": FAKE_CLOUD_SECRET,
            "private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
            "client_email": "zenml@acme-ml-prod.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    ),
    "MLFLOW_TRACKING_USERNAME": "ci-bot",
    "MLFLOW_TRACKING_PASSWORD": "pw-stacks-test-1234",
}
VARIANTS = {
    "kubernetes-azure": {
        "project_name": "Stack Kube",
        "production_stack": "kubernetes",
        "artifact_store": "azure",
    },
    "sagemaker-s3": {"project_name": "Stack Sage", "production_stack": "sagemaker"},
    "vertex-gcs": {  # and serving through ZenML's Deployer: Cloud Run in production
        "project_name": "Stack Vertex",
        "production_stack": "vertex",
        "gcp_project": "acme-ml-prod",
        "serving": "pipeline-deployment",
    },
}
CLOUD = {"kubernetes-azure": "azure", "sagemaker-s3": "aws", "vertex-gcs": "gcp"}
MISSING = {
    "kubernetes-azure": ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"],
    "sagemaker-s3": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
    "vertex-gcs": ["GCP_SERVICE_ACCOUNT_JSON"],
}
EXPECTED = {  # what the dry run must list, besides the secret, the stack and its activation
    "kubernetes-azure": [
        "orchestrator (kubernetes)",
        "artifact_store (azure)",
        "service connector (azure",
    ],
    "sagemaker-s3": ["orchestrator (sagemaker)", "artifact_store (s3)", "service connector (aws"],
    "vertex-gcs": [
        "orchestrator (vertex)",
        "artifact_store (gcp)",
        "deployer (gcp)",
        "service connector (gcp",
    ],
}


@pytest.fixture(scope="module", params=list(VARIANTS), ids=list(VARIANTS))
def variant(request, tmp_path_factory):
    answers = {"mlflow_tracking_uri": TRACKER, "mlflow_auth": "basic", **VARIANTS[request.param]}
    project = render(tmp_path_factory.mktemp(request.param) / "project", **answers)
    run(["uv", "sync", "--python", "3.11", "--extra", "production"], cwd=project)
    return request.param, project


def stacks(project: Path, *calls: list[str]) -> list[str]:
    """`stack ARGS` for each of `calls`, in order, each a process of its own without importing
    the program again (conftest.cli_calls); the outputs, every call having succeeded."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | CLOUD_ENV
    results = cli_calls(project, [(["stack", *args], env) for args in calls])
    for result, _ in results:
        assert result.returncode == 0, (
            f"{result.args}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return [result.stdout for result, _ in results]


def registered_components(project: Path) -> dict[str, list]:
    """The production stack as ZenML has it: component -> [flavor, connector name]."""
    script = (
        "import json, sys; from zenml.client import Client\n"
        "stack = Client().get_stack(sys.argv[1])\n"
        "print(json.dumps({t.value: [c[0].flavor_name, c[0].connector.name if c[0].connector"
        " else None] for t, c in stack.components.items()}))"
    )
    package = next((project / "src").iterdir()).name
    command = [".venv/bin/python", "-c", script, f"{package}-production"]
    return json.loads(run(command, cwd=project).stdout.strip().splitlines()[-1])


def test_without_cloud_credentials_registration_stops_with_one_line(variant):
    name, project = variant
    package = next((project / "src").iterdir()).name
    cloud_names = ("AWS_", "AZURE_", "GCP_")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(cloud_names)}
    environment.update({k: v for k, v in CLOUD_ENV.items() if k.startswith("MLFLOW_")})
    result = outcome([f".venv/bin/{package}", "stack", "production"], project, environment)
    assert result.returncode == 1
    variables = ", ".join(MISSING[name])
    connector = f"{package.replace('_', '-')}-{CLOUD[name]}"
    error, hint = result.stderr.strip().splitlines()[-2:]
    assert hint.startswith("hint: ")
    assert error == (
        f"error: service connector {connector} needs {variables} in the environment or .env "
        "(see .env.example)"
    )
    env_example = (project / ".env.example").read_text()
    assert all(f"\n{variable}=\n" in env_example for variable in MISSING[name])


def test_production_stack_dry_run_then_registration_twice(variant):
    name, project = variant
    planned, first, second = stacks(
        project, ["production", "--dry-run"], ["production"], ["production"]
    )
    # "would create <kind> <name> (<flavor>...)" -> "<kind> (<flavor>..."
    kinds = {
        re.sub(r"^would create (.+?) \S+ \(", r"\1 (", line.strip())
        for line in planned.splitlines()
    }
    for expected in EXPECTED[name]:
        assert any(kind.startswith(expected) for kind in kinds), planned
    assert "would create secret" in planned and "would create service connector" in planned
    # Nothing was registered by the dry run: the registration creates exactly what it listed.
    would = [
        line.strip().removeprefix("would ") for line in planned.splitlines() if "would" in line
    ]
    done = [line.strip() for line in first.splitlines() if line.startswith("  ")]
    assert [change.split(" ", 1)[1] for change in would] == [c.split(" ", 1)[1] for c in done]
    assert "Stack 'production' is ready and active." in first
    assert "Stack 'production' is up to date and active." in second
    assert "created" not in second and "updated" not in second

    components = registered_components(project)
    assert components["artifact_store"][1].endswith(f"-{CLOUD[name]}")
    assert components["container_registry"][1].endswith(f"-{CLOUD[name]}")
    assert components["image_builder"] == ["local", None]
    assert components["experiment_tracker"][0] == "mlflow"
    assert "model_deployer" not in components  # serving: `deploy --target`
    if name == "vertex-gcs":  # serving: pipeline-deployment, on Cloud Run
        assert components["deployer"] == ["gcp", f"stack-vertex-{CLOUD[name]}"]
    else:
        assert "deployer" not in components


# local.yaml and remote-mlflow.yaml are the same in every render: one is enough.
@pytest.mark.parametrize("variant", ["kubernetes-azure"], indirect=True)
def test_every_other_stack_file_registers_twice(variant):
    _, project = variant
    names = ("local", "remote-mlflow")
    outputs = stacks(project, *([name] for name in names for _ in range(2)))
    for index, stack_name in enumerate(names):
        first, second = outputs[2 * index : 2 * index + 2]
        assert f"Stack '{stack_name}' is ready and active." in first
        assert f"Stack '{stack_name}' is up to date and active." in second


def test_cloud_secrets_stay_out_of_the_project(variant):
    _, project = variant
    leaks = [
        path.relative_to(project)
        for path in project.rglob("*")
        if path.is_file()
        and ".venv" not in path.parts
        and FAKE_CLOUD_SECRET.encode() in path.read_bytes()
    ]
    assert not leaks
