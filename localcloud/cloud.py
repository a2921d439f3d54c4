"""The local cloud: moto's server in this process, any CDK app deployed to it by its own CDK CLI, and
the engine that makes the deployed templates run (functions, event source mappings, asynchronous
invocations, the scheduler and the local API). What it knows of a particular stack comes from the
extensions (``localcloud.extensions``)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from localcloud import moto_patches
from localcloud.apigateway.local_api import FunctionError, LocalApi
from localcloud.awslambda import patches as lambda_patches
from localcloud.awslambda.async_invoke import AsyncInvoker, send_to
from localcloud.awslambda.runtime import FunctionStats, InvocationError, LocalRuntime, Throttled
from localcloud.awslambda.streams import StreamMappings
from localcloud.awslambda.watch import SourceWatcher
from localcloud.clock import Clock, ClockLoop
from localcloud.dynamodb.streams import DynamoDBStreams
from localcloud.events.schedules import RuleSchedules
from localcloud.extensions import Extension, Queue, discover
from localcloud.iam.enforcement import DEFAULT_IAM_MODE, Permissions
from localcloud.iam.enforcement import set_active as set_active_permissions
from localcloud.kinesis.streams import KinesisStreams
from localcloud.logs import LogSink
from localcloud.pipes.runner import Pipes
from localcloud.scheduler.engine import SchedulerEngine
from localcloud.server import (
    ACCOUNT,
    DUMMY_CREDENTIALS,
    MOTO_LOCK,
    REGION,
    LocalCloudError,
    RequestHook,
    SerializedMotoApp,
    allowed_origin,
    local_client,
    serve_moto,
)  # fmt: skip
from localcloud.sqs import patches as sqs_patches
from localcloud.sqs.pollers import EventSourceMappings, sqs_mappings
from localcloud.stats import percentile
from localcloud.stepfunctions.sync_executions import start_sync_execution

if TYPE_CHECKING:
    from localcloud.dashboard import Dashboard

TOOLKIT_STACK = "CDKToolkit"
# Where the app's own CDK CLI is (package.json pins it), as npx finds it: here or in a parent folder.
CDK_CLI = Path("node_modules") / ".bin" / "cdk"
LOCAL_API_KEY = "local-api-key"


def default_workdir(app_dir: Path | None = None) -> Path:
    """Function logs, code and CDK assemblies: in the app's ``.build/localcloud`` folder."""
    return (app_dir or Path.cwd()).resolve() / ".build" / "localcloud"


def cdk_cli(app_dir: Path) -> Path:
    """The CDK CLI the app pins (``node_modules/.bin/cdk`` here or above), else the one on PATH."""
    for folder in (app_dir.resolve(), *app_dir.resolve().parents):
        if (folder / CDK_CLI).is_file():
            return folder / CDK_CLI
    found = shutil.which("cdk")
    if found is None:
        raise LocalCloudError(
            f"no CDK CLI: none in {app_dir / CDK_CLI} or a parent folder's, none on PATH; "
            "install the app's with `npm ci` (or `npm install aws-cdk`)"
        )
    return Path(found)


