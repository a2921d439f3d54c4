"""Reading Step Functions executions in end-to-end tests: wait for the end, the states entered, the history."""

from __future__ import annotations

from typing import Any

from localcloud.cloud import LocalCloud

TIMEOUT = 60.0


def finished_execution(cloud: LocalCloud, execution_arn: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """DescribeExecution once the execution has left RUNNING."""
    sfn = cloud.client("stepfunctions")
    described: dict[str, Any] = {}

    def finished() -> bool:
        described.update(sfn.describe_execution(executionArn=execution_arn))
        return described["status"] != "RUNNING"

    cloud.wait_until(finished, timeout, f"execution {execution_arn} to finish")
    return described


def history(cloud: LocalCloud, execution_arn: str) -> list[dict[str, Any]]:
    sfn = cloud.client("stepfunctions")
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def states_entered(events: list[dict[str, Any]]) -> list[str]:
    """The names of the states the execution entered, in order."""
    return [
        event["stateEnteredEventDetails"]["name"] for event in events if "stateEnteredEventDetails" in event
    ]


def count(events: list[dict[str, Any]], kind: str) -> int:
    return sum(event["type"] == kind for event in events)
