"""Validate a dataset before training: required columns, types, missing values, label set."""

from collections.abc import Sequence

import pandas as pd
from pandas.api import types

from ..errors import DataValidationError


def _supported(column: pd.Series) -> bool:
    """Numbers, booleans, categories or text (pandas 2 keeps text as `object` columns)."""
    if types.is_numeric_dtype(column) or types.is_bool_dtype(column):
        return True
    if isinstance(column.dtype, pd.CategoricalDtype):
        return True
    return types.infer_dtype(column, skipna=True) in ("string", "empty")


def _stray_text(column: pd.Series) -> list:
    """Text values in a column that otherwise holds numbers ('n/a', '?', '12,5'): a CSV reader
    then makes the whole column text, and the model would take its numbers for categories."""
    if not types.is_object_dtype(column) and not types.is_string_dtype(column):
        return []
    values = column.dropna()
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().sum() <= len(values) / 2:  # mostly text: a category column
        return []
    return values[numbers.isna()].unique().tolist()


def _require_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        names = ", ".join(f"'{column}'" for column in missing)
        raise DataValidationError(f"missing required column(s): {names}")


def validate_features(
    frame: pd.DataFrame, features: Sequence[str], max_missing_fraction: float = 0.0
) -> pd.DataFrame:
    """The rules every model input follows, in training and in batch inference."""
    if frame.empty:
        raise DataValidationError("dataset has no rows")
    _require_columns(frame, features)
    for column in features:
        if not _supported(frame[column]):
            raise DataValidationError(
                f"column '{column}' has unsupported type {frame[column].dtype}: "
                "use numbers, booleans or text categories"
            )
        stray = _stray_text(frame[column])
        if stray:
            shown = ", ".join(repr(value) for value in stray[:3])
            raise DataValidationError(
                f"column '{column}' holds numbers and text ({shown}): a number column must "
                "hold only numbers; leave a cell empty to count it as missing"
            )
        fraction = float(frame[column].isna().mean())
        if fraction > max_missing_fraction:
            raise DataValidationError(
                f"column '{column}' has {fraction:.1%} missing values "
                f"(data.max_missing_fraction allows {max_missing_fraction:.1%})"
            )
    # Integers become floats, as the model sees them: a gap (or 2.5) in a later batch or request
    # then fits the model's signature instead of being refused by MLflow's schema check.
    inputs = frame[list(features)].reset_index(drop=True)
    return inputs.astype({column: "float64" for column in inputs.select_dtypes("integer")})


def validate_dataset(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str] = (),
    labels: Sequence[int | str] = (),
    max_missing_fraction: float = 0.0,
) -> pd.DataFrame:
    """Return the feature and target columns, or raise DataValidationError naming the column
    and the rule it breaks."""
    features = list(features) or [column for column in frame.columns if column != target]
    if target in features:
        raise DataValidationError(f"column '{target}' is the target and cannot be a feature")
    if not features:
        raise DataValidationError(f"dataset has no feature columns besides the target '{target}'")
    _require_columns(frame, [*features, target])
    inputs = validate_features(frame, features, max_missing_fraction)

    y = frame[target]
    if y.isna().any():
        raise DataValidationError(
            f"target column '{target}' has {int(y.isna().sum())} missing value(s)"
        )
    if labels:
        unseen = sorted({str(label) for label in y.unique()} - {str(label) for label in labels})
        if unseen:
            raise DataValidationError(
                f"target column '{target}' has label(s) {unseen} not in data.labels {list(labels)}"
            )
    if y.nunique() < 2:
        raise DataValidationError(f"target column '{target}' needs at least two classes")
    return inputs.assign(**{target: y.reset_index(drop=True)})
