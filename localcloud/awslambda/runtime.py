"""The local Lambda runtime: the deployed artifacts run in warm worker processes, with Lambda's semantics.

Every invocation moto receives (Invoke API, Step Functions tasks, SNS and EventBridge targets,
the scheduler) and every batch of an SQS event source mapping arrives here. Code and layers are
unpacked from the zips ``cdk deploy`` uploaded; each execution environment is a long-lived process
(``python -S`` for Python functions, ``node`` for Node.js ones) that sees only its task folder, its
layers and the packages Lambda's runtime provides (boto3 for Python, the AWS SDK for JavaScript v3
for Node.js), so a packaging mistake fails here as it would in AWS.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from localcloud.clock import Clock
from localcloud.logs import LogSink
from localcloud.server import ACCOUNT, DUMMY_CREDENTIALS, REGION

WORKER = Path(__file__).resolve().parent / "worker.py"
NODE_WORKER = WORKER.with_name("worker.js")
# The AWS SDK for JavaScript v3 clients the Node.js runtime provides, pinned by their lock.
NODE_RUNTIME = WORKER.with_name("nodejs")
# What Lambda's Python runtime provides besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
# What the worker needs to follow the local clock (time-machine's module and its C extension).
CLOCK_PACKAGES = ("time_machine", "_time_machine")
# An environment is retired after this, as Lambda recycles its own: the role credentials it started
# with (at least an hour of them left, ``iam/enforcement.py``) never expire under it.
ENVIRONMENT_LIFETIME_SECONDS = 45 * 60


class InvocationError(Exception):
    """The function failed: Lambda's ``errorType`` and ``errorMessage``."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message

    def payload(self, request_id: str) -> dict[str, Any]:
        return {"errorType": self.error_type, "errorMessage": self.message, "requestId": request_id}


class Throttled(Exception):
    """No execution environment is free within the function's concurrency limit."""


@dataclass(frozen=True)
class FunctionConfig:
    """What the runtime needs from a deployed function, read from moto's model of it."""

    arn: str
    name: str
    handler: str
    runtime: str
    timeout: float
    memory: int
    environment: Mapping[str, str]
    code_sha: str
    layer_arns: tuple[str, ...]
    reserved_concurrency: int | None
    log_group: str
    role: str = ""
    traced: bool = False  # X-Ray tracing Active

    @classmethod
    def of(cls, function: Any) -> FunctionConfig:
        reserved = function.reserved_concurrency
        return cls(
            arn=function.function_arn,
            name=function.function_name,
            handler=function.handler,
            runtime=function.run_time or "python3",
            timeout=float(function.timeout),
            memory=int(function.memory_size),
            environment={k: str(v) for k, v in (function.environment_vars or {}).items()},
            code_sha=function.code_sha_256,
            layer_arns=tuple(layer["Arn"] for layer in function.layers),
            reserved_concurrency=None if reserved in (None, "") else int(reserved),
            log_group=getattr(function, "log_group_override", None) or function.logs_group_name,
            role=function.role,
            traced=(function.tracing_config or {}).get("Mode") == "Active",
        )

    @property
    def generation(self) -> str:
        """Changes when a deploy changes anything an execution environment was started with."""
        fields = [self.handler, self.timeout, self.memory, sorted(self.environment.items()), self.code_sha]
        return hashlib.sha256(json.dumps([*fields, self.layer_arns], default=str).encode()).hexdigest()[:16]


def _telemetry_grants(config: FunctionConfig, *, cold_start: bool) -> None:
    """Lambda writes a function's logs to CloudWatch Logs (a stream per environment, events per
    invocation), and X-Ray its traces when tracing is active, as its execution role: checked the same
    way, so a role that may not is reported as AWS would refuse it (where the logs and traces would be
    lost). The local log file is written regardless."""
    from localcloud.iam.enforcement import role_may

    if not config.role:
        return
    stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{config.log_group}:log-stream:{config.name}"
    actions = [("logs:CreateLogStream", stream)] if cold_start else []
    actions.append(("logs:PutLogEvents", stream))
    if config.traced:
        actions += [("xray:PutTraceSegments", "*"), ("xray:PutTelemetryRecords", "*")]
    for action, resource in actions:
        role_may("lambda", config.role, config.name, action, resource)


