# CUSTOMIZE: yours to change; `copier update` merges template changes into your edits.
"""Your feature engineering: columns the model computes from the raw ones.

It runs inside the saved model (the first step of its scikit-learn Pipeline, for every
framework), so the endpoint and batch inference take the raw columns, and a feature
is computed the same way in training and in serving.
"""

import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler


def add_features(frame: pd.DataFrame) -> pd.DataFrame:
    """CUSTOMIZE: return the raw columns plus (or instead of) the features you derive.

    Receives: the raw input columns (`data.features`, or every column but the target and
    `data.exclude`), validated: integers as floats, gaps as NaN where
    `data.max_missing_fraction` allows them, text as text. Any number of rows: the training
    split, a batch, or one row of an endpoint request; a date arrives as text (CSV, JSON) or as
    datetimes (Parquet): read it with pd.to_datetime. Never the target.
    Returns: a new DataFrame (do not modify `frame`) with one row per input row, in the same
    order and index, each row computed from that row alone (no statistics over `frame`:
    a request has one row). Number columns are scaled, the others one-hot encoded after it;
    drop raw columns the model should not learn from (a date once you derived its parts).
    tests/test_your_code.py checks this on a sample of your data. Example, for a `date` column:

        date = pd.to_datetime(frame["date"])
        return frame.drop(columns=["date"]).assign(month=date.dt.month, weekday=date.dt.day_of_week)
    """
    return frame


def model_inputs(dense: bool = False) -> Pipeline:
    """Raw columns -> the numbers a model learns from, fitted on the training split: your
    features, then numeric columns median-imputed and scaled, the others imputed with their
    most frequent value and one-hot encoded (categories unseen in training count as none).
    Columns are told apart when it is fitted. Every framework's model starts with it (`dense`
    for a network, which takes no sparse matrix)."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=not dense)),
        ]
    )
    encode = ColumnTransformer(
        [
            ("numeric", numeric, make_column_selector(dtype_include="number")),
            ("categorical", categorical, make_column_selector(dtype_exclude="number")),
        ]
    )
    return Pipeline([("features", FunctionTransformer(add_features)), ("encode", encode)])


def model_features(model, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns `model` encodes, computed from raw rows by its own first step: the
    add_features() it was trained with (not today's code, if that changed since)."""
    return model.named_steps["inputs"].named_steps["features"].transform(frame)
