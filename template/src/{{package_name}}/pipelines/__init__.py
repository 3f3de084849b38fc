"""ZenML pipelines, one module per lifecycle stage: its few thin steps and the pipeline, each
configured by a YAML file under configs/."""
