"""The data: load the configured source, check it against the `data:` rules, split it.

Plain pandas and scikit-learn. Sources are `sklearn:<name>` (a bundled dataset), a CSV or Parquet
file, or a `sql:` query (ml/sources.py reads them).
"""

import hashlib
import re
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api import types

from ..config import DataConfig, SplitConfig
from ..errors import DataValidationError
from . import csv_delimiter, sources
from . import features as your_features

BUNDLED_DATASETS = ("breast_cancer", "iris", "wine", "diabetes")  # scikit-learn's load_<name>
SKLEARN_PREFIX = "sklearn:"
# What unusable_columns() looks at: dates and numbers written as text, names of identifiers.
DATE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d.*)?")
COMMA_NUMBER = re.compile(r"-?\d+,\d+")
ID_NAME = re.compile(r"(^id|_id|Id|ID|uuid|UUID)$")
GUARD_SAMPLE_ROWS = 10_000  # rows unusable_columns() judges on


def load_dataset(
    source: str, database_url: str | None = None, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """CUSTOMIZE: the data source (`data.source` in configs/training.yaml, `input` in
    configs/batch_inference.yaml). `sklearn:<name>` loads a bundled dataset (target column
    `target`); `sql:<query>` runs a query on the database of DATABASE_URL; a `.parquet` or `.pq`
    path is a Parquet file; any other path a CSV file with a header row (ml/sources.py reads
    them). Another kind of source: return its rows as a DataFrame here.

    Receives the source string of a config (relative paths already made absolute), and
    `columns`: None, or the columns the caller needs (given for a CSV or Parquet file only):
    return at least these; more is fine (reading only them saves time and memory).
    Returns a DataFrame, one row per example, with unique column names: for training, the
    target and the feature columns; for batch inference, the model's input columns (a target
    or other columns may be there too). The `data:` rules are checked after it, so it need not
    validate; the data steps' cache and `train --if-changed` fingerprint what it returns."""
    if source.startswith(SKLEARN_PREFIX):
        name = source.removeprefix(SKLEARN_PREFIX)
        if name not in BUNDLED_DATASETS:
            known = ", ".join(f"{SKLEARN_PREFIX}{n}" for n in BUNDLED_DATASETS)
            raise DataValidationError(f"unknown bundled dataset '{source}': use one of {known}")
        from sklearn import datasets  # imported on use: a second, which CSV files do not need

        return getattr(datasets, f"load_{name}")(as_frame=True).frame
    return sources.read_source(source, database_url, columns)


def file_columns(source: str) -> list[str] | None:
    """A CSV or Parquet file's column names, from its header or schema (no rows read); None
    for another source, or a file that cannot tell (reading it then says why)."""
    path = Path(source)
    if sources.is_sql(source) or not path.is_file():
        return None
    try:
        if sources.is_parquet(source):
            import pyarrow.parquet as pq

            schema = pq.read_schema(path)
            index = (schema.pandas_metadata or {}).get("index_columns", [])
            return [name for name in schema.names if name not in index]
        with path.open(newline="", encoding="utf-8") as file:
            delimiter = csv_delimiter(file.readline())
        return list(pd.read_csv(path, sep=delimiter, nrows=0).columns)
    except (ValueError, OSError):  # pandas' and pyarrow's errors, a bad encoding
        return None


def training_columns(data: DataConfig, names: Sequence[str]) -> list[str]:
    """What training needs of data with these column `names`: `data.features` and the target,
    or every column but `data.exclude`. A name the data lacks: the error listing `names`."""
    _require_named(names, data.target, data.features, data.exclude)
    if data.features:
        return [*data.features, data.target]
    return [name for name in names if name not in data.exclude]


def load_training_data(data: DataConfig, database_url: str | None = None) -> pd.DataFrame:
    """The columns training needs of `data.source` (training_columns): a CSV or Parquet file
    is read for those only; another source is read as it is, then narrowed."""
    names = file_columns(data.source)
    columns = None if names is None else training_columns(data, names)
    frame = load_dataset(data.source, database_url, columns=columns)
    needed = training_columns(data, list(frame.columns)) if columns is None else columns
    _require_columns(frame, needed)
    return frame if len(frame.columns) == len(needed) else frame[needed]


def source_fingerprint(source: str) -> str:
    """Changes whenever the data behind `source` changes (a file's bytes, a query's result, the
    rows load_dataset() returns for another kind of source), so ZenML's step cache and
    `train --if-changed` never serve results computed from older data."""
    if source.startswith(SKLEARN_PREFIX):
        return f"{source}@scikit-learn-{version('scikit-learn')}"
    if sources.is_sql(source) or Path(source).is_file():
        return sources.fingerprint(source)
    # Read it: another kind's rows, or a missing file's "data file not found".
    return f"rows:{sources.frame_digest(load_dataset(source))}"


def data_steps_cache_key(source: str) -> str:
    """What the cached data steps compute from: the data, and the code of this package (the
    loading, validation and split rules) with pandas' version. ZenML keys its cache on a step's
    own code only: without this, an edited rule here would be served stale cached results."""
    digest = hashlib.sha256(f"{source_fingerprint(source)}@pandas-{version('pandas')}".encode())
    for module in (__file__, sources.__file__):
        digest.update(Path(module).read_bytes())
    return digest.hexdigest()


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


def listed(columns: Sequence, shown: int = 10) -> str:
    more = f" and {len(columns) - shown} more" if len(columns) > shown else ""
    return ", ".join(str(column) for column in list(columns)[:shown]) + more


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
    # Datetimes (Parquet, SQL) become ISO text, as CSV files and JSON requests carry them:
    # add_features() reads both with pd.to_datetime.
    dates = [c for c in features if types.is_datetime64_any_dtype(frame[c])]
    frame = frame.assign(**{c: frame[c].astype(str).where(frame[c].notna()) for c in dates})
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


def _require_named(
    names: Sequence, target: str, features: Sequence[str], exclude: Sequence[str]
) -> None:
    if target not in names:
        raise DataValidationError(
            f"data.target '{target}' (configs/training.yaml) is not a column of the data; its "
            f"columns: {listed(names)}"
        )
    unknown = [str(column) for column in [*features, *exclude] if column not in names]
    if unknown:
        raise DataValidationError(
            f"data.features or data.exclude (configs/training.yaml) name(s) {unknown}, not "
            f"columns of the data; its columns: {listed(names)}"
        )


def validate_dataset(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str] = (),
    labels: Sequence[bool | int | str] = (),
    max_missing_fraction: float = 0.0,
    task: str = "classification",
    exclude: Sequence[str] = (),
) -> pd.DataFrame:
    """Return the feature and target columns, or raise DataValidationError naming the column
    and the rule it breaks. No `features`: every column but the target and `exclude`."""
    _require_named(frame.columns, target, features, exclude)
    features = list(features) or [c for c in frame.columns if c != target and c not in exclude]
    if target in features:
        raise DataValidationError(f"column '{target}' is the target and cannot be a feature")
    if not features:
        raise DataValidationError(f"dataset has no feature columns besides the target '{target}'")
    # A row without a target cannot teach the model: left out, within the same limit.
    unknown = frame[target].isna()
    if unknown.mean() > max_missing_fraction:
        raise DataValidationError(
            f"target column '{target}' has {unknown.mean():.1%} missing values "
            f"(data.max_missing_fraction allows {max_missing_fraction:.1%}): rows without a "
            "target are left out, up to that share"
        )
    frame = frame[~unknown]
    inputs = validate_features(frame, features, max_missing_fraction)

    y = frame[target].reset_index(drop=True)
    if task == "regression":
        if not types.is_numeric_dtype(y) or types.is_bool_dtype(y):
            raise DataValidationError(
                f"target column '{target}' holds {y.dtype} values, not numbers: regression "
                "predicts a number (data.task: classification predicts a label)"
            )
        if y.nunique() < 2:
            raise DataValidationError(f"target column '{target}' has a single value")
        return inputs.assign(**{target: y.astype("float64")})
    _require_labels(y, target, labels)
    if y.nunique() < 2:
        raise DataValidationError(f"target column '{target}' needs at least two classes")
    return inputs.assign(**{target: y})


