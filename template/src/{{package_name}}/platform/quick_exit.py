# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""Leave the process as soon as a command is done. After the exit handlers (ZenML's and
MLflow's flushes) Python would still tear down every module of ZenML, MLflow and scikit-learn:
1-3 s that change nothing (measured: 2.7 s after `all` on 2 cores)."""

import atexit
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_exit_code: list = []  # the command's, once it is done


def _leave() -> None:
    """The last exit handler: the others have run; flush and leave."""
    if not _exit_code:  # interrupted, or an error outside the command: Python's own exit
        return
    code = _exit_code[0]
    if isinstance(code, str):  # sys.exit("message")
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()  # registered before this handler, so it would run after it
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


@contextmanager
def exit_when_done() -> Iterator[None]:
    """Around the program's command (not under click's CliRunner: tests call the command)."""
    atexit.register(_leave)  # before ZenML and MLflow register theirs: it runs last
    try:
        yield
    except SystemExit as done:
        _exit_code.append(done.code)
        raise
