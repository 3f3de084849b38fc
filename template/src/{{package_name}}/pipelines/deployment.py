"""Deployment pipeline: resolve @champion (or a version) -> serve it -> smoke-test it."""

from zenml import pipeline
from zenml.enums import ExecutionMode

from ..config import DeploymentConfig
from ..steps.deployment import deploy, resolve_version, smoke_test
from . import image_settings, use_package_sources


@pipeline(execution_mode=ExecutionMode.FAIL_FAST, enable_cache=False)
def deployment_pipeline(
    model_name: str, alias: str, version: str | None, workers: int, timeout: int, smoke: bool
) -> None:
    model = resolve_version(model_name, alias, version)
    deployment = deploy(model, workers=workers, timeout=timeout)
    if smoke:
        smoke_test(deployment)


def run_deployment(config: DeploymentConfig, version: str | None = None) -> dict[str, str]:
    """Deploy the configured alias (or `version`); return what is served and where."""
    use_package_sources()
    run = deployment_pipeline.with_options(settings=image_settings())(
        model_name=config.model_name,
        alias=config.alias,
        version=version,
        workers=config.workers,
        timeout=config.start_timeout_seconds,
        smoke=config.smoke_test,
    )
    return run.steps["deploy"].outputs["deployment"][0].load()
