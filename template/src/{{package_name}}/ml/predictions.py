# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""Model output as table columns: what the endpoint answers and batch inference writes."""

from collections.abc import Sequence

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from sklearn.base import is_classifier

from .features import model_features


def prediction_frame(model, rows: pd.DataFrame) -> pd.DataFrame:
    """A `prediction` column (the number, or the most probable label) and, for classifiers,
    one `probability_<label>` column per class."""
    if not is_classifier(model):
        return pd.DataFrame({"prediction": np.asarray(model.predict(rows)).ravel()})
    return prediction_columns(model.predict_proba(rows), list(model.classes_))


class ServedModel(mlflow.pyfunc.PythonModel):
    """How MLflow serves every model of this project: named raw columns in (checked against
    the signature), prediction_frame out, plus `unseen_categories` when the model has
    categorical columns: per row, those whose value training never saw (encoded as none of
    the known ones). Gaps are imputed as in training, unless the data rules allowed none
    (data.max_missing_fraction: 0): then a row with one is refused (HTTP 400), never scored.
    A regression's predictions are clipped to `target_range` (data.target_range). The fitted
    Pipeline is pickled with it: load models only from a registry you trust."""

    def __init__(self, model, allow_gaps: bool = True, target_range=None) -> None:
        self.model, self.allow_gaps, self.target_range = model, allow_gaps, target_range

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if not self.allow_gaps:  # the check costs a fifth of a one-row request: only when needed
            gaps = [str(c) for c in model_input.columns[model_input.isna().any().to_numpy()]]
            if gaps:
                raise MlflowException(
                    f"column(s) {gaps} have missing values, and the model was trained with "
                    "data.max_missing_fraction 0: send complete rows",
                    error_code=INVALID_PARAMETER_VALUE,
                )
        frame = prediction_frame(self.model, model_input)
        if getattr(self, "target_range", None):  # models logged before it have none
            frame["prediction"] = frame["prediction"].clip(*self.target_range)
        unseen = unseen_categories(self.model, model_input)
        return frame if unseen is None else frame.assign(unseen_categories=unseen.to_numpy())


def unseen_categories(model, rows: pd.DataFrame) -> pd.Series | None:
    """Per row, the categorical columns (after add_features) whose value the model never saw
    in training, comma-separated ("" for none); None when it has no categorical columns."""
    encode = model.named_steps["inputs"].named_steps["encode"]
    fitted = {name: (steps, columns) for name, steps, columns in encode.transformers_}
    steps, columns = fitted.get("categorical", (None, []))
    if not len(columns):
        return None
    features = model_features(model, rows)[list(columns)].set_axis(rows.index)
    known = dict(zip(columns, steps.named_steps["encode"].categories_, strict=True))
    unseen = ~features.isin(known) & features.notna()
    return unseen.dot(unseen.columns + ", ").str[:-2]  # per row: "name, " for each True


def outside_range(predicted, y: pd.Series, target_range=None) -> str | None:
    """A note when a regression's held-out predictions leave the target's range:
    data.target_range (served predictions are clipped to it), or, without one, below 0 for a
    target that never is (a price, a count)."""
    predicted = np.asarray(predicted, dtype=float)
    low, high = target_range or ((0.0 if y.min() >= 0 else None), None)
    outside = 0 if low is None and high is None else np.sum(predicted != predicted.clip(low, high))
    if not outside:
        return None
    counted = f"{outside} of {len(predicted)} held-out predictions"
    if target_range:
        return f"{counted} lie outside data.target_range {list(target_range)}: served clipped"
    return (
        f"{counted} are negative, though '{y.name}' never is: "
        "data.target_range: [0, null] clips them"
    )


def clipped_count(loaded, predictions: pd.DataFrame) -> int:
    """Predictions of a loaded pyfunc model that data.target_range clipped (at its bounds)."""
    try:
        bounds = getattr(loaded.unwrap_python_model(), "target_range", None) or ()
    except MlflowException:  # logged with MLflow's sklearn flavor (template 0.2): no range
        return 0
    return int(predictions["prediction"].isin([b for b in bounds if b is not None]).sum())


def unseen_counts(unseen: pd.Series) -> dict[str, int]:
    """Rows with an unseen category, per column, from the `unseen_categories` column."""
    names = unseen[unseen != ""].str.split(", ").explode()
    return {str(name): int(count) for name, count in names.value_counts().items()}


def prediction_columns(output, classes: Sequence) -> pd.DataFrame:
    """A `prediction` column of labels, plus one `probability_<label>` column per label for
    models that answer with probabilities. Tables that already have `prediction` pass through."""
    if isinstance(output, pd.DataFrame) and "prediction" in output.columns:
        return output.reset_index(drop=True)
    array = np.asarray(output)
    if array.ndim == 2 and len(classes) == array.shape[1] > 1:
        frame = pd.DataFrame(array, columns=[f"probability_{label}" for label in classes])
        frame.insert(0, "prediction", [classes[index] for index in array.argmax(axis=1)])
        return frame
    return pd.DataFrame({"prediction": array.reshape(len(array), -1)[:, 0]})


def score_rows(model, rows: pd.DataFrame) -> pd.DataFrame:
    """A loaded pyfunc model's answer for these rows, as table columns: what batch inference
    writes and the pipeline deployment answers (MLflow's scoring server calls the same
    ServedModel.predict)."""
    return prediction_columns(model.predict(rows), [])


def same_predictions(served: list, expected, tolerance: float = 1e-5) -> bool:
    """What a server answered (JSON: a list, or records for table outputs) against the model's
    own output: labels must match exactly, probabilities up to float rounding."""
    served_frame, expected_frame = pd.DataFrame(served), pd.DataFrame(expected)
    if served_frame.shape != expected_frame.shape:
        return False
    served_frame.columns = expected_frame.columns  # a list gives column 0, like a Series
    try:
        pd.testing.assert_frame_equal(
            served_frame, expected_frame, check_dtype=False, check_exact=False, atol=tolerance
        )
    except AssertionError:
        return False
    return True
