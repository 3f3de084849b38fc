"""Evaluation plots as PNG files: confusion matrix, ROC, precision-recall, calibration and
permutation importance. Framework-blind: they need only labels, probabilities and the classes.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot state, no display needed).
"""

import base64
import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.calibration import CalibrationDisplay
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
    roc_auc_score,
)

PLOTS_FOLDER = "plots"  # in the MLflow run; the model card links to the files there
PLOT_NAMES = (
    "confusion_matrix",
    "roc_curve",
    "precision_recall_curve",
    "calibration_curve",
    "permutation_importance",
)
MAX_IMPORTANCE_BARS = 15


def _figure(title: str, size: tuple[float, float] = (5.5, 4.5)) -> tuple[Figure, object]:
    figure = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(title)
    return figure, axes


def _positive_classes(classes: Sequence) -> list:
    """Binary: the second class, as in the metrics. Multiclass: each class against the rest."""
    return list(classes[1:]) if len(classes) == 2 else list(classes)


def confusion_matrix_plot(y_true: Sequence, y_pred: Sequence, classes: Sequence) -> Figure:
    figure, axes = _figure("Confusion matrix (held-out data)")
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=list(classes), ax=axes, colorbar=False, cmap="Blues"
    )
    return figure


def _one_vs_rest(display, title: str, y_true, probabilities, classes, **options) -> Figure:
    figure, axes = _figure(title)
    y_true = np.asarray(y_true)
    for label in _positive_classes(classes):
        column = list(classes).index(label)
        display.from_predictions(
            y_true == label, probabilities[:, column], name=f"class {label}", ax=axes, **options
        )
    return figure


def roc_plot(y_true: Sequence, probabilities: np.ndarray, classes: Sequence) -> Figure:
    return _one_vs_rest(
        RocCurveDisplay, "ROC curve", y_true, probabilities, classes, plot_chance_level=True
    )


def precision_recall_plot(y_true: Sequence, probabilities: np.ndarray, classes: Sequence) -> Figure:
    return _one_vs_rest(
        PrecisionRecallDisplay, "Precision-recall curve", y_true, probabilities, classes
    )


def calibration_plot(y_true: Sequence, probabilities: np.ndarray, classes: Sequence) -> Figure:
    return _one_vs_rest(
        CalibrationDisplay, "Calibration (reliability)", y_true, probabilities, classes, n_bins=8
    )


class _Fitted:
    """permutation_importance asks for an estimator with `fit`; ours is fitted already and only
    needs predict_proba, whatever the framework."""

    def __init__(self, classifier) -> None:
        self.classifier = classifier

    def fit(self, *args, **kwargs) -> "_Fitted":
        return self


def _roc_auc(fitted: _Fitted, features: pd.DataFrame, y_true) -> float:
    probabilities = np.asarray(fitted.classifier.predict_proba(features))
    classes = list(fitted.classifier.classes_)
    if len(classes) == 2:
        return roc_auc_score(np.asarray(y_true) == classes[1], probabilities[:, 1])
    return roc_auc_score(y_true, probabilities, multi_class="ovr", labels=classes)


def permutation_importances(
    classifier, features: pd.DataFrame, y_true: Sequence, repeats: int = 5, seed: int = 42
) -> pd.DataFrame:
    """How much ROC AUC drops when one feature's values are shuffled (mean and std over
    `repeats` shuffles), most important first. Works for any model with predict_proba."""
    result = permutation_importance(
        _Fitted(classifier),
        features,
        np.asarray(y_true),
        scoring=_roc_auc,
        n_repeats=repeats,
        random_state=seed,
    )
    frame = pd.DataFrame(
        {"mean": result.importances_mean, "std": result.importances_std},
        index=pd.Index(features.columns, name="feature"),
    )
    return frame.sort_values("mean", ascending=False)


def importance_plot(importances: pd.DataFrame) -> Figure:
    top = importances.head(MAX_IMPORTANCE_BARS).iloc[::-1]  # largest bar on top
    figure, axes = _figure("Permutation importance (ROC AUC drop)", (6.5, 0.3 * len(top) + 1.5))
    axes.barh([str(name) for name in top.index], top["mean"], xerr=top["std"], color="tab:blue")
    axes.axvline(0.0, color="grey", linewidth=0.8)
    axes.set_xlabel("mean decrease in ROC AUC when shuffled")
    return figure


def evaluation_figures(
    y_true: Sequence,
    y_pred: Sequence,
    probabilities: np.ndarray,
    classes: Sequence,
    importances: pd.DataFrame,
) -> dict[str, Figure]:
    """Every evaluation plot, by the names of PLOT_NAMES."""
    probabilities = np.asarray(probabilities)
    return {
        "confusion_matrix": confusion_matrix_plot(y_true, y_pred, classes),
        "roc_curve": roc_plot(y_true, probabilities, classes),
        "precision_recall_curve": precision_recall_plot(y_true, probabilities, classes),
        "calibration_curve": calibration_plot(y_true, probabilities, classes),
        "permutation_importance": importance_plot(importances),
    }


def save_figures(figures: dict[str, Figure], folder: Path) -> list[Path]:
    """Write each figure as <folder>/<name>.png; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in figures.items():
        path = folder / f"{name}.png"
        figure.savefig(path, format="png")
        paths.append(path)
    return paths


def html_report(title: str, metrics: dict[str, float], images: Sequence[Path]) -> str:
    """One self-contained HTML page (PNG files inlined) for ZenML's dashboard."""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{value:.4f}</td></tr>"
        for name, value in metrics.items()
    )
    pictures = "".join(
        f'<figure><img alt="{html.escape(path.stem)}" style="max-width:100%" '
        f'src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"/>'
        f"<figcaption>{html.escape(path.stem.replace('_', ' '))}</figcaption></figure>"
        for path in images
    )
    return (
        f"<html><body style='font-family:sans-serif'><h2>{html.escape(title)}</h2>"
        f"<table>{rows}</table>{pictures}</body></html>"
    )


def plot_evaluation(
    classifier, features: pd.DataFrame, y_true: Sequence, folder: Path
) -> list[Path]:
    """Score `classifier` (predict, predict_proba, classes_) on held-out data and save every
    plot in `folder`."""
    figures = evaluation_figures(
        y_true,
        classifier.predict(features),
        classifier.predict_proba(features),
        list(classifier.classes_),
        permutation_importances(classifier, features, y_true),
    )
    return save_figures(figures, folder)
