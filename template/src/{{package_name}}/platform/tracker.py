"""The MLflow tracker: where it is, links to its runs, and the preflight checks (it answers,
accepts our credentials, serves the registry).

The checks are plain HTTP with short timeouts (no mlflow import, which alone takes seconds),
so `train` and `doctor` fail within seconds with one clear line.
"""

import base64
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import (
    CredentialsRejectedError,
    PermissionMissingError,
    ProjectError,
    TrackerLostError,
    TrackerUnreachableError,
)
from .http_json import NOT_JSON, HttpFailure, request_json

TIMEOUT_SECONDS = 3.0
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


@dataclass(frozen=True)
class Tracker:
    """Where the tracker is and how to authenticate: credentials are {}, {username, password}
    or {token}."""

    uri: str
    credentials: dict[str, str] = field(default_factory=dict, repr=False)
    insecure_tls: bool = False


def _headers(tracker: Tracker) -> dict[str, str]:
    if "token" in tracker.credentials:
        return {"Authorization": f"Bearer {tracker.credentials['token']}"}
    if "username" in tracker.credentials:
        pair = f"{tracker.credentials['username']}:{tracker.credentials['password']}"
        return {"Authorization": f"Basic {base64.b64encode(pair.encode()).decode()}"}
    return {}


def _rejected(tracker: Tracker) -> str:
    if not tracker.credentials:
        return (
            f"{tracker.uri} requires credentials (mlflow_auth is none): set "
            "MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN in .env"
        )
    if "token" in tracker.credentials:
        return f"credentials rejected by {tracker.uri}: set MLFLOW_TRACKING_TOKEN in .env"
    return f"credentials rejected by {tracker.uri}: set MLFLOW_TRACKING_USERNAME/PASSWORD in .env"


def _call(tracker: Tracker, path: str, body: dict | None = None, *, answers: dict | None = None):
    """GET (or POST a JSON body to) the tracker; HTTP failures become one-line ProjectErrors,
    but for the statuses in `answers`, which return their value (e.g. {404: None}: no such
    experiment, model or route)."""
    url = f"{tracker.uri.rstrip('/')}{path}"
    try:
        return request_json(
            url,
            body,
            headers=_headers(tracker),
            timeout=TIMEOUT_SECONDS,
            insecure_tls=tracker.insecure_tls,
        )
    except HttpFailure as failure:
        if failure.status in (answers or {}):
            return answers[failure.status]
        if failure.status in (401, 403):
            raise CredentialsRejectedError(_rejected(tracker)) from None
        if failure.status:
            hint = f": is {tracker.uri} an MLflow tracking server?" if failure.status == 404 else ""
            raise TrackerUnreachableError(f"{url} answered HTTP {failure.status}{hint}") from None
        if failure.reason == NOT_JSON:
            raise TrackerUnreachableError(f"{url} did not answer like an MLflow server") from None
        raise TrackerUnreachableError(
            f"MLflow tracking server {tracker.uri} is unreachable ({failure.reason}): start it, "
            "or fix mlflow_tracking_uri in stacks/ or MLFLOW_TRACKING_URI"
        ) from None


def check_answers(tracker: Tracker) -> str:
    if not is_remote(tracker.uri):
        return f"embedded MLflow ({tracker.uri})"
    started = time.perf_counter()
    _call(tracker, "/health")  # open even on servers with authentication
    return f"{tracker.uri} answers ({time.perf_counter() - started:.2f} s)"


def check_credentials(tracker: Tracker) -> str:
    if not is_remote(tracker.uri):
        return "not needed for the embedded MLflow"
    _call(tracker, "/api/2.0/mlflow/experiments/search", {"max_results": 1})
    method = next(iter(tracker.credentials), "none")
    if method == "username":
        return f"accepted (basic auth as {tracker.credentials['username']})"
    return "accepted (token)" if method == "token" else "accepted (no authentication)"


def check_registry(tracker: Tracker) -> str:
    if not is_remote(tracker.uri):
        return "embedded MLflow Model Registry"
    reply = _call(tracker, "/api/2.0/mlflow/registered-models/search?max_results=100")
    models = reply.get("registered_models", [])
    more = "+" if reply.get("next_page_token") else ""
    return f"model registry answers ({len(models)}{more} registered models visible)"


WRITE = ("EDIT", "MANAGE")  # the MLflow permissions that may create runs, versions, aliases
DENIED = "NO_PERMISSIONS"  # on what this user may not even read (the server answers 403)


