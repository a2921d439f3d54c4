"""What the dashboard shows, read from the local cloud's own state: moto's backends and the runtime's
statistics. Reading has no side effects: opening a dead-letter queue does not receive its messages,
so their receive counts and visibility stay as they were. The two actions (redrive, cancel) go
through the AWS APIs, like any other client's."""

from __future__ import annotations

import base64
import re
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from asyncstack.runtime.jobs import CancelOutcome, JobScheduler
from localcloud.redrive import redrive
from localcloud.server import ACCOUNT, MOTO_LOCK, REGION, LocalCloudError
from shared.exports import view_of_item

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

# CloudFormation's physical names: "<stack>-<logical id><8 hex of the path hash>-<random suffix>".
_PHYSICAL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*-(?P<logical>.+?)(?:[0-9A-F]{8})?-[A-Za-z0-9]{8,13}$")
RECENT_EXECUTIONS = 20
RECENT_JOBS = 50


class NotFound(LocalCloudError):
    """The queue, message, execution or job asked for does not exist (404)."""


class Refused(LocalCloudError):
    """The action cannot be done in this state (409)."""


def label(physical_name: str) -> str:
    """A resource's name as the stack's code calls it: InventoryQueue for AsyncStack-InventoryQueue9CB6A1E3-1NRC..."""
    found = _PHYSICAL_NAME.match(physical_name)
    return found.group("logical") if found else physical_name


def _moment(value: Any) -> datetime | None:
    """A timestamp as moto keeps it: a datetime, or an ISO string (Step Functions history events)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value if isinstance(value, datetime) else None


def _iso(value: Any) -> str | None:
    moment = _moment(value)
    return None if moment is None else moment.isoformat()


def _plain_attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item's top-level strings and numbers (what the schedules view needs)."""
    return {name: value.get("S", value.get("N")) for name, value in item.items()}


class DashboardData:
    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud

    # -- the live overview ------------------------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        return {
            "now": self.cloud.clock.now().isoformat(),
            "clock_offset_seconds": self.cloud.clock.offset.total_seconds(),
            "queues": self.queues(),
            "functions": self.functions(),
            "jobs": self.jobs(),
            "workflows": self.workflows(),
            "schedules": self.schedules(),
        }

    def queues(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "label": label(name), **counts}
            for name, counts in sorted(self.cloud.queues().items(), key=lambda pair: label(pair[0]))
        ]

    def functions(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "label": label(name), **stats}
            for name, stats in sorted(self.cloud.functions().items(), key=lambda pair: label(pair[0]))
        ]

    def jobs(self) -> list[dict[str, Any]]:
        """Long-running export jobs, newest first, with progress and webhook attempts."""
        jobs = [view_of_item(item) for item in self._table_items("ExportJobsTableName")]
        jobs.sort(key=lambda job: job.get("created_at") or "", reverse=True)
        return jobs[:RECENT_JOBS]

    def schedules(self) -> dict[str, Any]:
        """Delayed jobs: the pending ones by due time, and how many there are in each status."""
        items = [_plain_attributes(item) for item in self._table_items("JobsTableName")]
        pending = [
            {
                key: item.get(key)
                for key in ("job_key", "job_type", "due_at", "via", "schedule_name", "scheduled_at")
            }
            for item in items
            if item.get("status") == "pending"
        ]
        return {
            "pending": sorted(pending, key=lambda job: job["due_at"] or ""),
            "by_status": dict(Counter(item.get("status") for item in items)),
        }

    def workflows(self) -> list[dict[str, Any]]:
        from moto.stepfunctions.responses import get_backend

        result = []
        with MOTO_LOCK:
            backend: Any = get_backend(ACCOUNT, REGION)  # moto's Step Functions parser backend
            for machine in backend.state_machines:
                executions = [execution.to_execution_list_item() for execution in machine.executions]
                executions.sort(key=lambda e: e["startDate"], reverse=True)
                result.append(
                    {
                        "name": machine.name,
                        "label": label(machine.name),
                        "arn": machine.arn,
                        "by_status": dict(Counter(e["status"] for e in executions)),
                        "executions": [_summary(e) for e in executions[:RECENT_EXECUTIONS]],
                    }
                )
        return sorted(result, key=lambda machine: machine["label"])

    # -- details ---------------------------------------------------------------------------------

    def dead_letters(self, queue_name: str) -> dict[str, Any]:
        """Every message of a queue as it is, without receiving it: body, attributes, receive count
        and, for what a consumer dead-lettered, the reason it attached."""
        from moto.sqs.models import sqs_backends

        summary = self._queue(queue_name)
        with MOTO_LOCK:
            queue = sqs_backends[ACCOUNT][REGION].queues[queue_name]
            messages = [_message(m) for m in queue._messages]
        return {**summary, "messages": messages}

    def execution(self, arn: str) -> dict[str, Any]:
        """One execution's steps in the order they ran, with timing; steps after a caught failure
        (the compensations of a saga, its failure notice) are marked ``compensating``."""
        from moto.stepfunctions.exceptions import ExecutionDoesNotExist
        from moto.stepfunctions.responses import get_backend

        with MOTO_LOCK:
            backend: Any = get_backend(ACCOUNT, REGION)
            try:
                described = dict(backend.describe_execution(arn).to_describe_output())
                events = list(backend.get_execution_history(arn)["events"])
            except ExecutionDoesNotExist as error:
                raise NotFound(f"no execution {arn}") from error
        return {
            "name": described["name"],
            "arn": arn,
            "state_machine": label(described["stateMachineArn"].rsplit(":", 1)[-1]),
            "status": described["status"],
            "started_at": _iso(described.get("startDate")),
            "stopped_at": _iso(described.get("stopDate")),
            "error": described.get("error"),
            "cause": described.get("cause"),
            "steps": steps(events),
        }

    # -- actions ---------------------------------------------------------------------------------

    def redrive(self, queue_name: str, message_id: str | None = None) -> dict[str, Any]:
        queue = self._queue(queue_name)
        if not queue["dlq"]:
            raise Refused(f"{queue_name} is not a dead-letter queue")
        if queue["redrive_to"] is None:
            raise Refused(
                f"{label(queue_name)} has no single source queue to send its messages back to: its senders "
                "(a topic subscription, a schedule, a function) put them there; resend them from their source"
            )
        source = self._queue(queue["redrive_to"])
        report = redrive(
            self.cloud.client("sqs"), queue["url"], source_url=source["url"],
            message_ids=None if message_id is None else [message_id],
        )  # fmt: skip
        if message_id is not None and not report.moved and not report.failed:
            raise NotFound(f"message {message_id} is not in {label(queue_name)}")
        return {
            "moved": report.moved, "failed": report.failed, "remaining": report.remaining,
            "to": source["name"], "summary": report.summary(),
        }  # fmt: skip

    def cancel(self, job_key: str) -> dict[str, Any]:
        outputs = self.cloud.stack_outputs()
        if "JobsTableName" not in outputs:
            raise NotFound("the stack with delayed jobs is not deployed")
        jobs = JobScheduler(
            queue_url="", queue_arn="", role_arn="", dead_letter_arn="", job_types=frozenset(),
            jobs_table=outputs["JobsTableName"], schedule_group=outputs["JobsScheduleGroupName"],
            now=self.cloud.clock.now, dynamodb_client=self.cloud.client("dynamodb"),
            scheduler_client=self.cloud.client("scheduler"),
        )  # fmt: skip
        if jobs.status(job_key) is None:  # cancel() would record a cancellation in advance
            raise NotFound(f"no delayed job {job_key}")
        outcome = jobs.cancel(job_key)
        if outcome is not CancelOutcome.CANCELLED:
            raise Refused(f"job {job_key} cannot be cancelled: {outcome.value.replace('_', ' ')}")
        return {"job_key": job_key, "outcome": outcome.value}

    # -- reading ---------------------------------------------------------------------------------

    def _queue(self, name: str) -> dict[str, Any]:
        queues = self.cloud.queues()
        if name not in queues:
            raise NotFound(f"no queue {name}")
        return {"name": name, "label": label(name), **queues[name]}

    def _table_items(self, output: str) -> list[dict[str, Any]]:
        """A stack table's items in attribute-value form (``[]`` before the stack is deployed)."""
        from moto.dynamodb.models import dynamodb_backends

        name = self.cloud.stack_outputs().get(output)
        with MOTO_LOCK:
            table = dynamodb_backends[ACCOUNT][REGION].tables.get(name or "")
            return [item.to_json()["Attributes"] for item in table.all_items()] if table else []


