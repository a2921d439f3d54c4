"""A function's execution environment runs on the local clock: its init code and every invocation read
the offset the local cloud gives it, warm environments follow when the clock moves, and the context's
remaining time still counts real seconds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.awslambda.runtime import Artifacts, ExecutionEnvironment, FunctionConfig
from localcloud.logs import LogSink

pytestmark = pytest.mark.unit

HANDLER = """
import sys
import time
from datetime import UTC, date, datetime

IMPORTED_AT = time.time()


def handler(event, context):
    return {
        "time": time.time(),
        "datetime_now": datetime.now(UTC).timestamp(),
        "today": date.today().isoformat(),
        "imported_at": IMPORTED_AT,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "path": sys.path,
    }
"""
DAY = 86_400.0


class Offset:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self) -> float:
        return self.seconds


@pytest.fixture
def environment(tmp_path: Path) -> Iterator[tuple[ExecutionEnvironment, Offset]]:
    task = tmp_path / "task"
    task.mkdir()
    (task / "clock_probe.py").write_text(HANDLER)
    config = FunctionConfig(
        arn="arn:aws:lambda:us-east-1:123456789012:function:clock-probe", name="clock-probe",
        handler="clock_probe.handler", runtime="python3.11", timeout=5.0, memory=128, environment={},
        code_sha="test", layer_arns=(), reserved_concurrency=None, log_group="/aws/lambda/clock-probe",
    )  # fmt: skip
    artifacts = Artifacts(tmp_path / "artifacts")
    log = LogSink(tmp_path / "logs")
    offset = Offset(2 * DAY)
    started = ExecutionEnvironment(
        config, [task], "http://127.0.0.1:9", log,
        clock_packages=artifacts.clock_packages(), clock_offset=offset,
    )  # fmt: skip
    yield started, offset
    started.kill()
    log.close()


def _near(value: float, expected: float) -> bool:
    return abs(value - expected) < 5.0


def test_the_init_code_and_the_handler_read_the_local_clock(
    environment: tuple[ExecutionEnvironment, Offset],
) -> None:
    # Given an environment started while the local clock is two days ahead
    started, _ = environment
    # When it is invoked
    reading = started.invoke({}, "request-1")
    # Then the init code, time.time(), datetime.now() and date.today() read the local clock
    local = time.time() + 2 * DAY
    assert _near(reading["imported_at"], local)
    assert _near(reading["time"], local) and _near(reading["datetime_now"], local)
    assert reading["today"] == time.strftime("%Y-%m-%d", time.gmtime(local))
    # and the context's remaining time counts down from the timeout, unmoved
    assert 0 < reading["remaining_ms"] <= 5000
    # and the folder of the local runtime's time-machine is not on the function's import path
    assert not any("clock-packages" in entry for entry in reading["path"])


def test_a_warm_environment_follows_the_clock_when_it_moves(
    environment: tuple[ExecutionEnvironment, Offset],
) -> None:
    # Given a warm environment
    started, offset = environment
    started.invoke({}, "request-1")
    # When the clock moves three more days ahead, and then the offset is gone (a new local cloud)
    offset.seconds = 5 * DAY
    moved = started.invoke({}, "request-2")
    offset.seconds = 0.0
    real = started.invoke({}, "request-3")
    # Then each invocation reads the clock of its moment
    assert _near(moved["time"], time.time() + 5 * DAY)
    assert _near(moved["datetime_now"], time.time() + 5 * DAY)
    assert _near(real["time"], time.time()) and _near(real["datetime_now"], time.time())
    assert 0 < moved["remaining_ms"] <= 5000 and 0 < real["remaining_ms"] <= 5000
