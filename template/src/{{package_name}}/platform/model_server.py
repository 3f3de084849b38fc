"""The local model server: ZenML's MLflow model deployer (a local daemon serving MLflow's
scoring server), one server per registered model.

ZenML internals used here, each for a measured reason (see tests/test_internals.py):
MLFlowDeploymentService is subclassed (run, poll_service_status) to start in seconds;
ZENM_ENDPOINT_PREFIX scopes lookups to this model; zen_store.create_service records a server
loadable from its creation; BaseService.from_json finds orphaned daemons by their files;
scoring_server.load_model_with_mlflow_config is how MLflow's own server loads a model.
"""

import asyncio
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import UUID, uuid4

import mlflow
import psutil
from pydantic import BaseModel
from zenml.client import Client
from zenml.integrations.mlflow.model_deployers import MLFlowModelDeployer
from zenml.integrations.mlflow.services import MLFlowDeploymentConfig, MLFlowDeploymentService
from zenml.models import ServiceRequest
from zenml.services import ServiceState
from zenml.services.service import ZENM_ENDPOINT_PREFIX, BaseService

from ..config import find_project_root
from ..errors import DeploymentError
from .endpoint_record import forget_endpoint
from .pipeline_runs import point_mlflow_at_stack
from .server_log import failure_in_log


class Deployment(BaseModel):
    """A registered version served at `url`."""

    model_name: str
    version: str
    url: str
    health_url: str = ""
    pid: int | None = None  # the server's process
    example: dict = {}  # the payload the smoke test sent: the version's input example


class LocalModelServer(MLFlowDeploymentService):
    """ZenML's MLflow model server (same configuration, endpoint, daemon and records), quicker
    to start. ZenML's daemon resolves the whole stack again to configure MLflow, downloads the
    model, then starts a second Python process (`uvicorn`) that imports MLflow again and loads
    it. Here the deploying process, where MLflow is ready, downloads the model next to the
    server's records (`model_path`), and the daemon serves it itself with MLflow's scoring
    app; readiness is polled every 0.2 s instead of every second."""

    model_path: str | None = None

    def run(self) -> None:
        if self.config.workers != 1 or not self.model_path:  # MLflow's `uvicorn` command
            super().run()
            return
        import uvicorn
        from mlflow.pyfunc import scoring_server

        self.endpoint.prepare_for_start()
        app = scoring_server.init(scoring_server.load_model_with_mlflow_config(self.model_path))
        server = uvicorn.Server(
            uvicorn.Config(app, host="localhost", port=self.endpoint.status.port, workers=1)
        )
        asyncio.run(_one_prediction_at_a_time(server))

    def poll_service_status(self, timeout: int = 0) -> bool:
        deadline, daemon_seen = time.monotonic() + timeout, False
        while time.monotonic() < deadline:
            if self.admin_state == ServiceState.ACTIVE:
                if self.is_running:
                    return True
                if self.status.state == ServiceState.ACTIVE:
                    daemon_seen = True  # up, its endpoint not yet
                elif daemon_seen:
                    break  # the daemon died (the model did not load, the port was taken)
            elif self.is_stopped:
                return True
            if self.is_failed:
                break
            time.sleep(0.2)
        return super().poll_service_status(1)  # ZenML's verdict, and its log on a timeout

    def failure(self) -> str:
        """Why the server stopped, from its log (read before ZenML removes it)."""
        log = Path(self.status.log_file or "")
        return failure_in_log(log.read_text(errors="replace") if log.is_file() else "")


async def _one_prediction_at_a_time(server) -> None:
    """MLflow's app runs each prediction in the event loop's default thread pool (several
    threads). Python threads share one interpreter lock, so concurrent predictions slow each
    other down: with one thread, 8 clients got 110 requests/s instead of 84 (make bench)."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
    await server.serve()


def model_servers(model_name: str) -> list[MLFlowDeploymentService]:
    """Every MLflow model server of this registered model known to ZenML.

    ZenML's own lookup by model name matches ZenML model versions, not MLflow registry names,
    so filter on the deployment config instead.
    """
    deployer = MLFlowModelDeployer.get_active_model_deployer()
    services = deployer.find_model_server(
        service_type=MLFlowDeploymentService.SERVICE_TYPE,
        # Only this model's records: ZenML's lookup deletes the records it finds without a
        # source, which another project's server has while it starts.
        service_name=f"{ZENM_ENDPOINT_PREFIX}{model_name}",
    )
    return [s for s in services if s.config.registry_model_name == model_name]


def is_serving(service: MLFlowDeploymentService) -> bool:
    """Up, and answering on its port itself. ZenML's check only asks the port, which another
    deployment may hold: two deployments started at the same moment can pick the same free
    port, and the one whose server could not bind it then sees the other's answers."""
    pid, port = service.status.pid, service.endpoint.status.port
    if not (pid and port and service.is_running):
        return False
    try:
        daemon = psutil.Process(pid)
        return any(
            connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
            for process in [daemon, *daemon.children(recursive=True)]
            for connection in process.net_connections()
        )
    except psutil.Error:
        return False


