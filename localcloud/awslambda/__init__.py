"""Lambda: the runtime that runs deployed functions in warm worker processes, their context, async invokes."""
