"""ZenML steps: thin wrappers that call the plain functions in data/, models/, evaluation/."""

from zenml.config.retry_config import StepRetryConfig

# For the steps that talk to MLflow. A tracker that restarts with a request in flight breaks
# that request beyond what MLflow's client retries; a second attempt of the step, whose
# requests then wait for the server to come back, resumes the pipeline's MLflow run.
TRACKER_RETRY = StepRetryConfig(max_retries=1, delay=5)
