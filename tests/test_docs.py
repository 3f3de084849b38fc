"""Docs that stay true: every Markdown table and relative link of the rendered projects' Markdown
files, of this README and of docs/; the generated README's "To change X, edit Y" table points at
files, functions and config keys that exist, and its Commands table lists every make target and
every command.

The Markdown checks are a small parser of their own (no dependency), stricter than GitHub's
renderer, which silently turns a broken table into text or pads short rows:

- a table is a run of lines starting with `|`: a header row, a separator row (`| --- |`), then
  rows with exactly as many cells as the header (cells split on unescaped `|`, as GitHub does,
  even inside backticks), no two rows alike, a blank line before it and after it;
- a link `[text](target)` outside code: an http(s)/mailto target is not followed; any other
  resolves to an existing file relative to the Markdown file, and its `#anchor` (if any) to a
  heading of the target (or of the same file, for a bare `#anchor`).
"""

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import TEMPLATE, render

ANSWER_SETS = {
    "defaults": {},
    "tensorflow-kubernetes-github": {
        "model_framework": "tensorflow",
        "production_stack": "kubernetes",
        "mlflow_tracking_uri": "https://mlflow.example.com",
        "ci_provider": "github",
        "monitoring": True,
    },
    "sagemaker-gitlab-zenml-server": {
        "project_name": "Churn Model",
        "mlflow_tracking_uri": "https://mlflow.example.com",
        "mlflow_auth": "basic",
        "mlflow_username": "ana",
        "production_stack": "sagemaker",
        "cloud_region": "eu-west-1",
        "container_registry_uri": "210987654321.dkr.ecr.eu-west-1.amazonaws.com",
        "zenml_server_url": "https://zenml.example.com",
        "ci_provider": "gitlab",
        "monitoring": True,
        "shadow_challenger": True,
        "sql_database": True,
    },
    "vertex-tensorflow-none-tuning": {
        "project_name": "credit-risk",
        "package_name": "credit_risk_v2",
        "model_framework": "tensorflow",
        "mlflow_tracking_uri": "http://10.0.0.5:5000",
        "mlflow_auth": "token",
        "production_stack": "vertex",
        "gcp_project": "credit-risk-prod",
        "zenml_server_url": "http://127.0.0.1:8237/",
        "hyperparameter_tuning": True,
        "ci_provider": "none",
    },
}

# The rows of the generated README's "To change X, edit Y" table every project must have.
TO_CHANGE = (
    "the model",
    "the features",
    "the data source",
    "the metrics and thresholds",
    "the stack",
    "the serving",
)


