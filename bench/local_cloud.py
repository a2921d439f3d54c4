"""The local cloud itself: time to ready, runtime efficiency, pipeline throughput and latency, memory
and AWS API calls per event, each next to a baseline measured in the same run.

One ``LocalCloud`` serves the whole group (moto's state and the invoker hook are process-global):

1. time to ready: the first ``cloud.deploy()`` into the fresh cloud (bootstrap + deploy, the CLI's
   synth included) and a second one with nothing changed, vs ``cdk synth`` alone with the same CLI
   (and the bootstrap vs ``cdk bootstrap`` run outside the project, where it has no app to synthesize);
   and the CPU the idle cloud burns once the stack (its event source mappings) is deployed.
2. runtime efficiency: messages/s an event source mapping drains from a pre-loaded queue into a
   function that does nothing, vs the raw ceiling of the same moto server: one client looping
   SendMessageBatch / ReceiveMessage / DeleteMessageBatch (10 a call) on a shallow queue, and one
   client draining a queue pre-loaded to the same depth (moto's SQS costs grow with queue depth).
3. the deployed fan-out pipeline: events/s from the first publish of a burst until ``cloud.idle()``;
   publish-to-processed latency one event at a time (idle) and during the burst (loaded).
4. synchronous ``Invoke`` of the do-nothing function, cold and warm, vs a raw moto API round trip.
5. peak memory of the whole local cloud (this process and its execution environments, sampled from
   ``/proc`` during the burst) and of each execution environment vs its configured memory.
(AWS requests per event are the ``requests`` group's.)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3

from asyncstack.runtime.publisher import AWS_MAX_BATCH_ENTRIES, BatchPublisher, OutgoingMessage
from bench.results import Metric, command, median, ratio
from demo.example import CDK, ROOT
from demo.pipeline import SKUS, Consumer, OrderPipeline, Published, build_events, matches
from localcloud.cloud import LocalCloud
from localcloud.dashboard import DashboardData
from localcloud.server import ACCOUNT, REGION, ApiCallCounter, LocalCloudError, free_port
from localcloud.stats import percentile
from shared.events import OrderCreated, OrderLine
from shared.inventory import InventoryRepository
from shared.orders import event_message, order_created

GROUP = "localcloud"
READY_TARGET_SECONDS = 30.0
EFFICIENCY_TARGET = 0.5
WARM_INVOKE_TARGET_MS = 10.0
NOOP_FUNCTION = "bench-noop"
NOOP_QUEUE = "bench-noop"
CEILING_QUEUE = "bench-ceiling"
DRAIN_QUEUE = "bench-drain"
ROLE_NAME = "bench"
NOOP_SOURCE = 'def handler(event, context):\n    return {"batchItemFailures": []}\n'
ESM_CONCURRENCY = 2
IDLE_SECONDS = 3.0
HOT_RELOAD_APP = """
import sys
from aws_cdk import App, CfnOutput, Duration, Stack
from aws_cdk import aws_lambda as lambda_

app = App()
stack = Stack(app, "HotReloadBench")
for name, folder in (("Edited", sys.argv[1]), ("Deployed", sys.argv[2])):
    function = lambda_.Function(
        stack, name, runtime=lambda_.Runtime.PYTHON_3_11, handler="handler.handler",
        code=lambda_.Code.from_asset(folder), timeout=Duration.seconds(5),
    )
    CfnOutput(stack, f"{name}FunctionName", value=function.function_name)
app.synth()
"""


@dataclass(frozen=True)
class Sizes:
    ceiling_messages: int  # through the shallow send/receive/delete loop
    esm_messages: int  # pre-loaded, then drained by the mapping (and by one client, for the baseline)
    warm_invokes: int
    idle_events: int  # published one at a time, each waited for
    burst_events: int  # published at once through the fan-out pipeline
    synth_runs: int
    dashboard_reads: int  # overviews read after the burst, interleaved with a raw round trip


# moto's SQS calls cost time proportional to the queue's depth (the ``sqs.*`` metrics show it), so
# filling and draining N messages costs O(N^2): these sizes keep the group within a few minutes.
FULL = Sizes(
    ceiling_messages=1000,
    esm_messages=500,
    warm_invokes=200,
    idle_events=12,
    burst_events=300,
    synth_runs=2,
    dashboard_reads=100,
)
QUICK = Sizes(
    ceiling_messages=300,
    esm_messages=200,
    warm_invokes=200,
    idle_events=5,
    burst_events=100,
    synth_runs=1,
    dashboard_reads=30,
)


def say(message: str) -> None:
    print(f"  [{GROUP}] {message}", flush=True)


# -- memory, from /proc (psutil is not installed) ------------------------------------------------


def proc_status_kb(pid: int, field_name: str) -> int:
    """A ``/proc/<pid>/status`` field in kB (VmRSS, VmHWM); 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def worker_processes() -> dict[int, int]:
    """This process's execution environments (children running ``worker.py``): pid -> configured MB."""
    me = os.getpid()
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid != me or b"worker.py" not in (entry / "cmdline").read_bytes():
                continue
            variables = (entry / "environ").read_bytes().split(b"\0")
            environ = dict(item.split(b"=", 1) for item in variables if b"=" in item)
            found[int(entry.name)] = int(environ.get(b"AWS_LAMBDA_FUNCTION_MEMORY_SIZE", b"0"))
        except (OSError, ValueError, IndexError):
            continue
    return found


@dataclass(frozen=True)
class MemorySample:
    total_kb: int = 0  # this process + every execution environment, resident
    main_kb: int = 0
    workers: int = 0
    configured_mb: int = 0  # the configured memory of the environments alive then


class MemorySampler:
    """Samples resident memory of the whole local cloud every ``interval`` seconds; keeps the peak."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak = MemorySample()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    def sample(self) -> None:
        workers = worker_processes()
        main = proc_status_kb(os.getpid(), "VmRSS")
        total = main + sum(proc_status_kb(pid, "VmRSS") for pid in workers)
        self.samples += 1
        if total > self.peak.total_kb:
            self.peak = MemorySample(total, main, len(workers), sum(workers.values()))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# -- where moto's time goes ----------------------------------------------------------------------


class MotoTimer:
    """Time spent inside moto's WSGI app by operation: for everything but Lambda invocations that is
    time holding the local cloud's global moto lock, i.e. time nothing else could use moto."""

    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud
        self.seconds: dict[str, float] = {}
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._inner: Any = None

    def _timed(self, environ: dict[str, Any], start_response: Any) -> Any:
        stream = environ.get("wsgi.input")
        body = stream.getvalue() if isinstance(stream, io.BytesIO) else b""
        service, operation = ApiCallCounter.classify(environ, body)
        started = time.perf_counter()
        try:
            return self._inner(environ, start_response)
        finally:
            with self._lock:
                key = f"{service}.{operation}"
                self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started
                self.calls[f"{service}.{operation}"] += 1

    def __enter__(self) -> MotoTimer:
        self._inner = self.cloud.app.app
        self.cloud.app.app = self._timed
        return self

    def __exit__(self, *exc: object) -> None:
        self.cloud.app.app = self._inner

    def describe(self, per: int, unit: str, top: int = 8) -> str:
        return (
            ", ".join(
                f"{op} {seconds * 1000 / per:.1f} ms ({self.calls[op]} executions)"
                for op, seconds in sorted(self.seconds.items(), key=lambda item: -item[1])[:top]
            )
            + f" per {unit}"
        )


