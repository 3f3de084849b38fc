"""ZenML pipelines, one per lifecycle stage, each configured by a YAML file under configs/."""

from pathlib import Path

from zenml.utils import source_utils


def use_package_sources() -> None:
    """Steps must load as `<package>.steps...` (from src/), not as `src.<package>...` (from the
    ZenML repository root): one copy of every module and of every exception class."""
    source_utils.set_custom_source_root(str(Path(__file__).resolve().parents[2]))
