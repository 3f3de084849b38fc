"""Evaluation: metrics (and later plots and model cards), framework-blind."""

# Every framework reports these names, so gates and reports never depend on the framework.
METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "roc_auc")
