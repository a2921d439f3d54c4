"""What the dashboard shows, read from the local cloud's own state: moto's backends and the runtime's
statistics, and the panels extensions provide. Reading has no side effects: opening a dead-letter
queue does not receive its messages, so their receive counts and visibility stay as they were.
Actions (a redrive, an extension panel's) go through the AWS APIs, like any other client's."""

from __future__ import annotations

import base64
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from localcloud.extensions import DashboardPanel, NotFound, Refused
from localcloud.server import ACCOUNT, MOTO_LOCK, REGION, LocalCloudError
from localcloud.sqs.redrive import redrive

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

__all__ = ["DashboardData", "NotFound", "Refused", "label", "steps"]

# CloudFormation's physical names: "<stack>-<logical id><8 hex of the path hash>-<random suffix>".
_PHYSICAL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*-(?P<logical>.+?)(?:[0-9A-F]{8})?-[A-Za-z0-9]{8,13}$")
RECENT_EXECUTIONS = 20
# The overview's own keys, and the built-in views: a panel of the same name would hide one.
BUILT_IN = frozenset(
    {"now", "clock_offset_seconds", "panels", "queues", "functions", "workflows", "executions", "stream"}
)
PANEL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


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


class DashboardData:
    """``panels``: views beside the built-in ones (queues, functions, workflows); by default those of
    the cloud's extensions."""

    def __init__(self, cloud: LocalCloud, panels: Sequence[DashboardPanel] | None = None) -> None:
        self.cloud = cloud
        self.panels: dict[str, DashboardPanel] = {}
        if panels is None:
            panels = [panel for extension in cloud.extensions for panel in extension.dashboard_panels(cloud)]
        for panel in panels:
            if not PANEL_NAME.match(panel.name) or panel.name in BUILT_IN or panel.name in self.panels:
                raise LocalCloudError(
                    f"a dashboard panel may not be called {panel.name!r}: its name must be new, lower-case "
                    f"letters, digits and dashes (taken: {', '.join(sorted(BUILT_IN | set(self.panels)))})"
                )
            self.panels[panel.name] = panel

    # -- the live overview ------------------------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        """Everything on the page; each extension panel's data under its name."""
        return {
            "now": self.cloud.clock.now().isoformat(),
            "clock_offset_seconds": self.cloud.clock.offset.total_seconds(),
            "panels": self.panel_list(),
            "queues": self.queues(),
            "functions": self.functions(),
            "workflows": self.workflows(),
            "iam": self.iam(),
            **{name: panel.read() for name, panel in self.panels.items()},
        }

    def iam(self) -> dict[str, Any]:
        """The permissions mode, how many calls were denied (or would have been), and the latest few."""
        permissions = self.cloud.permissions
        with permissions.lock:
            recent = [denial.message for denial in list(permissions.recent)[-5:]]
            return {"mode": permissions.mode, "denied": sum(permissions.denied.values()), "recent": recent}

    def panel_list(self) -> list[dict[str, str]]:
        return [{"name": panel.name, "title": panel.title} for panel in self.panels.values()]

    def panel_script(self, name: str) -> str:
        if name not in self.panels:
            raise NotFound(f"no dashboard panel {name}")
        return self.panels[name].script

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

    def panel_action(self, name: str, item: str, action: str, request: Mapping[str, Any]) -> Any:
        panel = self.panels.get(name)
        if panel is None or action not in panel.actions:
            raise NotFound(f"no dashboard action {action} of {name}")
        return panel.actions[action](item, request)

    # -- reading ---------------------------------------------------------------------------------

    def _queue(self, name: str) -> dict[str, Any]:
        queues = self.cloud.queues()
        if name not in queues:
            raise NotFound(f"no queue {name}")
        return {"name": name, "label": label(name), **queues[name]}


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