@dataclass(frozen=True)
class Access:
    """A basic-auth user's permission on the project's experiment and registered model (None:
    it does not exist yet, and whoever creates it will MANAGE it)."""

    user: str
    admin: bool
    experiment: tuple[str, str | None]  # (name, permission)
    model: tuple[str, str | None]

    def missing(self, kinds: tuple[str, ...]) -> list[tuple[str, str, str]]:
        """(kind, name, permission), in the order of `kinds`, of what exists and this user may
        not write."""
        if self.admin:
            return []
        held = {"experiment": self.experiment, "registered model": self.model}
        found = [(kind, *held[kind]) for kind in kinds]
        return [(kind, name, p) for kind, name, p in found if p and p not in WRITE]

    def describe(self) -> str:
        if self.admin:
            return f"{self.user} is an MLflow admin"
        named = [("experiment", *self.experiment), ("registered model", *self.model)]
        held = [f"{p} on {kind} '{n}'" if p else f"{kind} '{n}' is new" for kind, n, p in named]
        return f"{self.user}: {', '.join(held)}"


def _permission(tracker: Tracker, user: str, resource_type: str, resource_id: str) -> str | None:
    query = _query(username=user, resource_type=resource_type, resource_id=resource_id)
    answer = _call(tracker, f"/api/3.0/mlflow/users/permissions/get?{query}", answers={404: None})
    return answer and answer["permission"]  # None: a server without this API


def _query(**values: str) -> str:
    return urllib.parse.urlencode(values)


def access(tracker: Tracker, experiment: str, model: str) -> Access | None:
    """What the server's basic-auth app says this user may do, through its permission API
    (MLflow 3.17's, which resolves roles and the default permission as the server does); None
    when the tracker has no users (embedded, no authentication, a token) or no such API."""
    if not is_remote(tracker.uri) or "username" not in tracker.credentials:
        return None
    user = tracker.credentials["username"]
    me = _call(tracker, f"/api/2.0/mlflow/users/get?{_query(username=user)}", answers={404: None})
    if me is None:
        return None
    if me["user"]["is_admin"]:
        return Access(user, True, (experiment, "MANAGE"), (model, "MANAGE"))
    held = {}
    for kind, path, resource in [
        ("experiment", f"experiments/get-by-name?{_query(experiment_name=experiment)}", None),
        ("registered_model", f"registered-models/get?{_query(name=model)}", model),
    ]:
        found = _call(tracker, f"/api/2.0/mlflow/{path}", answers={404: None, 403: DENIED})
        if found is None or found == DENIED:  # None: new, and its creator will MANAGE it
            held[kind] = found
            continue
        resource = resource or found["experiment"]["experiment_id"]
        held[kind] = _permission(tracker, user, kind, resource)
        if held[kind] is None:
            return None
    return Access(user, False, (experiment, held["experiment"]), (model, held["registered_model"]))


def require_write(
    tracker: Tracker, experiment: str, model: str, purpose: str, kinds: tuple[str, ...]
) -> None:
    """One line before any pipeline when the user may not write what `purpose` writes: the
    `kinds` of resource ("experiment", "registered model") that exist."""
    found = access(tracker, experiment, model)
    missing = found.missing(kinds) if found else []
    if missing:
        kind, name, held = missing[0]
        raise PermissionMissingError(
            f"{found.user} has {held} on {kind} '{name}' at {tracker.uri}; {purpose} needs EDIT: "
            f"an MLflow admin or a user with MANAGE on it (its creator) can grant it"
        )


def artifact_mode(location: str) -> str:
    """Where an experiment's artifacts go, as a client sees it."""
    if location.startswith("mlflow-artifacts:"):
        return "proxied by the server (--serve-artifacts: clients hold no storage credentials)"
    scheme = location.split("://", 1)[0] if "://" in location else "file"
    if scheme == "file":
        return f"a path on the server's disk ({location}): every client must share it"
    return f"written by clients straight to {location} (they need its credentials)"


def check_server(tracker: Tracker, experiment: str) -> str:
    """The server's backend store and where the project's artifacts go (from the project's
    experiment, else MLflow's Default experiment, which takes the server's default root)."""
    if not is_remote(tracker.uri):
        return "embedded MLflow: sqlite in the artifact store, artifacts beside it"
    info = _call(tracker, "/api/3.0/mlflow/server-info", answers={404: None}) or {}
    store = {"SqlStore": "a SQL database", "FileStore": "files (mlruns)"}
    backend = store.get(info.get("store_type"), "not reported")
    path = f"/api/2.0/mlflow/experiments/get-by-name?{_query(experiment_name=experiment)}"
    hidden = {404: None, 403: None}  # no such experiment, or not readable by this user
    found = _call(tracker, path, answers=hidden)
    found = found or _call(
        tracker, "/api/2.0/mlflow/experiments/get?experiment_id=0", answers=hidden
    )
    if not found:
        return f"backend store: {backend}; artifacts: not visible to this user"
    location = found["experiment"]["artifact_location"]
    return f"backend store: {backend}; artifacts {artifact_mode(location)}"


