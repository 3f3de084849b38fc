"""Load the dataset named in configs/training.yaml: a bundled scikit-learn set or a CSV file."""

import csv
import hashlib
from collections import Counter
from pathlib import Path

import pandas as pd
import sklearn
from sklearn import datasets

from ..errors import DataValidationError

BUNDLED_DATASETS = {
    "breast_cancer": datasets.load_breast_cancer,
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
}
SKLEARN_PREFIX = "sklearn:"


def load_dataset(source: str) -> pd.DataFrame:
    """`sklearn:<name>` loads a bundled dataset (target column `target`); anything else is a
    path to a CSV file with a header row."""
    if source.startswith(SKLEARN_PREFIX):
        name = source.removeprefix(SKLEARN_PREFIX)
        if name not in BUNDLED_DATASETS:
            known = ", ".join(f"{SKLEARN_PREFIX}{n}" for n in BUNDLED_DATASETS)
            raise DataValidationError(f"unknown bundled dataset '{source}': use one of {known}")
        return BUNDLED_DATASETS[name](as_frame=True).frame
    path = Path(source)
    if not path.is_file():
        raise DataValidationError(f"data file not found: {path}")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataValidationError(f"data file is empty: {path}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataValidationError(f"cannot read {path} as CSV: {error}") from None
    _require_unique_header(path)
    return frame


def _require_unique_header(path: Path) -> None:
    """pandas renames a repeated column ('x', 'x.1', ...): the model would then expect inputs
    that no caller sends. Refuse the file instead."""
    with path.open(newline="", encoding="utf-8") as file:
        counts = Counter(next(csv.reader(file), []))
    repeated = [f"'{name}' ({count}x)" for name, count in counts.items() if count > 1]
    if repeated:
        more = f" and {len(repeated) - 3} more" if len(repeated) > 3 else ""
        raise DataValidationError(
            f"column(s) {', '.join(repeated[:3])}{more} appear more than once in the header of "
            f"{path}: column names must be unique"
        )


def source_fingerprint(source: str) -> str:
    """Changes whenever the data behind `source` changes, so ZenML's step cache never serves
    results computed from an older file."""
    if source.startswith(SKLEARN_PREFIX):
        return f"{source}@scikit-learn-{sklearn.__version__}"
    path = Path(source)
    if not path.is_file():
        return f"missing:{path}"
    return hashlib.sha256(path.read_bytes()).hexdigest()
