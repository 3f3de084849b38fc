"""Split a validated dataset into seeded train and test sets."""

import pandas as pd
from sklearn.model_selection import train_test_split

from ..config import DataConfig, SplitConfig
from ..errors import DataValidationError
from .load import load_dataset
from .validate import validate_dataset


def split_dataset(
    frame: pd.DataFrame, target: str, test_size: float, seed: int, stratify: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        train, test = train_test_split(
            frame,
            test_size=test_size,
            random_state=seed,
            stratify=frame[target] if stratify else None,
        )
    except ValueError as error:
        raise DataValidationError(f"cannot split the dataset on '{target}': {error}") from None
    return train.reset_index(drop=True), test.reset_index(drop=True)


def load_validated(data: DataConfig) -> pd.DataFrame:
    """Load the configured data and check it against the `data:` rules."""
    rules = (data.target, data.features, data.labels, data.max_missing_fraction)
    return validate_dataset(load_dataset(data.source), *rules)


def load_and_split(data: DataConfig, split: SplitConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training pipeline's data steps in one call: the same seed gives the same held-out
    rows, so versions can be compared outside the pipeline (e.g. `promote`)."""
    dataset = load_validated(data)
    return split_dataset(dataset, data.target, split.test_size, split.seed, split.stratify)