# --- A small Markdown parser -------------------------------------------------------------------

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)(\s+#+)?\s*$")
CELL_SPLIT = re.compile(r"(?<!\\)\|")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


@dataclass
class Table:
    line: int  # 1-based line of the header row
    header: list[str]
    rows: list[list[str]]

    def column(self, index: int) -> list[str]:
        return [row[index] for row in self.rows]


def outside_code(text: str) -> list[str | None]:
    """The lines of `text`, with None for the lines of fenced code blocks (fences included)."""
    lines: list[str | None] = []
    fence = None
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            lines.append(None)
        elif fence is not None:
            closing = line.strip()
            if closing.startswith(fence) and not closing.strip(fence[0]):
                fence = None
            lines.append(None)
        else:
            lines.append(line)
    return lines


def is_row(line: str | None) -> bool:
    return line is not None and re.match(r" {0,3}\|", line) is not None


def cells(row: str) -> list[str]:
    row = row.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return [cell.strip() for cell in CELL_SPLIT.split(row)]


def is_separator(row: str) -> bool:
    return all(re.fullmatch(r":?-+:?", cell) for cell in cells(row))


def parse_tables(text: str) -> tuple[list[Table], list[str]]:
    """Every table outside code blocks, and what is wrong with them (empty when nothing is)."""
    lines = outside_code(text)
    tables, problems = [], []
    index = 0
    while index < len(lines):
        if not is_row(lines[index]):
            index += 1
            continue
        start = index
        while index < len(lines) and is_row(lines[index]):
            index += 1
        block = lines[start:index]
        where = f"line {start + 1}"
        if len(block) < 2 or not is_separator(block[1]):
            before = start - 1
            while before >= 0 and lines[before] is not None and not lines[before].strip():
                before -= 1
            if before >= 0 and before < start - 1 and is_row(lines[before]):
                problems.append(f"{where}: blank line inside the table above (line {before + 1})")
            else:
                problems.append(f"{where}: table rows without a header and separator row")
            continue
        if start > 0 and lines[start - 1] is not None and lines[start - 1].strip():
            problems.append(f"{where}: no blank line before the table")
        if index < len(lines) and lines[index] is not None and lines[index].strip():
            problems.append(f"line {index + 1}: text right after a table (it becomes a row)")
        header = cells(block[0])
        if len(cells(block[1])) != len(header):
            problems.append(f"line {start + 2}: separator has {len(cells(block[1]))} cells")
        rows, seen = [], set()
        for offset, line in enumerate(block[2:], start=start + 3):
            row = cells(line)
            if len(row) != len(header):
                problems.append(
                    f"line {offset}: {len(row)} cells, the header (line {start + 1}) has "
                    f"{len(header)}: {line.strip()[:80]}"
                )
            if tuple(row) in seen:
                problems.append(f"line {offset}: the same row twice: {line.strip()[:80]}")
            seen.add(tuple(row))
            rows.append(row)
        tables.append(Table(start + 1, header, rows))
    return tables, problems


def links(text: str) -> list[tuple[int, str]]:
    """(line, target) of every inline link and image outside code."""
    found = []
    for number, line in enumerate(outside_code(text), start=1):
        if line is not None:
            found += [(number, target) for target in LINK.findall(CODE_SPAN.sub("", line))]
    return found


def anchors(text: str) -> set[str]:
    """GitHub's anchors of the headings: lowercase, punctuation dropped, spaces to dashes, -N
    for repeats."""
    found, seen = set(), {}
    for line in outside_code(text):
        match = HEADING.match(line) if line is not None else None
        if match:
            title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(1))
            slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
            found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return found


