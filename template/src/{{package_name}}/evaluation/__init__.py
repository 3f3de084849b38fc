"""Evaluation: metrics (and later plots and model cards), framework-blind."""
