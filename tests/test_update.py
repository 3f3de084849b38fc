"""`copier update`: a project made from the last release, edited as a user would, updated to this
working tree. User edits survive, conflicts are marked, the migration runs once, `make update`
guards and reports, and the updated project still passes its tests and trains.

The template is a temp git repo: the last release as shipped in `tests/releases/` (made with
`git archive <tag> copier.yml template`, so no clone, tag or history is needed), tagged, then this
working tree committed on top and tagged as the next release.
"""

import re
import subprocess
import sys
import tarfile
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import copier
import pytest
import yaml
from mlflow import MlflowClient

from conftest import TEMPLATE, copy_working_tree, run

LAST_RELEASE = "v0.2.4"  # the last release of the old layout
RELEASED = (LAST_RELEASE, "v0.3.0")  # tests/releases/, oldest first
RELEASES = TEMPLATE / "tests" / "releases"
MIGRATION = TEMPLATE / "migrations" / "v0_2_0_model_name.py"
COPIER = str(Path(sys.executable).parent / "copier")
OURS, THEIRS = "<<<<<<< before updating", ">>>>>>> after updating"


def git(cwd: Path, *args: str) -> str:
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    result = subprocess.run(["git", *identity, *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def commit(repo: Path, message: str, tag: str | None = None) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    if tag:
        git(repo, "tag", tag)


def version(tag: str) -> tuple[int, ...]:
    return tuple(int(part) for part in tag.lstrip("v").split("."))


def next_release(repo: Path) -> str:
    """A tag above every release tag and at least every migration's version, so that updating
    to it crosses (and runs) the migrations this working tree ships."""
    tags = [
        t for t in git(repo, "tag", "--list", "v*").split() if re.fullmatch(r"v\d+\.\d+\.\d+", t)
    ]
    major, minor, patch = max(map(version, tags))
    config = yaml.safe_load((repo / "copier.yml").read_text())
    migrations = [version(m["version"]) for m in config.get("_migrations", [])]
    return "v{}.{}.{}".format(*max([(major, minor, patch + 1), *migrations]))


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, str]:
    """(repo, tag): the releases, then the working tree (uncommitted changes included, as
    render() does) committed on top and tagged as the next release."""
    repo = tmp_path_factory.mktemp("template-repo") / "template"
    repo.mkdir()
    git(repo, "init", "-q")
    for tag in RELEASED:
        with tarfile.open(RELEASES / f"{tag}.tar.gz") as release:
            release.extractall(repo, filter="data")
        commit(repo, f"Release {tag}", tag)
        git(repo, "rm", "-rq", ".")
    copy_working_tree(repo)
    tag = next_release(repo)
    commit(repo, "The working tree", tag)
    return repo, tag


def make(project: Path, *targets: str) -> subprocess.CompletedProcess:
    """`make` as in CI: no terminal on stdin, so Copier answers new questions with defaults."""
    return subprocess.run(
        ["make", *targets], cwd=project, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )


def keep_ours(path: Path) -> int:
    """Resolve every conflict in `path` as a user keeping their own lines; return how many."""
    pattern = re.compile(rf"^{OURS}\n(.*?)^=======\n.*?^{THEIRS}\n", re.M | re.S)
    text, count = pattern.subn(r"\1", path.read_text())
    path.write_text(text)
    return count


def keep_theirs(path: Path) -> int:
    """Resolve every conflict in `path` by taking the template's lines; return how many."""
    pattern = re.compile(rf"^{OURS}\n.*?^=======\n(.*?)^{THEIRS}\n", re.M | re.S)
    text, count = pattern.subn(r"\1", path.read_text())
    path.write_text(text)
    return count


def conflict(ours: str, theirs: str) -> str:
    return f"{OURS}\n{ours}\n=======\n{theirs}\n{THEIRS}\n"


# --- The migration script, on its own --------------------------------------------------------

TRAINING_0_1 = """\
split:
  seed: 42

registry:
  # Name of the model in the MLflow Model Registry and the ZenML Model Control Plane.
  model_name: churn_eu

promotion:
  mode: enforce
"""
TRAINING_0_2 = """\
split:
  seed: 42

# Name of the model in the MLflow Model Registry and the ZenML Model Control Plane.
model_name: churn_eu

promotion:
  mode: enforce
"""


def migrate(project: Path) -> str:
    return run([sys.executable, str(MIGRATION)], cwd=project).stdout


def test_migration_moves_the_key_and_keeps_values_comments_and_layout(tmp_path):
    configs = tmp_path / "configs"
    (configs / "experiments").mkdir(parents=True)
    (configs / "training.yaml").write_text(TRAINING_0_1)
    (configs / "experiments" / "wide.yml").write_text(
        "registry:   # ours\n    model_name: 'wide'  # quoted\n\nsplit: {seed: 1}\n"
    )
    (configs / "flow.yaml").write_text("registry: {model_name: flow}\nsplit: {seed: 2}\n")
    deployment = "model_name: churn_eu\nalias: champion\n"
    (configs / "deployment.yaml").write_text(deployment)
    git(tmp_path, "init", "-q")
    commit(tmp_path, "a project made with 0.1.0")

    output = migrate(tmp_path)

    assert (configs / "training.yaml").read_text() == TRAINING_0_2
    wide = "# ours\nmodel_name: 'wide'  # quoted\n\nsplit: {seed: 1}\n"
    assert (configs / "experiments" / "wide.yml").read_text() == wide
    assert (configs / "flow.yaml").read_text() == "model_name: flow\nsplit: {seed: 2}\n"
    assert (configs / "deployment.yaml").read_text() == deployment
    moved = ["configs/experiments/wide.yml", "configs/flow.yaml", "configs/training.yaml"]
    assert output.splitlines() == [
        f"migration 0.2.0: {name}: `registry.model_name` -> `model_name`" for name in moved
    ]
    # Staged: Copier's merge reads the index, so the move counts as the user's side.
    assert git(tmp_path, "diff", "--cached", "--name-only").split() == moved

    assert migrate(tmp_path) == ""  # idempotent: nothing left to move
    assert (configs / "training.yaml").read_text() == TRAINING_0_2


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (f"{conflict('x: 1', 'x: 2')}registry:\n  model_name: a\n", "not valid YAML"),
        ("model_name: a\nregistry:\n  model_name: b\n", "both `model_name` and `registry."),
        ("registry:\n  model_name: a\n  stage: prod\n", "has other keys too: ['stage']"),
    ],
)
def test_migration_leaves_what_it_cannot_rewrite_safely_and_says_so(tmp_path, content, reason):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "training.yaml").write_text(content)
    output = migrate(tmp_path)
    assert (tmp_path / "configs" / "training.yaml").read_text() == content
    assert "configs/training.yaml left as is: " in output and reason in output
    assert "by hand" in output


