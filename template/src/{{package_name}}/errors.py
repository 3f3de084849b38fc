"""Errors the CLI reports as one clear line (no traceback), followed by a hint line.

`{prog}` in a hint stands for the command's name.
"""


class ProjectError(Exception):
    """Base class: a problem the user can fix, described in one line."""

    hint = "`{prog} --verbose ...` shows the traceback"


class NoVersionError(ProjectError):
    """No model version holds the alias to deploy or score (e.g. every training was rejected)."""

    hint = (
        "`{prog} status` lists the versions and their gate verdicts; `{prog} promote --version N "
        "--force` makes one the champion without the gate"
    )


class ConfigError(ProjectError, ValueError):
    """A configuration file is missing or invalid."""

    hint = "the comments in configs/*.yaml describe every setting"


class DataValidationError(ProjectError, ValueError):
    """The dataset breaks a rule: the message names the column and the rule."""

    hint = "fix the data, or the `data:` rules in configs/training.yaml"


class DataSourceError(DataValidationError):
    """A data source or destination cannot be read or written: a missing file, no
    DATABASE_URL, an unreachable database, a failing query, an unknown driver."""

    hint = (
        "`data.source` (configs/training.yaml), `input` and `output` "
        "(configs/batch_inference.yaml); DATABASE_URL in .env or the environment (.env.example)"
    )


class MonitoringDataError(DataSourceError):
    """The batch outputs or the labels to monitor are missing or do not join."""

    hint = "configs/monitoring.yaml: predictions, labels, key, time_column"


class BatchDataError(DataValidationError):
    """The batch to score breaks a rule of the data the model was trained on."""

    hint = (
        "fix the batch (`input` in configs/batch_inference.yaml), or the `data:` rules in "
        "configs/training.yaml and retrain"
    )


class StackError(ProjectError):
    """The ZenML stack cannot be registered or used."""

    hint = "`{prog} doctor` checks the tracker and the stack"


class TrackerUnreachableError(ProjectError):
    """The MLflow tracking server does not answer."""

    hint = "`{prog} doctor` checks the tracker; MLFLOW_TRACKING_URI overrides stacks/*.yaml"


class TrackerLostError(TrackerUnreachableError):
    """The MLflow tracking server stopped answering in the middle of a command."""

    hint = (
        "run the command again once `{prog} doctor` passes; MLFLOW_HTTP_REQUEST_MAX_RETRIES and "
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR set how long MLflow retries (default about 4 minutes)"
    )


class CredentialsRejectedError(ProjectError):
    """The MLflow tracking server refuses the configured credentials (HTTP 401/403)."""

    hint = "edit .env (see .env.example), then `{prog} doctor`"


class PermissionMissingError(ProjectError):
    """The user may not write the project's experiment or registered model."""

    hint = "docs/team-tracker.md 'Users and permissions'; `{prog} doctor` shows your permissions"


class ZenmlServerError(ProjectError):
    """The ZenML server is unreachable, or no API key is set, or it refuses the key."""

    hint = "`{prog} login` checks the server URL and ZENML_STORE_API_KEY (README: 'ZenML server')"


class NoEndpointError(ProjectError):
    """Nothing is deployed for this model (no endpoint record), or the record has no example."""

    hint = "`{prog} deploy` serves the champion; `{prog} status` shows the endpoint"


class DeploymentError(ProjectError):
    """The model server did not start or answered wrongly."""


class DriftError(ProjectError):
    """The batch drifted from the training data and drift.mode is `fail`."""

    hint = "read the report; `drift.mode: warn` in configs/batch_inference.yaml scores anyway"


class PredictionError(ProjectError):
    """The scoring server refused the request or could not be reached."""

    hint = "`{prog} status` shows the endpoint; `{prog} deploy` (re)starts it"


class RequestRejectedError(PredictionError):
    """The scoring server answered 4xx: the rows do not fit the model's signature."""

    hint = (
        "send the columns and types of the model's input example (`{prog} predict` without "
        "--input sends it; `{prog} status` shows the endpoint)"
    )


class UnschedulableStackError(StackError):
    """The stack's orchestrator cannot run ZenML schedules (the local one runs pipelines now)."""

    hint = "schedules run on the production stack: `{prog} schedule --stack production`"
