"""The local cloud's notion of time: real time plus an offset that tests and the demo can advance.

Services that act on time (the scheduler) read this clock instead of the wall clock, so a test can
jump an hour ahead instead of sleeping. moto stamps resources with real time; ``at_real`` maps such a
stamp to the clock reading at that real instant, using the history of offset changes.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class Clock:
    """Real UTC time shifted by an offset; thread-safe, and waiters wake when it is moved."""

    def __init__(self, *, offset: timedelta | float = 0.0, start: datetime | None = None) -> None:
        """``start`` pins the current reading to that instant (the offset is derived from it)."""
        if start is not None:
            offset = start.astimezone(UTC).timestamp() - time.time()
        self._changed = threading.Condition()
        self._generation = 0
        # (real timestamp of the change, offset in seconds from then on), ascending.
        self._history: list[tuple[float, float]] = [(float("-inf"), _seconds(offset))]

    def now(self) -> datetime:
        """The current reading, timezone-aware UTC."""
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def timestamp(self) -> float:
        """The current reading in seconds since the epoch. No lock: reading the newest offset is
        atomic, and SQS asks for the time once per message it looks at."""
        return time.time() + self._history[-1][1]

    @property
    def offset(self) -> timedelta:
        with self._changed:
            return timedelta(seconds=self._history[-1][1])

    @property
    def generation(self) -> int:
        """Increments whenever the clock is moved or woken; pass it to ``wait(since=...)``."""
        with self._changed:
            return self._generation

    def set_offset(self, offset: timedelta | float) -> None:
        with self._changed:
            self._history.append((time.time(), _seconds(offset)))
            self._generation += 1
            self._changed.notify_all()

    def advance(self, delta: timedelta | float) -> datetime:
        """Move time forward (never back: schedules already handled must stay handled); returns now()."""
        seconds = _seconds(delta)
        if seconds < 0:
            raise ValueError(f"the clock only moves forward, got {seconds} s")
        with self._changed:
            self.set_offset(self._history[-1][1] + seconds)
            return self.now()

    def at_real(self, real: datetime | float) -> datetime:
        """The clock's reading at a real instant (e.g. a creation time moto recorded)."""
        stamp = real.timestamp() if isinstance(real, datetime) else float(real)
        with self._changed:
            index = bisect.bisect_right(self._history, (stamp, float("inf"))) - 1
            return datetime.fromtimestamp(stamp + self._history[max(index, 0)][1], UTC)

    def wake(self) -> None:
        """Wake waiters without moving time (used to stop a waiting thread promptly)."""
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def wait(self, timeout: float, *, since: int | None = None) -> bool:
        """Block until the clock is moved or woken (after generation ``since``), or timeout; True if moved."""
        with self._changed:
            start = self._generation if since is None else since
            return self._changed.wait_for(lambda: self._generation != start, timeout)


class ClockLoop:
    """Runs ``step`` in a thread about every ``seconds`` of real time, and at once when the clock moves:
    how the services that act on time (the scheduler, scheduled rules) make their passes."""

    def __init__(
        self,
        clock: Clock,
        step: Callable[[], object],
        *,
        name: str,
        seconds: float,
        log: Callable[[str], None],
    ) -> None:
        self._clock = clock
        self._step = step
        self._name = name
        self._seconds = seconds
        self._log = log
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            generation = self._clock.generation
            try:
                self._step()
            except Exception as error:
                self._log(f"{self._name}: pass failed: {error!r}")
            self._clock.wait(self._seconds, since=generation)

    def close(self) -> None:
        self._stopping.set()
        self._clock.wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