# The values an unquoted YAML boolean in data.labels stands for in a column of text.
YAML_BOOLEANS = {True: {"true", "yes", "y", "on", "1"}, False: {"false", "no", "n", "off", "0"}}


def _require_labels(y: pd.Series, target: str, labels: Sequence[bool | int | str]) -> None:
    """The target's values are among data.labels. YAML reads unquoted yes/no/true/false as
    booleans: for a column of text they match their spellings (yes, True, on, ...)."""
    if not labels:
        return
    exact, spelled = set(), set()
    for label in labels:
        if isinstance(label, bool) and not types.is_bool_dtype(y):
            spelled |= YAML_BOOLEANS[label]
        else:
            exact.add(str(label))
    values = {str(value) for value in y.unique()}
    unseen = sorted(v for v in values if v not in exact and v.lower() not in spelled)
    if unseen:
        typed = [str(label).lower() if isinstance(label, bool) else label for label in labels]
        hint = ""
        if spelled:
            hint = f" (unquoted yes/no/true/false are YAML booleans: quote them, e.g. {unseen[:2]})"
        raise DataValidationError(
            f"target column '{target}' has label(s) {unseen} not in data.labels {typed}{hint}"
        )


def split_dataset(
    frame: pd.DataFrame, target: str, test_size: float, seed: int, stratify: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified on the target's classes when `stratify` (ignored for a regression target:
    pass False)."""
    from sklearn.model_selection import train_test_split  # on use: a second to import

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


def validate_data(frame: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    """Check a loaded dataset against the `data:` rules, and that the model can learn from
    the columns add_features() leaves (see unusable_columns)."""
    rules = (data.target, data.features, data.labels, data.max_missing_fraction, data.task)
    dataset = validate_dataset(frame, *rules, exclude=data.exclude)
    inputs = dataset.drop(columns=[data.target])
    sample = inputs.sample(min(len(inputs), GUARD_SAMPLE_ROWS), random_state=0)
    try:
        derived = your_features.add_features(sample)
    except Exception as error:  # the user's code: name it, whatever it raised
        raise DataValidationError(
            f"add_features() in ml/features.py failed on the data: {type(error).__name__}: {error}"
        ) from error
    problems = unusable_columns(derived, data.high_cardinality)
    if problems:
        named = "; ".join(f"'{column}' {why}" for column, why in problems.items())
        raise DataValidationError(
            f"the model cannot learn from these columns: {named}. In configs/training.yaml, "
            "leave a column out with data.exclude (an ID: keep it in the output with "
            "pass_through in configs/batch_inference.yaml) or list the features in "
            "data.features; keep a category of many values on purpose with data.high_cardinality"
        )
    return dataset


def unusable_columns(frame: pd.DataFrame, allowed: Sequence[str] = ()) -> dict[str, str]:
    """Columns (what add_features returns) a model cannot learn from, with why: raw dates,
    identifiers and free text, which the encoding would turn into one column per row."""
    problems = {}
    for name in frame.columns:
        column = frame[name].dropna()
        if name in allowed or len(column) < 20:  # too few rows to tell
            continue
        text = not types.is_numeric_dtype(column) and not types.is_bool_dtype(column)
        if types.is_datetime64_any_dtype(column) or (
            text and column.astype(str).str.fullmatch(DATE).mean() > 0.9
        ):
            problems[name] = (
                "holds dates: derive what matters in add_features() (ml/features.py), e.g. "
                f"pd.to_datetime(frame['{name}']).dt.month, and drop the raw column there"
            )
        elif text and column.astype(str).str.fullmatch(COMMA_NUMBER).mean() > 0.9:
            problems[name] = (
                "holds numbers written with a comma ('12,5' or '1,000'): write them as plain "
                "numbers (12.5, 1000), or they are read as text"
            )
        elif text and column.nunique() > len(column) / 2:
            problems[name] = (
                f"has {column.nunique()} distinct values in {len(column)} rows: an identifier "
                "or free text, not a category"
            )
        elif (
            not text
            and column.nunique() == len(column)
            and (column % 1 == 0).all()
            and (ID_NAME.search(str(name)) or column.is_monotonic_increasing)
        ):
            problems[name] = "has a distinct whole number in every row: an identifier"
    return problems


def split_data(
    dataset: pd.DataFrame, data: DataConfig, split: SplitConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    stratify = split.stratify and data.task == "classification"
    return split_dataset(dataset, data.target, split.test_size, split.seed, stratify)


def sample_positions(
    count: int, rows: int, seed: int = 42, labels: Sequence | None = None
) -> np.ndarray:
    """The positions, in order, of a seeded sample of `rows` of `count` rows (all of them when
    there are no more). With `labels` (one per row), each label keeps its share, unless one is
    too rare for that (then the rows are drawn alike)."""
    if count <= rows:
        return np.arange(count)
    from sklearn.model_selection import train_test_split

    positions = np.arange(count)
    try:
        kept, _ = train_test_split(positions, train_size=rows, random_state=seed, stratify=labels)
    except ValueError:
        kept, _ = train_test_split(positions, train_size=rows, random_state=seed)
    return np.sort(kept)


def training_rows(train_set: pd.DataFrame, data: DataConfig, seed: int) -> pd.DataFrame:
    """The rows the model learns from: the training split, or a seeded sample of
    `data.sample_rows` of them (stratified on the labels for classification)."""
    if not data.sample_rows or data.sample_rows >= len(train_set):
        return train_set
    labels = train_set[data.target] if data.task == "classification" else None
    kept = sample_positions(len(train_set), data.sample_rows, seed, labels)
    return train_set.iloc[kept].reset_index(drop=True)


def validate_training_data(frame: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    """validate_data() on what load_training_data() returned: the columns training needs, their
    names checked (the excluded columns are not there to leave out)."""
    return validate_data(frame, data.model_copy(update={"exclude": []}))


def load_validated(data: DataConfig) -> pd.DataFrame:
    """Load the columns training needs of the configured data; check them against the
    `data:` rules."""
    return validate_training_data(load_training_data(data), data)


def load_and_split(data: DataConfig, split: SplitConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training pipeline's data steps in one call: the same seed gives the same held-out
    rows, so versions can be compared outside the pipeline (e.g. `promote`)."""
    return split_data(load_validated(data), data, split)