def lambda_function(arn_or_name: str) -> Any:
    """moto's model of a deployed function."""
    from moto.awslambda.models import lambda_backends

    backend = lambda_backends[ACCOUNT][REGION]
    return backend.get_function(arn_or_name)


class Artifacts:
    """Unpacks deployed function and layer zips once per content digest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()

    def _unpack(self, kind: str, digest: str, data: bytes) -> Path:
        target = self.root / kind / digest.replace("/", "_")[:40]
        with self.lock:
            if not target.is_dir():
                partial = target.with_suffix(".partial")
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    archive.extractall(partial)
                partial.rename(target)
        return target

    def task_dir(self, function: Any) -> Path:
        if not function.code_bytes:
            raise InvocationError("Runtime.InvalidEntrypoint", "the function has no deployed code")
        return self._unpack("task", function.code_sha_256, function.code_bytes)

    def layer_paths(self, function: Any, subfolder: str) -> list[Path]:
        """Lambda puts each layer at /opt; a layer's packages are under ``python/`` for Python and
        ``nodejs/node_modules/`` for Node.js (``subfolder``)."""
        from moto.awslambda.models import lambda_backends

        paths = []
        for layer in function.layers:
            version = lambda_backends[ACCOUNT][REGION].layers_versions_by_arn(layer["Arn"])
            if version is None:
                raise InvocationError("Runtime.LayerNotFound", f"layer {layer['Arn']} is not deployed")
            paths.append(self._unpack("layers", version.code_sha_256, version.code_bytes) / subfolder)
        return paths

    def runtime_packages(self) -> Path:
        """A folder with only the packages Lambda's Python runtime provides (links into this venv)."""
        return self._linked("runtime-packages", RUNTIME_PACKAGES)

    def nodejs_packages(self) -> Path:
        """The node_modules folder of the Node.js runtime's AWS SDK clients, installed from their lock
        (``npm ci``) the first time a Node.js function starts."""
        lock = (NODE_RUNTIME / "package-lock.json").read_bytes()
        folder = self.root / f"nodejs-runtime-{hashlib.sha256(lock).hexdigest()[:10]}"
        with self.lock:
            if not (folder / "node_modules").is_dir():
                npm = shutil.which("npm")
                if npm is None:
                    raise InvocationError("Runtime.InvalidRuntime", "Node.js functions need npm on the PATH")
                partial = folder.with_suffix(".partial")
                shutil.rmtree(partial, ignore_errors=True)
                shutil.copytree(NODE_RUNTIME, partial, ignore=shutil.ignore_patterns("node_modules"))
                installed = subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund", "--omit=dev"],
                    cwd=partial, capture_output=True, text=True, check=False,
                )  # fmt: skip
                if installed.returncode != 0:
                    raise InvocationError(
                        "Runtime.InvalidRuntime",
                        f"installing the Node.js runtime's AWS SDK failed: {installed.stderr.strip()[-500:]}",
                    )
                shutil.rmtree(folder, ignore_errors=True)
                partial.rename(folder)
        return folder / "node_modules"

    def clock_packages(self) -> Path:
        """A folder with only time-machine, which the worker uses to put its functions on the local clock
        (kept off the functions' import path: it is the local runtime's, not the function's)."""
        return self._linked("clock-packages", CLOCK_PACKAGES)

    def _linked(self, kind: str, modules: tuple[str, ...]) -> Path:
        sources = []
        for name in modules:
            source = Path(__import__(name).__file__ or "")
            sources.append(source.parent if source.name == "__init__.py" else source)
        # Named after what it links to: a workdir shared with another interpreter (another checkout's
        # venv, since deleted) never hands this one links that lead nowhere.
        digest = hashlib.sha256("\0".join(map(str, sources)).encode()).hexdigest()[:10]
        folder = self.root / f"{kind}-{digest}"
        with self.lock:
            if not folder.is_dir():
                partial = folder.with_suffix(".partial")
                shutil.rmtree(partial, ignore_errors=True)
                partial.mkdir(parents=True)
                for source in sources:
                    (partial / source.name).symlink_to(source)
                partial.rename(folder)
        return folder


