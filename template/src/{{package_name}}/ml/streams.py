"""Batches of any size in bounded memory: read a source in chunks, write an output chunk by
chunk to a temporary target that takes the output's place only once every chunk is written
(files: renamed over it; `sql:` tables: one transaction). A failure, or a killed process,
leaves the previous output as it was."""

import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataSourceError, DataValidationError
from . import csv_delimiter, sources
from .data import load_dataset


def read_chunks(source: str, chunk_rows: int, columns: list[str] | None = None) -> Iterator:
    """(chunk, share of the source read so far) pairs: a Parquet file by row groups, a CSV
    file, a `sql:` query on a server-side cursor; other sources come whole from load_dataset()
    and are cut here. `columns`: only these (None: all)."""
    path = Path(source)
    if sources.is_sql(source):
        yield from _sql_chunks(sources.sql_text(source), chunk_rows)
    elif not path.is_file():
        frame = load_dataset(source)
        frame = frame if columns is None else frame[columns]
        for start in range(0, len(frame), chunk_rows):
            end = start + chunk_rows
            yield frame.iloc[start:end], min(1.0, end / len(frame))
    elif sources.is_parquet(source):
        import pyarrow.parquet as pq

        try:
            file = pq.ParquetFile(path, pre_buffer=False)  # True reads the whole file ahead
            sources.require_unique_columns(file.schema_arrow.names, str(path))
            done, total = 0, max(file.metadata.num_rows, 1)
            for batch in file.iter_batches(batch_size=chunk_rows, columns=columns):
                done += batch.num_rows
                yield batch.to_pandas(), done / total
        except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid is a ValueError
            message = f"cannot read {path} as Parquet: {sources.first_line(error)}"
            raise DataValidationError(message) from None
    else:
        yield from _csv_chunks(path, chunk_rows, columns)


def _csv_chunks(path: Path, chunk_rows: int, columns: list[str] | None) -> Iterator:
    size = max(path.stat().st_size, 1)
    with path.open(newline="", encoding="utf-8") as file:
        delimiter = csv_delimiter(file.readline())
        sources.require_unique_header(path, delimiter)
        file.seek(0)
        try:
            reader = pd.read_csv(file, sep=delimiter, chunksize=chunk_rows, usecols=columns)
            for chunk in reader:
                yield chunk, min(file.tell() / size, 1.0)
        except pd.errors.EmptyDataError:
            raise DataValidationError(f"data file is empty: {path}") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            raise DataValidationError(f"cannot read {path} as CSV: {error}") from None


def _sql_chunks(query: str, chunk_rows: int) -> Iterator:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    url = sources.url_from_environment()
    engine = sources.engine_for(url)
    try:
        with sources.connect(engine, url) as connection:
            # A server-side cursor: the database sends rows as they are read, not all at once.
            streamed = connection.execution_options(stream_results=True)
            for chunk in pd.read_sql_query(
                text(query), streamed, chunksize=chunk_rows, coerce_float=True
            ):
                sources.require_unique_columns(chunk.columns, "the query's result")
                yield chunk, float("nan")  # the query's size is unknown
    except (SQLAlchemyError, pd.errors.DatabaseError) as error:
        raise sources.query_failed(error, query, url) from None
    finally:
        engine.dispose()


def sample_rows(chunks: Iterator, rows: int, seed: int = 0) -> pd.DataFrame:
    """A uniform random sample of at most `rows` rows of a stream of (chunk, share) pairs, in
    their order: each row draws a random key and the `rows` smallest keys stay (one pass,
    bounded memory)."""
    generator, kept, keys = np.random.default_rng(seed), None, np.empty(0)
    for chunk, _ in chunks:
        drawn = generator.random(len(chunk))
        if len(keys) == rows:  # only a key below the largest kept one can enter
            chosen = drawn < keys.max()
            chunk, drawn = chunk[chosen], drawn[chosen]
        kept = chunk if kept is None else pd.concat([kept, chunk], ignore_index=True)
        keys = np.concatenate([keys, drawn])
        if len(keys) > rows:
            best = np.sort(np.argpartition(keys, rows)[:rows])
            kept, keys = kept.iloc[best].reset_index(drop=True), keys[best]
    if kept is None:
        raise DataValidationError("the batch has no rows")
    return kept.reset_index(drop=True)


