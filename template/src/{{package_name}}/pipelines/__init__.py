# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""ZenML pipelines, one module per lifecycle stage: its few thin steps and the pipeline, each
configured by a YAML file under configs/."""