def worker_command(
    config: FunctionConfig, paths: list[Path], clock_packages: Path, offset: float
) -> list[str]:
    """The process of one execution environment: Python's worker or Node.js's, by the function's runtime."""
    if config.runtime.startswith("python"):
        return [sys.executable, "-S", "-u", str(WORKER), str(clock_packages), str(offset), config.handler,
                *map(str, paths)]  # fmt: skip
    node = shutil.which("node")
    if node is None:
        raise InvocationError("Runtime.InvalidRuntime", f"{config.runtime} functions need node on the PATH")
    return [node, str(NODE_WORKER), str(offset), config.handler, *map(str, paths)]


class ExecutionEnvironment:
    """One warm worker process: Lambda's execution environment for one function generation."""

    def __init__(
        self,
        config: FunctionConfig,
        paths: list[Path],
        endpoint: str,
        log: LogSink,
        *,
        clock_packages: Path,
        clock_offset: Callable[[], float],
        live_source: bool = False,
        credentials: Mapping[str, str] = DUMMY_CREDENTIALS,
    ) -> None:
        """``live_source``: the task folder is a source folder being edited (hot reload);
        ``credentials``: the execution role's, as environment variables."""
        self.config = config
        self.log = log
        self.clock_offset = clock_offset
        self.reloads = 0
        self.born = time.monotonic()
        self.stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "en_US.UTF-8",
            "TZ": "UTC",
            **config.environment,
            **credentials,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": config.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": config.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": self.stream,
            "LAMBDA_TASK_ROOT": str(paths[0]),
            "_HANDLER": config.handler,
            # No X-Ray daemon runs locally.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        if live_source:
            # Hot reload: no bytecode is written into the source folder or read from it. Python checks
            # a cached module against its source's mtime in whole seconds and its size, so two edits
            # of the same length within a second would run the first one's bytecode.
            env |= {
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPYCACHEPREFIX": str(paths[0] / ".localcloud-no-bytecode"),
            }
        self.process = subprocess.Popen(
            worker_command(config, paths, clock_packages, clock_offset()),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=paths[0],
            env=env,
        )
        threading.Thread(target=self._pump_logs, daemon=True, name=f"logs-{config.name}").start()
        self.init_error: InvocationError | None = None
        ready = self._read(timeout=max(10.0, config.timeout))
        if not ready.get("ready"):
            self.init_error = InvocationError(
                ready.get("error_type", "Runtime.Unknown"), ready.get("error_message", "init failed")
            )

    def _pump_logs(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.log.write(
                self.config.name, self.config.log_group, self.stream, raw.decode("utf-8", "replace")
            )

    def _read(self, timeout: float) -> dict[str, Any]:
        stdout: IO[bytes] = self.process.stdout  # type: ignore[assignment]
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else b""
        if not line:
            self.kill()
            if not ready:
                raise TimeoutError
            raise InvocationError(
                "Runtime.ExitError", f"the runtime exited with code {self.process.returncode}"
            )
        return dict(json.loads(line))

    def invoke(self, event: Any, request_id: str) -> Any:
        """The handler's result, or InvocationError; a timeout kills the environment, as Lambda does."""
        if self.init_error is not None:
            raise self.init_error
        assert self.process.stdin is not None
        request = {
            "event": event,
            "timeout": self.config.timeout,
            "request_id": request_id,
            "function_arn": self.config.arn,
            "clock_offset": self.clock_offset(),
        }
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        self.process.stdin.flush()
        try:
            reply = self._read(timeout=self.config.timeout + 0.05)
        except TimeoutError:
            raise InvocationError(
                "Sandbox.Timedout",
                f"RequestId: {request_id} Error: Task timed out after {self.config.timeout:.2f} seconds",
            ) from None
        if not reply.get("ok"):
            raise InvocationError(reply.get("error_type", "Error"), reply.get("error_message", ""))
        return reply.get("result")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None and self.init_error is None

    def peak_memory_mb(self) -> float:
        """High-water resident memory of the process (Linux), to compare with the configured memory."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@dataclass
class FunctionStats:
    invocations: int = 0
    errors: int = 0
    timeouts: int = 0
    cold_starts: int = 0
    throttles: int = 0
    records_succeeded: int = 0
    records_failed: int = 0
    durations_ms: list[float] = field(default_factory=list)
    init_ms: list[float] = field(default_factory=list)
    peak_memory_mb: float = 0.0


class LocalFunction:
    """A deployed function: a pool of warm environments, at most ``limit`` busy at once."""

    def __init__(self, arn: str, runtime: LocalRuntime) -> None:
        self.arn = arn
        self.runtime = runtime
        self.idle: list[ExecutionEnvironment] = []
        self.running: set[ExecutionEnvironment] = set()
        self.busy = 0
        self.stats = FunctionStats()
        self.condition = threading.Condition()
        self.config = FunctionConfig.of(lambda_function(arn))
        self.source: Path | None = None  # hot reload: the source folder run instead of the deployed zip
        self.reloads = 0  # environments started before the last reload are retired

    @property
    def limit(self) -> int:
        reserved = self.config.reserved_concurrency
        return (
            self.runtime.max_environments
            if reserved is None
            else min(reserved, self.runtime.max_environments)
        )

    def _acquire(self, wait: float | None) -> ExecutionEnvironment | None:
        """An environment of the current generation, a new one (cold start) if none is idle."""
        config = FunctionConfig.of(lambda_function(self.arn))
        with self.condition:
            if config.generation != self.config.generation:  # redeployed: retire old environments
                self.config = config
                for environment in self.idle:
                    environment.kill()
                self.idle.clear()
            if self.busy >= self.limit:
                self.stats.throttles += 1
                if wait is None or not self.condition.wait_for(lambda: self.busy < self.limit, wait):
                    raise Throttled(
                        f"Rate Exceeded: {self.config.name} is at its concurrency limit {self.limit}"
                    )
            self.busy += 1
            while self.idle:
                environment = self.idle.pop()
                if environment.alive and time.monotonic() - environment.born < ENVIRONMENT_LIFETIME_SECONDS:
                    return environment
                environment.kill()
        return None

    def _release(self, environment: ExecutionEnvironment | None) -> None:
        with self.condition:
            self.busy -= 1
            if environment is not None:
                self.stats.peak_memory_mb = max(self.stats.peak_memory_mb, environment.peak_memory_mb())
                current = environment.config.generation == self.config.generation
                if environment.alive and current and environment.reloads == self.reloads:
                    self.idle.append(environment)
                else:
                    environment.kill()
            self.condition.notify()

    def invoke(self, event: Any, *, wait: float | None = 30.0, request_id: str | None = None) -> Any:
        """Run the handler once; ``wait=None`` fails fast with Throttled (synchronous Invoke API)."""
        request_id = request_id or str(uuid.uuid4())
        environment = self._acquire(wait)
        try:
            if environment is None:
                started = time.perf_counter()
                artifacts = self.runtime.artifacts
                function = lambda_function(self.arn)
                task = self.source or artifacts.task_dir(function)
                paths = [task, *self._libraries(artifacts, function)]
                environment = ExecutionEnvironment(
                    self.config,
                    paths,
                    self.runtime.endpoint,
                    self.runtime.log,
                    clock_packages=artifacts.clock_packages(),
                    clock_offset=self.runtime.clock_offset,
                    live_source=self.source is not None,
                    credentials=self.runtime.credentials(function.role, self.config.name),
                )
                _telemetry_grants(self.config, cold_start=True)
                environment.reloads = self.reloads
                with self.condition:
                    self.stats.cold_starts += 1
                    self.stats.init_ms.append((time.perf_counter() - started) * 1000)
            else:
                _telemetry_grants(self.config, cold_start=False)
            started = time.perf_counter()
            with self.condition:
                self.running.add(environment)
            try:
                return environment.invoke(event, request_id)
            except InvocationError as error:
                with self.condition:
                    self.stats.errors += 1
                    self.stats.timeouts += error.error_type == "Sandbox.Timedout"
                raise
            finally:
                with self.condition:
                    self.running.discard(environment)
                    self.stats.invocations += 1
                    self.stats.durations_ms.append((time.perf_counter() - started) * 1000)
        finally:
            self._release(environment)

    def _libraries(self, artifacts: Artifacts, function: Any) -> list[Path]:
        """Where modules come from besides the task folder: the layers, then what the runtime provides."""
        runtime = self.config.runtime
        if runtime.startswith("python"):
            return [*artifacts.layer_paths(function, "python"), artifacts.runtime_packages()]
        if runtime.startswith("nodejs"):
            return [*artifacts.layer_paths(function, "nodejs/node_modules"), artifacts.nodejs_packages()]
        raise InvocationError(
            "Runtime.InvalidRuntime", f"the local cloud runs Python and Node.js functions, not {runtime}"
        )

    def reload_from(self, folder: Path) -> None:
        """Run ``folder`` from the next invocation on (hot reload); warm environments are retired."""
        with self.condition:
            self.source = folder
            self.reloads += 1
            for environment in self.idle:
                environment.kill()
            self.idle.clear()

    def kill_running(self) -> int:
        """Kill every environment in the middle of an invocation (a crash, for fault injection);
        those invocations fail with Runtime.ExitError, as when a Lambda process dies. Returns how many."""
        with self.condition:
            running = list(self.running)
        for environment in running:
            environment.kill()
        return len(running)

    def close(self) -> None:
        with self.condition:
            for environment in self.idle:
                environment.kill()
            self.idle.clear()


class LocalRuntime:
    """Every deployed function, created on first use; closed with the local cloud."""

    def __init__(
        self,
        *,
        endpoint: str,
        workdir: Path,
        log: LogSink,
        max_environments: int = 4,
        clock: Clock | None = None,
        credentials: Callable[[str, str], Mapping[str, str]] | None = None,
    ) -> None:
        """``credentials``: a function's credentials from its role ARN and name (default: the local
        cloud's administrator key)."""
        self.endpoint = endpoint
        self.clock = clock
        self.credentials = credentials or (lambda role, name: DUMMY_CREDENTIALS)
        self.artifacts = Artifacts(workdir / "artifacts")
        self.log = log
        self.max_environments = max_environments
        self.functions: dict[str, LocalFunction] = {}
        self.lock = threading.Lock()

    def clock_offset(self) -> float:
        """Seconds the local clock is ahead of real time: every invocation runs on the local clock."""
        return self.clock.offset.total_seconds() if self.clock is not None else 0.0

    def function(self, arn_or_name: str) -> LocalFunction:
        arn = lambda_function(arn_or_name).function_arn  # a read: no need to wait for moto's lock
        with self.lock:
            if arn not in self.functions:
                self.functions[arn] = LocalFunction(arn, self)
            return self.functions[arn]

    def invoke(
        self, arn_or_name: str, event: Any, *, wait: float | None = 30.0, request_id: str | None = None
    ) -> Any:
        return self.function(arn_or_name).invoke(event, wait=wait, request_id=request_id)

    def close(self) -> None:
        with self.lock:
            for function in self.functions.values():
                function.close()
