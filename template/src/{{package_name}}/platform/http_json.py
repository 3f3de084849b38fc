# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""The one HTTP helper: JSON (or a form) to a server, JSON back, with a short timeout.

Plain urllib: no mlflow or zenml import, so a server that is down fails a command in seconds.
"""

import contextlib
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

NOT_JSON = "the answer is not JSON"  # HttpFailure.reason of a non-JSON answer to a JSON API


class HttpFailure(Exception):
    """No answer (`status` None), or an HTTP error status with the server's `detail`."""

    def __init__(self, url: str, status: int | None, reason: str, detail: str = "") -> None:
        super().__init__(f"{url}: {status or reason}")
        self.url, self.status, self.reason, self.detail = url, status, reason, detail


def request_json(
    url: str,
    body: Any = None,
    form: dict | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    insecure_tls: bool = False,
) -> Any:
    """GET `url`, or POST `body` as JSON (or `form` as a form); the decoded answer, {} when it
    is not JSON. Raises HttpFailure; a JSON error body's `message` becomes its detail."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
    context = None
    if insecure_tls:  # the user said so: a self-signed certificate
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as reply:
            content, is_json = reply.read(), reply.headers.get_content_type().endswith("json")
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError):  # MLflow's JSON error body
            detail = json.loads(detail).get("message", detail)
        raise HttpFailure(url, error.code, str(error.reason), str(detail)) from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise HttpFailure(url, None, str(getattr(error, "reason", error))) from None
    try:
        return json.loads(content) if is_json else {}
    except ValueError:
        raise HttpFailure(url, None, NOT_JSON) from None
