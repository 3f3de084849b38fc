"""Split a validated dataset into seeded train and test sets."""

import pandas as pd
from sklearn.model_selection import train_test_split

from ..errors import DataValidationError


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
