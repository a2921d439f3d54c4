"""Pollers kept in step with what moto holds: how event source mappings, stream mappings and pipes
follow a deploy (a new mapping or pipe gets its pollers within a second; a deleted one's stop)."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from typing import Any, Generic, Protocol, TypeVar

Key = TypeVar("Key", bound=Hashable)

RECONCILE_SECONDS = 1.0
CLOSE_SECONDS = 3.0  # a poller may sit in a long poll: close waits this long for all of them, not for each


class Backoff:
    """How long a poller waits after an error: 0.5 s, doubled while errors repeat (a role that may not
    read its source is refused on every try), 10 s at most; back to 0.5 s after a read succeeds."""

    FIRST, LONGEST = 0.5, 10.0

    def __init__(self) -> None:
        self.seconds = self.FIRST

    def reset(self) -> None:
        self.seconds = self.FIRST

    def wait(self, stop: threading.Event) -> None:
        stop.wait(self.seconds)
        self.seconds = min(self.seconds * 2, self.LONGEST)


class Poller(Protocol):
    thread: threading.Thread
    busy: bool


class PollerSet(Generic[Key]):
    """One set of pollers per key of what is wanted now; subclasses say what is wanted and how its
    pollers are made."""

    name = "pollers"

    def __init__(self) -> None:
        self.pollers: dict[Key, tuple[threading.Event, list[Any]]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def wanted(self) -> dict[Key, Any]:
        """What should have pollers now, each key with what ``create`` needs to make them."""
        raise NotImplementedError

    def create(self, key: Key, spec: Any, stop: threading.Event) -> list[Poller]:
        """The pollers of one key, not started; they end when ``stop`` is set."""
        raise NotImplementedError

    def wake(self) -> None:
        """On close, after every stop is set: lets pollers that wait on something else see theirs."""

    def start(self) -> None:
        self.reconcile()
        self.thread.start()

    def reconcile(self) -> None:
        wanted = self.wanted()
        for key in [k for k in self.pollers if k not in wanted]:
            self.pollers.pop(key)[0].set()
        for key, spec in wanted.items():
            if key not in self.pollers:
                stop = threading.Event()
                pollers = self.create(key, spec, stop)
                self.pollers[key] = (stop, pollers)
                for poller in pollers:
                    poller.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(RECONCILE_SECONDS):
            try:
                self.reconcile()
            except Exception as error:  # a deploy in progress can leave moto half-updated
                print(f"[localcloud] {self.name}: {error!r}")

    @property
    def idle(self) -> bool:
        return not any(poller.busy for _, pollers in self.pollers.values() for poller in pollers)

    def close(self) -> None:
        self.stop.set()
        for stop, _ in self.pollers.values():
            stop.set()
        self.wake()
        deadline = time.monotonic() + CLOSE_SECONDS
        for _, pollers in self.pollers.values():
            for poller in pollers:
                poller.thread.join(timeout=max(0.0, deadline - time.monotonic()))