# --- Updating a generated project ------------------------------------------------------------

TEAM_NOTES = "## Team notes\n\nAsk #fraud-ml before retraining.\n"
README_LINE = "An ML project on [ZenML](https://docs.zenml.io) pipelines"
PACKAGE = Path("src/fraud_detector")
USER_FILES = {  # files of the user's own, in a folder the new layout no longer has
    "src/fraud_detector/steps/feature_report.py": '''\
"""Our own step: a per-feature summary of the training data."""

import pandas as pd
from zenml import step


def feature_report(data: pd.DataFrame) -> pd.DataFrame:
    return data.describe().T


@step
def report_features(data: pd.DataFrame) -> pd.DataFrame:
    return feature_report(data)
''',
    "tests/test_feature_report.py": """\
import pandas as pd

from fraud_detector.steps.feature_report import feature_report


def test_one_row_per_feature():
    report = feature_report(pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 5.0]}))
    assert list(report.index) == ["a", "b"]
""",
    "docs/decisions.md": "# Decisions\n\n- 2026-11: the EU model gets its own name.\n",
}
MEDIAN, MEAN = (
    'SimpleImputer(strategy="median")), ("scale"',
    'SimpleImputer(strategy="mean")), ("scale"',
)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} in {path}"
    path.write_text(text.replace(old, new))


