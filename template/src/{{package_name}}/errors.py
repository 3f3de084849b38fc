"""Errors the CLI reports as one clear line (no traceback)."""


class ProjectError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class ConfigError(ProjectError, ValueError):
    """A configuration file is missing or invalid."""


class DataValidationError(ProjectError, ValueError):
    """The dataset breaks a rule: the message names the column and the rule."""


class StackError(ProjectError):
    """The ZenML stack cannot be registered or used."""


class TrackerUnreachableError(ProjectError):
    """The MLflow tracking server does not answer."""


class CredentialsRejectedError(ProjectError):
    """The MLflow tracking server refuses the configured credentials (HTTP 401/403)."""


class ZenmlServerError(ProjectError):
    """The ZenML server is unreachable, or no API key is set, or it refuses the key."""
