"""Register a logged model as a new version in the MLflow Model Registry."""

import mlflow
from mlflow.entities.model_registry import ModelVersion

# Each MLflow version records the ZenML Model Control Plane version of the run that made it.
ZENML_VERSION_TAG = "zenml_model_version"


def register_logged_model(
    model_uri: str, name: str, description: str, tags: dict[str, str]
) -> ModelVersion:
    """Create version N+1 of `name` from a logged model (`models:/m-<id>`), creating the
    registered model on first use. The version links to the logged model and its run."""
    version = mlflow.register_model(model_uri, name, tags=tags)
    return mlflow.MlflowClient().update_model_version(name, version.version, description)
