"""Data: load, validate and split the dataset (plain pandas / scikit-learn, no ZenML)."""
