"""Serving beyond this machine: what `deploy --target kubernetes|sagemaker|vertex` writes and runs.

Plain functions: a plan is the files to write and the commands to run, so `deploy` can print it
for review and `deploy --apply` can run it. Every target serves MLflow's own scoring server
(`/invocations`, health on `/ping`) with the model version baked into the image.
"""

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import DeploymentConfig, KubernetesServing, SageMakerServing, VertexServing
from ..errors import ConfigError, ProjectError

SCORING_PORT = 8080  # where MLflow's model image listens
TARGETS = ("kubernetes", "sagemaker", "vertex")


@dataclass
class RemotePlan:
    target: str
    model_uri: str
    files: dict[Path, str] = field(default_factory=dict)  # written before any command
    commands: list[list[str]] = field(default_factory=list)  # run in order by --apply
    notes: list[str] = field(default_factory=list)  # what to do or check afterwards


def app_name(model_name: str) -> str:
    """A DNS-1123 name for the served model (Kubernetes objects, endpoints)."""
    return model_name.lower().replace("_", "-").strip("-")[:63]


def image_tag(repository: str, version: str) -> str:
    return f"{repository}:v{version}"


def kubernetes_manifests(
    model_name: str, version: str, image: str, serving: KubernetesServing
) -> list[dict]:
    """A Deployment of the scoring server (probes on /ping) and a ClusterIP Service for it."""
    name = app_name(model_name)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "model-server"}
    probe = {"httpGet": {"path": "/ping", "port": "http"}, "timeoutSeconds": 5}
    container = {
        "name": "scoring-server",
        "image": image,
        "ports": [{"name": "http", "containerPort": SCORING_PORT}],
        "env": [{"name": "MLFLOW_MODELS_WORKERS", "value": str(serving.workers)}],
        "resources": {
            "requests": {"cpu": serving.cpu_request, "memory": serving.memory_request},
            "limits": {"cpu": serving.cpu_limit, "memory": serving.memory_limit},
        },
        # Loading the model takes a while: ready only once /ping answers, restarted if it stops.
        "readinessProbe": {**probe, "initialDelaySeconds": 10, "periodSeconds": 5},
        "livenessProbe": {
            **probe,
            "initialDelaySeconds": 60,
            "periodSeconds": 15,
            "failureThreshold": 4,
        },
    }
    metadata = {"name": name, "namespace": serving.namespace, "labels": labels}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": serving.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {
                    "labels": {**labels, "app.kubernetes.io/version": f"v{version}"},
                    "annotations": {"mlflow.org/model-uri": f"models:/{model_name}/{version}"},
                },
                "spec": {"containers": [container]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    return [deployment, service]


def _image_commands(image: str, context: Path) -> list[list[str]]:
    return [["docker", "build", "-t", image, str(context)], ["docker", "push", image]]


def kubernetes_plan(
    model_name: str, version: str, serving: KubernetesServing, out: Path
) -> RemotePlan:
    image = image_tag(serving.image_repository, version)
    manifests = out / "manifests.yaml"
    plan = RemotePlan("kubernetes", f"models:/{model_name}/{version}")
    documents = kubernetes_manifests(model_name, version, image, serving)
    plan.files[manifests] = yaml.safe_dump_all(documents, sort_keys=False)
    kubectl = ["kubectl", "--context", serving.context, "--namespace", serving.namespace]
    plan.commands = [
        *_image_commands(image, out / "image"),
        [*kubectl, "apply", "-f", str(manifests)],
        [*kubectl, "rollout", "status", f"deployment/{app_name(model_name)}", "--timeout=10m"],
    ]
    plan.notes.append(
        f"in the cluster: POST http://{app_name(model_name)}.{serving.namespace}.svc/invocations"
    )
    return plan


def sagemaker_plan(model_name: str, version: str, serving: SageMakerServing) -> RemotePlan:
    """MLflow's SageMaker target: its pyfunc image in ECR, then an endpoint (replaced if it
    exists) that loads the model from the bucket."""
    import mlflow

    repository = serving.image_repository.rsplit("/", 1)[-1]
    image = f"{serving.image_repository}:{mlflow.__version__}"
    model_uri = f"models:/{model_name}/{version}"
    settings = {
        "mode": "replace",
        "execution_role_arn": serving.execution_role_arn,
        "image_url": image,
        "bucket": serving.bucket,
        "region_name": serving.region,
        "instance_type": serving.instance_type,
        "instance_count": serving.instance_count,
    }
    mlflow_cli = [sys.executable, "-m", "mlflow"]
    plan = RemotePlan("sagemaker", model_uri)
    plan.commands = [
        [*mlflow_cli, "sagemaker", "build-and-push-container", "--container", repository],
        [*mlflow_cli, "deployments", "create", "--target", f"sagemaker:/{serving.region}"]
        + ["--name", app_name(model_name), "--model-uri", model_uri]
        + [option for key, value in settings.items() for option in ("-C", f"{key}={value}")],
    ]
    plan.notes.append(
        f"score it: mlflow deployments predict -t sagemaker:/{serving.region} "
        f"--name {app_name(model_name)} --input-path rows.json"
    )
    return plan


def vertex_plan(model_name: str, version: str, serving: VertexServing, out: Path) -> RemotePlan:
    """The scoring-server image as a Vertex AI model (custom container), deployed on an
    endpoint that is created on first use."""
    image = image_tag(serving.image_repository, version)
    name, display = app_name(model_name), f"{app_name(model_name)}-v{version}"
    where = f"--project={serving.project} --region={serving.region}"
    find = "--format='value(name)' --limit=1"
    deploy_on_endpoint = (
        f"MODEL=$(gcloud ai models list {where} --filter=display_name={display} {find}) && "
        f"ENDPOINT=$(gcloud ai endpoints list {where} --filter=display_name={name} {find}) && "
        f'if [ -z "$ENDPOINT" ]; then ENDPOINT=$(gcloud ai endpoints create {where} '
        f"--display-name={name} --format='value(name)'); fi && "
        f'gcloud ai endpoints deploy-model "$ENDPOINT" {where} --model="$MODEL" '
        f"--display-name={display} --machine-type={serving.machine_type} "
        f"--min-replica-count={serving.min_replicas} --max-replica-count={serving.max_replicas} "
        "--traffic-split=0=100"
    )
    plan = RemotePlan("vertex", f"models:/{model_name}/{version}")
    plan.commands = [
        *_image_commands(image, out / "image"),
        ["gcloud", "ai", "models", "upload", *where.split(), f"--display-name={display}"]
        + [f"--container-image-uri={image}", f"--container-ports={SCORING_PORT}"]
        + ["--container-predict-route=/invocations", "--container-health-route=/ping"],
        ["bash", "-c", deploy_on_endpoint],
    ]
    plan.notes.append(
        f"score it: gcloud ai endpoints predict ENDPOINT_ID {where} --json-request=rows.json "
        '(body {"instances": [...]})'
    )
    return plan


def build_plan(
    target: str, config: DeploymentConfig, model_name: str, version: str, out: Path
) -> RemotePlan:
    serving = getattr(config, target, None) if target in TARGETS else None
    if serving is None:
        raise ConfigError(
            f"deploy --target {target}: configs/deployment.yaml has no '{target}' section"
        )
    if target == "kubernetes":
        return kubernetes_plan(model_name, version, serving, out)
    if target == "sagemaker":
        return sagemaker_plan(model_name, version, serving)
    return vertex_plan(model_name, version, serving, out)


def generate_dockerfile(model_uri: str, context: Path) -> Path:
    """`mlflow models generate-dockerfile`: a build context with the model files and a
    Dockerfile that serves them on port 8080."""
    command = [sys.executable, "-m", "mlflow", "models", "generate-dockerfile"]
    command += ["--model-uri", model_uri, "--output-directory", str(context)]
    result = subprocess.run(command, capture_output=True, text=True)
    dockerfile = context / "Dockerfile"
    if result.returncode != 0 or not dockerfile.is_file():
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProjectError(f"mlflow models generate-dockerfile failed for {model_uri}: {last}")
    return dockerfile


def write_files(plan: RemotePlan) -> None:
    for path, content in plan.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def apply(plan: RemotePlan, echo) -> None:
    """Run the plan's commands in order; stop at the first failure with one line."""
    for command in plan.commands:
        echo("$ " + " ".join(command))
        try:
            result = subprocess.run(command)
        except FileNotFoundError:
            raise ProjectError(f"{command[0]} is not installed (deploy --apply runs it)") from None
        if result.returncode != 0:
            raise ProjectError(f"`{' '.join(command[:3])} ...` exited {result.returncode}")
