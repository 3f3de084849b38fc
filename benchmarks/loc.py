"""Lines of code of a rendered project's src/: no blank lines, comments or docstrings.

python benchmarks/loc.py build/demo            # per folder, and the total
"""

import ast
import io
import sys
import tokenize
from collections import Counter
from pathlib import Path


def code_lines(source: str) -> int:
    """Lines holding a token other than a comment or a docstring."""
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.update(range(value.lineno, value.end_lineno + 1))
    lines = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in skip or token.type == tokenize.ENDMARKER:
            continue
        lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return len(lines)


def lines_per_folder(src: Path) -> Counter:
    counts = Counter()
    for path in sorted(src.rglob("*.py")):
        folder = path.parent.relative_to(src).as_posix()
        counts[folder if folder != "." else path.name] += code_lines(path.read_text())
    return counts


if __name__ == "__main__":
    project = Path(sys.argv[1] if len(sys.argv) > 1 else "build/demo")
    (package,) = (project / "src").iterdir()
    counts = lines_per_folder(package)
    for name, count in sorted(counts.items()):
        print(f"{name:<28}{count:>6}")
    print(f"{'total':<28}{sum(counts.values()):>6}")
