"""The data-source seam: read a source into a DataFrame, write a table to a destination,
fingerprint a source. Plain pandas, pyarrow and SQLAlchemy.

Sources (`data.source` in configs/training.yaml, `input` in configs/batch_inference.yaml):
- `sql:<query>`: a query, run with SQLAlchemy on the database whose URL is in DATABASE_URL;
- a path ending in `.parquet` or `.pq`: a Parquet file;
- any other path: a CSV file with a header row, delimited by `,`, `;`, tab or `|`.
Destinations (`output` in configs/batch_inference.yaml): `sql:<table>`, or a Parquet or CSV
file by the same suffixes.

The database URL holds credentials: it comes only from the environment (the project's command
puts DATABASE_URL from the gitignored .env there, see platform/credentials.py), and no message,
description or fingerprint made here contains it: `describe_database` drops the user name, the
password and the URL's query options.
"""

import csv
import hashlib
import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..config import SQL_TABLE
from ..errors import DataSourceError, DataValidationError
from . import csv_delimiter

SQL_PREFIX = "sql:"
PARQUET_SUFFIXES = (".parquet", ".pq")
DATABASE_URL = "DATABASE_URL"  # the environment variable with the database's SQLAlchemy URL
# URLs without a driver, which SQLAlchemy would give to drivers this project does not install.
DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
# (query, URL) -> the digest of the query's last result in this process: a command fingerprints
# the rows it read (preflight, data-step cache key, registration) instead of running the query
# once more each time.
_last_read: dict[tuple[str, str], str] = {}


def is_sql(source: str) -> bool:
    return source.startswith(SQL_PREFIX)


