"""Error classes that decide what happens to a failed record.

A ``NonRetryableError`` can never succeed however often it is retried (bad JSON, a schema
violation, an event type nobody handles): the record goes to the dead-letter queue at once,
with the reason attached. Anything else is treated as transient and retried with backoff.
"""


class NonRetryableError(Exception):
    """The record can never be processed: dead-letter it now instead of burning retries."""

    error_type = "NonRetryable"


class MalformedJsonError(NonRetryableError):
    error_type = "MalformedJson"


class SchemaInvalidError(NonRetryableError):
    error_type = "SchemaInvalid"


class UnknownEventTypeError(NonRetryableError):
    error_type = "UnknownEventType"


class ConflictingDuplicateError(NonRetryableError):
    """The same ``event_id`` arrived again with a different payload."""

    error_type = "ConflictingDuplicate"


class TransientError(Exception):
    """A failure worth retrying later (throttling, a dependency that is down).

    ``retry_after_seconds``: the earliest a retry can succeed (another run holds a lease until then);
    the consumer waits at least that long instead of spending receives before it."""

    retry_after_seconds: int = 0


class DeadlineReachedError(TransientError):
    """Raised for records left untouched because the invocation is about to time out."""
