"""Data steps: load, validate, split."""

from typing import Annotated

import pandas as pd
from zenml import step

from ..config import DataConfig, SplitConfig
from ..data.load import load_dataset
from ..data.split import split_dataset
from ..data.validate import validate_dataset


@step
def load_data(source: str, fingerprint: str) -> Annotated[pd.DataFrame, "raw_dataset"]:
    """`fingerprint` changes with the data and the data code, so the cached results of this
    step and of the next ones are never stale."""
    return load_dataset(source)


@step
def validate_data(raw: pd.DataFrame, data: DataConfig) -> Annotated[pd.DataFrame, "dataset"]:
    return validate_dataset(raw, data.target, data.features, data.labels, data.max_missing_fraction)


@step
def split_data(
    dataset: pd.DataFrame, target: str, split: SplitConfig
) -> tuple[Annotated[pd.DataFrame, "train_set"], Annotated[pd.DataFrame, "test_set"]]:
    train, test = split_dataset(dataset, target, split.test_size, split.seed, split.stratify)
    return train, test
