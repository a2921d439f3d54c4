"""One Lambda execution environment: a long-lived process that imports a handler once and runs it per request.

Started with ``python -S``: ``sys.path`` holds the standard library, then, as in Lambda, the
task folder, the layers and the packages the runtime provides, given on the command line.
Nothing else from the machine is importable, so a dependency missing from the deployed
artifact fails here too. Requests and responses are JSON lines on stdin and on a private copy
of stdout; the handler's prints and logs go to stderr, which the runtime collects.

Each request carries how far the local clock is ahead of real time; the worker moves ``time.time()``,
``datetime.now()`` and the rest of the standard library's clocks there (time-machine, imported from
its own folder only when the clock has been moved), so a function reads the time the scheduler and
SQS read.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
from typing import Any


class LocalClock:
    """The process's clocks, ``offset`` seconds ahead of real time (ticking as real time does)."""

    def __init__(self, packages: str) -> None:
        self.packages = packages
        self.offset = 0.0
        self.traveller: Any = None
        self.module: Any = None

    def follow(self, offset: float) -> None:
        if offset == self.offset:
            return
        time_machine = self._time_machine()
        if self.traveller is not None:
            self.traveller.stop()
            self.traveller = None
        if offset:
            # No traveller runs here: time.time() is real time.
            self.traveller = time_machine.travel(time.time() + offset, tick=True)
            self.traveller.start()
        self.offset = offset

    def _time_machine(self) -> Any:
        """time-machine, imported from its own folder: the function's import path never holds it (it
        stays in ``sys.modules``, where its C hooks look it up)."""
        if self.module is None:
            sys.path.append(self.packages)
            try:
                self.module = importlib.import_module("time_machine")
            finally:
                sys.path.remove(self.packages)
        return self.module


def main() -> int:
    from lambda_context import LocalLambdaContext  # beside this script

    # Ctrl-C in the terminal reaches the whole process group: the local cloud stops its environments itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    clock_packages, clock_offset, handler_path, task_dir, *library_dirs = sys.argv[1:]
    clock = LocalClock(clock_packages)
    clock.follow(float(clock_offset))  # the init code runs on the local clock too
    sys.path[:1] = [task_dir, *library_dirs]  # replaces this script's folder
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # handler output -> stderr
    module_name, _, function_name = handler_path.rpartition(".")
    started = time.perf_counter()
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as error:  # Lambda reports an init failure on every invocation
        traceback.print_exc()
        kind = "Runtime.ImportModuleError" if isinstance(error, ImportError) else "Runtime.HandlerNotFound"
        message = f"Unable to import module '{module_name}': {error}"
        protocol.write(json.dumps({"ready": False, "error_type": kind, "error_message": message}) + "\n")
        return 1
    init_ms = (time.perf_counter() - started) * 1000
    protocol.write(json.dumps({"ready": True, "init_ms": init_ms}) + "\n")

    for line in sys.stdin:
        request = json.loads(line)
        clock.follow(float(request.get("clock_offset", 0.0)))
        context = LocalLambdaContext(
            function_name=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            timeout_seconds=request["timeout"],
            memory_limit_in_mb=int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")),
            aws_request_id=request["request_id"],
            log_group=os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME"),
            log_stream=os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME"),
        )
        try:
            reply = {"ok": True, "result": handler(request["event"], context)}
        except Exception as error:  # reported to the caller like Lambda's errorType/errorMessage
            traceback.print_exc()
            reply = {"ok": False, "error_type": type(error).__name__, "error_message": str(error)}
        protocol.write(json.dumps(reply, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
