"""The process environment every benchmark runs in: fake AWS credentials, quiet Powertools.

Powertools reads its variables when ``asyncstack.runtime.observability`` is first imported, so
``configure`` must run before that; ``python -m bench`` calls it first, then imports the benchmarks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"

# Forced: the benchmarks must never reach a real AWS account nor print a log line per record.
FORCED = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
}
DEFAULTS = {
    "POWERTOOLS_METRICS_NAMESPACE": "AsyncStackBench",
    "POWERTOOLS_SERVICE_NAME": "bench",
    "AWS_LAMBDA_FUNCTION_NAME": "bench-function",
}
REMOVED = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_LAMBDA_LOG_LEVEL")


def configure() -> None:
    os.environ.update(FORCED)
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    for name in REMOVED:
        os.environ.pop(name, None)


def subprocess_env() -> dict[str, str]:
    """The environment for a fresh interpreter that imports handlers from the repository."""
    env = {k: v for k, v in os.environ.items() if k not in REMOVED}
    env |= FORCED | {k: os.environ.get(k, v) for k, v in DEFAULTS.items()}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send stdout (the EMF metrics ``log_metrics`` prints per invocation) to /dev/null.

    The handler still serializes and writes its metrics, as it would in Lambda.
    """
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield
