# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""Register a logged model as a new version in the MLflow Model Registry."""

import hashlib
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion
from pydantic import BaseModel

from ..config import TrainingConfig
from ..ml.data import source_fingerprint

# Each MLflow version records the ZenML Model Control Plane version of the run that made it.
ZENML_VERSION_TAG = "zenml_model_version"
# ... and what it was trained from (see training_fingerprint).
FINGERPRINT_TAG = "training_fingerprint"
# ... and the ZenML pipeline run that registered it.
PIPELINE_RUN_TAG = "zenml_pipeline_run_id"
MODEL_DESCRIPTION = (
    "Trained by this project's ZenML training pipeline. The alias `champion` is the version "
    "in production, `challenger` the last one trained; each version's description holds its "
    "validation gate verdict, and its tag `model_card` links to its model card."
)


def register_logged_model(
    model_uri: str, name: str, description: str, tags: dict[str, str]
) -> ModelVersion:
    """Create version N+1 of `name` from a logged model (`models:/m-<id>`), creating the
    registered model on first use. The version links to the logged model and its run."""
    version = mlflow.register_model(model_uri, name, tags=tags)
    client = mlflow.MlflowClient()
    if not client.get_registered_model(name).description:
        client.update_registered_model(name, MODEL_DESCRIPTION)
    return client.update_model_version(name, version.version, description)


def training_fingerprint(config: TrainingConfig, root: Path) -> str:
    """Everything a training is made of: the data, the training config, the project's code
    (src/) and its locked dependencies (uv.lock). Trainings are seeded, so two with the same
    fingerprint produce the same model."""
    digest = hashlib.sha256()
    digest.update(source_fingerprint(config.data.source).encode())
    digest.update(config.model_dump_json().encode())
    files = sorted((root / "src").rglob("*.py")) + [root / "uv.lock"]
    for path in (path for path in files if path.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def newest_version_tagged(
    client: mlflow.MlflowClient, name: str, tag: str, value: str
) -> ModelVersion | None:
    """The newest registered version of `name` whose `tag` is `value`."""
    query = f"name='{name}' and tags.{tag}='{value}'"
    return max(client.search_model_versions(query), key=lambda v: int(v.version), default=None)


def version_trained_from(
    client: mlflow.MlflowClient, name: str, fingerprint: str
) -> ModelVersion | None:
    """The newest registered version of `name` trained from exactly this fingerprint."""
    return newest_version_tagged(client, name, FINGERPRINT_TAG, fingerprint)


class RegisteredVersion(BaseModel):
    """A version the training pipeline registered, and the MLflow run it came from."""

    model_name: str
    version: str
    mlflow_run_id: str
    mlflow_experiment_id: str

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"
