"""Batch output: the pass-through columns (an ID to join on), the model's input columns as it
sees them, then the predictions, one row per batch row; scored chunk by chunk."""

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field

import pandas as pd

from ..config import BatchInferenceConfig
from ..errors import BatchDataError, DataSourceError, DataValidationError
from .data import listed, validate_features
from .predictions import clipped_count, score_rows, unseen_counts
from .sources import row_hashes
from .streams import Progress, output_writer, read_ahead, read_chunks, written_behind

SAMPLE_ROWS = 1_000  # output rows kept for MLflow (log_predictions: sample)


@dataclass
class Scored:
    rows: int  # rows scored and written
    written: str  # where the output went, as logs may show it (no credentials)
    sample: pd.DataFrame  # the first output rows, for MLflow
    unseen: dict[str, int] = field(default_factory=dict)  # rows with an unseen category
    clipped: int = 0  # regression predictions clipped to data.target_range
    head: pd.DataFrame = field(default_factory=pd.DataFrame)  # the batch's first rows
    digest: str = ""  # of every batch row, in order


def require_pass_through(columns: Sequence[str], pass_through: Sequence[str]) -> None:
    """Every `pass_through` column of configs/batch_inference.yaml is in the batch."""
    missing = [name for name in pass_through if name not in columns]
    if missing:
        names = ", ".join(f"'{name}'" for name in missing)
        raise DataSourceError(
            f"pass_through column(s) {names} of configs/batch_inference.yaml not in the batch "
            f"(its columns: {listed(columns)})"
        )


def validate_batch(
    batch: pd.DataFrame, features: Sequence[str], max_missing_fraction: float, where: str = ""
) -> pd.DataFrame:
    """The model's inputs, under the rules of its training data; a broken rule names the batch
    (and `where` in it)."""
    try:
        return validate_features(batch, features, max_missing_fraction)
    except DataValidationError as error:
        raise BatchDataError(f"the batch{where} does not fit the model: {error}") from error


def score_chunks(
    chunks: Iterable,
    loaded,
    features: Sequence[str],
    max_missing_fraction: float,
    write: Callable[[pd.DataFrame], None],
    pass_through: Sequence[str] = (),
    progress: Callable[[int, float], None] = lambda rows, share: None,
    shadow: tuple[str, object, Sequence[str]] | None = None,
    **added: str,
) -> Scored:
    """Validate, score and write each (chunk, share read) pair with a loaded pyfunc model. Gaps
    are counted over the whole batch: data.max_missing_fraction holds for the batch, as in
    training, not for each chunk (0 stops at the first gap). `shadow`: (version, loaded model,
    its inputs) of a challenger whose answers go in challenger_* columns."""
    rows, gaps, unseen, clipped, sample, head = 0, Counter(), Counter(), 0, None, None
    digest = hashlib.sha256()
    per_chunk_limit = 0.0 if max_missing_fraction == 0 else 1.0
    for chunk, share in chunks:
        where = f" (rows {rows + 1:,}-{rows + len(chunk):,})"
        inputs = validate_batch(chunk, features, per_chunk_limit, where)
        predictions = score_rows(loaded, inputs)
        table = output_rows(chunk, inputs, predictions, pass_through, **added)
        if shadow is not None:
            table = with_shadow(table, chunk, shadow, per_chunk_limit, where)
        write(table)
        if sample is None:
            sample, head = table.head(SAMPLE_ROWS), chunk.head(SAMPLE_ROWS)
            digest.update(repr(list(chunk.columns)).encode())
        digest.update(row_hashes(chunk))  # any changed row changes it
        rows += len(chunk)
        gaps.update(inputs.isna().sum().to_dict())
        unseen.update(unseen_counts(predictions.get("unseen_categories", pd.Series(dtype=str))))
        clipped += clipped_count(loaded, predictions)
        progress(rows, share)
    if not rows:
        raise BatchDataError("the batch does not fit the model: dataset has no rows")
    for column, count in gaps.items():
        if count / rows > max_missing_fraction:
            raise BatchDataError(
                f"the batch does not fit the model: column '{column}' has {count / rows:.1%} "
                f"missing values (data.max_missing_fraction allows {max_missing_fraction:.1%})"
            )
    return Scored(rows, "", sample, dict(unseen), clipped, head, digest.hexdigest())


def with_shadow(table, chunk, shadow, max_missing_fraction: float, where: str) -> pd.DataFrame:
    """The output rows plus the challenger's answers (challenger_prediction, ...) and version."""
    version, loaded, features = shadow
    inputs = validate_batch(chunk, features, max_missing_fraction, where)
    answers = score_rows(loaded, inputs).drop(columns=["unseen_categories"], errors="ignore")
    answers = answers.add_prefix("challenger_").set_index(table.index)
    return pd.concat([table, answers], axis=1).assign(challenger_version=version)


def score_streamed(
    config: BatchInferenceConfig,
    loaded,
    features: Sequence[str],
    max_missing: float,
    added: dict,
    shadow: tuple[str, object, Sequence[str]] | None = None,
) -> Scored:
    """The batch of `config` scored on this machine, chunk by chunk, into its output."""
    progress = Progress()
    with (
        output_writer(config.output, config.output_mode) as write,
        written_behind(write) as write_behind,
        closing(read_ahead(read_chunks(config.input, config.chunk_rows))) as chunks,
    ):
        scored = score_chunks(
            chunks,
            loaded,
            features,
            max_missing,
            write_behind,
            config.pass_through,
            progress,
            shadow,
            **added,
        )
    progress.done()
    return scored


def output_rows(
    batch: pd.DataFrame,
    inputs: pd.DataFrame,
    predictions: pd.DataFrame,
    pass_through: Sequence[str] = (),
    **added: str,
) -> pd.DataFrame:
    """The output table: pass-through columns as they came, the model's inputs as it saw them
    (validate_batch), its answers; `added` columns (model_version, scored_at) last."""
    require_pass_through(batch.columns, pass_through)
    taken = {*predictions.columns, *added}
    clash = [name for name in pass_through if name in taken]
    if clash:
        raise DataSourceError(
            f"pass_through column(s) {clash} would overwrite the output's own columns "
            f"({', '.join(sorted(taken))}): rename them in the query or file"
        )
    kept = batch[list(pass_through)].reset_index(drop=True)
    inputs = inputs.drop(columns=[c for c in inputs.columns if c in kept.columns])  # once
    return pd.concat([kept, inputs, predictions.reset_index(drop=True)], axis=1).assign(**added)
