# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""The model lifecycle on MLflow's registry (no ZenML): registration, the validation gate,
the challenger/champion aliases and rollback, and the model card."""
