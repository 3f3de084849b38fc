# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""The MLflow tracker: where it is, links to its runs, and whether it answers.

The check is plain HTTP with a short timeout (no mlflow import, which alone takes seconds), so a
command whose tracker is down fails within seconds with one clear line.
"""

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import TrackerUnreachableError
from .http_json import NOT_JSON, HttpFailure, request_json

TIMEOUT_SECONDS = 3.0


def is_remote(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


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


def tracking_uri(spec: dict[str, Any]) -> str:
    """The tracking URI of a stack's MLflow tracker (the embedded database if it has none)."""
    components = spec["components"]
    if uri := components.get("experiment_tracker", {}).get("configuration", {}).get("tracking_uri"):
        return uri
    artifact_store = Path(components["artifact_store"]["configuration"]["path"])
    return f"sqlite:///{artifact_store / 'mlflow.db'}"  # where ZenML's embedded MLflow keeps it


def unreachable(uri: str, failure: HttpFailure) -> TrackerUnreachableError:
    """One line for a tracker that did not answer as an MLflow server does."""
    if failure.status:
        hint = f": is {uri} an MLflow tracking server?" if failure.status == 404 else ""
        return TrackerUnreachableError(f"{failure.url} answered HTTP {failure.status}{hint}")
    if failure.reason == NOT_JSON:
        return TrackerUnreachableError(f"{failure.url} did not answer like an MLflow server")
    return TrackerUnreachableError(
        f"MLflow tracking server {uri} is unreachable ({failure.reason}): start it, "
        "or fix mlflow_tracking_uri in stacks/ or MLFLOW_TRACKING_URI"
    )


def check_tracker(uri: str) -> str:
    """The tracker answers: its /health, open even on servers with authentication."""
    if not is_remote(uri):
        return f"embedded MLflow ({uri})"
    started = time.perf_counter()
    try:
        request_json(f"{uri.rstrip('/')}/health", timeout=TIMEOUT_SECONDS)
    except HttpFailure as failure:
        raise unreachable(uri, failure) from None
    return f"{uri} answers ({time.perf_counter() - started:.2f} s)"


def is_insert_race(error: Exception) -> bool:
    """Did MLflow's SQL store refuse an insert that a concurrent writer made first? (Matched
    on the database's text: MLflow raises no dedicated error for it.)"""
    return "unique constraint" in str(error).lower()
