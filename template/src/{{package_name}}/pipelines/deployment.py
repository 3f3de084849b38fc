"""Deployment pipeline: resolve @champion (or a version) -> serve it -> smoke-test it."""

from typing import Annotated

import mlflow
import numpy as np
from zenml import pipeline, step
from zenml.enums import ExecutionMode

from ..config import DeploymentConfig
from ..errors import DeploymentError
from ..lifecycle.aliases import resolve_version
from ..lifecycle.registration import ZENML_VERSION_TAG
from ..ml.predictions import same_predictions
from ..platform.model_server import Deployment, deploy_version
from ..platform.pipeline_runs import pipeline_settings, point_mlflow_at_stack, retry_if_tracker_lost
from ..platform.scoring import payload_from_frame, predict


@step(enable_cache=False)
@retry_if_tracker_lost
def resolve(
    model_name: str, alias: str, version: str | None = None
) -> tuple[
    Annotated[str, "version"], Annotated[str, "zenml_model_version"], Annotated[str, "source"]
]:
    point_mlflow_at_stack()
    found = resolve_version(mlflow.MlflowClient(), model_name, alias, version)
    return str(found.version), found.tags.get(ZENML_VERSION_TAG, ""), found.source or ""


@step(enable_cache=False)
def deploy(
    model_name: str,
    version: str,
    zenml_model_version: str,
    source: str,
    workers: int,
    timeout: int,
) -> Annotated[Deployment, "deployment"]:
    service = deploy_version(model_name, version, zenml_model_version, source, workers, timeout)
    return Deployment(
        model_name=model_name,
        version=version,
        url=service.get_prediction_url(),
        health_url=service.get_healthcheck_url() or "",
        pid=service.status.pid,
    )


@step(enable_cache=False)
def smoke_test(deployment: Deployment) -> Annotated[Deployment, "tested_deployment"]:
    """POST the model's logged input example; the answer must equal the model's own. The
    example is kept with the deployment: `predict` sends it when given no rows."""
    point_mlflow_at_stack()
    model = mlflow.pyfunc.load_model(f"models:/{deployment.model_name}/{deployment.version}")
    expected = model.predict(model.input_example)
    payload = payload_from_frame(model.input_example)
    served = predict(deployment.url, payload)
    if not same_predictions(served, expected):
        raise DeploymentError(
            f"smoke test failed: {deployment.url} answered {served}, "
            f"expected {np.asarray(expected).tolist()}"
        )
    return deployment.model_copy(update={"example": payload})


@pipeline(execution_mode=ExecutionMode.FAIL_FAST, enable_cache=False)
def deployment_pipeline(
    model_name: str, alias: str, version: str | None, workers: int, timeout: int, smoke: bool
) -> None:
    resolved, zenml_version, source = resolve(model_name, alias, version)
    deployment = deploy(
        model_name, resolved, zenml_version, source, workers=workers, timeout=timeout
    )
    if smoke:
        smoke_test(deployment)


def run_deployment(config: DeploymentConfig, version: str | None = None) -> Deployment:
    """Deploy the configured alias (or `version`); what is served and where."""
    run = deployment_pipeline.with_options(settings=pipeline_settings())(
        model_name=config.model_name,
        alias=config.alias,
        version=version,
        workers=config.workers,
        timeout=config.start_timeout_seconds,
        smoke=config.smoke_test,
    )
    if config.smoke_test:
        return run.steps["smoke_test"].outputs["tested_deployment"][0].load()
    return run.steps["deploy"].outputs["deployment"][0].load()
