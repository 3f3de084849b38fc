# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""Where this project's model is served: the Deployment that `deploy` returns, and the small
JSON record of it that `deploy` writes, so that `predict`, `status` and `undeploy` find the
endpoint in milliseconds, without importing ZenML or MLflow (seconds each). ZenML's records
stay the source of truth for `deploy`.

One file per registered model, `.serving/<model>.json` (gitignored): no credentials, only
the URL, the server's process and the version's logged input example.
"""

import contextlib
from pathlib import Path

from pydantic import BaseModel

FOLDER = ".serving"


class Deployment(BaseModel):
    """A registered version served at `url`, by either model server."""

    model_name: str
    version: str
    url: str  # where predictions are POSTed
    health_url: str = ""  # answers while the server is up
    pid: int | None = None  # the server's process: gone means the server is down
    example: dict = {}  # the version's input example, as a payload: `predict` sends it
    pipeline_seconds: float = 0.0  # app.deploy's timings (not recorded): its pipeline,
    seconds: float = 0.0  # the whole command


def record_path(root: Path, model_name: str) -> Path:
    return root / FOLDER / f"{model_name}.json"


def save_endpoint(root: Path, deployment: Deployment) -> Path:
    path = record_path(root, deployment.model_name)
    path.parent.mkdir(exist_ok=True)
    timings = {"pipeline_seconds", "seconds"}
    path.write_text(deployment.model_dump_json(indent=2, exclude=timings) + "\n")
    return path


def load_endpoint(root: Path, model_name: str) -> Deployment | None:
    """The record, or None when nothing was deployed (or the file is not one of ours)."""
    try:
        return Deployment.model_validate_json(record_path(root, model_name).read_bytes())
    except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
        return None


def forget_endpoint(root: Path, model_name: str) -> None:
    record_path(root, model_name).unlink(missing_ok=True)


def is_up(record: Deployment) -> bool:
    """Its process lives and its health URL answers (another process may hold a dead
    server's port: the pid tells them apart)."""
    import psutil  # milliseconds, unlike ZenML's service lookup

    from .http_json import NOT_JSON, HttpFailure, request_json

    if record.pid is not None and not psutil.pid_exists(record.pid):
        return False
    try:
        request_json(record.health_url or record.url, timeout=2.0)
    except HttpFailure as failure:
        return failure.status is not None or failure.reason == NOT_JSON  # it answered
    return True


def stop_recorded_server(root: Path, record: Deployment) -> bool:
    """Stop the recorded server, children included, if it still runs; True if it did. ZenML
    stops the servers in its store; a command run with another store (`zenml login`, another
    ZENML_CONFIG_PATH) does not see the one that started this server."""
    import psutil

    if record.pid is None:
        return False
    try:
        server = psutil.Process(record.pid)
        if not any(part.startswith(f"{root}/") for part in server.cmdline()):
            return False  # the pid is another process's now
        processes = [server, *server.children(recursive=True)]
    except psutil.Error:
        return False
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    for process in psutil.wait_procs(processes, timeout=10)[1]:
        with contextlib.suppress(psutil.Error):
            process.kill()
    return True
