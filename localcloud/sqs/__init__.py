"""SQS: event source mappings polled with Lambda's semantics, the event records they build, redrive."""