# -- the benchmark -------------------------------------------------------------------------------


@dataclass
class Ceiling:
    """One client's SQS loop: messages, wall seconds, and each call's milliseconds by operation."""

    messages: int
    seconds: float
    calls_ms: dict[str, list[float]]

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def mean_ms(self, operation: str) -> float:
        return sum(self.calls_ms[operation]) / len(self.calls_ms[operation])


@dataclass
class LocalCloudBench:
    cloud: LocalCloud
    quick: bool
    workdir: Path
    sizes: Sizes = field(init=False)
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sizes = QUICK if self.quick else FULL

    def add(self, name: str, value: float, unit: str, baseline: str, baseline_value: float) -> None:
        self.metrics.append(
            Metric(
                name=f"{GROUP}.{name}",
                value=value,
                unit=unit,
                baseline=baseline,
                baseline_value=baseline_value,
                ratio=ratio(value, baseline_value),
                command=command(GROUP, quick=self.quick),
            )
        )

    def note(self, text: str) -> None:
        self.notes.append(f"{GROUP}: {text}")

    # -- 1. time to ready, idle cost -------------------------------------------------------------

    def synth_seconds(self, run: int) -> float:
        arguments = ["synth", "--quiet", "--context", "asyncstack:localCloud=true"]
        started = time.monotonic()
        done = subprocess.run(
            [str(CDK), *arguments, "--output", str(self.workdir / f"synth-{run}")],
            cwd=ROOT,
            env=self.cloud.cdk_environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(f"cdk synth failed:\n{(done.stdout + done.stderr)[-2000:]}")
        say(f"cdk synth alone: {seconds:.1f} s")
        return seconds

    def bare_bootstrap_seconds(self) -> float:
        """``cdk bootstrap`` run outside the project (no cdk.json, so no app to synthesize) into the same
        cloud, under another toolkit stack name and qualifier."""
        folder = self.workdir / "bare-bootstrap"
        folder.mkdir()
        arguments = ["--toolkit-stack-name", "BenchToolkit", "--qualifier", "benchbare"]
        started = time.monotonic()
        done = subprocess.run(
            [str(CDK), "bootstrap", f"aws://{ACCOUNT}/{REGION}", *arguments],
            cwd=folder,
            env=self.cloud.cdk_environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(
                f"cdk bootstrap outside the project failed:\n{(done.stdout + done.stderr)[-2000:]}"
            )
        say(f"cdk bootstrap outside the project: {seconds:.1f} s")
        return seconds

    @staticmethod
    def cpu_percent(seconds: float) -> float:
        """CPU time of this process (every thread: moto, pollers, scheduler) per wall-clock second, in %."""
        cpu, wall = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        return 100 * (time.process_time() - cpu) / (time.perf_counter() - wall)

    def time_to_ready(self) -> None:
        idle_before = self.cpu_percent(IDLE_SECONDS)
        # One synth before the cold deploy (no event source mappings polling yet, as for the cold
        # deploy), the others after the warm one (with them, as for the warm deploy).
        synths = [self.synth_seconds(1)]
        say("cold deploy (bootstrap + deploy into the fresh cloud) ...")
        cold = self.cloud.deploy()
        say(
            f"cold: {cold.seconds:.1f} s (bootstrap {cold.bootstrap_seconds:.1f} s,"
            f" deploy {cold.deploy_seconds:.1f} s)"
        )
        warm = self.cloud.deploy()
        say(f"warm (no changes): {warm.seconds:.1f} s")
        receives = self.cloud.app.api_calls.snapshot().get("sqs", {}).get("ReceiveMessage", 0)
        with MotoTimer(self.cloud) as moto:
            idle_after = self.cpu_percent(IDLE_SECONDS)
        say(f"idle CPU of the local cloud: {idle_before:.1f}% before the deploy, {idle_after:.1f}% after it")
        receives = self.cloud.app.api_calls.snapshot().get("sqs", {}).get("ReceiveMessage", 0) - receives
        self.note(
            f"idle, stack deployed: {sum(len(p) for _, p in self.cloud.mappings.pollers.values())} pollers;"
            f" moto ran ReceiveMessage {moto.calls.get('sqs.ReceiveMessage', 0) / IDLE_SECONDS:.0f} times/s"
            f" for {receives / IDLE_SECONDS:.0f} ReceiveMessage API calls/s (long polls emulated by re-polling);"
            f" moto busy {100 * sum(moto.seconds.values()) / IDLE_SECONDS:.0f}% of the time"
        )
        synths += [self.synth_seconds(run) for run in range(len(synths) + 1, self.sizes.synth_runs + 1)]
        bare = self.bare_bootstrap_seconds()
        synth = median(synths)
        baseline = (
            f"`cdk synth` alone, same CLI and context (median of {len(synths)}); spec target: ready in"
            f" under {READY_TARGET_SECONDS:.0f} s"
        )
        self.add("ready.cold_s", cold.seconds, "s", baseline, synth)
        self.add("ready.cold_bootstrap_s", cold.bootstrap_seconds, "s", baseline, synth)
        self.add("ready.cold_deploy_s", cold.deploy_seconds, "s", baseline, synth)
        self.add(
            "ready.cold_bootstrap_s_vs_bare",
            cold.bootstrap_seconds,
            "s",
            "`cdk bootstrap` run outside the project (no cdk.json: no app to synthesize) into the same cloud"
            " under another toolkit stack name; the project's bootstrap synthesizes the whole app first",
            bare,
        )
        self.add("ready.warm_s", warm.seconds, "s", baseline, synth)
        self.add(
            "idle.cpu_percent",
            idle_after,
            "% of a core",
            f"the same cloud before the stack was deployed (no event source mappings); {IDLE_SECONDS:.0f} s"
            " each, CPU time of this process (moto, pollers, scheduler threads)",
            idle_before,
        )
        verdict = "under" if cold.seconds < READY_TARGET_SECONDS else "OVER"
        self.note(
            f"ready: cold {cold.seconds:.1f} s = bootstrap {cold.bootstrap_seconds:.1f} s + deploy"
            f" {cold.deploy_seconds:.1f} s ({verdict} the {READY_TARGET_SECONDS:.0f} s target); warm (no"
            f" changes) {warm.seconds:.1f} s; synth alone {', '.join(f'{s:.1f}' for s in synths)} s"
        )

    # -- the do-nothing function -----------------------------------------------------------------

    def create_noop(self) -> tuple[str, str]:
        """The do-nothing function and its queue, created through the API; (function ARN, queue URL)."""
        iam, lambda_, sqs = (self.cloud.client(s) for s in ("iam", "lambda", "sqs"))
        # moto refuses a role that does not exist in IAM ("The role defined for the function cannot be
        # assumed by Lambda"), so the dummy role is created first.
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        assert role == f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}", role
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("index.py", NOOP_SOURCE)
        function = lambda_.create_function(
            FunctionName=NOOP_FUNCTION,
            Runtime="python3.11",
            Role=role,
            Handler="index.handler",
            Code={"ZipFile": archive.getvalue()},
            Timeout=30,
            MemorySize=128,
        )
        queue_url = sqs.create_queue(QueueName=NOOP_QUEUE, Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
        # Lambda reads the mapped queue and streams and writes the function's logs with its role
        # (checked when permissions are enforced), as for any deployed function
        iam.put_role_policy(
            RoleName=ROLE_NAME, PolicyName="consume", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{NOOP_QUEUE}",
                "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"],
            }, {
                "Effect": "Allow", "Resource": "*",  # the streams stream_efficiency creates
                "Action": ["dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:DescribeStream",
                           "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:DescribeStream"],
            }, {
                "Effect": "Allow", "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{NOOP_FUNCTION}:*",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            }]}),
        )  # fmt: skip
        return function["FunctionArn"], queue_url

    # -- 1a. hot reload ----------------------------------------------------------------------------

    def hot_reload(self) -> None:
        """Edit-to-effect of a handler change: with the source watched (``up --watch``) against a
        ``cdk deploy`` of the same change to a twin function nobody watches, each timed until an
        invocation answers with the new code."""
        edited, deployed = self.workdir / "hot-reload-edited", self.workdir / "hot-reload-deployed"
        app = self.workdir / "hot_reload_app.py"
        app.write_text(HOT_RELOAD_APP)

        def write(folder: Path, version: str) -> None:
            folder.mkdir(exist_ok=True)
            (folder / "handler.py").write_text(f"def handler(event, context):\n    return {version!r}\n")

        write(edited, "v0")
        write(deployed, "v0")
        command = f"{sys.executable} {app} {edited} {deployed}"
        outputs = self.cloud.deploy(["HotReloadBench"], app=command, staging=False).outputs
        lambda_ = self.cloud.client("lambda")

        def until_answer(function: str, version: str) -> None:
            deadline = time.perf_counter() + 120
            while (
                json.loads(lambda_.invoke(FunctionName=function, Payload=b"{}")["Payload"].read()) != version
            ):
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{function} did not answer {version} within 120 s")
                time.sleep(0.02)

        until_answer(outputs["EditedFunctionName"], "v0")
        watcher = self.cloud.watch_sources()
        edits = []
        for n in range(1, 4):
            started = time.perf_counter()
            write(edited, f"v{n}")
            until_answer(outputs["EditedFunctionName"], f"v{n}")
            edits.append(time.perf_counter() - started)
        watcher.close()  # the twin's change goes through a deploy only
        started = time.perf_counter()
        write(deployed, "v1")
        self.cloud.deploy(["HotReloadBench"], app=command, staging=False)
        until_answer(outputs["DeployedFunctionName"], "v1")
        deploy_seconds = time.perf_counter() - started
        self.add(
            "hot_reload.edit_to_effect_s", median(edits), "s",
            "`cdk deploy` of the same one-line change (to a twin function), until an invocation answers with it",
            deploy_seconds,
        )  # fmt: skip
        say(
            f"hot reload: edit to effect {median(edits):.2f} s (median of 3); cdk deploy of the change {deploy_seconds:.1f} s"
        )

    # -- 1a. the cost of permissions -------------------------------------------------------------

    def iam_cost(self, queue_url: str) -> None:
        """SendMessage per second from a role's credentials with every call authorised (enforce) against
        the same calls unchecked (off), rounds interleaved in one run."""
        iam, count = self.cloud.client("iam"), 100 if self.quick else 300
        queue_arn = self.cloud.client("sqs").get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        role = iam.create_role(
            RoleName="bench-sender", AssumeRolePolicyDocument=json.dumps({"Statement": []})
        )["Role"]
        iam.put_role_policy(
            RoleName="bench-sender", PolicyName="send",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn}
            ]}),
        )  # fmt: skip
        keys = self.cloud.permissions.credentials_for(role["Arn"], "bench")
        sqs = boto3.session.Session().client(
            "sqs", endpoint_url=self.cloud.endpoint, region_name=REGION, aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"], aws_session_token=keys["AWS_SESSION_TOKEN"],
        )  # fmt: skip
        rates: dict[str, list[float]] = {"enforce": [], "off": []}
        saved = self.cloud.permissions.mode
        try:
            for _ in range(3):
                for mode, measured in rates.items():
                    self.cloud.permissions.mode = mode
                    started = time.perf_counter()
                    for n in range(count):
                        sqs.send_message(QueueUrl=queue_url, MessageBody=f"iam-{n}")
                    measured.append(count / (time.perf_counter() - started))
        finally:
            self.cloud.permissions.mode = saved
        self.cloud.client("sqs").purge_queue(QueueUrl=queue_url)
        enforced, unchecked = median(rates["enforce"]), median(rates["off"])
        self.add(
            "iam.enforce_send_message_per_s", enforced, "requests/s",
            f"the same SendMessage calls with --iam off ({count} a round, 3 rounds each, interleaved)", unchecked,
        )  # fmt: skip
        say(f"SendMessage from a role: {enforced:.0f}/s with --iam enforce, {unchecked:.0f}/s with --iam off")

    # -- 1b. long-poll wake-up ---------------------------------------------------------------------

    def long_poll_wakeup(self, queue_url: str) -> None:
        """How soon a waiting long poll returns a message: sent while it waits, and delayed by 1 s.
        An idle long poll re-polls nothing; it is woken by the message (or by its due time)."""
        sqs, receiver = self.cloud.client("sqs"), self.cloud.client("sqs")
        rounds = 8 if self.quick else 20

        def receive_after(send: Callable[[], float]) -> float:
            """Seconds from the moment ``send`` says the message is receivable to the long poll's answer."""
            answered: list[float] = []

            def wait() -> None:
                got = receiver.receive_message(QueueUrl=queue_url, WaitTimeSeconds=20).get("Messages", [])
                answered.append(time.perf_counter())
                for message in got:
                    receiver.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

            waiting = threading.Thread(target=wait)
            waiting.start()
            time.sleep(0.3)  # the poll is waiting on an empty queue
            receivable_at = send()
            waiting.join()
            return answered[0] - receivable_at

        def immediate() -> float:
            """The baseline: a receive that finds the message already there."""
            sqs.send_message(QueueUrl=queue_url, MessageBody="{}")
            started = time.perf_counter()
            message = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=20)["Messages"][0]
            elapsed = time.perf_counter() - started
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            return elapsed

        def sent_now() -> float:
            started = time.perf_counter()
            sqs.send_message(QueueUrl=queue_url, MessageBody="{}")
            return started

        def delayed() -> float:
            sqs.send_message(QueueUrl=queue_url, MessageBody="{}", DelaySeconds=1)
            return time.perf_counter() + 1.0

        woken, due, baseline = [], [], []
        for _ in range(rounds):  # interleaved, so noise spreads over all three
            woken.append(receive_after(sent_now) * 1000)
            due.append(receive_after(delayed) * 1000)
            baseline.append(immediate() * 1000)
        base = percentile(baseline, 0.5)
        described = f"a ReceiveMessage that finds the message already there, p50 of {rounds}, interleaved"
        self.add("long_poll.woken_by_send_p50_ms", percentile(woken, 0.5), "ms", described, base)
        self.add("long_poll.woken_by_delay_end_p50_ms", percentile(due, 0.5), "ms", described, base)
        self.note(
            f"long-poll wake-up: a message sent to a queue a long poll waits on is answered in p50"
            f" {percentile(woken, 0.5):.1f} ms (max {max(woken):.1f}); one delayed 1 s, p50 {percentile(due, 0.5):.1f} ms"
            f" after its delay ends; a receive finding the message there takes p50 {base:.1f} ms"
        )
        say(
            f"long-poll wake-up p50: {percentile(woken, 0.5):.1f} ms on send, {percentile(due, 0.5):.1f} ms after a delay"
        )

    # -- 4. invoke latency -----------------------------------------------------------------------

    def invoke_latency(self, function_arn: str) -> None:
        lambda_, sqs = self.cloud.client("lambda"), self.cloud.client("sqs")

        def invoke() -> float:
            started = time.perf_counter()
            response = lambda_.invoke(FunctionName=function_arn, Payload=b"{}")
            response["Payload"].read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.get("FunctionError"):
                raise RuntimeError(f"the do-nothing function failed: {response}")
            return elapsed

        def round_trip() -> float:
            started = time.perf_counter()
            sqs.get_queue_url(QueueName=NOOP_QUEUE)
            return (time.perf_counter() - started) * 1000

        round_trip()  # the client's first call builds its endpoint and signer: not moto's cost
        cold = invoke()
        warm, raw = [], []
        for _ in range(self.sizes.warm_invokes):  # interleaved, so noise spreads over both
            warm.append(invoke())
            raw.append(round_trip())
        raw_p50, warm_p50, warm_p99 = percentile(raw, 0.5), percentile(warm, 0.5), percentile(warm, 0.99)
        baseline = (
            f"raw moto API round trip on the same endpoint: sqs GetQueueUrl p50 of {len(raw)}, interleaved"
            f" with the invokes; target warm p50 < {WARM_INVOKE_TARGET_MS:.0f} ms"
        )
        self.add("invoke.cold_ms", cold, "ms", baseline, raw_p50)
        self.add("invoke.warm_p50_ms", warm_p50, "ms", baseline, raw_p50)
        self.add("invoke.warm_p99_ms", warm_p99, "ms", baseline, raw_p50)
        stats = self.cloud.functions()[NOOP_FUNCTION]
        self.note(
            f"invoke: cold {cold:.1f} ms (environment start {stats['init_ms_mean']} ms), warm p50 {warm_p50:.2f}"
            f" / p99 {warm_p99:.2f} ms over {len(warm)} ({'under' if warm_p50 < WARM_INVOKE_TARGET_MS else 'OVER'}"
            f" the {WARM_INVOKE_TARGET_MS:.0f} ms target); the handler's own time p50 {stats['p50_ms']} ms;"
            f" GetQueueUrl p50 {raw_p50:.2f} / p99 {percentile(raw, 0.99):.2f} ms"
        )
        say(f"invoke: cold {cold:.1f} ms, warm p50 {warm_p50:.2f} ms, GetQueueUrl p50 {raw_p50:.2f} ms")

    # -- 2. runtime efficiency -------------------------------------------------------------------

    @staticmethod
    def bodies(count: int) -> list[str]:
        """Realistic message bodies: order events as the stack publishes them."""
        messages = build_events(max(count, 10), duplicate_share=0.0, poison_share=0.0).unique
        return [messages[i % len(messages)].body for i in range(count)]

    def preload(self, queue_url: str, count: int, calls_ms: dict[str, list[float]]) -> None:
        """``count`` messages into the queue, SendMessageBatch of 10, each call timed."""
        sqs = self.cloud.client("sqs")
        bodies = self.bodies(count)
        for start in range(0, count, AWS_MAX_BATCH_ENTRIES):
            chunk = bodies[start : start + AWS_MAX_BATCH_ENTRIES]
            lap = time.perf_counter()
            response = sqs.send_message_batch(
                QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)]
            )
            calls_ms.setdefault("SendMessageBatch", []).append((time.perf_counter() - lap) * 1000)
            if response.get("Failed"):
                raise RuntimeError(f"SendMessageBatch failed: {response['Failed']}")

    def receive_delete(self, queue_url: str, wanted: int, calls_ms: dict[str, list[float]]) -> None:
        """ReceiveMessage (10) until ``wanted`` messages came back, deleting each batch (DeleteMessageBatch)."""
        sqs = self.cloud.client("sqs")
        received = 0
        while received < wanted:
            lap = time.perf_counter()
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            calls_ms.setdefault("ReceiveMessage", []).append((time.perf_counter() - lap) * 1000)
            if not messages:
                continue
            lap = time.perf_counter()
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
            calls_ms.setdefault("DeleteMessageBatch", []).append((time.perf_counter() - lap) * 1000)
            received += len(messages)

    def raw_ceiling(self) -> Ceiling:
        """One client, 10 messages at a time: SendMessageBatch, ReceiveMessage until all 10 are back,
        DeleteMessageBatch. The queue never holds more than 10 messages."""
        url = self.cloud.client("sqs").create_queue(QueueName=CEILING_QUEUE)["QueueUrl"]
        calls: dict[str, list[float]] = {}
        started = time.perf_counter()
        for _ in range(0, self.sizes.ceiling_messages, AWS_MAX_BATCH_ENTRIES):
            self.preload(url, AWS_MAX_BATCH_ENTRIES, calls)
            self.receive_delete(url, AWS_MAX_BATCH_ENTRIES, calls)
        ceiling = Ceiling(self.sizes.ceiling_messages, time.perf_counter() - started, calls)
        say(f"raw ceiling (shallow queue): {ceiling.rate:.0f} msg/s")
        return ceiling

    def drain_ceiling(self) -> tuple[Ceiling, dict[str, list[float]]]:
        """One client drains a queue pre-loaded with as many messages as the mapping will drain;
        the drain, and the pre-load's call times."""
        url = self.cloud.client("sqs").create_queue(QueueName=DRAIN_QUEUE)["QueueUrl"]
        count = self.sizes.esm_messages
        loading: dict[str, list[float]] = {}
        self.preload(url, count, loading)
        calls: dict[str, list[float]] = {}
        started = time.perf_counter()
        self.receive_delete(url, count, calls)
        ceiling = Ceiling(count, time.perf_counter() - started, calls)
        say(f"raw drain of {count} pre-loaded messages by one client: {ceiling.rate:.0f} msg/s")
        return ceiling, loading

    def esm_drain(self, function_arn: str, queue_url: str) -> tuple[float, dict[str, list[float]]]:
        """Pre-load the queue, create the mapping disabled, wait for the runtime to read it, enable it
        and time until every message was processed; (messages/s, the pre-load's call times)."""
        lambda_, sqs = self.cloud.client("lambda"), self.cloud.client("sqs")
        count = self.sizes.esm_messages
        loading: dict[str, list[float]] = {}
        self.preload(queue_url, count, loading)
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        mapping = lambda_.create_event_source_mapping(
            EventSourceArn=attributes["QueueArn"],
            FunctionName=function_arn,
            Enabled=False,
            BatchSize=10,
            FunctionResponseTypes=["ReportBatchItemFailures"],
            ScalingConfig={"MaximumConcurrency": ESM_CONCURRENCY},
        )["UUID"]
        mappings = self.cloud.mappings
        self.cloud.wait_until(lambda: mapping in mappings.pollers, 10, "the runtime to read the new mapping")
        pollers = len(mappings.pollers[mapping][1])
        started = time.perf_counter()
        lambda_.update_event_source_mapping(UUID=mapping, Enabled=True)
        first: float | None = None
        while True:
            stats = mappings.stats()[mapping]
            if first is None and stats.batches:
                first = time.perf_counter()
            if stats.records_succeeded + stats.records_failed >= count:
                break
            if time.perf_counter() - started > 300:
                raise RuntimeError(
                    f"the mapping processed only {stats.records_succeeded} of {count} in 300 s"
                )
            time.sleep(0.005)
        seconds = time.perf_counter() - started
        left = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        lambda_.delete_event_source_mapping(UUID=mapping)
        self.cloud.wait_until(
            lambda: mapping not in mappings.pollers, 10, "the deleted mapping's pollers to stop"
        )
        noop = self.cloud.functions()[NOOP_FUNCTION]
        first_ms = ((first or started) - started) * 1000
        self.note(
            f"esm: {count} pre-loaded messages processed in {seconds:.2f} s by {pollers} pollers ({stats.batches}"
            f" batches, {stats.records_failed} failed); first batch done {first_ms:.0f} ms after enabling;"
            f" do-nothing handler p50 {noop['p50_ms']} ms, {noop['cold_starts']} cold starts; queue afterwards"
            f" {left['ApproximateNumberOfMessages']} visible, {left['ApproximateNumberOfMessagesNotVisible']}"
            " in flight"
        )
        rate = count / seconds
        say(f"event source mapping drained {count} messages: {rate:.0f} msg/s")
        return rate, loading

    def efficiency(self, function_arn: str, queue_url: str) -> Ceiling:
        shallow = self.raw_ceiling()
        drain, drain_loading = self.drain_ceiling()
        rate, esm_loading = self.esm_drain(function_arn, queue_url)
        count = self.sizes.esm_messages
        self.add(
            "esm.noop_msgs_per_s",
            rate,
            "msg/s",
            "raw ceiling of the same moto server: one client looping SendMessageBatch(10) / ReceiveMessage(10)"
            f" / DeleteMessageBatch on a shallow queue, {shallow.messages} messages; target ratio"
            f" >= {EFFICIENCY_TARGET}",
            shallow.rate,
        )
        self.add(
            "esm.noop_msgs_per_s_vs_drain",
            rate,
            "msg/s",
            f"one client draining a queue pre-loaded with the same {count} messages (ReceiveMessage(10) +"
            " DeleteMessageBatch): the same queue depths as the mapping met",
            drain.rate,
        )
        loading = drain_loading["SendMessageBatch"] + esm_loading["SendMessageBatch"]
        depth = f"filling a queue from 0 to {count} messages (mean depth {count // 2})"
        self.add(
            "sqs.send_batch_ms_filling",
            sum(loading) / len(loading),
            "ms",
            "mean SendMessageBatch(10) round trip on the shallow queue (<= 10 messages), same client;"
            f" value: {depth}",
            shallow.mean_ms("SendMessageBatch"),
        )
        self.add(
            "sqs.receive_ms_draining",
            drain.mean_ms("ReceiveMessage"),
            "ms",
            "mean ReceiveMessage(10) round trip on the shallow queue (<= 10 messages), same client;"
            f" value: draining a queue from {count} messages to 0",
            shallow.mean_ms("ReceiveMessage"),
        )
        return shallow

    # -- 2b. stream event sources ------------------------------------------------------------------

    def stream_efficiency(self, function_arn: str) -> None:
        """Records/s through a DynamoDB stream and a Kinesis stream mapping into the do-nothing function,
        against one client reading the same records with GetRecords on the same endpoint."""
        count = self.sizes.esm_messages
        dynamodb, streams, kinesis = (
            self.cloud.client(s) for s in ("dynamodb", "dynamodbstreams", "kinesis")
        )
        table = dynamodb.create_table(
            TableName="bench-stream", AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )["TableDescription"]  # fmt: skip
        for start in range(0, count, 25):
            dynamodb.batch_write_item(RequestItems={"bench-stream": [
                {"PutRequest": {"Item": {"pk": {"S": f"item-{n}"}, "body": {"S": "x" * 200}}}}
                for n in range(start, min(count, start + 25))
            ]})  # fmt: skip
        stream_arn = table["LatestStreamArn"]

        def read_dynamodb() -> int:
            shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
            iterator = streams.get_shard_iterator(
                StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            read = 0
            while read < count:
                page = streams.get_records(ShardIterator=iterator, Limit=100)
                read, iterator = read + len(page["Records"]), page["NextShardIterator"]
            return read

        kinesis.create_stream(StreamName="bench-stream", ShardCount=1)
        kinesis_arn = kinesis.describe_stream(StreamName="bench-stream")["StreamDescription"]["StreamARN"]
        for start in range(0, count, 500):
            kinesis.put_records(StreamName="bench-stream", Records=[
                {"PartitionKey": f"key-{n % 10}", "Data": b"x" * 200} for n in range(start, min(count, start + 500))
            ])  # fmt: skip

        def read_kinesis() -> int:
            shard = kinesis.list_shards(StreamName="bench-stream")["Shards"][0]["ShardId"]
            iterator = kinesis.get_shard_iterator(
                StreamName="bench-stream", ShardId=shard, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            read = 0
            while read < count:
                page = kinesis.get_records(ShardIterator=iterator, Limit=100)
                read, iterator = read + len(page["Records"]), page["NextShardIterator"]
            return read

        rates = {}
        for name, source_arn, read in (
            ("dynamodb", stream_arn, read_dynamodb),
            ("kinesis", kinesis_arn, read_kinesis),
        ):
            started = time.perf_counter()
            read()
            raw = count / (time.perf_counter() - started)
            rate = rates[name] = self.stream_drain(function_arn, source_arn)
            self.add(
                f"esm.{name}_stream_records_per_s", rate, "records/s",
                f"one client reading the same {count} records with GetShardIterator + GetRecords(100) on the same"
                " endpoint", raw,
            )  # fmt: skip
            say(f"{name} stream mapping: {rate:.0f} records/s; raw GetRecords loop {raw:.0f} records/s")
        parallel = self.stream_drain(function_arn, kinesis_arn, ParallelizationFactor=4)
        self.add(
            "esm.kinesis_parallelization_4_records_per_s", parallel, "records/s",
            "the same Kinesis mapping with ParallelizationFactor 1 (10 partition keys, batches of up to 100)",
            rates["kinesis"],
        )  # fmt: skip
        say(f"kinesis stream mapping, parallelization factor 4: {parallel:.0f} records/s")

    def stream_drain(self, function_arn: str, source_arn: str, **settings: Any) -> float:
        """Create a disabled mapping from the start of a stream holding the records, enable it once its
        poller exists, and time until every record was processed; records/s."""
        lambda_, count = self.cloud.client("lambda"), self.sizes.esm_messages
        mapping = lambda_.create_event_source_mapping(
            EventSourceArn=source_arn, FunctionName=function_arn, Enabled=False, BatchSize=100,
            StartingPosition="TRIM_HORIZON", **settings,
        )["UUID"]  # fmt: skip
        streams = self.cloud.streams
        self.cloud.wait_until(
            lambda: any(key[0] == mapping for key in streams.pollers),
            10,
            "the runtime to read the new mapping",
        )
        started = time.perf_counter()
        lambda_.update_event_source_mapping(UUID=mapping, Enabled=True)
        while (stats := streams.stats().get(mapping)) is None or stats.records_succeeded < count:
            if time.perf_counter() - started > 300:
                raise RuntimeError(
                    f"the stream mapping processed {stats and stats.records_succeeded} of {count}"
                )
            time.sleep(0.005)
        seconds = time.perf_counter() - started
        lambda_.delete_event_source_mapping(UUID=mapping)
        self.note(
            f"stream mapping {source_arn.split(':')[2]}: {count} records in {seconds:.2f} s, {stats.batches} batches"
            " of up to 100, from enabling the mapping (its poller then reads the shard from TRIM_HORIZON)"
        )
        return count / seconds

    # -- 3. latency of one event at a time -------------------------------------------------------

    def processed(self, consumer: Consumer) -> int:
        stats = self.cloud.mappings.stats().get(consumer.mapping_uuid)
        return 0 if stats is None else stats.records_succeeded + stats.records_failed

    def batching_window(self, consumer: Consumer) -> float:
        mapping = self.cloud.client("lambda").get_event_source_mapping(UUID=consumer.mapping_uuid)
        return float(mapping.get("MaximumBatchingWindowInSeconds") or 0)

    def durations(self, consumer: Consumer) -> list[float]:
        """The handler's time per invocation so far (a live list: slice it)."""
        return self.cloud.runtime.function(consumer.function_arn).stats.durations_ms

    def rows(self, table: str, key: str, stamp: str) -> dict[str, float]:
        """key -> the row's ISO timestamp attribute as epoch seconds."""
        found: dict[str, float] = {}
        for page in self.cloud.client("dynamodb").get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                if stamp in item:
                    found[item[key]["S"]] = datetime.fromisoformat(item[stamp]["S"]).timestamp()
        return found

    def wait_idle(self, timeout: float, what: str) -> float:
        """Seconds until the whole pipeline is idle (polled every 50 ms), with a progress line every 3 s."""
        started = time.perf_counter()
        next_report = started + 3
        while not self.cloud.idle():
            now = time.perf_counter()
            if now - started > timeout:
                raise LocalCloudError(f"timed out after {timeout:.0f} s waiting for {what}")
            if now >= next_report:
                backlog = sum(
                    q["visible"] + q["in_flight"] for q in self.cloud.queues().values() if not q["dlq"]
                )
                say(f"  {now - started:5.1f} s  backlog {backlog} messages")
                next_report = now + 3
            time.sleep(0.05)
        return time.perf_counter() - started

    def idle_latency(self, demo: OrderPipeline) -> dict[str, float]:
        """Events published one at a time (sns Publish), each waited for until the inventory and email
        mappings counted it processed (in-process counters, no API call); analytics from its rows.
        Returns the p50 by consumer."""
        sns = self.cloud.client("sns")
        consumers = {c.name: c for c in demo.consumers}
        seen: dict[str, int] = {}
        waited = ("inventory", "email")
        latencies: dict[str, list[float]] = {name: [] for name in waited}
        published: dict[str, float] = {}  # order id -> epoch seconds of the Publish call
        first: dict[str, float] = {}
        for i in range(-1, self.sizes.idle_events):  # the first starts the environments: not counted
            order = OrderCreated(
                order_id=f"idle-{i + 1:04d}",
                customer_id="cus-0001",
                customer_email=f"idle{i}@example.com",
                lines=[OrderLine(sku=SKUS[i % len(SKUS)], quantity=1, unit_price_cents=999)],
            )
            message = event_message(order_created(order, event_id=f"evt-{order.order_id}"))
            before = {name: self.processed(consumers[name]) for name in waited}
            started = time.perf_counter()
            if i >= 0:
                published[order.order_id] = time.time()
            sns.publish(
                TopicArn=demo.outputs["OrdersTopicArn"],
                Message=message.body,
                MessageAttributes={
                    k: {"DataType": "String", "StringValue": v} for k, v in message.attributes.items()
                },
            )
            pending = set(waited)
            while pending:
                for name in list(pending):
                    if self.processed(consumers[name]) > before[name]:
                        elapsed = (time.perf_counter() - started) * 1000
                        if i >= 0:
                            latencies[name].append(elapsed)
                        else:
                            first[name] = elapsed
                        pending.discard(name)
                if time.perf_counter() - started > 30:
                    raise RuntimeError(f"{order.order_id} was not processed by {sorted(pending)} within 30 s")
                time.sleep(0.002)
            if i < 0:
                seen = {name: len(self.durations(c)) for name, c in consumers.items()}
        self.wait_idle(60, "the idle-latency events to drain")
        outbox = self.rows(demo.outputs["OutboxTableName"], "message_id", "sent_at")
        analytics = self.rows(demo.outputs["AnalyticsTableName"], "event_id", "ingested_at")
        stamped = {
            "email": [(outbox[f"order-confirmation#{o}"] - at) * 1000 for o, at in published.items()],
            "analytics": [(analytics[f"evt-{o}"] - at) * 1000 for o, at in published.items()],
        }
        latencies["analytics"] = stamped["analytics"]
        handler = {name: median(self.durations(c)[seen[name] :]) for name, c in consumers.items()}
        window = {name: self.batching_window(c) for name, c in consumers.items()}
        n = self.sizes.idle_events
        for name, values in latencies.items():
            how = (
                "Publish until the mapping counted the message processed (after its delete)"
                if name in waited
                else "Publish until the row's ingested_at"
            )
            baseline = (
                f"the {name} mapping's MaximumBatchingWindowInSeconds as deployed ({window[name]:.0f} s: Lambda"
                f" waits that long for a fuller batch) + the handler's own median time over the same {n}"
                f" events; latency = {how}, {n} events one at a time"
            )
            expected = window[name] * 1000 + handler[name]
            self.add(f"latency.idle.{name}_p50_ms", percentile(values, 0.5), "ms", baseline, expected)
            self.add(f"latency.idle.{name}_p99_ms", percentile(values, 0.99), "ms", baseline, expected)
        self.note(
            f"idle latency ({n} events one at a time, after a first one that started the environments:"
            + ", ".join(f" {k} {v:.0f} ms" for k, v in first.items())
            + "): "
            + ", ".join(f"{k} p50 {percentile(v, 0.5):.0f} ms" for k, v in latencies.items())
            + f"; email's sent_at stamp p50 {percentile(stamped['email'], 0.5):.0f} ms after Publish;"
            + " handler p50 "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in handler.items())
            + "; batching windows "
            + ", ".join(f"{k} {v:.0f} s" for k, v in window.items())
        )
        say(
            "idle latency: " + ", ".join(f"{k} p50 {percentile(v, 0.5):.0f} ms" for k, v in latencies.items())
        )
        return {name: percentile(values, 0.5) for name, values in latencies.items()}

    # -- 3, 5, 6. a burst through the fan-out pipeline -------------------------------------------

    def publish_timed(self, demo: OrderPipeline, messages: Sequence[OutgoingMessage]) -> dict[str, float]:
        """PublishBatch, 10 a call; event_id -> epoch seconds when its call started."""
        publisher = BatchPublisher.for_topic(
            demo.outputs["OrdersTopicArn"], client=self.cloud.client("sns"), max_interval_seconds=None
        )
        at: dict[str, float] = {}
        with publisher:
            for start in range(0, len(messages), AWS_MAX_BATCH_ENTRIES):
                now = time.time()
                for message in messages[start : start + AWS_MAX_BATCH_ENTRIES]:
                    publisher.add(message)  # the 10th sends the batch
                    with contextlib.suppress(ValueError, KeyError):  # malformed poison has no id
                        at.setdefault(json.loads(message.body)["event_id"], now)
        failed = [r for r in publisher.results if not r.ok]
        if failed:
            raise RuntimeError(f"{len(failed)} messages could not be published: {failed[0].error_message}")
        return at

    def burst(self, demo: OrderPipeline, ceiling: Ceiling, idle_p50: dict[str, float]) -> None:
        published = build_events(self.sizes.burst_events, duplicate_share=0.0, poison_share=0.0)
        events = len(published.all)
        seen = {c.name: len(self.durations(c)) for c in demo.consumers}
        handled_before = {c.name: self.processed(c) for c in demo.consumers}
        reservations_before = self.inventory(demo).reservation_count()
        with MemorySampler() as memory, MotoTimer(self.cloud) as moto:
            started = time.perf_counter()
            at = self.publish_timed(demo, published.all)
            publish_seconds = time.perf_counter() - started
            say(
                f"published {events} events in {publish_seconds:.1f} s; waiting for the pipeline to drain ..."
            )
            self.wait_idle(600, "the pipeline to drain")
            seconds = time.perf_counter() - started
        handled = {c.name: self.processed(c) - handled_before[c.name] for c in demo.consumers}
        messages = sum(handled.values())
        say(f"pipeline: {events} events ({messages} consumer messages) in {seconds:.1f} s")
        self.throughput(events, messages, seconds, ceiling)
        self.loaded_latency(demo, published, at, idle_p50)
        self.memory(memory, demo.consumers)

        # what happened, and where the time went
        for c in demo.consumers:
            stats = self.cloud.runtime.function(c.function_arn).stats
            durations = stats.durations_ms[seen[c.name] :]
            self.note(
                f"burst, {c.name}: {handled[c.name]} messages in {len(durations)} invocations, handler p50"
                f" {median(durations):.0f} ms per batch, {sum(durations) / 1000:.1f} s in all; {stats.cold_starts}"
                f" cold starts and {stats.throttles} throttles since the cloud started"
            )
        busy = sum(moto.seconds.values())
        self.note(
            f"burst: {events} events published in {publish_seconds:.1f} s, drained after {seconds:.1f} s; moto"
            f" busy (holding the global moto lock) {busy:.1f} s = {100 * busy / seconds:.0f}% of the run"
        )
        self.note(f"burst, time inside moto by operation: {moto.describe(events, 'published event')}")
        problems = self.verify(demo, published, handled, reservations_before)
        self.note("burst reconciliation: " + ("OK" if not problems else "; ".join(problems)))

    def inventory(self, demo: OrderPipeline) -> InventoryRepository:
        return InventoryRepository(demo.outputs["InventoryTableName"], client=self.cloud.client("dynamodb"))

    def verify(
        self, demo: OrderPipeline, published: Published, handled: dict[str, int], reservations_before: int
    ) -> list[str]:
        """Each consumer handled what its subscription routes to it, and each unique event took effect."""
        problems = []
        for c in demo.consumers:
            routed = sum(matches(c.filter_policy, m.attributes) for m in published.all)
            if handled[c.name] != routed:
                problems.append(f"{c.name} handled {handled[c.name]} of {routed} routed messages")
        reservations = self.inventory(demo).reservation_count() - reservations_before
        if reservations != len(published.unique):
            problems.append(f"{reservations} new reservations for {len(published.unique)} unique events")
        return problems

    def throughput(self, events: int, messages: int, seconds: float, ceiling: Ceiling) -> None:
        self.add(
            "pipeline.events_per_s",
            events / seconds,
            "events/s",
            f"raw ceiling (msg/s, shallow SQS loop above); each event became {messages / events:.1f} consumer"
            " messages (fan-out to inventory, email, analytics), each with its handler's work",
            ceiling.rate,
        )
        self.add(
            "pipeline.consumer_msgs_per_s",
            messages / seconds,
            "msg/s",
            "raw ceiling (msg/s, shallow SQS loop above): messages the three mappings processed per second",
            ceiling.rate,
        )

    def loaded_latency(
        self, demo: OrderPipeline, published: Published, at: dict[str, float], idle_p50: dict[str, float]
    ) -> None:
        """Publish (start of the PublishBatch call) to the rows' timestamps, for every unique event."""
        outbox = self.rows(demo.outputs["OutboxTableName"], "message_id", "sent_at")
        analytics = self.rows(demo.outputs["AnalyticsTableName"], "event_id", "ingested_at")
        latencies: dict[str, list[float]] = {"email": [], "analytics": []}
        for message in published.unique:
            body = json.loads(message.body)
            publish_at = at[body["event_id"]]
            latencies["email"].append(
                (outbox[f"order-confirmation#{body['data']['order_id']}"] - publish_at) * 1000
            )
            latencies["analytics"].append((analytics[body["event_id"]] - publish_at) * 1000)
        baseline = (
            f"{len(published.all)} events published at once (burst): start of the PublishBatch call to the row's"
            " timestamp (outbox sent_at / analytics ingested_at, stamped by the handler just before its write);"
            " vs the same path's idle p50"
        )
        for name, values in latencies.items():
            for share in (0.5, 0.99):
                self.add(
                    f"latency.burst.{name}_p{round(share * 100)}_ms",
                    percentile(values, share),
                    "ms",
                    baseline,
                    idle_p50[name],
                )

    def memory(self, memory: MemorySampler, consumers: Sequence[Consumer]) -> None:
        peak = memory.peak
        self.add(
            "memory.cloud_peak_mb",
            peak.total_kb / 1024,
            "MB",
            "sum of the configured memory of the execution environments alive at the peak (what Lambda would"
            " reserve for them); value: resident memory of this process + every environment, sampled every"
            " 0.2 s during the burst",
            peak.configured_mb,
        )
        names = {c.function_arn.rsplit(":", 1)[-1]: c.name for c in consumers}
        for function, stats in self.cloud.functions().items():
            self.add(
                f"memory.{names.get(function, function)}.environment_peak_mb",
                stats["peak_memory_mb"],
                "MB",
                "the function's configured memory (MemorySize); value: the highest VmHWM of its environments",
                stats["memory_mb"],
            )
        self.note(
            f"memory: peak {peak.total_kb / 1024:.0f} MB = this process {peak.main_kb / 1024:.0f} MB +"
            f" {peak.workers} execution environments {(peak.total_kb - peak.main_kb) / 1024:.0f} MB"
            f" ({memory.samples} samples); this process's high-water mark"
            f" {proc_status_kb(os.getpid(), 'VmHWM') / 1024:.0f} MB"
        )

    # -- 7. what an open dashboard costs ---------------------------------------------------------

    def dashboard_refresh(self) -> None:
        """The overview an open dashboard streams every second, read from the cloud after the burst
        (queues, functions, executions, the jobs tables); it holds moto's lock while it reads."""
        data, sqs = DashboardData(self.cloud), self.cloud.client("sqs")
        overview, raw = [], []
        for _ in range(self.sizes.dashboard_reads):  # interleaved, so noise spreads over both
            started = time.perf_counter()
            data.overview()
            overview.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            sqs.get_queue_url(QueueName=NOOP_QUEUE)
            raw.append((time.perf_counter() - started) * 1000)
        p50, p99, raw_p50 = percentile(overview, 0.5), percentile(overview, 0.99), percentile(raw, 0.5)
        self.add(
            "dashboard.overview_p50_ms", p50, "ms",
            f"raw moto API round trip on the same endpoint: sqs GetQueueUrl p50 of {len(raw)}, interleaved", raw_p50,
        )  # fmt: skip
        self.note(
            f"dashboard: one overview (sent every second while the page is open) p50 {p50:.1f} / p99 {p99:.1f} ms"
            f" with {len(self.cloud.queues())} queues and {len(self.cloud.functions())} functions:"
            f" {p50 / 10:.2f}% of each second; GetQueueUrl p50 {raw_p50:.2f} ms"
        )
        say(f"dashboard: overview p50 {p50:.1f} ms, GetQueueUrl p50 {raw_p50:.2f} ms")


@contextlib.contextmanager
def local_cloud(workdir: Path) -> Iterator[LocalCloud]:
    cloud = LocalCloud(port=free_port(), api_port=None, workdir=workdir)
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.close()


def run(*, quick: bool = False) -> tuple[list[Metric], list[str]]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-localcloud-") as tmp,
        local_cloud(Path(tmp) / "cloud") as cloud,
    ):
        bench = LocalCloudBench(cloud, quick, Path(tmp))
        bench.time_to_ready()
        bench.hot_reload()
        say("a do-nothing function and its queue, created through the API")
        function_arn, queue_url = bench.create_noop()
        bench.long_poll_wakeup(queue_url)
        bench.iam_cost(queue_url)
        bench.invoke_latency(function_arn)
        ceiling = bench.efficiency(function_arn, queue_url)
        bench.stream_efficiency(function_arn)
        demo = OrderPipeline(cloud, say)
        demo.seed_stock()
        idle_p50 = bench.idle_latency(demo)
        bench.burst(demo, ceiling, idle_p50)
        bench.dashboard_refresh()
        return bench.metrics, bench.notes