def check_permission(tracker: Tracker, experiment: str, model: str) -> str:
    found = access(tracker, experiment, model)
    if found is None:
        return "not checked (no basic-auth user, or the server has no permission API)"
    missing = found.missing(("experiment", "registered model"))
    if missing:
        kind, name, held = missing[0]
        raise PermissionMissingError(
            f"{found.describe()}: training needs EDIT on {kind} '{name}' (an MLflow admin or "
            "a user with MANAGE on it can grant it)"
        )
    return found.describe()


TRACKER_CHECKS: list[tuple[str, Callable[[Tracker], str]]] = [
    ("tracker", check_answers),
    ("credentials", check_credentials),
    ("registry", check_registry),
]


def run_checks(tracker: Tracker, experiment: str, model: str) -> list[tuple[str, bool, str]]:
    """(name, passed, detail) per check; after a failure the later checks cannot pass. The
    project's experiment and model name what the server and permission checks look at."""
    checks = [
        *TRACKER_CHECKS,
        ("server", lambda t: check_server(t, experiment)),
        ("permission", lambda t: check_permission(t, experiment, model)),
    ]
    results = []
    for name, check in checks:
        if results and not results[-1][1]:
            results.append((name, False, "skipped: the previous check failed"))
            continue
        try:
            results.append((name, True, check(tracker)))
        except ProjectError as error:
            results.append((name, False, str(error)))
    return results


def require_tracker(tracker: Tracker) -> None:
    """Raise the first failing check's error: what `train` runs before any pipeline work."""
    for _, check in TRACKER_CHECKS:
        check(tracker)


# The cause in a requests/urllib3 error message: refused, reset, closed or cut off
# mid-request, timed out.
def is_insert_race(error: Exception) -> bool:
    """Did MLflow's SQL store refuse an insert that a concurrent writer made first? (Matched
    on the database's text: MLflow raises no dedicated error for it.)"""
    return "unique constraint" in str(error).lower()


LOST_REASON = (
    r"\[Errno -?\d+\] [^'\")]+|Connection (refused|reset by peer|aborted|broken: \w+)"
    r"|Remote end closed connection without response|timed out"
)


def lost_tracker(error: BaseException) -> TrackerLostError | None:
    """A tracker that stops answering mid-command is retried by MLflow's client (7 times with
    exponential backoff by default); when MLflow gives up, say so in one line instead of
    MLflow's nested connection error. None if `error` is not that."""
    import requests  # comes with mlflow, which raised the error

    chain, cause = [], error
    while cause is not None and all(cause is not seen for seen in chain):
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    cut_off = requests.exceptions.ChunkedEncodingError
    lost_types = requests.ConnectionError | requests.Timeout | cut_off
    lost = next((cause for cause in chain if isinstance(cause, lost_types)), None)
    if lost is None:
        return None
    # A response cut off mid-body carries no request: MLflow's message names the URL then.
    named = (re.search(r"API request to (\S+) failed", str(cause)) for cause in chain)
    url = getattr(lost.request, "url", None) or next((m.group(1) for m in named if m), "")
    if "/api/" not in url or "/mlflow" not in url:  # MLflow's REST API, not ZenML's
        return None
    found = re.search(LOST_REASON, str(lost))
    reason = found.group(0) if found else type(lost).__name__
    return TrackerLostError(
        f"MLflow tracking server {url.split('/api/')[0]} stopped answering during the "
        f"command ({reason}); MLflow gave up after its retries"
    )


def use_tracker(tracker: Tracker):
    """An MlflowClient for the tracker, with its credentials set as ZenML's tracker hands them
    to MLflow (for commands that need no ZenML stack)."""
    import os

    from mlflow import MlflowClient

    for key, value in tracker.credentials.items():
        os.environ[f"MLFLOW_TRACKING_{key.upper()}"] = value
    os.environ["MLFLOW_TRACKING_INSECURE_TLS"] = str(tracker.insecure_tls).lower()
    return MlflowClient(tracker.uri)
