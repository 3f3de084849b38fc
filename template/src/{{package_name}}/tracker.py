"""Where MLflow lives: the tracking URI in use and links to runs."""

import subprocess
import sys
from pathlib import Path

EMBEDDED_DB_NAME = "mlflow.db"  # ZenML's embedded MLflow keeps this file in the artifact store


def is_remote(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def embedded_tracking_uri(artifact_store_path: Path) -> str:
    return f"sqlite:///{artifact_store_path / EMBEDDED_DB_NAME}"


def create_embedded_database(tracking_uri: str) -> subprocess.Popen | None:
    """Start creating the embedded MLflow database if it does not exist yet, in a process of its
    own: MLflow builds it through some 50 schema migrations (seconds), which the first training
    would otherwise wait for. Returns the process to wait for."""
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    if not tracking_uri.startswith("sqlite:///") or path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    code = "import sys, mlflow; mlflow.MlflowClient(sys.argv[1]).search_experiments()"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    return subprocess.Popen([sys.executable, "-c", code, tracking_uri], **quiet)


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    if is_remote(tracking_uri):
        return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"run {run_id} (browse it with `make mlflow-ui`)"