def _message(message: Any) -> dict[str, Any]:
    attributes = {
        name: value.get("StringValue") or base64.b64encode(value.get("BinaryValue") or b"").decode()
        for name, value in message.message_attributes.items()
    }
    return {
        "message_id": message.id, "body": message.body, "attributes": attributes,
        "receive_count": message.approximate_receive_count, "sent_timestamp": message.sent_timestamp,
        # what the stack's consumers attach when they dead-letter a message themselves
        "error_type": attributes.get("error-type"), "error_message": attributes.get("error-message"),
        "failed_at": attributes.get("failed-at"),
    }  # fmt: skip


def _summary(execution: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": execution["name"], "arn": execution["executionArn"], "status": execution["status"],
        "started_at": _iso(execution.get("startDate")), "stopped_at": _iso(execution.get("stopDate")),
    }  # fmt: skip


_EXECUTION_ENDS = ("ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut")


def steps(events: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The states an execution entered, from its history: timing, attempts, the last error, and
    whether the step ran on the error path (after a failure that a Catch handled)."""
    result: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    caught = False

    def finish(step: dict[str, Any], at: datetime) -> None:
        nonlocal caught
        step["exited_at"] = at.isoformat()
        step["duration_ms"] = round(
            (at - datetime.fromisoformat(step["entered_at"])).total_seconds() * 1000, 1
        )
        step["status"] = "failed" if step["error"] or step["type"] == "Fail" else "succeeded"
        caught = caught or step["status"] == "failed"

    for event in events:
        kind = str(getattr(event["type"], "value", event["type"]))  # moto keeps an enum
        at = _moment(event["timestamp"]) or datetime.now(UTC)
        if kind.endswith("StateEntered"):
            if current is not None and current["exited_at"] is None:
                finish(current, at)  # left by a Catch: no StateExited
            current = {
                "name": event["stateEnteredEventDetails"]["name"], "type": kind.removesuffix("StateEntered"),
                "entered_at": at.isoformat(), "exited_at": None, "duration_ms": None, "status": "running",
                "attempts": 0, "error": None, "compensating": caught,
            }  # fmt: skip
            result.append(current)
        elif current is None:
            continue
        elif kind in _EXECUTION_ENDS:
            if current["exited_at"] is None:  # a Fail or Succeed state is not exited
                finish(current, at)
        elif kind.endswith("StateExited"):
            finish(current, at)
        elif kind.endswith("Scheduled"):
            current["attempts"] += 1
        elif kind.endswith(("Failed", "TimedOut")):
            details: Mapping[str, Any] = next(
                (value for key, value in event.items() if key.endswith("EventDetails")), {}
            )
            current["error"] = details.get("error") or kind
        elif kind.endswith("Succeeded"):
            current["error"] = None  # a retry succeeded
    return result