def link_problems(path: Path, text: str) -> list[str]:
    problems = []
    for number, target in links(text):
        if EXTERNAL.match(target):
            continue
        name, _, anchor = target.partition("#")
        file = (path.parent / name).resolve() if name else path
        if not file.exists():
            problems.append(f"line {number}: {target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            problems.append(f"line {number}: {target}: no heading #{anchor} in {file.name}")
    return problems


def markdown_problems(path: Path) -> list[str]:
    text = path.read_text()
    return [f"{path}: {problem}" for problem in parse_tables(text)[1] + link_problems(path, text)]


def table_with_header(text: str, first_cell: str) -> Table:
    tables, _ = parse_tables(text)
    matching = [table for table in tables if table.header[0] == first_cell]
    assert len(matching) == 1, f"{len(matching)} tables with the header {first_cell!r}"
    return matching[0]


def code(cell: str) -> list[str]:
    """The backticked parts of a cell."""
    return [content.strip() for _, content in CODE_SPAN.findall(cell)]


# --- The parser itself ---------------------------------------------------------------------------

GOOD = """\
# Title

| a | b |
| --- | :-: |
| `x y` | c \\| d |
| 1 | |

```
| not | a table
```
"""


def test_parser_reads_a_good_table_as_github_does():
    tables, problems = parse_tables(GOOD)
    assert problems == []
    assert tables == [Table(3, ["a", "b"], [["`x y`", "c \\| d"], ["1", ""]])]
    # A pipe splits cells even inside backticks, as on GitHub: escape it (`\|`).
    broken = parse_tables(GOOD.replace("`x y`", "`x | y`"))[1]
    assert broken == ["line 5: 3 cells, the header (line 3) has 2: | `x | y` | c \\| d |"]


@pytest.mark.parametrize(
    "broken, problem",
    [
        ("| a | b |\n| --- | --- |\n| 1 | 2 |\n\n| 3 | 4 |\n", "line 5: blank line inside"),
        ("| a | b |\n| --- | --- |\n| 1 | 2 | 3 |\n", "line 3: 3 cells, the header (line 1) has 2"),
        ("| a | b |\n| --- | --- |\n| 1 |\n", "line 3: 1 cells, the header (line 1) has 2"),
        ("| a | b |\n| 1 | 2 |\n", "line 1: table rows without a header and separator row"),
        ("| a | b |\n| --- |\n| 1 | 2 |\n", "line 2: separator has 1 cells"),
        ("| a |\n| --- |\n| 1 |\n| 1 |\n", "line 4: the same row twice"),
        ("| a |\n| --- |\n| 1 |\nmore text\n", "line 4: text right after a table"),
        ("Some text\n| a |\n| --- |\n| 1 |\n", "line 2: no blank line before the table"),
    ],
    ids=["blank-line", "extra-cell", "missing-cell", "no-separator", "bad-separator"]
    + ["duplicate-row", "text-after", "text-before"],
)
def test_parser_catches_a_broken_table(broken, problem):
    problems = parse_tables(broken)[1]
    assert any(found.startswith(problem) for found in problems), problems


def test_links_are_checked_outside_code_only(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("# There\n\n## A section, with (punctuation)\n")
    page = tmp_path / "page.md"
    text = (
        "# Page\n\n[ok](docs/there.md) [ok](docs/there.md#a-section-with-punctuation) "
        "![img](docs/there.md) [web](https://example.com/x) [mail](mailto:a@b.c) [top](#page)\n"
        "`[in code](missing.md)`\n\n```\n[in a block](missing.md)\n```\n"
        "[gone](missing.md) [bad anchor](docs/there.md#nowhere) [bad](#nowhere)\n"
    )
    page.write_text(text)
    assert [target for _, target in links(text)][:4] == [
        "docs/there.md",
        "docs/there.md#a-section-with-punctuation",
        "docs/there.md",
        "https://example.com/x",
    ]
    assert link_problems(page, text) == [
        "line 9: missing.md: no such file",
        "line 9: docs/there.md#nowhere: no heading #nowhere in there.md",
        "line 9: #nowhere: no heading #nowhere in page.md",
    ]


def test_anchors_follow_github():
    text = "# CI/CD\n## Lifecycle: copy -> all (s)\n## Lifecycle: copy -> all (s)\n## `make` it\n"
    assert anchors(text) == {
        "cicd",
        "lifecycle-copy---all-s",
        "lifecycle-copy---all-s-1",
        "make-it",
    }


# --- The template's own docs ---------------------------------------------------------------------

OWN_DOCS = [TEMPLATE / "README.md", *sorted((TEMPLATE / "docs").rglob("*.md"))]


@pytest.mark.parametrize("path", OWN_DOCS, ids=[str(p.relative_to(TEMPLATE)) for p in OWN_DOCS])
def test_template_docs_have_whole_tables_and_working_links(path):
    assert markdown_problems(path) == []


def test_template_readme_is_short_and_links_the_rest():
    readme = (TEMPLATE / "README.md").read_text()
    assert len(readme.splitlines()) <= 170
    for page in ("docs/design.md", "docs/speed.md", "docs/faults.md", "CHANGELOG.md"):
        assert f"]({page}" in readme
    assert "make test" in readme  # .ci/run and the template's CI run the README's test command
    assert "copier copy" in readme and "copier update" in readme


def test_template_readme_names_every_question():
    """copier.yml says every question is documented in the README."""
    questions = yaml.safe_load((TEMPLATE / "copier.yml").read_text())
    asked = [
        name
        for name, spec in questions.items()
        if not name.startswith("_") and isinstance(spec, dict) and spec.get("when") is not False
    ]
    table = table_with_header((TEMPLATE / "README.md").read_text(), "question")
    documented = {name for cell in table.column(0) for name in code(cell)}
    assert [name for name in asked if name not in documented] == []
    assert documented <= set(asked)


def make_targets(makefile: str) -> set[str]:
    """Targets with a `## help` text; `uv` only backs the others."""
    return set(re.findall(r"^([a-z][a-z-]*):[^\n]*## ", makefile, re.MULTILINE)) - {"uv"}


def test_template_readme_lists_every_make_target():
    table = table_with_header((TEMPLATE / "README.md").read_text(), "command")
    listed = [re.match(r"`make ([a-z-]+)", cell).group(1) for cell in table.column(0)]
    assert sorted(listed) == sorted(make_targets((TEMPLATE / "Makefile").read_text()))


# --- The rendered projects' docs -----------------------------------------------------------------


@pytest.fixture(scope="module", params=list(ANSWER_SETS), ids=list(ANSWER_SETS))
def rendered(request, tmp_path_factory) -> tuple[Path, dict]:
    project = render(
        tmp_path_factory.mktemp(request.param) / "project", **ANSWER_SETS[request.param]
    )
    return project, yaml.safe_load((project / ".copier-answers.yml").read_text())


def test_rendered_markdown_has_whole_tables_and_working_links(rendered):
    project, answers = rendered
    pages = sorted(project.rglob("*.md"))
    assert project / "README.md" in pages
    assert (project / "docs" / "team-tracker.md" in pages) == bool(answers["mlflow_tracking_uri"])
    assert [problem for page in pages for problem in markdown_problems(page)] == []


def yaml_has(path: Path, key: str) -> bool:
    """Whether a YAML file has `key` (`a.b.c` for nested keys)."""
    node = yaml.safe_load(path.read_text())
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_readme_says_where_to_change_what(rendered):
    """Every row's files exist; the functions, constants, markers and config keys it names are
    in those files."""
    project, answers = rendered
    table = table_with_header((project / "README.md").read_text(), "to change")
    assert table.header == ["to change", "edit", "how"]
    assert [row for row in TO_CHANGE if row not in table.column(0)] == []
    package = f"src/{answers['package_name']}"
    model_file = {"sklearn": "sklearn.py", "tensorflow": "keras.py"}[answers["model_framework"]]
    model_row = table.rows[table.column(0).index("the model")]
    assert f"{package}/ml/{model_file}" in code(model_row[1])
    for what, where, how in table.rows:
        files = []
        for pattern in code(where):
            matches = sorted(project.glob(pattern))
            assert matches, f"{what}: {pattern} is not in the project"
            files += matches
        sources = "".join(f.read_text() for f in files if f.suffix == ".py")
        configs = [f for f in files if f.suffix == ".yaml"]
        for name in code(how):
            if name == "CUSTOMIZE":
                assert "CUSTOMIZE" in sources, f"{what}: no CUSTOMIZE marker in {where}"
            elif re.fullmatch(r"\w+\(\)", name):
                assert f"def {name[:-2]}(" in sources, f"{what}: {name} is not in {where}"
            elif re.fullmatch(r"[A-Z][A-Z_]+", name):
                assert f"\n{name} = " in sources, f"{what}: {name} is not in {where}"
            elif re.fullmatch(r"[a-z_]+(\.[a-z_]+)+|[a-z_]+:", name) and "add a " not in how:
                key = name.rstrip(":")
                assert any(yaml_has(f, key) for f in configs), f"{what}: {key} is not in {where}"


def cli_commands(cli: str) -> set[str]:
    """The command names of `@main.command(...)` in cli.py: the name given, or the function's
    name with dashes (click's default)."""
    names = set()
    for match in re.finditer(r'@main\.command\((\s*"([a-z-]+)")?', cli):
        function = re.compile(r"^def (\w+)\(", re.MULTILINE).search(cli, match.end())
        names.add(match.group(2) or function.group(1).replace("_", "-"))
    return names


def test_readme_commands_table_is_whole(rendered):
    """One table with every documented make target and every command of the CLI."""
    project, answers = rendered
    readme = (project / "README.md").read_text()
    section = readme.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    table = table_with_header(section, "make")
    assert table.header == ["make", "command", "what it does"]
    targets = [re.match(r"`make ([a-z-]+)", cell).group(1) for cell in table.column(0) if cell]
    assert sorted(targets) == sorted(make_targets((project / "Makefile").read_text()))
    package = answers["package_name"]
    commands = {
        re.match(rf"`{package} ([a-z-]+)", cell).group(1) for cell in table.column(1) if cell
    }
    cli = "".join(path.read_text() for path in (project / "src" / package).glob("cli*.py"))
    assert commands == cli_commands(cli)
    assert all(what for what in table.column(2))


# Paths the docs may name that exist only once the project runs (outputs, CI files, ZenML's own
# files) or that stand for the user's own files.
RUNTIME = re.compile(
    r"outputs/|(^|/)(model_card|drift_report|monitoring_report|sample|windows|service|credentials"
    r"|manifests(\.pinned)?)"
    r"\.|summary\.json$|^update\.json$|NAME|path/to/|^CHANGELOG\.md$"
)
PATH_NAMED = re.compile(
    r"(?<![\w./{$-])((?:[\w.-]+/)*[\w-]+\.(?:py|yaml|yml|md|toml|json))(?![\w/-])"
)


def named_paths(text: str) -> set[str]:
    return {path for path in PATH_NAMED.findall(text) if not RUNTIME.search(path)}


def test_every_path_and_module_the_docs_name_exists(rendered):
    """The README, docs/, pyproject.toml, the Makefile, configs/ and stacks/ name only files
    and modules the project has (relative to the project, its package, or the naming file),
    besides what the project writes when it runs: no advice about a file another render has."""
    project, answers = rendered
    package = project / "src" / answers["package_name"]
    docs = [project / "README.md", project / "pyproject.toml", project / "Makefile"]
    docs += [*project.glob("docs/**/*.md"), *project.glob("configs/*.yaml")]
    docs += sorted(project.glob("stacks/*.yaml"))
    missing = []
    for doc in docs:
        text = doc.read_text()
        for path in named_paths(text):
            bases = (project, package, doc.parent)
            if "/" not in path:  # a bare file name: anywhere in the project
                bases = (project,) if next(project.rglob(path), None) else ()
            if not any((base / path).exists() or "/" not in path for base in bases):
                missing.append(f"{doc.relative_to(project)}: {path}")
        for module in set(re.findall(rf"\b{answers['package_name']}((?:\.\w+)+)", text)):
            parts = module.strip(".").split(".")
            found = [
                i
                for i in range(len(parts), 0, -1)
                if (package.joinpath(*parts[:i]).with_suffix(".py")).exists()
                or (package.joinpath(*parts[:i]) / "__init__.py").exists()
            ]
            if not found or len(parts) - found[0] > 1:
                missing.append(f"{doc.relative_to(project)}: {answers['package_name']}{module}")
            elif len(parts) > found[0]:
                path = package.joinpath(*parts[: found[0]])
                source = (
                    path.with_suffix(".py")
                    if path.with_suffix(".py").exists()
                    else path / "__init__.py"
                ).read_text()
                if not re.search(rf"^(def|class) {parts[-1]}\b|^{parts[-1]}\b", source, re.M):
                    missing.append(f"{doc.relative_to(project)}: {answers['package_name']}{module}")
    assert not missing, "\n".join(sorted(missing))


def test_named_paths_skip_what_the_project_writes_and_placeholders():
    text = "edit `src/pkg/ml/features.py`, see outputs/model_card.md and stacks/NAME.yaml"
    assert named_paths(text) == {"src/pkg/ml/features.py"}
