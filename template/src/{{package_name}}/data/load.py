"""Load the dataset named in configs/training.yaml: a bundled scikit-learn set or a CSV file."""

import csv
import hashlib
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from ..errors import DataValidationError

BUNDLED_DATASETS = ("breast_cancer", "iris", "wine")  # scikit-learn's load_<name>
SKLEARN_PREFIX = "sklearn:"


def load_dataset(source: str) -> pd.DataFrame:
    """`sklearn:<name>` loads a bundled dataset (target column `target`); anything else is a
    path to a CSV file with a header row."""
    if source.startswith(SKLEARN_PREFIX):
        name = source.removeprefix(SKLEARN_PREFIX)
        if name not in BUNDLED_DATASETS:
            known = ", ".join(f"{SKLEARN_PREFIX}{n}" for n in BUNDLED_DATASETS)
            raise DataValidationError(f"unknown bundled dataset '{source}': use one of {known}")
        from sklearn import datasets  # imported on use: a second, which CSV files do not need

        return getattr(datasets, f"load_{name}")(as_frame=True).frame
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
        return f"{source}@scikit-learn-{version('scikit-learn')}"
    path = Path(source)
    if not path.is_file():
        return f"missing:{path}"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def data_steps_cache_key(source: str) -> str:
    """What the cached data steps compute from: the data, and the code of this package (the
    loading, validation and split rules) with pandas' version. ZenML keys its cache on a step's
    own code only: without this, an edited rule here would be served stale cached results."""
    digest = hashlib.sha256(f"{source_fingerprint(source)}@pandas-{version('pandas')}".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