@contextmanager
def output_writer(destination: str, mode: str = "replace") -> Iterator[Callable]:
    """A function that writes one chunk of the output; everything is in place once the `with`
    block ends without an error, nothing otherwise."""
    if sources.is_sql(destination):
        with _table_writer(destination, mode) as write:
            yield write
        return
    path = Path(destination)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.partial"):  # left by a killed run
        stale.unlink()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        if sources.is_parquet(destination):
            with _parquet_writer(temporary) as write:
                yield write
        else:
            with temporary.open("w", newline="", encoding="utf-8") as file:
                yield lambda chunk: chunk.to_csv(file, header=file.tell() == 0, index=False)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def _parquet_writer(path: Path) -> Iterator[Callable]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None

    def write(chunk: pd.DataFrame) -> None:
        nonlocal writer
        schema = writer.schema if writer else None
        try:
            table = pa.Table.from_pandas(chunk, schema=schema, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise DataValidationError(
                f"a column's type changes within the batch ({sources.first_line(error)}); "
                "the output's types come from its first chunk"
            ) from None
        # Dictionary encoding only where values repeat (text): on floats it costs 3x the time.
        text = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
        writer = writer or pq.ParquetWriter(path, table.schema, use_dictionary=text)
        writer.write_table(table)

    try:
        yield write
    finally:
        if writer:
            writer.close()


@contextmanager
def _table_writer(destination: str, mode: str) -> Iterator[Callable]:
    """Appended rows: one transaction. A replaced table: the rows go to a staging table first,
    which takes the table's place once complete (SQLite and MySQL commit DDL at once, so a
    DROP in the transaction would not come back on a failure)."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    table, url = sources.table_name(destination), sources.url_from_environment()
    schema, _, name = table.rpartition(".")
    staging = f"{name}__partial" if mode == "replace" else name
    engine = sources.engine_for(url)
    try:
        with engine.begin() as connection:  # committed only if every chunk is written
            first = True

            def write(chunk: pd.DataFrame) -> None:
                nonlocal first
                exists = "replace" if first and mode == "replace" else "append"
                chunk.to_sql(
                    staging, connection, schema=schema or None, if_exists=exists, index=False
                )
                first = False

            yield write
        if mode == "replace":
            quote = engine.dialect.identifier_preparer.quote
            prefix = f"{quote(schema)}." if schema else ""
            with engine.begin() as connection:
                connection.execute(text(f"DROP TABLE IF EXISTS {prefix}{quote(name)}"))
                connection.execute(
                    text(f"ALTER TABLE {prefix}{quote(staging)} RENAME TO {quote(name)}")
                )
    except SQLAlchemyError as error:
        raise DataSourceError(
            f"cannot write table {table} on {sources.describe_database(url)}: "
            f"{sources.driver_reason(error, url)}"
        ) from None
    finally:
        engine.dispose()


def read_ahead(items: Iterator) -> Iterator:
    """The items, the next one read in a thread while the caller works on this one: pyarrow,
    pandas' CSV parser and database drivers release the GIL (2 cores: a quarter faster)."""
    with ThreadPoolExecutor(1) as pool:
        coming = pool.submit(next, items, None)
        while (item := coming.result()) is not None:
            coming = pool.submit(next, items, None)
            yield item


@contextmanager
def written_behind(write: Callable) -> Iterator[Callable]:
    """`write`, run in a thread while the caller goes on; one write waits for the one before
    and the block's end for the last, whose error is raised there."""
    pending = None

    def write_behind(chunk: pd.DataFrame) -> None:
        nonlocal pending
        if pending:
            pending.result()
        pending = pool.submit(write, chunk)

    with ThreadPoolExecutor(1) as pool:
        try:
            yield write_behind
        finally:
            if pending:
                wait([pending])  # an error raised here, unless the block failed already
        if pending:
            pending.result()


class Progress:
    """Rows done, rows/s and time left, on one line of a terminal, every 2 s; silent when
    the output is not a terminal or CI is set (logs stay quiet)."""

    def __init__(self) -> None:
        self.started = self.shown = time.monotonic()
        self.live = sys.__stderr__.isatty() and not os.environ.get("CI")

    def __call__(self, rows: int, share: float) -> None:
        now = time.monotonic()
        if not self.live or now - self.shown < 2:
            return
        self.shown, speed = now, rows / max(now - self.started, 1e-9)
        left = (now - self.started) * (1 - share) / share if 0 < share <= 1 else None
        eta = f", {left:,.0f} s left" if left is not None else ""
        sys.__stderr__.write(f"\r  {rows:,} rows scored, {speed:,.0f} rows/s{eta}   ")
        sys.__stderr__.flush()

    def done(self) -> None:
        if self.live and self.shown != self.started:
            sys.__stderr__.write("\n")
