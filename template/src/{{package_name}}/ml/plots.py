# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""Evaluation plots as PNG files, per task. Classification: confusion matrix, ROC,
precision-recall, calibration; regression: predicted against actual, residuals; both:
permutation importance. Framework-blind: they need only predictions (and probabilities).
They are drawn from a seeded sample of at most MAX_PLOT_ROWS held-out rows (stratified on the
classes): enough for every curve, in seconds at any size; the metrics use every row.

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
from sklearn.base import is_classifier
from sklearn.calibration import CalibrationDisplay
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    PredictionErrorDisplay,
    RocCurveDisplay,
)

from .data import sample_positions

PLOTS_FOLDER = "plots"  # in the MLflow run; the model card links to the files there
PLOT_NAMES = (  # the model card shows them in this order
    "confusion_matrix",
    "roc_curve",
    "precision_recall_curve",
    "calibration_curve",
    "predicted_vs_actual",
    "residuals",
    "permutation_importance",
)
MAX_IMPORTANCE_BARS = 15
MAX_PLOT_ROWS = 10_000


def _figure(title: str, size: tuple[float, float] = (5.5, 4.5)) -> tuple[Figure, object]:
    figure = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot(title=title)


def confusion_matrix_plot(y_true: Sequence, y_pred: Sequence, classes: Sequence) -> Figure:
    figure, axes = _figure("Confusion matrix (held-out data)")
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=list(classes), ax=axes, colorbar=False, cmap="Blues"
    )
    return figure


def _one_vs_rest(display, title: str, y_true, probabilities, classes, axis_labels, **options):
    """One curve per class against the rest (binary: the second class only, as in the
    metrics), named by class."""
    figure, axes = _figure(title)
    y_true, first = np.asarray(y_true), 1 if len(classes) == 2 else 0
    for column, label in enumerate(list(classes)[first:], start=first):
        display.from_predictions(
            y_true == label, probabilities[:, column], name=f"{label}", ax=axes, **options
        )
    axes.set(xlabel=axis_labels[0], ylabel=axis_labels[1])  # not "(Positive label: True)"
    return figure


def roc_plot(y_true: Sequence, probabilities: np.ndarray, classes: Sequence) -> Figure:
    labels = ("false positive rate", "true positive rate")
    figure = _one_vs_rest(RocCurveDisplay, "ROC curve", y_true, probabilities, classes, labels)
    axes = figure.axes[0]
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance level (AUC = 0.5)")
    axes.legend(loc="lower right")
    return figure


def precision_recall_plot(y_true: Sequence, probabilities: np.ndarray, classes: Sequence) -> Figure:
    title, labels = "Precision-recall curve", ("recall", "precision")
    return _one_vs_rest(PrecisionRecallDisplay, title, y_true, probabilities, classes, labels)


def calibration_plot(y_true: Sequence, probabilities: np.ndarray, classes: Sequence) -> Figure:
    title, labels = "Calibration (reliability)", ("mean predicted probability", "share of class")
    return _one_vs_rest(CalibrationDisplay, title, y_true, probabilities, classes, labels, n_bins=8)


def prediction_error_plot(y_true: Sequence, y_pred: Sequence, kind: str) -> Figure:
    """kind: actual_vs_predicted (on the diagonal when right) or residual_vs_predicted."""
    title = "Predicted vs actual" if kind == "actual_vs_predicted" else "Residuals"
    figure, axes = _figure(f"{title} (held-out data)")
    PredictionErrorDisplay.from_predictions(
        np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float), kind=kind, ax=axes
    )
    return figure


def permutation_importances(
    model, features: pd.DataFrame, y_true: Sequence, repeats: int = 5, seed: int = 42
) -> pd.DataFrame:
    """How much the score (ROC AUC for classifiers, R² for regressors) drops when one
    feature's values are shuffled (mean and std over `repeats` shuffles), most important
    first."""
    binary = is_classifier(model) and len(model.classes_) == 2
    scoring = "r2" if not is_classifier(model) else "roc_auc" if binary else "roc_auc_ovr"
    result = permutation_importance(
        model, features, np.asarray(y_true), scoring=scoring, n_repeats=repeats, random_state=seed
    )
    frame = pd.DataFrame({"mean": result.importances_mean, "std": result.importances_std})
    return frame.set_axis(features.columns.rename("feature")).sort_values("mean", ascending=False)


def importance_plot(importances: pd.DataFrame, score: str = "ROC AUC") -> Figure:
    top = importances.head(MAX_IMPORTANCE_BARS).iloc[::-1]  # largest bar on top
    figure, axes = _figure(f"Permutation importance ({score} drop)", (6.5, 0.3 * len(top) + 1.5))
    axes.barh([str(name) for name in top.index], top["mean"], xerr=top["std"], color="tab:blue")
    axes.axvline(0.0, color="grey", linewidth=0.8)
    axes.set_xlabel(f"mean decrease in {score} when shuffled")
    return figure


def evaluation_figures(model, features: pd.DataFrame, y_true: Sequence) -> dict[str, Figure]:
    """Every evaluation plot of the model's task, by the names of PLOT_NAMES."""
    predictions = model.predict(features)
    importances = permutation_importances(model, features, y_true)
    if not is_classifier(model):  # scikit-learn's kind of each prediction error plot
        kinds = {"predicted_vs_actual": "actual_vs_predicted", "residuals": "residual_vs_predicted"}
        errors = {name: prediction_error_plot(y_true, predictions, k) for name, k in kinds.items()}
        return errors | {"permutation_importance": importance_plot(importances, "R²")}
    probabilities, classes = np.asarray(model.predict_proba(features)), list(model.classes_)
    return {
        "confusion_matrix": confusion_matrix_plot(y_true, predictions, classes),
        "roc_curve": roc_plot(y_true, probabilities, classes),
        "precision_recall_curve": precision_recall_plot(y_true, probabilities, classes),
        "calibration_curve": calibration_plot(y_true, probabilities, classes),
        "permutation_importance": importance_plot(importances),
    }


def save_figures(figures: dict[str, Figure], folder: Path) -> list[Path]:
    """Write each figure as <folder>/<name>.png; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png" for name in figures]
    for path, figure in zip(paths, figures.values(), strict=True):
        figure.savefig(path, format="png")
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


def plots_note(rows: int) -> str:
    """What the plots of `rows` held-out rows show, when that is a sample of them."""
    sampled = f"plots on a seeded sample of {MAX_PLOT_ROWS:,} of the {rows:,} held-out rows"
    return sampled if rows > MAX_PLOT_ROWS else ""


def plot_evaluation(
    model, features: pd.DataFrame, y_true: Sequence, folder: Path, max_rows: int = MAX_PLOT_ROWS
) -> list[Path]:
    """Score a fitted model on held-out data (a seeded sample of at most `max_rows` rows, each
    class keeping its share) and save every plot of its task in `folder`."""
    y_true = np.asarray(y_true)
    kept = sample_positions(len(y_true), max_rows, labels=y_true if is_classifier(model) else None)
    return save_figures(evaluation_figures(model, features.iloc[kept], y_true[kept]), folder)
