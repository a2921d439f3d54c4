"""What the delayed-jobs API raises.

Caller mistakes are ``JobError`` (a ``ValueError``: "invalid argument" handlers catch it); AWS
failures propagate as botocore errors after the job item has been cleaned up; a job another run
holds is a ``TransientError``, so its delivery comes back instead of being acknowledged.
"""

from __future__ import annotations

from asyncstack.runtime.errors import TransientError
from asyncstack.runtime.settings import SettingsError

__all__ = [
    "InvalidJobKeyError",
    "InvalidPayloadError",
    "JobBusyError",
    "JobConfigError",
    "JobError",
    "JobTimingError",
    "NaiveDatetimeError",
    "PastDueError",
    "PayloadNotSerializableError",
    "PayloadTooLargeError",
    "UnknownJobTypeError",
]


class JobError(ValueError):
    """A job request that can never be scheduled as given (a caller mistake, not an AWS failure)."""


class InvalidJobKeyError(JobError):
    """The key is empty, too long or not a string."""


class UnknownJobTypeError(JobError):
    """Nobody consumes this job type: the job would fail only when due, so refuse it now."""


class JobTimingError(JobError):
    """The due time is missing, ambiguous (both ``at`` and ``delay``) or negative."""


class NaiveDatetimeError(JobTimingError):
    """``at`` has no timezone: it could mean any of 24+ instants."""


class PastDueError(JobTimingError):
    """``at`` lies in the past (beyond ``PAST_DUE_TOLERANCE``)."""


class InvalidPayloadError(JobError):
    """The payload cannot travel as a job body."""


class PayloadNotSerializableError(InvalidPayloadError):
    """The payload is not JSON (sets, datetimes, NaN, objects...)."""


class PayloadTooLargeError(InvalidPayloadError):
    """The job body exceeds what the chosen path carries (SQS message or Scheduler Input)."""


class JobConfigError(SettingsError):
    """The jobs API is configured wrongly: the stack did not pass its environment, or a bound is off."""


class JobBusyError(TransientError):
    """Another run holds the job's claim: this delivery must come back after the lease, not be dropped
    (that run may die or fail, and then this delivery is the one that runs the job)."""

    def __init__(self, key: str, retry_after_seconds: int) -> None:
        super().__init__(f"job {key} is claimed by another run for {retry_after_seconds} s more")
        self.retry_after_seconds = retry_after_seconds
