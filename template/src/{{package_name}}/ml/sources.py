# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""The file seam: read a CSV or Parquet file into a DataFrame, fingerprint and describe a source.
Plain pandas and pyarrow.

Sources (`data.source` in configs/training.yaml, `input` in configs/batch_inference.yaml):
- a path ending in `.parquet` or `.pq`: a Parquet file;
- any other path: a CSV file with a header row, delimited by `,`, `;`, tab or `|`.
Outputs (`output` in configs/batch_inference.yaml): a Parquet or CSV file by the same suffixes
(ml/streams.py writes them).
"""

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..errors import DataSourceError, DataValidationError
from . import csv_delimiter

PARQUET_SUFFIXES = (".parquet", ".pq")


def is_parquet(path: str) -> bool:
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def read_source(source: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows of a Parquet or CSV file. `columns`: read only these (the file's other
    columns are skipped, a name it lacks too), None: all."""
    path = Path(source)
    if not path.is_file():
        raise DataSourceError(f"data file not found: {path}")
    if is_parquet(source):
        try:
            if columns is not None:  # those the file has: pyarrow refuses other names
                import pyarrow.parquet as pq

                columns = [name for name in pq.read_schema(path).names if name in columns]
            frame = pd.read_parquet(path, columns=columns)
        except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid is a ValueError
            message = f"cannot read {path} as Parquet: {first_line(error)}"
            raise DataValidationError(message) from None
        require_unique_columns(frame.columns, str(path))
        return frame
    try:
        with path.open(newline="", encoding="utf-8") as file:
            delimiter = csv_delimiter(file.readline())
        keep = None if columns is None else set(columns).__contains__  # a name it lacks: none
        frame = pd.read_csv(path, sep=delimiter, usecols=keep)
    except pd.errors.EmptyDataError:
        raise DataValidationError(f"data file is empty: {path}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataValidationError(f"cannot read {path} as CSV: {error}") from None
    require_unique_header(path, delimiter)
    return frame


def require_unique_header(path: Path, delimiter: str = ",") -> None:
    """pandas renames a repeated CSV column ('x', 'x.1', ...): the model would then expect
    inputs that no caller sends. Refuse the file instead."""
    with path.open(newline="", encoding="utf-8") as file:
        header = next(csv.reader(file, delimiter=delimiter), [])
        require_unique_columns(header, f"the header of {path}")


def require_unique_columns(names: Sequence[str], where: str) -> None:
    counts = Counter(str(name) for name in names)
    repeated = [f"'{name}' ({count}x)" for name, count in counts.items() if count > 1]
    if repeated:
        more = f" and {len(repeated) - 3} more" if len(repeated) > 3 else ""
        raise DataValidationError(
            f"column(s) {', '.join(repeated[:3])}{more} appear more than once in {where}: "
            "column names must be unique"
        )


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# ---- fingerprints and descriptions ---------------------------------------------------------


def frame_digest(frame: pd.DataFrame) -> str:
    """A hash of a table's columns, types and every value, in order."""
    columns = [[str(column), str(dtype)] for column, dtype in frame.dtypes.items()]
    digest = hashlib.sha256(json.dumps(columns).encode())
    digest.update(row_hashes(frame))
    return digest.hexdigest()


def row_hashes(frame: pd.DataFrame) -> bytes:
    """One hash per row, of its values: the same rows give the same bytes however a table is
    cut into chunks."""
    try:
        rows = pd.util.hash_pandas_object(frame, index=False)
    except TypeError:  # unhashable cells (lists, dicts from JSON or array columns)
        rows = pd.util.hash_pandas_object(frame.astype(str), index=False)
    return rows.to_numpy().tobytes()


def fingerprint(source: str) -> str:
    """Changes whenever the file behind `source` changes: a digest of its bytes."""
    path = Path(source)
    if not path.is_file():
        return f"missing:{path}"
    digest = hashlib.sha256()
    with path.open("rb") as file:  # streamed: a file larger than memory too
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(source: str) -> dict[str, str]:
    """Where rows come from, as MLflow may record it: a file's path and format, or another kind
    of source that load_dataset() reads."""
    if Path(source).is_file() or Path(source).suffix.lower() in (".csv", *PARQUET_SUFFIXES):
        return {"path": source, "format": "parquet" if is_parquet(source) else "csv"}
    return {"uri": source, "format": "custom (load_dataset)"}
