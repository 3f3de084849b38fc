"""Machine learning in plain pandas, scikit-learn and Keras: no ZenML, no MLflow registry."""

# Every framework reports these names, so gates and reports never depend on the framework.
METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "roc_auc")
