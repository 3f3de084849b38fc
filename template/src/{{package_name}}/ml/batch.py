"""Batch output: the pass-through columns (an ID to join on), the model's input columns as they
came, then the predictions, one row per batch row."""

from collections.abc import Sequence

import pandas as pd

from ..errors import BatchDataError, DataSourceError, DataValidationError
from .data import listed, validate_features


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
    batch: pd.DataFrame, features: Sequence[str], max_missing_fraction: float
) -> pd.DataFrame:
    """The model's inputs, under the rules of its training data; a broken rule names the batch."""
    try:
        return validate_features(batch, features, max_missing_fraction)
    except DataValidationError as error:
        raise BatchDataError(f"the batch does not fit the model: {error}") from error


def output_rows(
    batch: pd.DataFrame,
    features: Sequence[str],
    predictions: pd.DataFrame,
    pass_through: Sequence[str] = (),
    **added: str,
) -> pd.DataFrame:
    """The output table; `added` columns (model_version, scored_at) come last."""
    require_pass_through(batch.columns, pass_through)
    taken = {*predictions.columns, *added}
    clash = [name for name in pass_through if name in taken]
    if clash:
        raise DataSourceError(
            f"pass_through column(s) {clash} would overwrite the output's own columns "
            f"({', '.join(sorted(taken))}): rename them in the query or file"
        )
    kept = list(dict.fromkeys([*pass_through, *features]))  # a pass-through input: once
    rows = batch[kept].reset_index(drop=True)
    return pd.concat([rows, predictions.reset_index(drop=True)], axis=1).assign(**added)