def user_edits(project: Path) -> None:
    """What a user does with a 0.2.4 project: a hyperparameter, the model's name, a config of
    their own, the model file, a data module, a step and its test, README notes, a new file."""
    training, small = project / "configs" / "training.yaml", project / "configs" / "small.yaml"
    edit(training, "    C: 1.0\n", "    C: 0.5\n")
    for name in ("training.yaml", "deployment.yaml", "batch_inference.yaml"):
        edit(project / "configs" / name, "model_name: fraud_detector\n", "model_name: fraud_eu\n")
    small.write_text(training.read_text().replace("    C: 0.5\n", "    C: 0.1\n"))
    edit(project / PACKAGE / "models" / "sklearn.py", MEDIAN, MEAN)  # moves to ml/sklearn.py
    load = project / PACKAGE / "data" / "load.py"  # merged into ml/data.py: no single new home
    load.write_text(load.read_text() + "\n\n# Ours: the EU extract is loaded from here.\n")
    readme = project / "README.md"
    edit(readme, README_LINE, f"Our fraud model for the EU. {README_LINE}")
    # A section of the team's own, before the template's first section (the end of the README
    # is where the template adds things: an edit there would conflict, rightly).
    edit(readme, "\n## Quick start\n", f"\n{TEAM_NOTES}\n## Quick start\n")
    for name, content in USER_FILES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(content)


