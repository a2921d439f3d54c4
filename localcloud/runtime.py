"""The local Lambda runtime: execution environments (worker processes) and SQS event source mappings.

Pollers follow Lambda's SQS semantics: up to ``batch_size`` messages gathered for at most the
batching window, one invocation per batch, and with ``ReportBatchItemFailures`` only the
records the function did not report as failed are deleted; failed ones reappear after their
visibility timeout, their receive count grows, and SQS's redrive policy moves them to the DLQ.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from localcloud.server import DUMMY_CREDENTIALS, REGION, LocalCloudError, local_client
from localcloud.sqs_events import RECEIVE_ATTRIBUTES, failed_message_ids, lambda_event
from localcloud.template import FunctionSpec, MappingSpec

WORKER = Path(__file__).resolve().parent / "worker.py"


@dataclass
class FunctionStats:
    invocations: int = 0
    errors: int = 0
    cold_starts: int = 0
    throttles: int = 0
    records_succeeded: int = 0
    records_failed: int = 0
    durations_ms: list[float] = field(default_factory=list)


class ExecutionEnvironment:
    """A warm worker process for one function."""

    def __init__(self, spec: FunctionSpec, endpoint: str, log: IO[str]) -> None:
        self.spec = spec
        env = {
            "PATH": os.environ.get("PATH", ""),
            **spec.environment,
            **DUMMY_CREDENTIALS,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            # No X-Ray daemon runs locally.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), str(spec.code_dir), spec.handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=spec.code_dir,
            env=env,
        )
        ready = self._read(timeout=60)
        if not ready.get("ready"):
            raise LocalCloudError(f"function {spec.name} failed to start: see its log")

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            self.kill()
            raise TimeoutError(f"{self.spec.name} did not answer within {timeout:.0f} s")
        return dict(json.loads(result[0]))

    def invoke(self, event: Mapping[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        request = {"event": event, "timeout": self.spec.timeout, "request_id": str(uuid.uuid4())}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read(timeout=self.spec.timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class LocalFunction:
    """A function with a pool of warm environments; concurrency is the pool's size."""

    def __init__(self, spec: FunctionSpec, endpoint: str, log_dir: Path) -> None:
        self.spec = spec
        self.endpoint = endpoint
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = (log_dir / f"{spec.name}.log").open("a", buffering=1)
        self.idle: queue.LifoQueue[ExecutionEnvironment] = queue.LifoQueue()
        self.all: list[ExecutionEnvironment] = []
        self.stats = FunctionStats()
        self.lock = threading.Lock()

    def invoke(self, event: Mapping[str, Any]) -> dict[str, Any]:
        try:
            environment = self.idle.get_nowait()
        except queue.Empty:
            environment = ExecutionEnvironment(self.spec, self.endpoint, self.log)
            with self.lock:
                self.all.append(environment)
                self.stats.cold_starts += 1
        started = time.perf_counter()
        try:
            reply = environment.invoke(event)
        except TimeoutError as error:  # Lambda kills an environment that overruns its timeout
            with self.lock:
                self.all.remove(environment)
                self.stats.invocations += 1
                self.stats.errors += 1
            return {"ok": False, "error_type": "Timeout", "error_message": str(error)}
        with self.lock:
            self.stats.invocations += 1
            self.stats.durations_ms.append((time.perf_counter() - started) * 1000)
            if not reply.get("ok"):
                self.stats.errors += 1
        self.idle.put(environment)
        return reply

    def close(self) -> None:
        for environment in self.all:
            environment.kill()
        self.log.close()


class SqsPoller:
    """One poller thread of an SQS event source mapping."""

    def __init__(
        self, mapping: MappingSpec, function: LocalFunction, endpoint: str, stop: threading.Event
    ) -> None:
        self.mapping = mapping
        self.function = function
        self.stop = stop
        self.sqs = local_client("sqs", endpoint)
        self.busy = False
        self.thread = threading.Thread(target=self._run, name=f"poller-{function.spec.name}", daemon=True)

    def _gather(self) -> list[dict[str, Any]]:
        """Up to batch_size messages, waiting at most the batching window once the first arrives."""
        messages: list[dict[str, Any]] = []
        deadline: float | None = None
        while len(messages) < self.mapping.batch_size and not self.stop.is_set():
            wait = 1 if deadline is None else max(0, min(1, int(deadline - time.monotonic())))
            got = self.sqs.receive_message(
                QueueUrl=self.mapping.queue_url,
                MaxNumberOfMessages=min(10, self.mapping.batch_size - len(messages)),
                WaitTimeSeconds=wait,
                AttributeNames=RECEIVE_ATTRIBUTES,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages += got
            if messages and deadline is None:
                deadline = time.monotonic() + self.mapping.batching_window
            if messages and (not got or time.monotonic() >= deadline):  # type: ignore[operator]
                break
        return messages

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                messages = self._gather()
                if not messages:
                    continue
                self.busy = True
                self._deliver(messages)
            except Exception as error:  # Lambda's pollers retry; undeleted messages come back by themselves
                print(
                    f"[{self.function.spec.name}] poller error, retrying: {error!r}", file=self.function.log
                )
                self.stop.wait(0.2)
            finally:
                self.busy = False

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        event = lambda_event(messages, queue_arn=self.mapping.queue_arn, region=REGION)
        reply = self.function.invoke(event)
        failed: set[str] | None
        if not reply.get("ok"):
            failed = None
        elif self.mapping.report_batch_item_failures:
            failed = failed_message_ids(reply.get("result"))  # None for a malformed response
        else:
            failed = set()  # without ReportBatchItemFailures Lambda ignores what the function returns
        stats = self.function.stats
        if failed is None:  # the whole batch failed: nothing is deleted
            with self.function.lock:
                stats.records_failed += len(messages)
            return
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.mapping.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        with self.function.lock:
            stats.records_succeeded += len(done)
            stats.records_failed += len(messages) - len(done)


class LocalRuntime:
    """Runs every function and event source mapping of a deployment until closed."""

    def __init__(self, functions: Mapping[str, FunctionSpec], mappings: list[MappingSpec], endpoint: str,
                 log_dir: Path, max_local_concurrency: int = 2) -> None:  # fmt: skip
        self.stop = threading.Event()
        self.functions = {name: LocalFunction(spec, endpoint, log_dir) for name, spec in functions.items()}
        self.pollers: list[SqsPoller] = []
        for mapping in mappings:
            count = min(mapping.max_concurrency or max_local_concurrency, max_local_concurrency)
            for _ in range(count):
                self.pollers.append(SqsPoller(mapping, self.functions[mapping.function], endpoint, self.stop))

    def start(self) -> None:
        for poller in self.pollers:
            poller.thread.start()

    @property
    def idle(self) -> bool:
        return not any(poller.busy for poller in self.pollers)

    def close(self) -> None:
        self.stop.set()
        for poller in self.pollers:
            poller.thread.join(timeout=5)
        for function in self.functions.values():
            function.close()
