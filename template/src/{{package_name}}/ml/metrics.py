"""Classification metrics on held-out data: the same names for every model framework."""

from collections.abc import Sequence

import numpy as np
from sklearn import metrics

from . import METRIC_NAMES


def classification_metrics(
    y_true: Sequence, y_pred: Sequence, probabilities: np.ndarray, classes: Sequence
) -> dict[str, float]:
    """CUSTOMIZE: the metrics (add a name to METRIC_NAMES too). Binary targets score the
    second class as positive; multiclass targets use macro averages.

    `probabilities` has one column per entry of `classes`, in that order.
    """
    binary = len(classes) == 2
    average = "binary" if binary else "macro"
    options = {"pos_label": classes[1]} if binary else {}
    scores = {
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "precision": metrics.precision_score(
            y_true, y_pred, average=average, zero_division=0, **options
        ),
        "recall": metrics.recall_score(y_true, y_pred, average=average, zero_division=0, **options),
        "f1": metrics.f1_score(y_true, y_pred, average=average, zero_division=0, **options),
        "roc_auc": metrics.roc_auc_score(
            y_true,
            probabilities[:, 1] if binary else probabilities,
            multi_class="raise" if binary else "ovr",
            labels=None if binary else list(classes),
        ),
    }
    return {name: round(float(scores[name]), 6) for name in METRIC_NAMES}


def evaluate_classifier(model, features, labels) -> dict[str, float]:
    """Score any fitted classifier with scikit-learn's predict / predict_proba / classes_."""
    return classification_metrics(
        labels, model.predict(features), model.predict_proba(features), list(model.classes_)
    )