def assembly_stacks(assembly: Path) -> list[str]:
    """The stack names of a synthesized cloud assembly (its top level: what ``cdk deploy --all`` deploys)."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    return sorted(
        (artifact.get("properties") or {}).get("stackName", artifact_id)
        for artifact_id, artifact in (manifest.get("artifacts") or {}).items()
        if artifact.get("type") == "aws:cloudformation:stack"
    )


@dataclass
class DeployReport:
    stacks: list[str]
    bootstrap_seconds: float = 0.0
    deploy_seconds: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.bootstrap_seconds + self.deploy_seconds


def _percentile(values: Sequence[float], share: float) -> float | None:
    return round(percentile(values, share), 2) if values else None


class _Lifetime(Protocol):
    def start(self) -> Any: ...

    def close(self) -> None: ...


_Service = TypeVar("_Service", bound=_Lifetime)


class LocalCloud:
    """Start with ``start()`` (or as a context manager), deploy with ``deploy()``, inspect with ``status()``."""

    def __init__(
        self, *, port: int = 4566, api_port: int | None = 3000, host: str = "127.0.0.1",
        workdir: Path | None = None, echo_logs: bool = False, clock: Clock | None = None,
        api_key: str = LOCAL_API_KEY, max_environments: int = 4, dashboard_port: int | None = None,
        allowed_origins: Sequence[str] = (), api_id: str | None = None,
        extensions: Sequence[Extension] | None = None, iam: str = DEFAULT_IAM_MODE,
    ) -> None:  # fmt: skip
        """``workdir``: default the current folder's ``.build/localcloud``. ``api_id``: the REST API the
        local API serves at its root (default: the only one, or the one an extension names).
        ``extensions``: default the installed ones (``localcloud.extensions.discover``). ``iam``:
        enforce, report or off (``localcloud.iam.enforcement``)."""
        self.permissions = Permissions(iam)
        self.port = port
        self.api_port = api_port
        self.host = host
        self.workdir = workdir or default_workdir()
        self.api_id = api_id
        self.extensions: list[Extension] = list(discover() if extensions is None else extensions)
        self.echo_logs = echo_logs
        self.clock = clock or Clock()
        self.api_key = api_key
        # The dashboard's actions need it: made per run, so no page or script can know it in advance.
        self.dashboard_key = secrets.token_urlsafe(32)
        self.max_environments = max_environments
        self.dashboard_port = dashboard_port
        # web pages that may call the AWS endpoint (their browsers send Origin); none by default
        self.allowed_origins = tuple(allowed_origin(origin) for origin in allowed_origins)
        self.endpoint = f"http://{host}:{port}"
        self._stack = ExitStack()
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self.app: SerializedMotoApp
        self.runtime: LocalRuntime
        self.async_invoker: AsyncInvoker
        self.mappings: EventSourceMappings
        self.streams: StreamMappings
        self.pipes: Pipes
        self.scheduler: SchedulerEngine
        self.rule_schedules: RuleSchedules
        self.api: LocalApi | None = None
        self.dashboard: Dashboard | None = None
        self.deploys: list[DeployReport] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalCloud:
        from moto.moto_api._internal.models import moto_api_backend

        moto_patches.apply(self.port)
        # moto's state is per process: a cloud started after another (the benchmarks do) starts empty,
        # not with the queues and in-flight messages the last one left.
        moto_api_backend.reset()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._stack.enter_context(moto_patches.aws_managed_policies())
            self.app = self._stack.enter_context(
                serve_moto(self.port, self.host, allowed_origins=self.allowed_origins)
            )
            self.app.operations[("states", "StartSyncExecution")] = start_sync_execution
            self.app.authorizer = self.permissions.authorise
            set_active_permissions(self.permissions)  # deliveries made inside the cloud are checked too
            self._stack.callback(set_active_permissions, None)
            log = LogSink(self.workdir / "logs", echo=sys.stdout if self.echo_logs else None)
            self._stack.callback(log.close)
            self.runtime = LocalRuntime(
                endpoint=self.endpoint,
                workdir=self.workdir,
                log=log,
                max_environments=self.max_environments,
                clock=self.clock,
                credentials=self.permissions.credentials_for,
            )
            self._stack.callback(self.runtime.close)
            self.async_invoker = self._started(
                AsyncInvoker(runtime=self.runtime, clock=self.clock, client=self.client)
            )
            lambda_patches.set_invoker(self._moto_invoke)
            self._stack.callback(lambda_patches.set_invoker, None)
            sqs_patches.set_clock(self.clock)
            self._stack.callback(sqs_patches.set_clock, None)
            # A move of the clock may bring hidden and delayed messages due: waiting long polls look again.
            self._started(
                ClockLoop(self.clock, self.app.wake_all, name="long polls", seconds=3600, log=print)
            )
            self.mappings = self._started(
                EventSourceMappings(
                    self.runtime,
                    role_client=lambda role, name: self.role_client("sqs", role, name, validate=False),
                )
            )
            send = self._send_record
            self.streams = self._started(
                StreamMappings(self.runtime, [DynamoDBStreams(), KinesisStreams()], send=send)
            )
            self.pipes = self._started(
                Pipes(
                    self.runtime,
                    [DynamoDBStreams(), KinesisStreams()],
                    send=send,
                    role_client=lambda service, role, validate: self.role_client(
                        service, role, "pipes", validate=validate
                    ),
                )
            )
            self.scheduler = self._started(
                SchedulerEngine(
                    clock=self.clock,
                    client=self.client,
                    account_id=ACCOUNT,
                    region=REGION,
                    role_client=lambda service, role: self.role_client(service, role, "scheduler"),
                )
            )
            self.rule_schedules = self._started(
                RuleSchedules(clock=self.clock, lock=MOTO_LOCK, account_id=ACCOUNT, region=REGION)
            )
            if self.api_port is not None:
                self.api = LocalApi(
                    invoke=self._api_invoke, api_key=self.api_key, host=self.host, port=self.api_port,
                    api_id=self.api_id, root_api=self._root_api, endpoint=self.endpoint,
                    may_invoke=self._api_may_invoke,
                    role_credentials=lambda role: self.permissions.credentials_for(role, "apigateway"),
                )  # fmt: skip
                self.api.start()
                self._stack.callback(self.api.close)
            if self.dashboard_port is not None:
                from localcloud.dashboard import Dashboard, DashboardData

                data = DashboardData(self)
                self.dashboard = Dashboard(data, api_key=self.dashboard_key, port=self.dashboard_port).start()
                self._stack.callback(self.dashboard.close)
            self.app.control = self._control
        except BaseException:
            self._stack.close()
            raise
        return self

    def _started(self, service: _Service) -> _Service:
        """A background service, started for the cloud's lifetime."""
        service.start()
        self._stack.callback(service.close)
        return service

    def _send_record(self, arn: str, record: dict[str, Any]) -> None:
        """An on-failure record to its destination (a queue or a topic)."""
        send_to(self.client, arn, json.dumps(record))

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def client(self, service: str) -> Any:
        """A boto3 client for this local cloud (shared; boto3 clients are thread-safe)."""
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = local_client(service, self.endpoint)
            return self._clients[service]

    def role_client(self, service: str, role: str, session: str, *, validate: bool = True) -> Any:
        """A boto3 client acting as ``role`` (a session of it named ``session``), as a service that
        assumes the role calls: its requests are authorised against the role's policies."""
        credentials = self.permissions.credentials_for(role, session)  # renewed before they expire
        key = f"{service} as {credentials['AWS_ACCESS_KEY_ID']}{'' if validate else ' unvalidated'}"
        with self._clients_lock:
            if key not in self._clients:
                self._clients[key] = local_client(
                    service, self.endpoint, validate=validate, credentials=credentials
                )
            return self._clients[key]

    # -- invocations -----------------------------------------------------------------------

    def _moto_invoke(
        self, function: Any, body: str, invocation_type: str, request_id: str
    ) -> tuple[bytes, str | None]:
        from moto.awslambda.exceptions import LambdaClientError

        if invocation_type == "DryRun":
            return b"", None
        event = json.loads(body) if body.strip() else {}
        if invocation_type == "Event":
            self.async_invoker.submit(function.function_arn, event, request_id=request_id)
            return b"", None
        try:
            result = self.runtime.invoke(function.function_arn, event, wait=None, request_id=request_id)
        except Throttled as error:
            throttle = LambdaClientError("TooManyRequestsException", str(error))
            throttle.code = 429
            raise throttle from None
        except InvocationError as error:
            return json.dumps(error.payload(request_id)).encode(), "Unhandled"
        return json.dumps(result, default=str).encode(), None

    def _api_may_invoke(self, function: str, source_arn: str) -> bool:
        return self.permissions.service_may(
            "apigateway", "apigateway.amazonaws.com", "lambda:InvokeFunction", function, source_arn
        )

    def _api_invoke(self, function: str, event: dict[str, Any]) -> Any:
        try:
            return self.runtime.invoke(function, event, wait=None)
        except (InvocationError, Throttled) as error:
            raise FunctionError(
                getattr(error, "error_type", "Throttled"), getattr(error, "message", str(error))
            ) from error

    # -- deploy ------------------------------------------------------------------------------

    def cdk_environment(self) -> dict[str, str]:
        return {
            **os.environ,
            **DUMMY_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "CDK_DEFAULT_ACCOUNT": ACCOUNT,
            "CDK_DEFAULT_REGION": REGION,
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
            "NODE_NO_WARNINGS": "1",
            "CDK_DISABLE_VERSION_CHECK": "1",
        }

    def _cdk(self, cli: Path, args: list[str], what: str, cwd: Path) -> float:
        started = time.monotonic()
        done = subprocess.run(
            [str(cli), *args],
            cwd=cwd,
            env=self.cdk_environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise LocalCloudError(f"{what} failed (exit {done.returncode}):\n{tail}")
        return time.monotonic() - started

    def cdk_context(self, context: Mapping[str, str] | None = None) -> dict[str, str]:
        """The context of a deploy: what the extensions ask for, then ``context`` (which wins)."""
        merged: dict[str, str] = {}
        for extension in self.extensions:
            merged.update(extension.cdk_context())
        return merged | dict(context or {})

    def deploy(
        self, stacks: Sequence[str] = (), *, app_dir: Path | None = None, app: str | None = None,
        context: Mapping[str, str] | None = None, staging: bool = True,
    ) -> DeployReport:  # fmt: skip
        """``cdk bootstrap`` (once) and ``cdk deploy`` of ``stacks`` (default: every stack, ``--all``)
        with the app's CDK CLI against this endpoint. ``app_dir``: the app's folder, with its
        ``cdk.json`` (default: the current folder); ``app``: a command that runs the app instead of
        ``cdk.json``'s (the CLI's ``--app``). ``staging=False``: assets are not copied into the cloud
        assembly (``--no-staging``), so each function's asset metadata names its source folder (hot
        reload, ``watch_sources``)."""
        folder = (app_dir or Path.cwd()).resolve()
        if app is None and not (folder / "cdk.json").is_file():
            raise LocalCloudError(
                f"{folder} has no cdk.json: run from your CDK app's folder or give its folder (--app DIR)"
            )
        cli = cdk_cli(folder)
        key = f"{folder}\0{app or ''}"
        # Its own assembly folder: CDK CLIs of other sessions lock the project's cdk.out.
        run = self.workdir / f"cdk.out-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
        report = DeployReport(stacks=list(stacks))
        if TOOLKIT_STACK not in self.stack_outputs_by_stack():
            # Outside the project: with a cdk.json in sight the CLI synthesizes the whole app first.
            report.bootstrap_seconds = self._cdk(
                cli, ["bootstrap", f"aws://{ACCOUNT}/{REGION}"], "cdk bootstrap", cwd=self.workdir
            )
        args = ["deploy", *(stacks or ["--all"]), "--require-approval", "never", "--output", str(run),
                *(["--app", app] if app else []), *([] if staging else ["--no-staging"])]  # fmt: skip
        for name, value in self.cdk_context(context).items():
            args += ["--context", f"{name}={value}"]
        report.deploy_seconds = self._cdk(cli, args, f"cdk deploy {' '.join(stacks) or '--all'}", cwd=folder)
        if not report.stacks:  # --all: the stacks of the assembly the CLI synthesized
            report.stacks = assembly_stacks(run)
        deployed = self.stack_outputs_by_stack()
        for stack in report.stacks:
            if stack not in deployed:
                raise LocalCloudError(f"cdk deploy {stack} did not complete: {self.stack_failure(stack)}")
            report.outputs.update(deployed[stack])
        self.deploys.append(report)
        return report

    def watch_sources(self) -> SourceWatcher:
        """Hot reload: a function deployed with asset staging off (``deploy(staging=False)``) runs its
        edited source folder from the next invocation on."""
        watcher = SourceWatcher(lambda name, folder: self.runtime.function(name).reload_from(folder))
        watcher.start()
        self._stack.callback(watcher.close)
        return watcher

    def _root_api(self) -> str | None:
        """The REST API an extension names for the local API's root (its own invoke URL on AWS)."""
        for extension in self.extensions:
            chosen = extension.root_api(self)
            if chosen:
                return chosen
        return None

    def extension_status(self) -> dict[str, dict[str, Any]]:
        return {extension.name: dict(extension.status(self)) for extension in self.extensions}

    # -- state -------------------------------------------------------------------------------

    def stack_outputs_by_stack(self) -> dict[str, dict[str, str]]:
        from moto.cloudformation.models import cloudformation_backends

        with MOTO_LOCK:
            stacks = cloudformation_backends[ACCOUNT][REGION].stacks.values()
            return {
                s.name: {o["OutputKey"]: str(o["OutputValue"]) for o in s.outputs or []}
                for s in stacks
                if s.status in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
            }

    def stack_failure(self, stack: str) -> str:
        """The first failure event of a stack, for one clear line."""
        from moto.cloudformation.models import cloudformation_backends

        with MOTO_LOCK:
            for candidate in cloudformation_backends[ACCOUNT][REGION].stacks.values():
                if candidate.name == stack:
                    for event in candidate.events:
                        if event.resource_status.endswith("FAILED"):
                            return f"{event.logical_resource_id}: {event.resource_status_reason}"
                    return f"status {candidate.status}"
        return "the stack does not exist"

    def stack_outputs(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for name, outputs in self.stack_outputs_by_stack().items():
            if name != TOOLKIT_STACK:
                merged.update(outputs)
        return merged

    def unsupported_resources(self) -> list[dict[str, str]]:
        """Resources of deployed stacks whose type moto cannot create, or with a property the local cloud
        does not honour (``property`` names it): listed, never silently ignored."""
        from moto.cloudformation.models import cloudformation_backends

        from localcloud.cloudformation.resource_types import (
            NOT_HONOURED,
            is_supported,
            not_honoured_properties,
        )

        found = []
        with MOTO_LOCK:
            for stack in cloudformation_backends[ACCOUNT][REGION].stacks.values():
                for logical_id, resource in (stack.template_dict.get("Resources") or {}).items():
                    kind = resource.get("Type", "")
                    if kind != "AWS::CDK::Metadata" and not is_supported(kind):
                        found.append(
                            {"stack": stack.name, "resource": logical_id, "type": kind,
                             "why": NOT_HONOURED.get(kind, "moto cannot create this type")}
                        )  # fmt: skip
                        continue
                    for name, why in not_honoured_properties(kind, resource.get("Properties") or {}):
                        found.append(
                            {
                                "stack": stack.name,
                                "resource": logical_id,
                                "type": kind,
                                "property": name,
                                "why": why,
                            }
                        )
        return found

    def queues(self) -> dict[str, dict[str, Any]]:
        from moto.sqs.models import sqs_backends

        with MOTO_LOCK:
            queues = list(sqs_backends[ACCOUNT][REGION].queues.values())
            sources: dict[str, list[str]] = {}  # dead-letter queue ARN -> the queues that redrive to it
            for q in queues:
                if q.redrive_policy:
                    sources.setdefault(q.redrive_policy["deadLetterTargetArn"], []).append(q.name)
            now = self.clock.timestamp() * 1000  # SQS stamps messages with the local clock, in ms
            result = {}
            for q in queues:
                # One pass per queue: moto's own counts scan the messages once each.
                visible = in_flight = delayed = 0
                oldest = now
                # SQS drops a message past its retention period, and never returns it.
                expired = now - int(getattr(q, "message_retention_period", 345600)) * 1000
                for m in q._messages:
                    if (m.sent_timestamp or now) <= expired:
                        continue
                    in_flight += now <= m.visible_at
                    delayed += now < m.delayed_until
                    visible += now > m.visible_at and now >= m.delayed_until
                    oldest = min(oldest, m.sent_timestamp or now)
                result[q.name] = {
                    "url": f"{self.endpoint}/{q.account_id}/{q.name}",
                    "visible": visible,
                    "in_flight": in_flight,
                    "delayed": delayed,
                    "dlq": q.queue_arn in sources or self._marked_dead_letter_queue(q),
                    # where a redrive sends its messages back: only a queue with one source has one
                    "redrive_to": sources[q.queue_arn][0] if len(sources.get(q.queue_arn, ())) == 1 else None,
                    "oldest_age_seconds": round((now - oldest) / 1000, 1),
                }
            return result

    def _marked_dead_letter_queue(self, queue: Any) -> bool:
        """A DLQ no redrive policy names (a topic's, a schedule's): only an extension knows it."""
        seen = Queue(name=queue.name, arn=queue.queue_arn, tags=dict(queue.tags or {}))
        return any(extension.is_dead_letter_queue(seen) for extension in self.extensions)

    def functions(self) -> dict[str, dict[str, Any]]:
        """Every deployed function, with what the runtime has seen of it (zeros until first invoked)."""
        from moto.awslambda.models import lambda_backends

        with MOTO_LOCK:
            deployed = [(f.function_arn, f.function_name, int(f.memory_size))
                        for f in lambda_backends[ACCOUNT][REGION].list_functions()]  # fmt: skip
        result = {}
        for arn, name, memory in deployed:
            function = self.runtime.functions.get(arn)
            s = function.stats if function else FunctionStats()
            result[name] = {
                "invocations": s.invocations, "errors": s.errors, "timeouts": s.timeouts,
                "cold_starts": s.cold_starts, "throttles": s.throttles,
                "p50_ms": _percentile(s.durations_ms, 0.5), "p99_ms": _percentile(s.durations_ms, 0.99),
                "init_ms_mean": round(statistics.fmean(s.init_ms), 1) if s.init_ms else None,
                "memory_mb": memory, "peak_memory_mb": round(s.peak_memory_mb, 1),
                "warm_environments": len(function.idle) if function else 0,
            }  # fmt: skip
        return result

    def executions(self) -> dict[str, dict[str, int]]:
        from moto.stepfunctions.responses import get_backend

        counts: dict[str, dict[str, int]] = {}
        with MOTO_LOCK:
            for machine in get_backend(ACCOUNT, REGION).state_machines:
                by_status = counts.setdefault(machine.name, {})
                for execution in machine.executions:
                    by_status[execution.status] = by_status.get(execution.status, 0) + 1
        return counts

    def status(self) -> dict[str, Any]:
        outputs = self.stack_outputs()
        return {
            "endpoint": self.endpoint,
            "api_url": self.api.url if self.api else None,
            "dashboard_url": self.dashboard.url if self.dashboard else None,
            "api_key": self.api_key,
            "dashboard_key": self.dashboard_key if self.dashboard else None,
            "extensions": self.extension_status(),
            "clock": {
                "now": self.clock.now().isoformat(),
                "offset_seconds": self.clock.offset.total_seconds(),
            },
            "stacks": sorted(self.stack_outputs_by_stack()),
            "stack_outputs": outputs,
            "unsupported_resources": self.unsupported_resources(),
            "queues": self.queues(),
            "functions": self.functions(),
            "executions": self.executions(),
            "schedules": {"pending": self.scheduler.pending(), **vars(self.scheduler.stats)},
            "scheduled_rules": vars(self.rule_schedules.stats),
            "async_invocations": {**vars(self.async_invoker.stats), "pending": self.async_invoker.pending},
            "event_source_mappings": {
                uuid: vars(s) for uuid, s in (self.mappings.stats() | self.streams.stats()).items()
            },
            "api_calls": self.app.api_calls.snapshot(),
            "iam": self.permissions.status(),
            "deploys": [vars(d) | {"seconds": d.seconds} for d in self.deploys],
        }

    def _control(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        request = json.loads(body) if body else {}
        if (method, path) == ("GET", "status"):
            return 200, self.status()
        if (method, path) == ("POST", "clock/advance"):
            self.clock.advance(float(request.get("seconds", 0)))
            return 200, {"now": self.clock.now().isoformat()}
        if (method, path) == ("POST", "api-calls/reset"):
            self.app.api_calls.reset()
            return 200, {}
        return 404, {"message": f"no local cloud endpoint {method} /{path}"}

    @contextmanager
    def request_hook(self, hook: RequestHook) -> Iterator[None]:
        """Run ``hook`` on every AWS request inside the block (fault injection: kill, delay, count)."""
        self.app.request_hooks.append(hook)
        try:
            yield
        finally:
            self.app.request_hooks.remove(hook)

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.1) -> None:
        """Wait on a condition, never on a fixed sleep; a clear error when it does not hold in time."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise LocalCloudError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(poll)

    def idle(self) -> bool:
        """Nothing queued for a consumer, in flight or being invoked anywhere. Queues nobody consumes
        (dead-letter queues, reply queues) may hold messages: they stay there by design."""
        consumed = {mapping.queue_arn.rsplit(":", 1)[-1] for mapping in sqs_mappings().values()}
        busy_queues = any(
            q["visible"] or q["in_flight"] or q["delayed"]
            for name, q in self.queues().items()
            if name in consumed
        )
        return (
            not busy_queues
            and self.mappings.idle
            and self.streams.idle
            and self.pipes.idle
            and self.async_invoker.pending == 0
        )


@contextmanager
def running_cloud(**kwargs: Any) -> Iterator[LocalCloud]:
    cloud = LocalCloud(**kwargs).start()
    try:
        yield cloud
    finally:
        cloud.close()
