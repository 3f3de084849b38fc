# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""Aliases on the MLflow Model Registry: challenger and champion, and rollback. MLflow
aliases only, never the deprecated stages."""

import getpass
import subprocess
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from ..errors import NoVersionError, ProjectError
from ..platform.tracker import is_insert_race

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION_TAG = "previous_champion"


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def require_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion:
    """The version under `alias`, or a NoVersionError saying why there is none."""
    found = version_by_alias(client, name, alias)
    if found is not None:
        return found
    if not client.search_model_versions(f"name='{name}'", max_results=1):
        raise NoVersionError(f"model '{name}' has no versions yet: train one first")
    why = "no version has passed the gate yet" if alias == CHAMPION else "no version has it"
    raise NoVersionError(f"model '{name}' has no '{alias}' version: {why}")


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        raise ProjectError(f"model '{name}' has no version {version}") from None


def resolve_version(
    client: MlflowClient, name: str, alias: str, version: str | None = None
) -> ModelVersion:
    """`version` if given, else the version under `alias`: what deploy and batch-infer use."""
    return get_version(client, name, version) if version else require_alias(client, name, alias)


def audit_context(project_root: Path | None = None, **extra: str) -> dict[str, str]:
    """Who promoted what, when, from which commit: written onto the model version."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    context = {"user": getpass.getuser(), "time": now, **extra}
    head = ["git", "rev-parse", "HEAD"]
    try:
        commit = subprocess.run(head, cwd=project_root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return context  # no git: the commit is simply not recorded
    if commit.returncode == 0:  # else not a git checkout
        context["git_commit"] = commit.stdout.strip()
    return context


def set_alias(client: MlflowClient, name: str, alias: str, version: str) -> None:
    """Point `alias` at `version`, the last writer winning.

    Two trainings gating at once may both create a new alias; MLflow's store refuses the second
    insert (a unique-constraint error) although the alias then exists: setting it again updates
    it.
    """
    for attempt in range(3):
        try:
            client.set_registered_model_alias(name, alias, str(version))
            return
        except MlflowException as error:
            if attempt == 2 or not is_insert_race(error):
                raise
            time.sleep(0.5)


def set_champion(client: MlflowClient, name: str, version: str) -> None:
    """Point `champion` at `version`, remembering the one it replaces for rollback."""
    previous = version_by_alias(client, name, CHAMPION)
    if previous and str(previous.version) != str(version):
        client.set_model_version_tag(name, str(version), PREVIOUS_CHAMPION_TAG, previous.version)
    set_alias(client, name, CHAMPION, version)


def rollback(client: MlflowClient, name: str, context: dict[str, str]) -> tuple[str, str]:
    """Give `champion` back to the version it replaced; returns (from, to)."""
    current = version_by_alias(client, name, CHAMPION)
    if current is None:
        raise ProjectError(f"model '{name}' has no champion to roll back")
    if not (previous := current.tags.get(PREVIOUS_CHAMPION_TAG)):
        raise ProjectError(f"champion v{current.version} replaced no earlier champion")
    set_alias(client, name, CHAMPION, previous)
    note = f"{context['time']} by {context['user']}"
    client.set_model_version_tag(name, current.version, "rolled_back", f"{note}: to v{previous}")
    restored = f"{note}: from v{current.version}"
    client.set_model_version_tag(name, previous, "restored_by_rollback", restored)
    return str(current.version), previous
