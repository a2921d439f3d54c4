"""Function logs: printed with a function prefix, and stored in the function's CloudWatch log group."""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import TextIO

from localcloud.server import ACCOUNT, MOTO_LOCK, REGION


class LogSink:
    """Collects execution environments' output; flushes it to moto's CloudWatch Logs twice a second."""

    def __init__(self, folder: Path, echo: TextIO | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        self.pending: defaultdict[tuple[str, str], list[dict[str, object]]] = defaultdict(list)
        self.files: dict[str, TextIO] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="log-sink", daemon=True)
        self.thread.start()

    def write(self, function: str, group: str, stream: str, line: str) -> None:
        line = line.rstrip("\n")
        with self.lock:
            if self.stop.is_set():  # closed with the local cloud: an environment still winding down
                return
            self.pending[group, stream].append({"timestamp": int(time.time() * 1000), "message": line})
            if function not in self.files:
                self.files[function] = (self.folder / f"{function}.log").open("a", buffering=1)
            self.files[function].write(line + "\n")
        if self.echo is not None:
            print(f"[{function}] {line}", file=self.echo, flush=True)

    def flush(self) -> None:
        from moto.logs.models import logs_backends

        with self.lock:
            batches, self.pending = self.pending, defaultdict(list)
        if not batches:
            return
        backend = logs_backends[ACCOUNT][REGION]
        with MOTO_LOCK:
            for (group, stream), events in batches.items():
                try:
                    backend.ensure_log_group(group)
                    if stream not in backend.groups[group].streams:
                        backend.create_log_stream(group, stream)
                    backend.put_log_events(group, stream, events)
                except Exception as error:  # logs must never break an invocation
                    print(f"[localcloud] could not store logs for {group}: {error}", file=sys.stderr)

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            self.flush()

    def close(self) -> None:
        with self.lock:
            self.stop.set()
        self.thread.join(timeout=2)
        self.flush()
        with self.lock:
            for file in self.files.values():
                file.close()


def say(line: str) -> None:
    """A progress line of the CLI, shown as it happens even when the output is piped to a file."""
    print(line, flush=True)
