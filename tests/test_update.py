"""`copier update` of a project with credentials: it asks nothing again and keeps .env."""

import shutil
import subprocess
from pathlib import Path

import copier
import yaml

from conftest import TEMPLATE


def git(cwd: Path, *args: str) -> None:
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", *identity, *args], cwd=cwd, check=True, capture_output=True)


def commit_and_tag(repo: Path, tag: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", tag)
    git(repo, "tag", tag)


def test_update_neither_asks_for_secrets_again_nor_touches_env(tmp_path):
    template = tmp_path / "template"
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "*cache*", "__pycache__")
    shutil.copytree(TEMPLATE, template, ignore=ignore)
    git(template, "init", "-q")
    commit_and_tag(template, "v0.1.0")
    project = tmp_path / "project"
    answers = {
        "project_name": "Fraud Detector",
        "mlflow_tracking_uri": "http://127.0.0.1:5000",
        "mlflow_auth": "basic",
        "mlflow_username": "alice",
        "mlflow_password": "pw-kept-across-updates",
    }
    copier.run_copy(str(template), project, data=answers, defaults=True, quiet=True)
    env_before = (project / ".env").read_text()
    git(project, "init", "-q")
    commit_and_tag(project, "generated")
    (template / "template" / "NEWS.md").write_text("What changed in v0.2.0\n")
    commit_and_tag(template, "v0.2.0")

    # Not interactive and only unanswered questions may be asked: a prompt would fail here.
    copier.run_update(project, defaults=False, skip_answered=True, overwrite=True, quiet=True)

    assert (project / "NEWS.md").is_file()
    assert (project / ".env").read_text() == env_before
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert recorded["_commit"] == "v0.2.0"
    assert recorded["mlflow_username"] == "alice" and "mlflow_password" not in recorded