@pytest.mark.lifecycle
def test_update_from_the_last_release_keeps_user_edits_and_the_project_still_trains(
    template, tmp_path
):
    shared, release = template
    repo = tmp_path / "template"  # this test adds a later release: its own clone (tags too)
    git(tmp_path, "clone", "-q", str(shared), str(repo))
    project = tmp_path / "fraud-detector"
    answers = {"project_name": "Fraud Detector"}
    copier.run_copy(str(repo), project, data=answers, defaults=True, vcs_ref=LAST_RELEASE)
    git(project, "init", "-q")
    commit(project, "Generated from the template")
    user_edits(project)
    load_before = (project / PACKAGE / "data" / "load.py").read_text()
    commit(project, "Our changes")

    # 1. The update to the new layout, as `make update` runs it. The imputer the user changed in
    # the model file now lives in ml/features.py (shared by every framework): the model file's
    # new home shows their line as a conflict, it is not dropped.
    result = make(project, "update")
    log = result.stdout + result.stderr
    assert result.returncode != 0, log  # conflicts to resolve
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == release
    # The layout migration ran once, before and after the merge, and said what it did per file.
    assert log.count("/migrations/v0_3_0_layout.py") == 2
    assert log.count("migration 0.3.0: ") == 2, log
    moved = f"{PACKAGE}/models/sklearn.py -> {PACKAGE}/ml/sklearn.py: your changes 1 conflict(s)"
    assert f"migration 0.3.0: {moved} marked" in log
    assert f"migration 0.3.0: {PACKAGE}/data/load.py: kept with your changes" in log
    assert (
        f"Conflicts: you and the template changed the same lines in\n  {PACKAGE}/ml/sklearn.py\n"
        in result.stdout
    )
    model = project / PACKAGE / "ml" / "sklearn.py"
    assert MEAN in model.read_text() and "model_inputs()" in model.read_text()
    # Resolved as the CHANGELOG says: the template's model file, the user's imputer in its new
    # home.
    keep_theirs(model)
    edit(project / PACKAGE / "ml" / "features.py", MEDIAN, MEAN)
    assert not (project / PACKAGE / "models").exists()  # the template's old modules are gone
    assert (project / PACKAGE / "data" / "load.py").read_text() == load_before
    # The other edits are all there.
    training = project / "configs" / "training.yaml"
    assert "    C: 0.5\n" in training.read_text()
    for name in ("training.yaml", "deployment.yaml", "batch_inference.yaml", "small.yaml"):
        assert "model_name: fraud_" in (project / "configs" / name).read_text()
    text = (project / "README.md").read_text()
    assert f"Our fraud model for the EU. {README_LINE}" in text
    assert f"\n{TEAM_NOTES}\n## Quick start\n" in text
    for name, content in USER_FILES.items():
        assert (project / name).read_text() == content
    commit(project, "Update from the template")

    # 2. `make update` wants a clean tree, and changes nothing then.
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "Work in progress.\n")
    dirty = make(project, "update")
    assert dirty.returncode != 0
    assert "make update needs a clean git tree" in dirty.stdout
    assert " M README.md" in dirty.stdout
    assert readme.read_text().endswith("Work in progress.\n")
    git(project, "checkout", "README.md")

    again = make(project, "update")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"Updated to template {release}." in again.stdout
    assert "No conflicts." in again.stdout
    assert "v0_3_0_layout.py" not in again.stdout + again.stderr  # guarded by version
    assert git(project, "status", "--porcelain") == ""  # a second update is a no-op

    # 3. A later release changes the hyperparameter the user changed: `make update` says so.
    template_training = repo / "template" / "configs" / "training.yaml.jinja"
    edit(template_training, "    C: 1.0\n", "    C: 2.0\n")
    later = "v{}.{}.{}".format(*version(release)[:2], version(release)[2] + 1)
    commit(repo, "A later release", later)
    reported = make(project, "update")
    assert reported.returncode != 0
    assert f"Updated to template {later}." in reported.stdout
    assert (
        "Conflicts: you and the template changed the same lines in\n  configs/training.yaml\n"
        in (reported.stdout)
    )
    assert conflict("    C: 0.5", "    C: 2.0") in training.read_text()
    assert keep_ours(training) == 1
    commit(project, "Update to the later release")

    # 4. The updated project installs, lints, passes its tests (the user's too) and trains with
    # the user's hyperparameter, model name and imputation.
    run(["make", "setup"], cwd=project, timeout=1200)
    run(["make", "lint"], cwd=project)
    tests = run([".venv/bin/pytest", "-m", "not e2e", "-v"], cwd=project, timeout=1200).stdout
    assert "tests/test_feature_report.py::test_one_row_per_feature PASSED" in tests
    assert re.search(r"\d+ passed", tests) and not re.search(r"\d+ failed", tests)
    trained = run(["make", "train"], cwd=project, timeout=1200).stdout
    assert "fraud_eu v1" in trained
    client = MlflowClient(f"sqlite:///{project / '.zenml-artifacts' / 'mlflow.db'}")
    (registered,) = client.search_model_versions("name='fraud_eu'")
    assert client.get_run(registered.run_id).data.params["estimator__C"] == "0.5"
    uri = f"sqlite:///{project / '.zenml-artifacts' / 'mlflow.db'}"
    show = (
        "import sys, mlflow; mlflow.set_tracking_uri(sys.argv[1]); "
        "model = mlflow.pyfunc.load_model(sys.argv[2]).unwrap_python_model().model; "
        "print(model.get_params()['inputs__encode__numeric__impute__strategy'])"
    )
    command = [".venv/bin/python", "-c", show, uri, f"models:/fraud_eu/{registered.version}"]
    assert run(command, cwd=project).stdout.split()[-1] == "mean"  # the user's imputation


def load_layout_migration():
    spec = spec_from_file_location("layout", TEMPLATE / "migrations" / "v0_3_0_layout.py")
    layout = module_from_spec(spec)
    spec.loader.exec_module(layout)
    return layout


def test_the_layout_migration_has_a_home_for_every_moved_module():
    """Every 0.2.x module it names exists in 0.2.4, and its new home in this release."""
    layout = load_layout_migration()
    with tarfile.open(RELEASES / f"{LAST_RELEASE}.tar.gz") as release:
        shipped = {
            re.sub(r"\{%.*?%\}", "", name.split("{{package_name}}/", 1)[1]).removesuffix(".jinja")
            for name in release.getnames()
            if "{{package_name}}/" in name
        }
    package = TEMPLATE / "template" / "src" / "{{package_name}}"
    here = {
        re.sub(r"\{%.*?%\}", "", path.relative_to(package).as_posix()).removesuffix(".jinja")
        for path in package.rglob("*")
    }
    for old, new in layout.MOVED.items():
        assert old in shipped and old not in here, old
        assert new in here, new


