"""``make demo``: every async pattern of the stack, one scenario each, then a summary table.

The stack is deployed with the CDK CLI to the local cloud (moto in this process), and every
function runs from the artifact ``cdk deploy`` uploaded, in its own worker process behind SQS
pollers with Lambda's semantics. The scenarios live in ``demo.scenarios`` (the end-to-end
tests run the same ones); this module runs them and prints the summary. Exit status 0 only if every
scenario behaved.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from functools import partial

from botocore.exceptions import BotoCoreError, ClientError

from asyncstack.runtime.observability import logger as shared_logger
from asyncstack.runtime.rpc import RpcError
from demo import example
from demo.scenarios import SCENARIOS, ScenarioResult, pub_sub
from localcloud import logs
from localcloud.cloud import LocalCloud, running_cloud
from localcloud.server import LocalCloudError, free_port


def print_summary(results: list[ScenarioResult], say: Callable[[str], None]) -> None:
    header = f"{'pattern':<20} {'events':>6} {'processed':>9} {'in DLQ':>6} {'p50 latency':>11}  outcome"
    say(header)
    say("-" * len(header))
    for r in results:
        p50 = "-" if r.p50 is None else f"{r.p50:.2f} s"
        say(
            f"{r.pattern:<20} {r.events:>6} {r.processed:>9} {r.in_dlq:>6} {p50:>11}  {'OK' if r.ok else 'FAILED'}"
        )


# What ends one scenario as FAILED and lets the demo go on: the local cloud or the stack misbehaving
# (a timeout, a refused request, an RPC without answer). Anything else is a bug in the demo: it stops it.
STACK_FAILURES = (LocalCloudError, RpcError, BotoCoreError, ClientError)


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """The demo's output is its lines. Meanwhile moto's Step Functions interpreter does not log each failed
    state as an error (the saga's compensating run fails on purpose), nor does shared code run in this
    process (the publisher, the webhook secret) log JSON at INFO."""
    interpreter = logging.getLogger("moto.stepfunctions")
    levels = interpreter.level, shared_logger.log_level
    interpreter.setLevel(logging.CRITICAL)
    shared_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        interpreter.setLevel(levels[0])
        shared_logger.setLevel(levels[1])


def run_demo(*, events: int = 200, patterns: Sequence[str] | None = None, port: int | None = None,
             timeout: float = 240.0, say: Callable[[str], None] = logs.say, cloud: LocalCloud | None = None,
             dashboard_port: int | None = None, keep: bool = False) -> bool:  # fmt: skip
    """Run the scenarios of ``patterns`` (all by default, in order) on ``cloud`` (or on a new local cloud,
    deployed here) and print a summary; True if every one behaved. ``events`` and ``timeout`` size the
    pub-sub scenario. ``keep``: leave the new cloud and its dashboard up afterwards, until Ctrl-C."""
    names = list(patterns or SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise LocalCloudError(f"unknown pattern {unknown[0]!r}: valid patterns are {', '.join(SCENARIOS)}")
    started = time.monotonic()
    results = []
    with ExitStack() as stack:
        stack.enter_context(_quiet_logs())
        stack_owns_cloud = cloud is None
        if cloud is None:
            say("starting the local cloud and deploying the stack with the CDK CLI ...")
            cloud = stack.enter_context(
                running_cloud(
                    port=port or free_port(),
                    api_port=free_port(),
                    dashboard_port=dashboard_port or free_port(),
                    workdir=example.WORKDIR,
                )
            )
            if cloud.dashboard:
                say(f"watch it live in the dashboard: {cloud.dashboard.url}")
            report = example.deploy(cloud)
            say(f"deployed to {cloud.endpoint} in {report.seconds:.1f} s "
                f"(bootstrap {report.bootstrap_seconds:.1f} s, deploy {report.deploy_seconds:.1f} s)")  # fmt: skip
        unsupported = cloud.unsupported_resources()
        if unsupported:
            say("  not honoured locally: " + ", ".join(sorted({r["type"] for r in unsupported})))
        for number, name in enumerate(names, start=1):
            scenario = SCENARIOS[name]
            say(f"\n[{number}/{len(names)}] {name}: {scenario.summary}")
            run = partial(pub_sub, events=events, timeout=timeout) if name == "pub-sub" else scenario.run
            began = time.monotonic()
            try:
                result = run(cloud, say)
            except STACK_FAILURES as error:
                result = ScenarioResult(
                    name, 0, 0, 0, [], ok=False, detail=f"{type(error).__name__}: {error}"
                )
            say(f"  {'OK' if result.ok else 'FAILED'} in {time.monotonic() - began:.1f} s: {result.detail}")
            results.append(result)
        say(f"\nfunction logs in {cloud.workdir / 'logs'}/\n")
        print_summary(results, say)
        iam = cloud.permissions.status()
        say(f"\npermissions ({iam['mode']}): {iam['allowed']} calls allowed, {iam['denied']} denied, "
            f"{sum(iam['not_evaluated'].values())} not evaluated; "
            f"{sum(len(g) for g in iam['unused'].values())} granted actions no call used (status --json: iam.unused)")  # fmt: skip
        failed = [r.pattern for r in results if not r.ok]
        seconds = time.monotonic() - started
        say("")
        say(f"every pattern behaved: {len(results)} of {len(results)} OK ({seconds:.0f} s in all)" if not failed
            else f"FAILED: {', '.join(failed)} ({len(results) - len(failed)} of {len(results)} OK, {seconds:.0f} s in all)")  # fmt: skip
        if keep and stack_owns_cloud and cloud.dashboard:
            say(
                f"\nthe local cloud stays up: dashboard {cloud.dashboard.url}, endpoint {cloud.endpoint} (Ctrl-C stops it)"
            )
            say(f"dashboard key (X-Api-Key of its actions): {cloud.dashboard_key}")
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            with suppress(KeyboardInterrupt):
                stop.wait()
    return not failed
