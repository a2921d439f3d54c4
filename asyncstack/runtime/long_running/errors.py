"""What long-running jobs raise. Each is a ``NonRetryableError``: the workflow's retries cannot help,
so it catches the failure and marks the job failed (Lambda reports the class name as errorType)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asyncstack.runtime.errors import NonRetryableError

__all__ = ["CheckpointConflictError", "InvalidJobIdError", "UnknownActionError", "UnknownJobError"]


class UnknownJobError(NonRetryableError):
    """No job has this id: no retry will make one appear."""

    error_type = "UnknownJob"


class CheckpointConflictError(NonRetryableError):
    """The job moved on without this run (a retry overtook it, or it was failed): stop, write nothing."""

    error_type = "CheckpointConflict"

    def __init__(self, message: str, *, found: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.found: dict[str, Any] = dict(found or {})  # the job as the failed condition saw it


class UnknownActionError(NonRetryableError):
    """The worker was invoked with an action it does not have (a state machine definition bug)."""

    error_type = "UnknownAction"


class InvalidJobIdError(NonRetryableError, ValueError):
    """The job id cannot name a Step Functions execution; a ``ValueError`` so APIs answer 400."""

    error_type = "InvalidJobId"
