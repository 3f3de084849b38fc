"""Template 0.2.0: `registry.model_name` in the pipeline configs becomes a top-level `model_name`.

deployment.yaml and batch_inference.yaml already name the model with a top-level `model_name`;
training.yaml now does too. Copier runs this script once, before it merges the new template into
a project made with an older version (`_migrations` in copier.yml), in the project's root, with
Copier's own Python (PyYAML is one of Copier's dependencies).

Every YAML file under configs/ that still has the old key is rewritten in place: the template's
configs and the copies a user made, which no template update would reach otherwise. Values and
comments are kept; only the key moves. The rewritten files are staged, so that Copier's three-way
merge takes them as the user's side (Copier diffs the git index, not the work tree). Files it
cannot rewrite safely are left alone with a message. Running it again changes nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

OLD, NEW = "registry.model_name", "model_name"
REGISTRY_LINE = re.compile(r"^registry\s*:(?P<rest>.*)$")


class Skip(Exception):
    """This file has the old key but cannot be rewritten safely."""


def migrate(text: str) -> str | None:
    """`text` with `registry.model_name` moved to a top-level `model_name`, or None when there is
    nothing to move. Raises Skip when the file needs a person."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        if "registry:" in text:
            raise Skip("not valid YAML (unresolved conflict markers?)") from None
        return None
    registry = data.get("registry") if isinstance(data, dict) else None
    if not isinstance(registry, dict) or "model_name" not in registry:
        return None
    if set(registry) != {"model_name"}:
        raise Skip(f"`registry:` has other keys too: {sorted(set(registry) - {'model_name'})}")
    if "model_name" in data:
        raise Skip("it has both `model_name` and `registry.model_name`")

    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if REGISTRY_LINE.match(line)), None)
    if start is None:
        raise Skip("`registry:` is not written as a plain key at the start of a line")
    end = start + 1  # the block: the indented (or blank) lines under `registry:`
    while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t"):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # blank lines after the block belong to what follows

    rest = REGISTRY_LINE.match(lines[start].rstrip("\r\n"))["rest"].strip()
    if rest and not rest.startswith("#"):  # flow style: `registry: {model_name: x}`
        moved = [f"{NEW}: {yaml.safe_dump(registry['model_name'], default_flow_style=True)}"]
        moved[0] = moved[0].replace("\n...\n", "\n")
    else:
        body = lines[start + 1 : end]
        indent = min(len(line) - len(line.lstrip(" \t")) for line in body if line.strip())
        moved = ([f"{rest}\n"] if rest else []) + [
            line[indent:] if line.strip() else line for line in body
        ]
    result = "".join(lines[:start] + moved + lines[end:])

    expected = {key: value for key, value in data.items() if key != "registry"}
    expected[NEW] = registry["model_name"]
    try:
        same = yaml.safe_load(result) == expected
    except yaml.YAMLError:
        same = False
    if not same:
        raise Skip("the rewritten file would not mean the same")
    return result


def stage(path: Path) -> None:
    """Put the rewritten file in the git index (tracked files only), where Copier reads it."""
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", "--", str(path)], capture_output=True, check=False
    )
    if tracked.returncode == 0:
        subprocess.run(["git", "add", "--", str(path)], check=True)


def main() -> int:
    configs = sorted(p for p in Path("configs").rglob("*") if p.suffix in (".yaml", ".yml"))
    for path in configs:
        try:
            result = migrate(path.read_text())
        except Skip as reason:
            print(f"migration 0.2.0: {path} left as is: {reason}; move `{OLD}` to a top-level")
            print(f"  `{NEW}` by hand (see the template's CHANGELOG.md)")
            continue
        if result is not None:
            path.write_text(result)
            stage(path)
            print(f"migration 0.2.0: {path}: `{OLD}` -> `{NEW}`")
    return 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main())
