"""Your feature engineering: columns the model computes from the raw ones.

It runs inside the saved model (the first step of its scikit-learn Pipeline, for every
framework), so the endpoint, batch inference and the drift check all take the
raw columns, and a feature is computed the same way in training and in serving.
"""

import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler


def add_features(frame: pd.DataFrame) -> pd.DataFrame:
    """CUSTOMIZE: return the raw columns plus (or instead of) the features you derive.

    `frame` holds the validated raw columns (integers as floats; gaps as NaN where
    `data.max_missing_fraction` allows them). Return a new frame; do not modify `frame`.
    Example, on the breast-cancer data:

        return frame.assign(area_ratio=frame["worst area"] / frame["mean area"])
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
