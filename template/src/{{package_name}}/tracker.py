"""Where MLflow lives: the tracking URI in use and links to runs."""

from pathlib import Path

EMBEDDED_DB_NAME = "mlflow.db"  # ZenML's embedded MLflow keeps this file in the artifact store


def is_remote(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def embedded_tracking_uri(artifact_store_path: Path) -> str:
    return f"sqlite:///{artifact_store_path / EMBEDDED_DB_NAME}"


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    if is_remote(tracking_uri):
        return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"run {run_id} (browse it with `make mlflow-ui`)"
