"""Your feature engineering: columns the model computes from the raw ones.

It runs inside the saved model (the first step of the scikit-learn Pipeline; for Keras, in
the model's serving wrapper), so the endpoint, batch inference and the drift check all take the
raw columns, and a feature is computed the same way in training and in serving.
"""

import pandas as pd


def add_features(frame: pd.DataFrame) -> pd.DataFrame:
    """CUSTOMIZE: return the raw columns plus (or instead of) the features you derive.

    `frame` holds the validated raw columns (integers as floats; gaps as NaN where
    `data.max_missing_fraction` allows them). Return a new frame; do not modify `frame`.
    Example, on the breast-cancer data:

        return frame.assign(area_ratio=frame["worst area"] / frame["mean area"])
    """
    return frame
