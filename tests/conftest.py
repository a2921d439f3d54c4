"""Fixtures shared by every test layer."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

# Powertools reads these when asyncstack.runtime.observability is first imported, as Lambda would at cold start.
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "AsyncStackTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "tests")

EVENTS = Path(__file__).resolve().parent.parent / "events"


def load_event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def event_file():
    return load_event