def test_the_layout_migration_marks_a_conflicting_change_as_copier_does(tmp_path, monkeypatch):
    """A user's change to a line the new release also changed: both kept, marked, unmerged."""
    layout = load_layout_migration()
    git(tmp_path, "init", "-q")
    home = tmp_path / "sklearn.py"
    home.write_text("a = 1\nstrategy = 'most_frequent'\nb = 2\n")  # the new release's file
    commit(tmp_path, "the new release")
    base, ours = tmp_path / "base.py", tmp_path / "ours.py"
    base.write_text("a = 1\nstrategy = 'median'\nb = 2\n")
    ours.write_text("a = 1\nstrategy = 'mean'\nb = 2\n")
    monkeypatch.chdir(tmp_path)

    assert layout.merge_into(Path("sklearn.py"), ours, base) == 1

    assert conflict("strategy = 'mean'", "strategy = 'most_frequent'") in home.read_text()
    assert git(tmp_path, "diff", "--name-only", "--diff-filter=U").split() == ["sklearn.py"]


def test_update_neither_asks_for_secrets_again_nor_touches_env(template, tmp_path):
    repo, release = template
    project = tmp_path / "project"
    answers = {
        "project_name": "Fraud Detector",
        "mlflow_tracking_uri": "http://127.0.0.1:5000",
        "mlflow_auth": "basic",
        "mlflow_username": "alice",
        "mlflow_password": "pw-kept-across-updates",
    }
    copier.run_copy(
        str(repo), project, data=answers, defaults=True, vcs_ref=LAST_RELEASE, quiet=True
    )
    env_before = (project / ".env").read_text()
    assert "pw-kept-across-updates" in env_before
    git(project, "init", "-q")
    commit(project, "generated")
    # Every non-secret answer the new release wants (its new questions included), as a fresh copy
    # records them: with these given, only a secret question could still prompt.
    fresh = tmp_path / "fresh"
    copier.run_copy(str(repo), fresh, data=answers, defaults=True, vcs_ref=release, quiet=True)
    known = yaml.safe_load((fresh / ".copier-answers.yml").read_text())
    known = {key: value for key, value in known.items() if not key.startswith("_")}

    # Not interactive and not defaulted: a prompt (for a secret) would fail here.
    copier.run_update(
        project, data=known, defaults=False, skip_answered=True, overwrite=True, unsafe=True
    )

    assert (project / ".env").read_text() == env_before
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert recorded["_commit"] == release
    assert recorded["mlflow_username"] == "alice" and "mlflow_password" not in recorded
    assert "pw-kept-across-updates" not in (project / ".copier-answers.yml").read_text()
    assert git(project, "status", "--porcelain", "--", ".env") == ""  # still gitignored


def test_answering_serving_again_switches_the_project_to_the_other_mode(template, tmp_path):
    """README: `copier update -d serving=...` switches; the files only the other mode uses go,
    and the stack serves with the new mode's component."""
    repo, release = template
    project = tmp_path / "project"
    copier.run_copy(
        str(repo),
        project,
        data={"project_name": "Fraud Detector"},
        defaults=True,
        vcs_ref=release,
        quiet=True,
    )
    git(project, "init", "-q")
    commit(project, "generated")
    assert (project / PACKAGE / "platform" / "model_server.py").is_file()

    copier.run_update(
        project,
        data={"serving": "pipeline-deployment"},
        defaults=True,
        overwrite=True,
        unsafe=True,
        vcs_ref=release,
        quiet=True,
    )

    assert not (project / PACKAGE / "platform" / "model_server.py").exists()
    assert not (project / PACKAGE / "pipelines" / "deployment.py").exists()
    assert (project / PACKAGE / "pipelines" / "inference.py").is_file()
    components = yaml.safe_load((project / "stacks" / "local.yaml").read_text())["components"]
    assert components["deployer"]["flavor"] == "local" and "model_deployer" not in components
    assert "workers:" not in (project / "configs" / "deployment.yaml").read_text()
    leftovers = git(project, "status", "--porcelain").splitlines()
    assert not [line for line in leftovers if line.endswith(".rej") or line.startswith("UU")]


