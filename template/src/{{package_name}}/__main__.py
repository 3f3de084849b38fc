# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""The program: `python -m <package>` and the `<package>` command (pyproject.toml)."""

from .cli import main
from .platform.quick_exit import exit_when_done


def run() -> None:
    with exit_when_done():
        main()


if __name__ == "__main__":
    run()
