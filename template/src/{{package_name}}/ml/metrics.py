"""Metrics on held-out data, per task: the same names for every model framework."""

from collections.abc import Sequence

import numpy as np
from sklearn import metrics

from . import METRICS


def classification_metrics(
    y_true: Sequence,
    y_pred: Sequence,
    probabilities: np.ndarray,
    classes: Sequence,
    average: str = "macro",
) -> dict[str, float]:
    """CUSTOMIZE: the classification metrics (add a name to METRICS too). Binary targets score
    the second class as positive; multi-class targets average per class (`data.average`:
    macro, each class counts the same; weighted, by class size; micro, every row the same),
    and roc_auc is one-vs-rest.

    `probabilities` has one column per entry of `classes`, in that order.
    """
    binary = len(classes) == 2
    options = {"average": "binary", "pos_label": classes[1]} if binary else {"average": average}
    scores = {
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "precision": metrics.precision_score(y_true, y_pred, zero_division=0, **options),
        "recall": metrics.recall_score(y_true, y_pred, zero_division=0, **options),
        "f1": metrics.f1_score(y_true, y_pred, zero_division=0, **options),
        "roc_auc": (
            metrics.roc_auc_score(np.asarray(y_true) == classes[1], probabilities[:, 1])
            if binary
            else metrics.roc_auc_score(
                y_true, probabilities, multi_class="ovr", average=average, labels=list(classes)
            )
        ),
    }
    return {name: round(float(scores[name]), 6) for name in METRICS["classification"]}


def regression_metrics(y_true: Sequence, y_pred: Sequence) -> dict[str, float]:
    """CUSTOMIZE: the regression metrics (add a name to METRICS too, and to LOWER_IS_BETTER
    if it is an error). mape is a fraction (0.1 = 10 %); it grows without bound near zero
    targets."""
    scores = {
        "rmse": metrics.root_mean_squared_error(y_true, y_pred),
        "mae": metrics.mean_absolute_error(y_true, y_pred),
        "r2": metrics.r2_score(y_true, y_pred),
        "mape": metrics.mean_absolute_percentage_error(y_true, y_pred),
    }
    return {name: round(float(scores[name]), 6) for name in METRICS["regression"]}


def evaluate(model, features, y_true, task: str, average: str = "macro") -> dict[str, float]:
    """Score any fitted scikit-learn-style model (predict; classifiers also predict_proba and
    classes_) on held-out data."""
    if task == "regression":
        return regression_metrics(y_true, model.predict(features))
    probabilities = model.predict_proba(features)
    classes = list(model.classes_)
    return classification_metrics(y_true, model.predict(features), probabilities, classes, average)
