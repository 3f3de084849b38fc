"""ZenML pipelines, one per lifecycle stage, each configured by a YAML file under configs/."""

import sys
from pathlib import Path

import zenml
from zenml.client import Client
from zenml.config import DockerSettings
from zenml.utils import source_utils

PROJECT_ROOT = Path(__file__).resolve().parents[3]
PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
EXPORT_REQUIREMENTS = [
    *("uv", "export", "--format=requirements-txt", "--directory={directory}", "--locked"),
    *("--no-hashes", "--no-emit-project", "--no-dev", "--all-extras"),
]

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


def use_package_sources() -> None:
    """Steps must load as `<package>.steps...` (from src/), not as `src.<package>...` (from the
    ZenML repository root): one copy of every module and of every exception class."""
    source_utils.set_custom_source_root(str(Path(__file__).resolve().parents[2]))


def image_settings() -> dict:
    """DOCKER_SETTINGS for a stack that builds images (a remote orchestrator or step
    operator), none for local runs: ZenML warns about unused Docker settings (ZML002), and
    finding the caller for that warning costs it about a second per run."""
    stack = Client().active_stack
    deployer = stack.deployer
    if (
        stack.orchestrator.flavor == "local"
        and stack.step_operator is None
        and (deployer is None or deployer.flavor == "local")
    ):
        return {}
    return {"docker": DOCKER_SETTINGS}