def stop_model_servers(model_name: str) -> list[str]:
    """Stop and delete this model's servers, and any orphaned server, and forget its endpoint
    record; returns the versions they served."""
    forget_endpoint(find_project_root(), model_name)
    deployer = MLFlowModelDeployer.get_active_model_deployer()
    stopped = []
    for service in model_servers(model_name):
        deployer.delete_model_server(service.uuid, force=True)
        stopped.append(str(service.config.registry_model_version))
    return stopped + stop_orphaned_servers(deployer)


def stop_orphaned_servers(deployer: MLFlowModelDeployer) -> list[str]:
    """Stop the servers this deployer started that ZenML has no record of.

    ZenML records a server before starting its daemon and drops the record when the start
    fails or is interrupted (Ctrl-C), but leaves the daemon running; its runtime directory
    (service.json) is what is left to find it by.
    """
    client, stopped = Client(), []
    for config in Path(deployer.local_path).glob("*/service.json"):
        if _has_record(client, config.parent.name):
            continue
        service = BaseService.from_json(config.read_text())
        service.stop(timeout=30, force=True)
        shutil.rmtree(config.parent, ignore_errors=True)
        stopped.append(str(getattr(service.config, "registry_model_version", "?")))
    return stopped


def _has_record(client: Client, service_id: str) -> bool:
    try:
        client.get_service(UUID(service_id))
    except KeyError:
        return False
    return True


def deploy_version(
    model_name: str, version: str, zenml_version: str, source: str, workers: int, timeout: int
) -> MLFlowDeploymentService:
    """Serve exactly this version, with one server per model: this model's other servers are
    removed first; an already healthy server of the same version and workers is kept.
    (ZenML's `deploy_model` may hand back a server of another version as "the same
    configuration".) `source` is the version's logged model: another project sharing this
    ZenML store may serve "v1" of a model of the same name, registered on another tracker.
    """
    for service in model_servers(model_name):
        served = service.config
        same = str(served.registry_model_version) == version and served.description == source
        if same and served.workers == workers and is_serving(service):
            return service
    config = MLFlowDeploymentConfig(
        model_uri=f"models:/{model_name}/{version}",
        model_name=model_name,
        model_version=zenml_version,  # "": registered outside ZenML (no Model Control Plane link)
        registry_model_name=model_name,
        registry_model_version=version,
        description=source,  # what tells this version from another tracker's
        workers=workers,
        timeout=timeout,
    )
    for _ in range(2):  # again once if another deployment took the port it picked
        stop_model_servers(model_name)
        try:
            service = start_model_server(config, timeout)
        except BaseException:  # Ctrl-C included: the half-started server must not outlive us
            stop_model_servers(model_name)
            raise
        if is_serving(service):
            return service
        reason = service.failure()
    stop_model_servers(model_name)
    raise DeploymentError(f"the model server for {model_name} v{version} did not start: {reason}")


def _zenml_model_version_id(client: Client, config: MLFlowDeploymentConfig) -> UUID | None:
    """The Model Control Plane version the served one was trained as, if it is in this store."""
    if not config.model_version:  # registered outside ZenML
        return None
    try:
        return client.get_model_version(config.model_name, config.model_version).id
    except KeyError:
        return None


def start_model_server(config: MLFlowDeploymentConfig, timeout: int) -> LocalModelServer:
    """What ZenML's `deploy_model` does (record the server, start it, record its state), with
    the quicker LocalModelServer."""
    point_mlflow_at_stack()  # the daemon inherits the tracker's URI and credentials from here
    # MLflow starts its scoring server as `uvicorn` from PATH: make it this environment's.
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    config.root_runtime_path = MLFlowModelDeployer.get_active_model_deployer().local_path
    client, draft = Client(), LocalModelServer(uuid=uuid4(), config=config)
    record = client.zen_store.create_service(
        ServiceRequest(
            name=config.service_name,
            service_type=MLFlowDeploymentService.SERVICE_TYPE,
            # Loadable from the start (source, state, status, endpoint): ZenML's lookups
            # delete records without a source, and cannot load them without the rest.
            service_source=draft.model_dump()["type"],
            admin_state=draft.admin_state,
            status=draft.status.model_dump(),
            endpoint=draft.endpoint.model_dump(),
            config=config.model_dump(),
            project=client.active_project.id,
            model_version_id=_zenml_model_version_id(client, config),
        )
    )
    service = LocalModelServer(uuid=record.id, config=config)
    try:
        # Into the server's runtime folder, which ZenML deletes with the server.
        folder = Path(config.root_runtime_path) / str(record.id) / "model"
        folder.mkdir(parents=True)
        service.model_path = mlflow.artifacts.download_artifacts(config.model_uri, dst_path=folder)
        service.start(timeout=timeout)
    except Exception as error:
        client.delete_service(record.id)
        raise DeploymentError(f"the model server for {config.model_name} failed: {error}") from None
    client.update_service(
        id=service.uuid,
        name=service.config.service_name,
        service_source=service.model_dump().get("type"),
        admin_state=service.admin_state,
        status=service.status.model_dump(),
        endpoint=service.endpoint.model_dump(),
        prediction_url=service.get_prediction_url(),
        health_check_url=service.get_healthcheck_url(),
    )
    return service
