"""The data a run used, as MLflow dataset inputs: MLflow's UI lists them in the run's Datasets
panel with their source, digest, schema and row count (the training and evaluation splits of a
training run, the batch of a batch inference run)."""

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mlflow
import pandas as pd
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.models import infer_signature

from ..ml.sources import describe, frame_digest, is_sql

INTEGER_COLUMNS_HINT = "Hint: Inferred schema contains integer column"
SCHEMA_ROWS = 1_000  # rows a dataset's schema is inferred from (dtypes are column-wide)


class ConfiguredSource(DatasetSource):
    """A source as the project's configs name it: a file, a bundled dataset, a `sql:` query
    with its database described without credentials, or another kind that the project's
    load_dataset() reads ("custom"). Recorded for people; MLflow does not load it back.
    Internal: MLflow has no public source for a SQL query, and a DatasetSource names its type
    through the private `_get_source_type` (tests/test_internals.py)."""

    def __init__(self, kind: str, details: dict[str, Any]):
        self._kind, self._details = kind, details

    def _get_source_type(self) -> str:  # MLflow's sources are one type per class; these differ
        return self._kind

    def load(self, **kwargs) -> pd.DataFrame:
        """The rows again, read by the project's load_dataset() (a query: on DATABASE_URL)."""
        from ..ml.data import load_dataset

        found = self._details
        query = f"sql:{found['query']}" if "query" in found else None
        return load_dataset(found.get("dataset") or found.get("path") or found.get("uri") or query)

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False  # made by configured_source(), never guessed from a string

    @classmethod
    def _resolve(cls, raw_source: Any) -> "ConfiguredSource":
        return configured_source(str(raw_source))

    def to_dict(self) -> dict[str, Any]:
        return dict(self._details)

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> "ConfiguredSource":
        return cls("project", dict(source_dict))


@contextmanager
def without_integer_hint() -> Iterator[None]:
    """MLflow warns about integer columns because a gap in a request cannot be an integer. The
    model's inputs are floats already (ml/data.py): what is left are a dataset's schema and the
    integer labels a classifier answers, which never carry gaps. Matched on its text: internal."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", INTEGER_COLUMNS_HINT, UserWarning)
        yield


def configured_source(source: str) -> ConfiguredSource:
    if source.startswith("sklearn:"):
        return ConfiguredSource("sklearn", {"dataset": source})
    details = describe(source)
    kind = "sql" if is_sql(source) else "file" if "path" in details else "custom"
    return ConfiguredSource(kind, details)


class RowsDataset(MetaDataset):
    """A dataset described, not held: source, digest, schema and row count, as MLflow's UI
    shows them. mlflow.data.from_pandas would copy the rows and infer the schema from every
    one of them (52 s for 2,000,000 rows); the schema of the first rows says the same."""

    def __init__(self, source: DatasetSource, name: str, digest: str, schema, rows: int):
        super().__init__(source, name=name, digest=digest, schema=schema)
        self._rows = rows

    @property
    def profile(self) -> dict:
        return {"num_rows": self._rows}

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self.profile)}


def log_dataset(
    frame: pd.DataFrame,
    source: str,
    name: str,
    context: str,
    rows: int | None = None,
    digest: str | None = None,
) -> None:
    """Log the rows read from `source` to the active MLflow run as a dataset input: `frame` is
    all of them, or the first of `rows` rows whose `digest` was computed as they streamed by;
    the digest covers every row."""
    with without_integer_hint():
        schema = infer_signature(frame.head(SCHEMA_ROWS)).inputs if len(frame.columns) else None
    digest = (digest or frame_digest(frame))[:16]
    dataset = RowsDataset(configured_source(source), name, digest, schema, rows or len(frame))
    mlflow.log_input(dataset, context=context)
