"""Preflight checks of the MLflow tracker: it answers, accepts our credentials, serves the registry.

Plain HTTP with short timeouts (no mlflow import, which alone takes seconds), so `train` and
`doctor` fail within seconds with one clear line.
"""

import base64
import json
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import (
    CredentialsRejectedError,
    ProjectError,
    TrackerLostError,
    TrackerUnreachableError,
)
from .tracker import is_remote

TIMEOUT_SECONDS = 3.0


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


def _call(tracker: Tracker, path: str, body: dict | None = None) -> dict:
    """GET (or POST a JSON body to) the tracker; HTTP failures become one-line ProjectErrors."""
    url = f"{tracker.uri.rstrip('/')}{path}"
    headers = {**_headers(tracker), "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    context = None
    if tracker.insecure_tls:  # the user said so: a self-signed certificate
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS, context=context) as reply:
            content, is_json = reply.read(), reply.headers.get_content_type().endswith("json")
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise CredentialsRejectedError(_rejected(tracker)) from None
        hint = f": is {tracker.uri} an MLflow tracking server?" if error.code == 404 else ""
        raise TrackerUnreachableError(f"{url} answered HTTP {error.code}{hint}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise TrackerUnreachableError(
            f"MLflow tracking server {tracker.uri} is unreachable ({reason}): start it, or fix "
            "mlflow_tracking_uri in stacks/ or MLFLOW_TRACKING_URI"
        ) from None
    try:
        return json.loads(content) if is_json else {}
    except ValueError:
        raise TrackerUnreachableError(f"{url} did not answer like an MLflow server") from None


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


TRACKER_CHECKS: list[tuple[str, Callable[[Tracker], str]]] = [
    ("tracker", check_answers),
    ("credentials", check_credentials),
    ("registry", check_registry),
]


def run_checks(tracker: Tracker) -> list[tuple[str, bool, str]]:
    """(name, passed, detail) per check; after a failure the later checks cannot pass."""
    results = []
    for name, check in TRACKER_CHECKS:
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
