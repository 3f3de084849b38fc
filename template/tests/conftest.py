"""Shared fixtures: small datasets, and a throwaway MLflow server for the end-to-end test."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def mixed_frame() -> pd.DataFrame:
    """Numeric and text features with a few gaps, and a two-class text target."""
    rows = 60
    return pd.DataFrame(
        {
            "amount": [float(i % 17) if i % 13 else None for i in range(rows)],
            "count": [i % 5 for i in range(rows)],
            "channel": ["web" if i % 3 else "store" for i in range(rows)],
            "label": ["fraud" if i % 4 == 0 else "ok" for i in range(rows)],
        }
    )


@pytest.fixture(scope="session")
def _empty_tracking_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sqlite store with its tables made, once: making them takes about 2 s."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-empty") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _empty_tracking_db: Path) -> str:
    """This test's own MLflow store (a copy of the empty one), set as the tracking URI."""
    import mlflow

    path = tmp_path / "mlflow.db"
    shutil.copyfile(_empty_tracking_db, path)
    uri = f"sqlite:///{path}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return uri


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, _empty_tracking_db: Path):
    """A real `mlflow server` (sqlite + local artifacts) on a free loopback port."""
    workdir = tmp_path_factory.mktemp("mlflow-server")
    shutil.copyfile(_empty_tracking_db, workdir / "mlflow.db")  # its tables made already
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    command = [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(workdir / "artifacts")]
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "server.log").open("w"),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (workdir / "server.log").read_text()[-2000:]
                    pytest.fail(f"mlflow server did not start:\n{log}")
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
