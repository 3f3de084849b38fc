"""Model Registry: registration (and later aliases, the validation gate, rollback) on MLflow."""
