# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""The HTTP contract of the model servers: payloads and predictions. MLflow's scoring server
(/invocations) takes the payload itself; ZenML's pipeline deployment (/invoke) takes it as the
inference pipeline's `payload` parameter and answers its `predictions` output."""

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PredictionError, RequestRejectedError
from ..ml import csv_delimiter
from .http_json import HttpFailure, request_json

if TYPE_CHECKING:  # pandas only where a frame is at hand: `predict` answers without it
    import pandas as pd

PAYLOAD_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
TRUE, FALSE = {"True", "TRUE", "true"}, {"False", "FALSE", "false"}  # as pandas reads them


def payload_from_frame(frame: "pd.DataFrame") -> dict:
    """Column-named rows: what a model logged with a DataFrame signature expects."""
    return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}


def first_rows(payload: dict, rows: int) -> dict:
    """A `dataframe_split` payload cut to its first rows (other payloads as they are)."""
    split = payload.get("dataframe_split")
    if not split:
        return payload
    return {"dataframe_split": {**split, "data": split["data"][:rows]}}


def csv_value(text: str) -> float | bool | str | None:
    """A CSV cell as pandas would read it: empty is missing, then a number, a boolean, text."""
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return True if text in TRUE else False if text in FALSE else text


def payload_from_csv(path: Path) -> dict:
    try:
        with path.open(newline="", encoding="utf-8") as file:
            delimiter = csv_delimiter(file.readline())
            file.seek(0)
            header, *rows = list(csv.reader(file, delimiter=delimiter))
    except (ValueError, UnicodeDecodeError, csv.Error) as error:  # ValueError: no header row
        raise PredictionError(f"cannot read {path} as CSV: {error}") from None
    rows = [row for row in rows if row]
    if not rows:
        raise PredictionError(f"{path} has no rows to predict")
    if any(len(row) != len(header) for row in rows):
        raise PredictionError(f"cannot read {path} as CSV: rows and header differ in length")
    data = [[csv_value(cell) for cell in row] for row in rows]
    return {"dataframe_split": {"columns": header, "data": data}}


def payload_from_file(path: Path) -> dict:
    """A CSV file with a header row, or JSON: a list of records or a ready MLflow payload."""
    if not path.is_file():
        raise PredictionError(f"input file not found: {path}")
    if path.suffix.lower() == ".csv":
        return payload_from_csv(path)
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


def frame_from_payload(payload: dict, schema=None) -> "pd.DataFrame":
    """The rows of an MLflow payload, parsed as MLflow's scoring server parses them."""
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    return infer_and_parse_data(payload, schema)


def answer_from_frame(predictions: "pd.DataFrame") -> list:
    """The predictions as MLflow's scoring server writes them (JSON records)."""
    from mlflow.pyfunc.scoring_server import predictions_to_json

    out = io.StringIO()
    predictions_to_json(predictions, out)
    return json.loads(out.getvalue())["predictions"]


def _id(value):
    """An ID as it was written: a CSV cell 17 is read as the number 17.0."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def with_pass_through(answers: list, payload: dict, names: list[str]) -> list:
    """Each answer led by the request row's `names` columns that it has (an ID, so answers can
    be matched to rows; the server ignores columns outside the model's signature)."""
    split, records = payload.get("dataframe_split"), payload.get("dataframe_records")
    if split:
        where = [(name, split["columns"].index(name)) for name in names if name in split["columns"]]
        kept = [{name: _id(row[index]) for name, index in where} for row in split["data"]]
    elif records:
        kept = [{name: _id(row[name]) for name in names if name in row} for row in records]
    else:
        return answers
    if not any(kept) or len(kept) != len(answers):
        return answers
    return [
        {**row, **(a if isinstance(a, dict) else {"prediction": a})}
        for row, a in zip(kept, answers, strict=True)
    ]


def predict(url: str, payload: dict, timeout: float = 30.0) -> list:
    """POST the payload to `url` (…/invocations, or …/invoke) and return the predictions."""
    pipeline = url.rstrip("/").endswith("/invoke")
    if pipeline:  # the answer is returned, not stored as an artifact: each request is a run
        payload = {"parameters": {"payload": payload}, "skip_artifact_materialization": True}
    try:
        body = request_json(url, payload, timeout=timeout)
    except HttpFailure as failure:
        if failure.status is None:
            raise PredictionError(f"no model server answers at {url} ({failure.reason})") from None
        rejected = RequestRejectedError if 400 <= failure.status < 500 else PredictionError
        raise rejected(
            f"{url} rejected the request ({failure.status}): "
            f"{_reason(failure.detail) or failure.reason}"
        ) from None
    if pipeline:
        return body["outputs"]["predictions"]
    return body["predictions"] if isinstance(body, dict) and "predictions" in body else body
