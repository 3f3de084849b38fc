"""Talk to an MLflow scoring server: build the payload, post it, turn errors into one line."""

import contextlib
import json
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd

from ..errors import ProjectError

PAYLOAD_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class PredictionError(ProjectError):
    """The scoring server refused the request or could not be reached."""

    hint = "`{prog} status` shows the endpoint; `{prog} deploy` (re)starts it"


class RequestRejectedError(PredictionError):
    """The scoring server answered 4xx: the rows do not fit the model's signature."""

    hint = (
        "send the columns and types of the model's input example (`{prog} predict` without "
        "--input sends it; `{prog} status` shows the endpoint)"
    )


def payload_from_frame(frame: pd.DataFrame) -> dict:
    """Column-named rows: what a model logged with a DataFrame signature expects."""
    return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}


def payload_from_file(path: Path) -> dict:
    """A CSV file with a header row, or JSON: a list of records or a ready MLflow payload."""
    if not path.is_file():
        raise PredictionError(f"input file not found: {path}")
    if path.suffix.lower() == ".csv":
        try:
            frame = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
            raise PredictionError(f"cannot read {path} as CSV: {error}") from None
        if frame.empty:
            raise PredictionError(f"{path} has no rows to predict")
        return payload_from_frame(frame)
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PredictionError(f"{path} is not valid JSON: {error}") from None
    if isinstance(content, list):
        if not content:
            raise PredictionError(f"{path} has no rows to predict")
        return {"dataframe_records": content}
    if isinstance(content, dict) and any(key in content for key in PAYLOAD_KEYS):
        return content
    raise PredictionError(f"{path}: expected a list of records or one of {list(PAYLOAD_KEYS)}")


def _reason(message: str, limit: int = 300) -> str:
    """MLflow repeats the whole payload before the cause: keep the cause, on one line."""
    cause = " ".join(message.rsplit("Error: ", 1)[-1].split())
    return cause if len(cause) <= limit else cause[: limit - 3] + "..."


def predict(url: str, payload: dict, timeout: float = 30.0) -> list:
    """POST the payload to `url` (…/invocations) and return the predictions."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        with contextlib.suppress(json.JSONDecodeError, AttributeError):
            detail = json.loads(detail).get("message", detail)  # MLflow's JSON error body
        rejected = RequestRejectedError if 400 <= error.code < 500 else PredictionError
        raise rejected(
            f"{url} rejected the request ({error.code}): {_reason(detail) or error.reason}"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PredictionError(f"no model server answers at {url} ({reason})") from None
    return body["predictions"] if isinstance(body, dict) and "predictions" in body else body
