"""Where MLflow lives: the tracking URI in use, a reachability check and links to runs."""

import urllib.error
import urllib.request
from pathlib import Path

from .errors import TrackerUnreachableError

EMBEDDED_DB_NAME = "mlflow.db"  # ZenML's embedded MLflow keeps this file in the artifact store


def is_remote(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def embedded_tracking_uri(artifact_store_path: Path) -> str:
    return f"sqlite:///{artifact_store_path / EMBEDDED_DB_NAME}"


def check_reachable(tracking_uri: str, timeout: float = 5.0) -> None:
    """Fail fast with one clear line when a remote tracking server does not answer."""
    if not is_remote(tracking_uri):
        return
    try:
        with urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # it answers; authentication is checked when it is used
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TrackerUnreachableError(
            f"MLflow tracking server {tracking_uri} is unreachable ({reason}): start it, or fix "
            "mlflow_tracking_uri in stacks/ or MLFLOW_TRACKING_URI"
        ) from None


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    if is_remote(tracking_uri):
        return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"run {run_id} (browse it with `make mlflow-ui`)"
