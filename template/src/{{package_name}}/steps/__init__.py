"""ZenML steps: thin wrappers that call the plain functions in data/, models/, evaluation/."""