# --- From 0.3.0, switching a capability on and off ----------------------------------------------

OWN_FEATURE = (
    "    return frame\n",
    '    return frame.assign(area_ratio=frame["worst area"] / frame["mean area"])\n',
)


def update(project: Path, release: str, **answers) -> None:
    copier.run_update(
        project,
        data=answers,
        defaults=True,
        overwrite=True,
        unsafe=True,
        vcs_ref=release,
        quiet=True,
    )


def test_a_capability_switched_on_and_off_by_update_keeps_user_edits(template, tmp_path):
    """A 0.3.0 project (the last release before answers decided what is rendered), edited: the
    update keeps the user's feature, threshold, notes and files while what the answers do not
    use goes; `copier update -d hyperparameter_tuning=true` brings tuning in (code, config,
    tests), `=false` takes it out again, `-d monitoring=true` brings monitoring back, the user's
    edits still there."""
    repo, release = template
    project = tmp_path / "project"
    answers = {"project_name": "Fraud Detector"}
    copier.run_copy(str(repo), project, data=answers, defaults=True, vcs_ref="v0.3.0", quiet=True)
    git(project, "init", "-q")
    commit(project, "generated")
    features, training = (
        project / PACKAGE / "ml" / "features.py",
        project / "configs" / "training.yaml",
    )
    edit(features, *OWN_FEATURE)
    edit(training, "    roc_auc: 0.05\n", "    roc_auc: 0.08\n")
    edit(project / "README.md", "\n## Quick start\n", f"\n{TEAM_NOTES}\n## Quick start\n")
    (project / "notebooks").mkdir()
    (project / "notebooks" / "explore.py").write_text("# Ours.\n")
    commit(project, "Our changes")
    tuning = project / PACKAGE / "ml" / "tuning.py"
    assert tuning.is_file()  # 0.3.0 rendered tuning in every project

    def user_edits_kept() -> None:
        assert OWN_FEATURE[1] in features.read_text()
        assert "    roc_auc: 0.08\n" in training.read_text()
        assert f"\n{TEAM_NOTES}\n## Quick start\n" in (project / "README.md").read_text()
        assert (project / "notebooks" / "explore.py").read_text() == "# Ours.\n"
        status = git(project, "status", "--porcelain").splitlines()
        assert not [line for line in status if line.endswith(".rej") or line[:2] == "UU"]
        ruff = Path(sys.executable).parent / "ruff"
        run([str(ruff), "check", "--no-cache", "."], cwd=project)

    update(project, release)
    user_edits_kept()
    assert not tuning.exists() and "\ntuning:" not in training.read_text()
    monitoring = project / PACKAGE / "ml" / "monitoring.py"
    assert not monitoring.exists() and not (project / "configs" / "monitoring.yaml").exists()
    commit(project, "Update")

    update(project, release, hyperparameter_tuning=True)
    user_edits_kept()
    assert "def search(" in tuning.read_text()
    assert (project / "tests" / "test_tuning.py").is_file()
    assert "\ntuning:" in training.read_text()
    commit(project, "Tuning on")

    update(project, release, hyperparameter_tuning=False)
    user_edits_kept()
    assert not tuning.exists() and not (project / "tests" / "test_tuning.py").exists()
    assert "\ntuning:" not in training.read_text()
    commit(project, "Tuning off")

    update(project, release, monitoring=True)
    user_edits_kept()
    assert "def judge_windows(" in monitoring.read_text()
    assert (project / "configs" / "monitoring.yaml").is_file()
    assert "\nmonitor:" in (project / "Makefile").read_text()
