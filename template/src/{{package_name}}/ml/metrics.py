# CUSTOMIZE: yours to change; `copier update` merges template changes into your edits.
"""Metrics on held-out data, per task: the same names for every model framework."""

from collections.abc import Sequence

import numpy as np
from sklearn import metrics
from sklearn.dummy import DummyClassifier, DummyRegressor

# CUSTOMIZE: each task's metric names (a new metric: compute it below, name it here). Every
# framework reports them, so gates and reports never depend on it.
METRICS = {
    "classification": ("accuracy", "precision", "recall", "f1", "roc_auc"),
    "regression": ("rmse", "mae", "r2", "mape"),
}
# Errors: lower is better (the gate sets maximums on them). The other metrics are scores.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mape"})


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

    Receives the held-out labels, the model's labels and its probabilities (one column per
    entry of `classes`, in that order), for any number of rows (at least one per class is
    likely, not certain). Returns {name: float} for every name in METRICS["classification"]:
    the gate, the model card, tuning and the baseline read them by name.
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
    targets. Receives the held-out targets and predictions; returns {name: float} for every
    name in METRICS["regression"], which the gate, the card and tuning read by name."""
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


def baseline_metrics(y_train, y_true, task: str, average: str = "macro") -> dict[str, float]:
    """The naive baseline a model must beat, fitted on the training split's target and scored
    like a model: classification always answers the most frequent class, with the class
    shares as probabilities (roc_auc 0.5); regression answers the training mean (r2 about 0)."""
    regression = task == "regression"
    naive = DummyRegressor(strategy="mean") if regression else DummyClassifier(strategy="prior")
    naive.fit(np.zeros((len(y_train), 1)), y_train)
    return evaluate(naive, np.zeros((len(y_true), 1)), y_true, task, average)
