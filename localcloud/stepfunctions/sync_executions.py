"""StartSyncExecution, which moto does not serve: an Express state machine's execution runs in moto's
interpreter and the call answers when it ends, with the execution's status (``SUCCEEDED``,
``FAILED`` or ``TIMED_OUT``), output or error and cause, as Step Functions answers it. Served by the
endpoint outside moto's lock, since the execution's own tasks call back into the endpoint."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from localcloud.server import ACCOUNT, MOTO_LOCK, REGION

MAX_SECONDS = 300.0  # an Express workflow's longest run


def start_sync_execution(body: bytes) -> tuple[int, dict[str, Any]]:
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    request = json.loads(body or b"{}")
    backend = stepfunctions_parser_backends[ACCOUNT][REGION]
    try:
        with MOTO_LOCK:
            execution = backend.start_execution(
                request.get("stateMachineArn"),
                request.get("name") or str(uuid.uuid4()),
                request.get("input") or "{}",
            )
    except Exception as error:  # moto's typed errors (StateMachineDoesNotExist, InvalidExecutionInput, ...)
        return 400, {"__type": getattr(error, "code", type(error).__name__), "message": str(error)}
    deadline = time.monotonic() + MAX_SECONDS
    while _status(execution) == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.01)
    with MOTO_LOCK:
        described = dict(execution.to_describe_output())
    status = _status(execution)
    answer: dict[str, Any] = {
        "executionArn": described["executionArn"],
        "stateMachineArn": described["stateMachineArn"],
        "name": described["name"],
        "startDate": _epoch(described["startDate"]),
        "stopDate": _epoch(described.get("stopDate") or datetime.now(UTC)),
        "status": status if status in ("SUCCEEDED", "TIMED_OUT") else "FAILED",
        "input": described.get("input"),
    }
    answer |= {key: described[key] for key in ("output", "error", "cause") if described.get(key) is not None}
    if status == "RUNNING":
        answer["status"] = "TIMED_OUT"
    return 200, answer


def _status(execution: Any) -> str:
    value = execution.exec_status
    return str(getattr(value, "value", value))


def _epoch(moment: Any) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)
