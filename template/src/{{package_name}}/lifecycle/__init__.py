"""The model lifecycle on MLflow's registry (no ZenML): registration, the validation gate,
the challenger/champion aliases and rollback, and the model card."""
