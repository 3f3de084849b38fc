"""How this project runs ZenML pipelines: step sources, image settings, step retries, the
MLflow connection after a step, the Model Control Plane stage, and quieter ZenML logs."""

import functools
import logging
import sys
import time
import uuid
from pathlib import Path

import zenml
from zenml.client import Client
from zenml.config import DockerSettings
from zenml.enums import ModelStages
from zenml.integrations.mlflow.flavors.mlflow_experiment_tracker_flavor import (
    MLFlowExperimentTrackerSettings,
)
from zenml.utils import source_utils

from .tracker import lost_tracker

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
PROJECT_ROOT = PACKAGE_ROOT.parents[1]
PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
EXPORT_REQUIREMENTS = [
    *("uv", "export", "--format=requirements-txt", "--directory={directory}", "--locked"),
    *("--no-hashes", "--no-emit-project", "--no-dev", "--all-extras"),
]

# A tracker that restarts with an answer in flight: the step's body runs again after this.
TRACKER_RETRY_SECONDS = 5

# How a remote orchestrator (stacks/production.yaml) builds the image the steps run in; local
# runs ignore it. The parent is ZenML's image for this ZenML and Python version, the
# requirements are exported from uv.lock, and the project itself is installed into the image,
# so steps import it as they do here.
DOCKER_SETTINGS = DockerSettings(
    parent_image=f"zenmldocker/zenml:{zenml.__version__}-py{PYTHON}",
    pyproject_path=str(PROJECT_ROOT / "pyproject.toml"),
    # uv.lock's versions, without the dev tools; the extras hold the cloud clients (production).
    pyproject_export_command=EXPORT_REQUIREMENTS,
    python_package_installer="uv",
    local_project_install_command="uv pip install --system --no-deps .",
    # The code is baked into the image (needed for the install above), not downloaded at run time.
    allow_download_from_artifact_store=False,
    allow_download_from_code_repository=False,
    environment={"PYTHONUNBUFFERED": "1", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"},
)


def pipeline_settings(experiment: str | None = None) -> dict:
    """Steps load as `<package>.pipelines...` (from src/), not as `src.<package>...` (from the
    ZenML repository root): one copy of every module and exception class. The tracked steps
    log into `experiment`, the project's own (ZenML's default, the pipeline's name, is shared
    by every project on a team's server). DOCKER_SETTINGS only for a stack that builds images:
    ZenML warns about unused Docker settings (ZML002), and finding the caller for that warning
    costs it about a second per run."""
    source_utils.set_custom_source_root(str(PACKAGE_ROOT.parent))  # internal: no public API
    settings = {}
    if experiment:
        settings["experiment_tracker"] = MLFlowExperimentTrackerSettings(experiment_name=experiment)
    stack = Client().active_stack
    deployer = stack.deployer
    if (
        stack.orchestrator.flavor == "local"
        and stack.step_operator is None
        and (deployer is None or deployer.flavor == "local")
    ):
        return settings
    return {**settings, "docker": DOCKER_SETTINGS}


def retry_if_tracker_lost(body):
    """For the steps that talk to MLflow: a tracker that restarts with an answer in flight cuts
    it off, beyond what MLflow's client retries; the step's body runs once more, in the same
    MLflow run, when the server is back. Any other error fails the step at once: ZenML's own
    step retry (StepRetryConfig) would run again whatever the error, e.g. a model that can
    never fit. Put it under `@step`."""

    @functools.wraps(body)
    def run_body(*args, **kwargs):
        try:
            return body(*args, **kwargs)
        except Exception as error:
            lost = lost_tracker(error)
            if lost is None:
                raise
            logging.getLogger(__name__).warning(
                "%s; step %s runs again in %d s", lost, body.__name__, TRACKER_RETRY_SECONDS
            )
            time.sleep(TRACKER_RETRY_SECONDS)
            return body(*args, **kwargs)

    return run_body


def artifact_store_generation() -> str:
    """Changes when the stack's local artifact folder is deleted (`make clean`) and made again,
    so that ZenML's cache of the data steps, which outlives the folder in ZenML's store, never
    hands out artifacts whose files are gone. "" for a remote artifact store."""
    path = Client().active_stack.artifact_store.path
    if "://" in path:
        return ""
    marker = Path(path) / ".generation"
    if not marker.is_file():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(uuid.uuid4().hex)
    return marker.read_text().strip()


def point_mlflow_at_stack() -> None:
    """Point MLflow at the active stack's tracker (URI and credentials): ZenML sets them for a
    tracked step only, and resets them after it."""
    Client().active_stack.experiment_tracker.configure_mlflow()


def mark_production(model_name: str, zenml_version: str | None) -> bool:
    """Keep the ZenML Model Control Plane in step: its production version is the champion.

    A version trained against another ZenML store (a CI runner's, a colleague's) is not in this
    one: MLflow's champion alias still moves, and False says ZenML was left as it was.
    """
    if not zenml_version:
        return False
    try:
        Client().update_model_version(
            model_name_or_id=model_name,
            version_name_or_id=zenml_version,
            stage=ModelStages.PRODUCTION,
            force=True,
        )
    except KeyError:
        return False
    return True


# ZenML's MLflow tracker warns at every tracked step that it could not turn off MLflow's
# autologging of fastai, a framework this project does not use (matched on its text).
AUTOLOG_NOISE = "Failed to disable MLflow autologging"


def tidy_zenml_logs() -> None:
    """ZenML logs a failed step with its traceback: the CLI's one-line error says it all
    (`--verbose` keeps the tracebacks)."""

    def tidy(record: logging.LogRecord) -> bool:
        if record.getMessage().startswith(AUTOLOG_NOISE):
            return False
        if record.exc_info and isinstance(record.exc_info[1], Exception):
            record.exc_info = record.exc_text = None
        return True

    for handler in logging.getLogger("zenml").handlers + logging.getLogger().handlers:
        handler.addFilter(tidy)
