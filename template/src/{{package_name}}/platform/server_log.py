# Template's: kept current by `copier update`; change it through configs/ and CUSTOMIZE files.
"""Why a local server stopped, read from its log: the line a user needs instead of the log."""

import re

# Deployments started at the same moment pick the same free port, and all but one lose it;
# each loser tries again on the next free one, so this many deployments at once all start.
PORT_ATTEMPTS = 4

# An exception's last line (`ValueError: ...`) or uvicorn's `ERROR: ...`.
ERROR_LINE = re.compile(r"[\w.]*(Error|Exception|ERROR)\b")


def failure_in_log(log: str) -> str:
    """A server's last error in its log, with its continuation when the exception's message was
    wrapped; a daemon's own cleanup and uvicorn's INFO lines are not reasons."""
    tail = log.split("\u256f")[-1]  # after a traceback's frames (rich draws them in a box)
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Cleanup:", "INFO:"))]
    errors = [i for i, line in enumerate(lines) if ERROR_LINE.match(line)]
    return " ".join(lines[errors[-1] :])[:300] if errors else "its log gives no reason"
