"""EventBridge Pipes, run by the local cloud (``runner``)."""
