"""Template 0.3.0: the package's modules move into ml/, lifecycle/, pipelines/ and platform/.

Copier deletes every file the new template no longer has, edited or not, so a change made to a
moved module would be lost without a word. Copier runs this script twice during an update that
crosses 0.3.0 (`_migrations` in copier.yml), in the project's root, with Copier's own Python:

- `before`: render the project's previous template version (its `.copier-answers.yml`) and keep
  every file the user changed since, with the version they changed, under .git/ (Copier does
  not look there).
- `after`: for each kept file the update removed, merge the user's change into the module's new
  home (a three-way merge: conflicts are marked as Copier marks them and listed by
  `make update`), or, when it has no single new home, put the user's file back where it was,
  to be ported by hand. Each file gets one line of output. Running it again changes nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

VERSION = "0.3.0"
# Where a 0.2.x module of the package now lives (paths under src/<package>/).
MOVED = {
    "credentials.py": "platform/credentials.py",
    "data/drift.py": "ml/drift.py",
    "evaluation/metrics.py": "ml/metrics.py",
    "evaluation/model_card.py": "lifecycle/model_card.py",
    "evaluation/plots.py": "ml/plots.py",
    "models/tuning.py": "ml/tuning.py",
    "models/sklearn.py": "ml/sklearn.py",
    "models/keras.py": "ml/keras.py",
    "registry/gate.py": "lifecycle/gate.py",
    "registry/registration.py": "lifecycle/registration.py",
    "registry/promotion.py": "lifecycle/aliases.py",
    "serving/predictions.py": "ml/predictions.py",
    "serving/client.py": "platform/scoring.py",
    "serving/remote.py": "platform/remote.py",
    "stack.py": "platform/stack.py",
    "tracker.py": "platform/tracker.py",
    "zenml_server.py": "platform/zenml_server.py",
}
MARKERS = ["-L", "before updating", "-L", "last update", "-L", "after updating"]


def git(*args: str, input: str | None = None) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True, input=input)
    if result.returncode != 0:
        raise SystemExit(f"migration {VERSION}: git {args[0]} failed: {result.stderr.strip()}")
    return result.stdout


def stash_dir() -> Path:
    return Path(git("rev-parse", "--git-dir").strip()).resolve() / f"copier-migration-{VERSION}"


def render_previous(destination: Path) -> None:
    """The project as the template version it was made with generated it."""
    import copier  # Copier's own Python runs this script

    recorded = yaml.safe_load(Path(".copier-answers.yml").read_text())
    answers = {key: value for key, value in recorded.items() if not key.startswith("_")}
    copier.run_copy(
        recorded["_src_path"],
        destination,
        data=answers,
        vcs_ref=recorded["_commit"],
        defaults=True,
        quiet=True,
        unsafe=True,
        skip_tasks=True,
    )


def before() -> None:
    """Keep (user's file, the template's version of it) for every file the user changed."""
    stash = stash_dir()
    shutil.rmtree(stash, ignore_errors=True)
    with tempfile.TemporaryDirectory() as previous:
        render_previous(Path(previous))
        for base in sorted(Path(previous).rglob("*")):
            name = base.relative_to(previous).as_posix()
            ours = Path(name)
            if not base.is_file() or name.startswith(".git/") or not ours.is_file():
                continue
            if ours.read_bytes() != base.read_bytes():
                for side, source in (("ours", ours), ("base", base)):
                    (stash / side / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, stash / side / name)


def new_home(name: str) -> Path | None:
    parts = Path(name).parts
    if len(parts) < 3 or parts[0] != "src":
        return None
    moved = MOVED.get("/".join(parts[2:]))
    return Path("src", parts[1], moved) if moved else None


def merge_into(home: Path, ours: Path, base: Path) -> int:
    """Three-way merge of the user's change into `home` (the new template's file); returns the
    number of conflicts, recorded in the index as Copier records its own."""
    theirs = home.read_text()
    with tempfile.TemporaryDirectory() as scratch:
        merged, template = Path(scratch, "ours"), Path(scratch, "theirs")
        shutil.copy2(ours, merged)
        template.write_text(theirs)
        command = ["git", "merge-file", *MARKERS, str(merged), str(base), str(template)]
        conflicts = max(subprocess.run(command, capture_output=True).returncode, 0)
        home.write_text(merged.read_text())
    if conflicts:
        stages = [git("hash-object", "-w", "--", str(path)).strip() for path in (base, ours)]
        stages.append(git("hash-object", "-w", "--stdin", input=theirs).strip())
        entries = "".join(f"100644 {blob} {n}\t{home}\n" for n, blob in enumerate(stages, 1))
        git("update-index", "--index-info", input=f"0 {'0' * 40}\t{home}\n{entries}")
    return conflicts


def after() -> None:
    stash = stash_dir()
    if not stash.is_dir():
        return
    for ours in sorted((stash / "ours").rglob("*")):
        name = ours.relative_to(stash / "ours").as_posix()
        if not ours.is_file() or Path(name).exists():
            continue  # still in the template: Copier merged the user's change itself
        home = new_home(name)
        if home is not None and home.is_file():
            conflicts = merge_into(home, ours, stash / "base" / name)
            outcome = f"{conflicts} conflict(s) marked" if conflicts else "merged"
            print(f"migration {VERSION}: {name} -> {home}: your changes {outcome}")
        else:
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ours, name)
            print(
                f"migration {VERSION}: {name}: kept with your changes; the template no longer "
                "has it (CHANGELOG.md says where its code went): port them, then delete it"
            )
    shutil.rmtree(stash)


if __name__ == "__main__":
    stage = sys.argv[1] if len(sys.argv) > 1 else ""
    if stage not in ("before", "after"):
        raise SystemExit(f"usage: {sys.argv[0]} before|after")
    before() if stage == "before" else after()
