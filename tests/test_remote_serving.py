"""The serving outputs of `deploy --target kubernetes|sagemaker|vertex`, checked as a cluster's
admission policy would check them, without a cluster or a container engine (none runs here):

- the Kubernetes manifests pass `kubernetes-validate --strict` (the API schemas) and checkov's
  Kubernetes policies (PyPI, installed once into build/tools, run offline), and meet Pod
  Security's "restricted" profile field by field; checkov is shown to reject a root pod;
- the serving image's Dockerfile (`mlflow models generate-dockerfile` plus the project's
  additions) passes checkov's Dockerfile policies: a non-root USER, a HEALTHCHECK;
- every target deploys the image by the digest `docker push` gave it.

The plans come from the rendered project's own code (`platform/remote.py`), imported in a
subprocess of this environment (it has mlflow, scikit-learn, pydantic and PyYAML): no install.
"""

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TEMPLATE, render

CHECKOV = ("checkov", "3.3.30")
TOOLS = TEMPLATE / "build" / "tools"  # uv tool environments, kept between runs
BIN = Path(sys.executable).parent
PACKAGE = "churn_guard"
REPOSITORY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/churn-guard-server"
DIGEST = f"{REPOSITORY}@sha256:{'0123456789abcdef' * 4}"
RUN_AS = 10001
# Where the server writes (nginx's temp files and log links, its pid file, Python's temp files).
WRITABLE = {"/tmp", "/var/lib/nginx", "/var/log/nginx"}


@pytest.fixture(scope="session")
def checkov() -> list[str]:
    """checkov in a uv tool environment of its own (its pins clash with this environment's)."""
    name, version = CHECKOV
    executable = TOOLS / "bin" / name
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")},
        "UV_TOOL_DIR": str(TOOLS / "envs"),
        "UV_TOOL_BIN_DIR": str(TOOLS / "bin"),
    }
    TOOLS.mkdir(parents=True, exist_ok=True)
    with (TOOLS / ".lock").open("w") as lock:  # one installer at a time (pytest -n)
        fcntl.flock(lock, fcntl.LOCK_EX)
        installed = (
            executable.is_file()
            and subprocess.run(
                [str(executable), "--version"], capture_output=True, text=True
            ).stdout.strip()
            == version
        )
        if not installed:
            command = [str(BIN / "uv"), "tool", "install", "--force", "--python", sys.executable]
            subprocess.run([*command, f"{name}=={version}"], env=env, check=True, timeout=900)
    return [str(executable), "--quiet", "--compact", "--skip-download", "--output", "json"]


def checkov_failures(checkov: list[str], path: Path, framework: str) -> set[str]:
    """The ids of the checks that fail on one file (offline: no platform key, no download)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_"))}
    result = subprocess.run(
        [*checkov, "--framework", framework, "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    report = json.loads(result.stdout)
    if isinstance(report, list):  # one report per framework
        (report,) = report
    if report.get("summary", {}).get("passed", 0) == 0 and "results" not in report:
        pytest.fail(f"checkov checked nothing in {path}: {result.stdout}")
    assert report["summary"]["passed"] > 0, report["summary"]
    return {check["check_id"] for check in report["results"]["failed_checks"]}


def validate(path: Path) -> subprocess.CompletedProcess:
    command = [str(BIN / "kubernetes-validate"), "--strict", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def run_project_code(project: Path, code: str, *args: str) -> str:
    """Run `code` with the rendered project's package importable; return its stdout."""
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


PLAN = f"""
import json, sys
from pathlib import Path
from {PACKAGE}.config import load_deployment_config
from {PACKAGE}.platform import remote

project, out, replicas = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
config = load_deployment_config(project / "configs" / "deployment.yaml")
section = getattr(config, remote.TARGET)
if replicas and hasattr(section, "replicas"):
    section.replicas = replicas
plan = remote.build_plan(config, "{PACKAGE}", "7", out)
remote.write_files(plan)
print(json.dumps({{"files": [str(p) for p in plan.files], "commands": plan.commands}}))
"""


def build_plan(project: Path, out: Path, replicas: int = 0) -> dict:
    return json.loads(run_project_code(project, PLAN, str(project), str(out), str(replicas)))


