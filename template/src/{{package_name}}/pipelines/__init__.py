"""ZenML pipelines, one per lifecycle stage, each configured by a YAML file under configs/."""
