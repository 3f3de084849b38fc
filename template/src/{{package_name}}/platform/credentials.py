"""Tracker settings and credentials: the environment first, then the project's gitignored .env.

Tracker values are read here and handed to ZenML as a secret; the database URL of `sql:` sources
stays in this process's environment. They are never written anywhere else.
"""

import os
import stat
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path

from ..errors import StackError

ENV_FILE = ".env"
SETTINGS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)
AUTH_METHODS = ("none", "basic", "token")
# The database of `sql:` sources and outputs (ml/sources.py reads it from the environment).
DATA_SETTINGS = ("DATABASE_URL",)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines (comments, blank lines and `export ` prefixes allowed)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def keep_private(path: Path) -> None:
    """Copier writes files with the default umask: make .env readable by its owner only."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o600)
        print(f"note: {path} was readable by others; its mode is now 0600", file=sys.stderr)


def environment_values(
    root: Path, names: Iterable[str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The non-empty values of these variables; the environment wins over .env."""
    environ = os.environ if environ is None else environ
    path = root / ENV_FILE
    from_file = {}
    if path.is_file():
        keep_private(path)
        from_file = read_env_file(path)
    values = {}
    for name in names:
        value = environ.get(name) or from_file.get(name) or ""
        if value.strip():
            values[name] = value.strip()
    return values


def tracker_settings(root: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The non-empty MLFLOW_TRACKING_* settings; the environment wins over .env."""
    return environment_values(root, SETTINGS, environ)


def export_data_settings(root: Path, environ: MutableMapping[str, str] | None = None) -> None:
    """DATABASE_URL from .env into this process's environment, unless the environment has it:
    the pipelines' steps run in this process and read it there. It is not written anywhere,
    and never passed as a step parameter (ZenML would store it with the run)."""
    environ = os.environ if environ is None else environ
    for name, value in environment_values(root, DATA_SETTINGS, environ).items():
        if not environ.get(name, "").strip():
            environ[name] = value


def credentials_for(auth: str, settings: Mapping[str, str]) -> dict[str, str]:
    """The values of the ZenML secret for this auth method: {username, password}, {token} or {}.

    With auth `none`, credentials found in the environment are still used: a server may need
    them even if the project was generated without.
    """
    if auth not in AUTH_METHODS:
        raise StackError(f"auth must be one of {', '.join(AUTH_METHODS)}, got '{auth}'")
    username = settings.get("MLFLOW_TRACKING_USERNAME")
    password = settings.get("MLFLOW_TRACKING_PASSWORD")
    token = settings.get("MLFLOW_TRACKING_TOKEN")
    if auth == "basic" and not (username and password):
        raise StackError(
            "the tracker uses basic auth: set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD in .env or the environment (see .env.example)"
        )
    if auth == "token" and not token:
        raise StackError(
            "the tracker uses token auth: set MLFLOW_TRACKING_TOKEN in .env or the environment "
            "(see .env.example)"
        )
    if auth != "token" and username and password:
        return {"username": username, "password": password}
    if token:
        return {"token": token}
    return {}
