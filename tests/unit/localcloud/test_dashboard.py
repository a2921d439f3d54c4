"""The dashboard without a cloud: reading Step Functions histories and CloudFormation names, its port."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from localcloud.dashboard import Dashboard
from localcloud.dashboard.data import label, steps
from localcloud.server import LocalCloudError

pytestmark = pytest.mark.unit


def event(kind: str, second: float, **details: Any) -> dict[str, Any]:
    return {"type": kind, "timestamp": f"2026-11-29T10:00:{second:06.3f}Z", **details}


def entered(name: str, kind: str, second: float) -> dict[str, Any]:
    return event(f"{kind}StateEntered", second, stateEnteredEventDetails={"name": name})


def exited(name: str, kind: str, second: float) -> dict[str, Any]:
    return event(f"{kind}StateExited", second, stateExitedEventDetails={"name": name})


def test_a_retried_step_that_succeeds_is_one_step_with_its_attempts() -> None:
    history = [
        event("ExecutionStarted", 0),
        entered("Charge", "Task", 1),
        event("TaskScheduled", 1),
        event("TaskFailed", 2, taskFailedEventDetails={"error": "Throttled"}),
        event("TaskScheduled", 3),
        event("TaskSucceeded", 4),
        exited("Charge", "Task", 4.5),
        event("ExecutionSucceeded", 5),
    ]
    [charge] = steps(history)
    assert charge == {
        "name": "Charge", "type": "Task", "entered_at": "2026-11-29T10:00:01+00:00",
        "exited_at": "2026-11-29T10:00:04.500000+00:00", "duration_ms": 3500.0, "status": "succeeded",
        "attempts": 2, "error": None, "compensating": False,
    }  # fmt: skip


def test_steps_after_a_caught_failure_are_compensating_and_a_fail_state_ends_with_the_execution() -> None:
    history = [
        entered("Charge", "Task", 1),
        event("LambdaFunctionScheduled", 1),
        event("LambdaFunctionSucceeded", 2),
        exited("Charge", "Task", 2),
        entered("Confirm", "Task", 3),
        event("LambdaFunctionScheduled", 3),
        event("LambdaFunctionFailed", 4, lambdaFunctionFailedEventDetails={"error": "RecipientRejected"}),
        # a Catch moves on without a StateExited
        entered("Refund", "Task", 5),
        event("LambdaFunctionScheduled", 5),
        event("LambdaFunctionSucceeded", 6),
        exited("Refund", "Task", 6),
        entered("OrderFailed", "Fail", 7),
        event("ExecutionFailed", 7.25, executionFailedEventDetails={"error": "RecipientRejected"}),
    ]
    got = {step["name"]: step for step in steps(history)}
    assert list(got) == ["Charge", "Confirm", "Refund", "OrderFailed"]
    assert (got["Confirm"]["status"], got["Confirm"]["error"], got["Confirm"]["duration_ms"]) == (
        "failed", "RecipientRejected", 2000.0,
    )  # fmt: skip
    assert [step["compensating"] for step in got.values()] == [False, False, True, True]
    assert (got["OrderFailed"]["status"], got["OrderFailed"]["duration_ms"]) == ("failed", 250.0)


def test_a_running_execution_shows_its_current_step_as_running() -> None:
    [step] = steps([entered("Export", "Task", 1), event("TaskScheduled", 1)])
    assert (step["status"], step["exited_at"], step["duration_ms"]) == ("running", None, None)


@pytest.mark.parametrize(
    ("physical", "expected"),
    [
        ("AsyncStack-InventoryQueue9CB6A1E3-1NRCDJWIEYH7", "InventoryQueue"),
        ("AsyncStack-InventoryWorkerFunction1EB84472-2FHVM7PNMM3Y", "InventoryWorkerFunction"),
        ("AsyncStack-OrderSagaWorkflowStateMachine1FBEB9D8-3V0JLY43ELPE", "OrderSagaWorkflowStateMachine"),
        ("my-own-queue", "my-own-queue"),
    ],
)
def test_labels_are_the_names_the_stack_code_uses(physical: str, expected: str) -> None:
    assert label(physical) == expected


def test_a_dashboard_port_in_use_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LocalCloudError, match=f"dashboard port {port} on 127.0.0.1 is in use"):
            Dashboard(data=None, api_key="key", port=port)  # type: ignore[arg-type]
