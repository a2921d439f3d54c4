"""EventBridge Scheduler: the engine that fires schedules on the local clock, and its cron/rate parser."""
