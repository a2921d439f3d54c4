"""Fixtures shared by every test layer."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# Powertools reads these when asyncstack.runtime.observability is first imported, as Lambda would at cold start.
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "AsyncStackTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "tests")

EVENTS = Path(__file__).resolve().parent.parent / "events"

# Property tests draw the same examples on every run (CI stays reproducible); HYPOTHESIS_PROFILE=explore
# draws new ones, to search further by hand.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

# A hang fails its own test with a traceback (pytest-timeout), not the whole run. The budget of each
# kind includes its fixtures' setup: the first infra test synthesizes (and may build the layer), the
# first e2e test of a module deploys the stack. A test that needs longer says so with its own marker.
TIMEOUT_SECONDS = {"unit": 60, "infra": 600, "e2e": 900}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = []
    for item in items:
        kinds = [kind for kind in TIMEOUT_SECONDS if item.get_closest_marker(kind)]
        if len(kinds) != 1:
            unmarked.append(item.nodeid)
        elif not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(TIMEOUT_SECONDS[kinds[0]]))
    if unmarked:
        raise pytest.UsageError(
            f"tests need exactly one of the markers {sorted(TIMEOUT_SECONDS)}: {unmarked}"
        )


def load_event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def event_file():
    return load_event
