"""Delayed jobs on the local cloud, each figure next to a baseline measured in the same run.

1. scheduling throughput: ``schedule_job`` (a conditional put in the jobs table, then a one-time
   schedule) in jobs/s, vs bare ``CreateSchedule`` calls on the same endpoint.
2. firing lateness under real time: 1,000 (``--quick`` 200) one-time schedules due within a minute,
   their target a queue nobody consumes; lateness = the message's SentTimestamp minus its due time,
   p50 and p99. Baseline: the same number of SQS messages sent with DelaySeconds due in the same
   minute; their lateness = when a receiver first saw them minus their due time.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asyncstack.runtime.jobs import JobScheduler
from bench.results import Metric, command, ratio
from localcloud.cloud import LocalCloud
from localcloud.server import free_port
from localcloud.stats import percentile

GROUP = "jobs"


def _scheduler(cloud: LocalCloud) -> JobScheduler:
    """Configured exactly as the deployed signup worker is (its environment)."""
    lambda_ = cloud.client("lambda")
    [name] = [
        f["FunctionName"]
        for f in lambda_.list_functions()["Functions"]
        if "SignupWorker" in f["FunctionName"]
    ]
    environment = lambda_.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    return replace(
        JobScheduler.from_environment(environment), sqs_client=cloud.client("sqs"),
        dynamodb_client=cloud.client("dynamodb"), scheduler_client=cloud.client("scheduler"),
    )  # fmt: skip


def _drain_all(sqs: Any, url: str, expected: int, deadline: float) -> list[dict[str, Any]]:
    """Receive until ``expected`` messages were seen (or the deadline), noting when each was first seen."""
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < expected and time.monotonic() < deadline:
        for message in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["SentTimestamp"], VisibilityTimeout=600
        ).get("Messages", []):
            seen.setdefault(message["MessageId"], {**message, "seen_at": time.time()})
    return list(seen.values())


def run(*, quick: bool = False) -> tuple[list[Metric], list[str]]:
    jobs = 200 if quick else 1000
    throughput_jobs = 100 if quick else 300
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as workdir:
        cloud = LocalCloud(port=free_port(), api_port=None, workdir=Path(workdir)).start()
        try:
            cloud.deploy()
            scheduler = _scheduler(cloud)
            api = cloud.client("scheduler")
            sqs = cloud.client("sqs")
            queue_url = sqs.create_queue(QueueName="bench-fired")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            later = cloud.clock.now() + timedelta(days=30)
            # The raw schedules below deliver to this queue as the stack's scheduler role: let it send here.
            cloud.client("iam").put_role_policy(
                RoleName=scheduler.role_arn.rsplit("/", 1)[-1], PolicyName="bench-fired",
                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn}
                ]}),
            )  # fmt: skip

            # 1. scheduling throughput
            started = time.perf_counter()
            for i in range(throughput_jobs):
                scheduler.schedule("job.daily_summary", {}, key=f"bench-throughput-{i}", at=later)
            scheduled_per_s = throughput_jobs / (time.perf_counter() - started)
            started = time.perf_counter()
            for i in range(throughput_jobs):
                api.create_schedule(
                    Name=f"bench-raw-{i}", GroupName=scheduler.schedule_group,
                    ScheduleExpression=f"at({later:%Y-%m-%dT%H:%M:%S})", FlexibleTimeWindow={"Mode": "OFF"},
                    Target={"Arn": queue_arn, "RoleArn": scheduler.role_arn, "Input": "{}"},
                )  # fmt: skip
            raw_per_s = throughput_jobs / (time.perf_counter() - started)

            # 2. firing lateness under real time: due times spread over one minute, starting after the setup
            start = datetime.now(UTC) + timedelta(seconds=10 + jobs / 150)
            due = [start + timedelta(seconds=60 * i / jobs) for i in range(jobs)]
            for i, moment in enumerate(due):
                api.create_schedule(
                    Name=f"bench-late-{i}", GroupName=scheduler.schedule_group,
                    ScheduleExpression=f"at({moment:%Y-%m-%dT%H:%M:%S})", ScheduleExpressionTimezone="UTC",
                    FlexibleTimeWindow={"Mode": "OFF"}, ActionAfterCompletion="DELETE",
                    Target={"Arn": queue_arn, "RoleArn": scheduler.role_arn,
                            "Input": json.dumps({"due": moment.replace(microsecond=0).timestamp()})},
                )  # fmt: skip
            fired = _drain_all(sqs, queue_url, jobs, time.monotonic() + 180)
            schedule_lateness = [
                int(m["Attributes"]["SentTimestamp"]) / 1000 - json.loads(m["Body"])["due"] for m in fired
            ]
            # Baseline: SQS delays due in the same kind of minute
            delayed_url = sqs.create_queue(QueueName="bench-delayed")["QueueUrl"]
            base = time.time() + 5
            for i in range(0, jobs, 10):
                entries = []
                for j in range(i, min(i + 10, jobs)):
                    due_at = base + 60 * j / jobs
                    entries.append({"Id": str(j), "MessageBody": json.dumps({"due": due_at}),
                                    "DelaySeconds": max(0, round(due_at - time.time()))})  # fmt: skip
                sqs.send_message_batch(QueueUrl=delayed_url, Entries=entries)
            delayed = _drain_all(sqs, delayed_url, jobs, time.monotonic() + 180)
            delay_lateness = [m["seen_at"] - json.loads(m["Body"])["due"] for m in delayed]
        finally:
            cloud.close()

    cmd = command(GROUP, quick=quick)
    p50, p99 = percentile(schedule_lateness, 0.5), percentile(schedule_lateness, 0.99)
    b50, b99 = percentile(delay_lateness, 0.5), percentile(delay_lateness, 0.99)
    baseline_late = (
        f"{len(delayed)} SQS messages with DelaySeconds due over one minute, first receive minus due time"
    )
    notes.append(
        f"jobs: {len(fired)} of {jobs} schedules fired (mean lateness {statistics.fmean(schedule_lateness):.2f} s); "
        f"{len(delayed)} of {jobs} delayed messages seen; schedule_job {scheduled_per_s:.0f}/s vs CreateSchedule {raw_per_s:.0f}/s"
    )
    return [
        Metric("jobs.schedule_job_per_s", round(scheduled_per_s, 1), "jobs/s",
               f"bare CreateSchedule calls on the same endpoint ({throughput_jobs} each)", round(raw_per_s, 1),
               ratio(scheduled_per_s, raw_per_s), cmd),
        Metric("jobs.firing_lateness_p50_s", round(p50, 3), "s", baseline_late, round(b50, 3), ratio(p50, b50), cmd),
        Metric("jobs.firing_lateness_p99_s", round(p99, 3), "s", baseline_late, round(b99, 3), ratio(p99, b99), cmd),
        Metric("jobs.fired_share", round(len(fired) / jobs, 3), "share", "every schedule due fires once", 1.0,
               ratio(len(fired) / jobs, 1.0), cmd),
    ], notes  # fmt: skip