@pytest.fixture(scope="module")
def projects(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("remote-serving")
    return {
        target: render(
            root / target,
            project_name="Churn Guard",
            mlflow_tracking_uri="https://mlflow.example.com",
            production_stack=target,
        )
        for target in ("kubernetes", "sagemaker", "vertex")
    }


@pytest.fixture(scope="module")
def kubernetes(projects, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("kubernetes-plan")
    return build_plan(projects["kubernetes"], out), out / "manifests.yaml"


def pin_to_digest(plan: dict, digest: str) -> Path:
    """The plan's own pinning step after `docker push`, given the digest the push reported (the
    `docker image inspect` lookup before it needs the pushed image)."""
    (pin,) = [command for command in plan["commands"] if command[0] == "bash"]
    lookup, rewrite = pin[2].split(" && ", 1)
    assert lookup.startswith("DIGEST=$(set -o pipefail; docker image inspect ")
    subprocess.run(["bash", "-c", rewrite], env={**os.environ, "DIGEST": digest}, check=True)
    return Path(re.search(r"> (\S+manifests\.pinned\.yaml)", rewrite).group(1))


def test_kubernetes_manifests_pass_the_schemas_and_checkov(kubernetes, checkov):
    plan, manifests = kubernetes
    result = validate(manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = ["deployment", "service", "networkpolicy", "poddisruptionbudget"]
    for kind in kinds:
        assert f"passed for resource {kind}/churn-guard" in result.stdout + result.stderr
    # As written, the image is named by its tag: checkov wants a digest, which only the push
    # knows. The plan pins it between `docker push` and `kubectl apply`.
    assert checkov_failures(checkov, manifests, "kubernetes") == {"CKV_K8S_43"}
    pinned = pin_to_digest(plan, DIGEST)
    apply = [command for command in plan["commands"] if "apply" in command]
    assert apply == [[*apply[0][:-1], str(pinned)]]  # kubectl applies the pinned manifests
    assert plan["commands"].index(apply[0]) > [c[:2] for c in plan["commands"]].index(
        ["docker", "push"]
    )
    assert checkov_failures(checkov, pinned, "kubernetes") == set()
    assert validate(pinned).returncode == 0
    (deployment, *_) = yaml.safe_load_all(pinned.read_text())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == DIGEST


def test_the_pinning_step_fails_when_the_image_was_not_pushed(kubernetes, tmp_path):
    """The real lookup (`docker image inspect`; here no image, and no daemon, exists): the step
    fails, and nothing is left for `kubectl apply`."""
    plan, manifests = kubernetes
    if not shutil.which("docker"):
        pytest.fail("the docker client is needed (it runs the plan's digest lookup)")
    (pin,) = [command for command in plan["commands"] if command[0] == "bash"]
    pinned = manifests.parent / "manifests.pinned.yaml"
    pinned.unlink(missing_ok=True)
    result = subprocess.run(pin, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and not pinned.exists(), result.stdout + result.stderr


def test_kubernetes_pods_meet_the_restricted_pod_security_profile(kubernetes):
    """Pod Security Standards, "restricted" (kubernetes.io/docs/concepts/security/pod-security-
    standards), plus a read-only root filesystem with writable emptyDirs where the server
    writes only, and no service account token."""
    _, manifests = kubernetes
    deployment, service, policy, budget = yaml.safe_load_all(manifests.read_text())
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == RUN_AS
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    assert {kind for volume in pod["volumes"] for kind in volume if kind != "name"} == {"emptyDir"}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == RUN_AS != 0
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert context.get("privileged") is not True
        assert "hostPort" not in str(container["ports"])
        assert {mount["mountPath"] for mount in container["volumeMounts"]} == WRITABLE
    assert policy["spec"]["egress"] == [] and policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert budget["spec"]["maxUnavailable"] == 1
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["podSelector"]["matchLabels"] == selector
    assert budget["spec"]["selector"]["matchLabels"] == service["spec"]["selector"] == selector


def test_one_replica_gets_no_disruption_budget(projects, tmp_path):
    """A budget of one unavailable pod out of one would not protect anything."""
    plan = build_plan(projects["kubernetes"], tmp_path, replicas=1)
    documents = list(yaml.safe_load_all(Path(plan["files"][0]).read_text()))
    assert [d["kind"] for d in documents] == ["Deployment", "Service", "NetworkPolicy"]


def test_checkov_rejects_a_pod_that_runs_as_root(kubernetes, checkov, tmp_path):
    """What the manifests had before: no securityContext, a writable root filesystem, the
    service account token mounted. The schema accepts it; the policies do not."""
    plan, _ = kubernetes
    deployment, *others = yaml.safe_load_all(pin_to_digest(plan, DIGEST).read_text())
    pod = deployment["spec"]["template"]["spec"]
    for key in ("securityContext", "automountServiceAccountToken", "volumes"):
        pod.pop(key)
    for container in pod["containers"]:
        container.pop("securityContext")
        container.pop("volumeMounts")
    root = tmp_path / "root.yaml"
    root.write_text(yaml.safe_dump_all([deployment, *others], sort_keys=False))
    assert validate(root).returncode == 0
    failed = checkov_failures(checkov, root, "kubernetes")
    root_checks = {
        "CKV_K8S_20",  # allowPrivilegeEscalation
        "CKV_K8S_22",  # read-only root filesystem
        "CKV_K8S_23",  # root containers
        "CKV_K8S_28",  # NET_RAW
        "CKV_K8S_29",  # pod security context
        "CKV_K8S_30",  # container security context
        "CKV_K8S_31",  # seccomp
        "CKV_K8S_37",  # capabilities
        "CKV_K8S_38",  # service account token
        "CKV_K8S_40",  # high UID
    }
    assert failed == root_checks

    pod["securityContext"] = {"runAsUser": 0}  # explicitly root
    root.write_text(yaml.safe_dump_all([deployment, *others], sort_keys=False))
    assert "CKV_K8S_23" in checkov_failures(checkov, root, "kubernetes")


DOCKERFILE = f"""
import sys
from pathlib import Path

import mlflow.sklearn
from sklearn.linear_model import LogisticRegression

from {PACKAGE}.platform import remote

model = Path(sys.argv[1]) / "model"
fitted = LogisticRegression().fit([[0.0, 1.0], [1.0, 0.0]], [0, 1])
mlflow.sklearn.save_model(fitted, model, pip_requirements=["scikit-learn"])
print(remote.generate_dockerfile(str(model), Path(sys.argv[1]) / "image"))
"""


@pytest.mark.parametrize("target", ["kubernetes", "vertex"])
def test_the_serving_image_runs_as_an_unprivileged_user(projects, checkov, tmp_path, target):
    """`mlflow models generate-dockerfile`'s Dockerfile (root, no health check) with the
    project's additions; the same image serves on Kubernetes and on Vertex AI."""
    dockerfile = Path(run_project_code(projects[target], DOCKERFILE, str(tmp_path)).strip())
    text = dockerfile.read_text()
    assert text.startswith("# Build an image that can serve mlflow models.")  # MLflow's own
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users == [f"{RUN_AS}:{RUN_AS}"]
    assert text.rstrip().splitlines()[-1].lstrip().startswith("CMD [")  # the HEALTHCHECK's
    assert checkov_failures(checkov, dockerfile, "dockerfile") == set()

    # MLflow's Dockerfile alone: checkov wants a user and a health check.
    original = tmp_path / "original" / "Dockerfile"
    original.parent.mkdir()
    original.write_text(text.split("\n# Added by `deploy --target")[0] + "\n")
    assert checkov_failures(checkov, original, "dockerfile") == {"CKV_DOCKER_2", "CKV_DOCKER_3"}


@pytest.mark.parametrize("target", ["kubernetes", "sagemaker", "vertex"])
def test_every_target_deploys_the_image_by_its_pushed_digest(projects, tmp_path, target):
    plan = build_plan(projects[target], tmp_path)
    shell = [command[2] for command in plan["commands"] if command[0] == "bash"]
    lookups = [
        command for command in shell if command.startswith("DIGEST=$(set -o pipefail; docker image")
    ]
    assert len(lookups) == 1, shell
    (lookup,) = lookups
    uses = {
        "kubernetes": 'image: $DIGEST|"',
        "sagemaker": '"image_url=$DIGEST"',
        "vertex": '--container-image-uri="$DIGEST"',
    }[target]
    assert uses in lookup
    assert "@sha256:" in lookup  # only a digest of the pushed repository is taken
    pushes = [c for c in plan["commands"] if c[:2] == ["docker", "push"]]
    if target != "sagemaker":  # `mlflow sagemaker build-and-push-container` pushes itself
        assert plan["commands"].index(pushes[0]) < [c[2:3] for c in plan["commands"]].index(
            [lookup]
        )