def is_parquet(path: str) -> bool:
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def read_source(
    source: str, database_url: str | None = None, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The rows of a `sql:` query, a Parquet file or a CSV file. `columns`: read only these
    (a file's other columns are skipped, a name it lacks too; a query's columns are as written),
    None: all."""
    if is_sql(source):
        return read_sql(sql_text(source), database_url)
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


def sql_text(source: str) -> str:
    query = source.removeprefix(SQL_PREFIX).strip()
    if not query:
        raise DataSourceError(f"'{source}' has no query: write `sql:SELECT ... FROM ...`")
    return query


def short(text: str, length: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 3] + "..."


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# ---- databases -----------------------------------------------------------------------------


def url_from_environment(url: str | None = None) -> str:
    """The given URL, else DATABASE_URL from the environment; refused in one line if neither."""
    url = (url or os.environ.get(DATABASE_URL, "")).strip()
    if not url:
        raise DataSourceError(
            f"a `sql:` source or output needs the database URL in {DATABASE_URL}: set it in "
            "the environment or in .env (see .env.example), never in a config file"
        )
    return url


def _parse(url: str):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:  # its message would quote the URL: say what is wrong instead
        raise DataSourceError(
            f"{DATABASE_URL} is not a database URL: use the SQLAlchemy form "
            "dialect+driver://host:port/database, with user:password@ before the host"
        ) from None
    if parsed.drivername in DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=DEFAULT_DRIVERS[parsed.drivername])
    return parsed


def describe_database(url: str | None = None) -> str:
    """The database as logs and MLflow may show it: dialect, driver, host, port and database,
    without the user, password or query options."""
    from sqlalchemy.engine import URL

    parsed = _parse(url_from_environment(url))
    safe = URL.create(
        parsed.drivername, host=parsed.host, port=parsed.port, database=parsed.database
    )
    return safe.render_as_string(hide_password=True)


def _secret_free(message: str, url: str) -> str:
    """A driver's message, with the URL and its password blanked should a driver quote them."""
    parsed = _parse(url)
    secrets = [url, parsed.render_as_string(hide_password=False)]
    if parsed.password:
        secrets.append(str(parsed.password))
    for secret in secrets:
        message = message.replace(secret, "***")
    return message.split("(Background on this error")[0].strip()


def driver_reason(error: Exception, url: str) -> str:
    if isinstance(error, pd.errors.DatabaseError) and error.__cause__:  # pandas wraps them
        error = error.__cause__
    cause = getattr(error, "orig", None) or error  # the driver's own error, when there is one
    return _secret_free(first_line(cause), url)


def engine_for(url: str | None = None):
    """A SQLAlchemy engine (no connection yet); an unknown or missing driver in one line."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import NoSuchModuleError

    url = url_from_environment(url)
    parsed = _parse(url)
    try:
        return create_engine(parsed)
    except NoSuchModuleError:
        raise DataSourceError(
            f"{DATABASE_URL} names an unknown database driver '{parsed.drivername}': use e.g. "
            "postgresql+psycopg://, mysql+pymysql:// or sqlite:///"
        ) from None
    except ImportError as error:
        raise DataSourceError(
            f"the driver of {parsed.drivername} ({error.name}) is not installed: add it to the "
            f"project (`uv add {error.name}`) or use a driver it has (postgresql+psycopg, sqlite)"
        ) from None


def connect(engine, url: str):
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return engine.connect()
    except SQLAlchemyError as error:
        raise DataSourceError(
            f"cannot connect to the database {describe_database(url)}: {driver_reason(error, url)}"
        ) from None


def read_sql(query: str, database_url: str | None = None) -> pd.DataFrame:
    """The rows of `query`. It runs in a transaction that is rolled back, so a statement that
    writes changes nothing; DECIMAL columns become floats."""
    from sqlalchemy import text
    from sqlalchemy.exc import ResourceClosedError, SQLAlchemyError

    url = url_from_environment(database_url)
    engine = engine_for(url)
    try:
        with connect(engine, url) as connection:
            frame = pd.read_sql_query(text(query), connection, coerce_float=True)
    except ResourceClosedError:
        raise DataSourceError(
            f"the query returns no rows to read: use a SELECT ({short(query)})"
        ) from None
    except (SQLAlchemyError, pd.errors.DatabaseError) as error:
        raise query_failed(error, query, url) from None
    finally:
        engine.dispose()
    require_unique_columns(frame.columns, "the query's result")
    _last_read[(query, url)] = frame_digest(frame)
    return frame


def query_failed(error: Exception, query: str, url: str) -> DataSourceError:
    """A failed query in one line: the database without credentials, the driver's reason."""
    return DataSourceError(
        f"the query failed on {describe_database(url)}: {driver_reason(error, url)} "
        f"({short(query)})"
    )


def check_database(database_url: str | None = None) -> None:
    """Connect once: no URL, an unknown driver or an unreachable database fail here, in one
    line, before a pipeline starts."""
    url = url_from_environment(database_url)
    engine = engine_for(url)
    try:
        connect(engine, url).close()
    finally:
        engine.dispose()


# ---- destinations --------------------------------------------------------------------------


def table_name(destination: str) -> str:
    table = destination.removeprefix(SQL_PREFIX).strip()
    if not SQL_TABLE.fullmatch(table):
        raise DataSourceError(
            f"'{destination}' is not a table: write `sql:<table>` or `sql:<schema>.<table>` "
            "(letters, digits, underscores)"
        )
    return table


def describe_output(destination: str, mode: str = "replace") -> str:
    """Where batch output goes, as logs and MLflow may show it: no credentials."""
    if is_sql(destination):
        return f"table {table_name(destination)} ({mode}) on {describe_database()}"
    return destination


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


def fingerprint(source: str, database_url: str | None = None) -> str:
    """Changes whenever the data behind `source` changes: a file's bytes, or a query's result
    (its text alone would miss a changed row): the result this process last read, else the
    query runs."""
    if is_sql(source):
        query, url = sql_text(source), url_from_environment(database_url)
        if (query, url) not in _last_read:
            read_sql(query, url)
        return f"sql:{_last_read[(query, url)]}"
    path = Path(source)
    if not path.is_file():
        return f"missing:{path}"
    digest = hashlib.sha256()
    with path.open("rb") as file:  # streamed: a file larger than memory too
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(source: str, database_url: str | None = None) -> dict[str, str]:
    """Where rows come from, as MLflow may record it: a file's path and format, a query and
    its database without credentials, or another kind of source that load_dataset() reads."""
    if is_sql(source):
        return {"query": sql_text(source), "database": describe_database(database_url)}
    if Path(source).is_file() or Path(source).suffix.lower() in (".csv", *PARQUET_SUFFIXES):
        return {"path": source, "format": "parquet" if is_parquet(source) else "csv"}
    return {"uri": source, "format": "custom (load_dataset)"}
