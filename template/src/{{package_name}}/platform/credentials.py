"""Settings and credentials: the environment first, then the project's gitignored .env.

The database URL of `sql:` sources stays in this process's environment; nothing read here is
written anywhere else.
"""

import os
import stat
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path

ENV_FILE = ".env"
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


def export_data_settings(root: Path, environ: MutableMapping[str, str] | None = None) -> None:
    """DATABASE_URL from .env into this process's environment, unless the environment has it:
    the pipelines' steps run in this process and read it there. It is not written anywhere,
    and never passed as a step parameter (ZenML would store it with the run)."""
    environ = os.environ if environ is None else environ
    for name, value in environment_values(root, DATA_SETTINGS, environ).items():
        if not environ.get(name, "").strip():
            environ[name] = value
