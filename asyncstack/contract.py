"""The names the CDK constructs and the Lambda runtime share: environment variables, tags, limits.

Both sides import them from here, so a name is typed once. Nothing here imports anything else.
"""

from __future__ import annotations

# -- queue consumers (asyncstack.cdk.work_queue -> asyncstack.runtime.consumer) --------------------
QUEUE_URL = "QUEUE_URL"
DEAD_LETTER_QUEUE_URL = "DEAD_LETTER_QUEUE_URL"
IDEMPOTENCY_TABLE_NAME = "IDEMPOTENCY_TABLE_NAME"
IDEMPOTENCY_TTL_SECONDS = "IDEMPOTENCY_TTL_SECONDS"
BACKOFF_BASE_SECONDS = "BACKOFF_BASE_SECONDS"
BACKOFF_MAX_SECONDS = "BACKOFF_MAX_SECONDS"
# A consumer stops taking records this long before its deadline: the longest one record can take.
SHUTDOWN_MARGIN_MS = "SHUTDOWN_MARGIN_MS"

# -- delayed jobs (asyncstack.cdk.delayed_jobs -> asyncstack.runtime.jobs) --------------------------
# The ``source`` of every job message, whether ``schedule_job`` or a recurring schedule made it.
JOB_MESSAGE_SOURCE = "asyncstack.jobs"
# The field of a job message's ``data`` that carries its due time, beside the payload.
JOB_DUE_AT_FIELD = "due_at"
JOBS_QUEUE_URL = "JOBS_QUEUE_URL"
JOBS_QUEUE_ARN = "JOBS_QUEUE_ARN"
JOBS_SCHEDULE_GROUP = "JOBS_SCHEDULE_GROUP"
JOBS_SCHEDULER_ROLE_ARN = "JOBS_SCHEDULER_ROLE_ARN"
JOBS_DEAD_LETTER_ARN = "JOBS_DEAD_LETTER_ARN"
JOBS_TABLE_NAME = "JOBS_TABLE_NAME"
JOB_TYPES = "JOB_TYPES"
# How long a worker's claim on a job lasts: the worker's timeout (no run outlives it).
JOBS_CLAIM_LEASE_SECONDS = "JOBS_CLAIM_LEASE_SECONDS"

# -- request-reply (asyncstack.cdk.request_reply -> asyncstack.runtime.rpc) -------------------------
RPC_REPLY_QUEUE_URLS = "RPC_REPLY_QUEUE_URLS"
# The request body's fields: the task-token workflow writes them, the server reads them.
RPC_ACTION_FIELD = "action"
RPC_PAYLOAD_FIELD = "payload"
RPC_TASK_TOKEN_FIELD = "task_token"  # noqa: S105 (a field's name)

# -- webhooks (asyncstack.cdk.webhooks -> asyncstack.runtime.webhooks) ------------------------------
WEBHOOK_SECRET_ARN = "WEBHOOK_SECRET_ARN"  # noqa: S105 (a variable's name)
WEBHOOK_DEAD_LETTER_QUEUE_URL = "WEBHOOK_DEAD_LETTER_QUEUE_URL"
# Only a local cloud sets it to "true": plain HTTP and loopback callbacks (its receivers).
WEBHOOK_ALLOW_INSECURE = "WEBHOOK_ALLOW_INSECURE"
# The longest one delivery may take: DNS (2 s), three connects (3 s each) and the read (10 s), plus the
# AWS calls around it. The delivery queue's batch and shutdown margin are sized from it.
WEBHOOK_DELIVERY_MAX_SECONDS = 30
# The delayed-job type of a delivery attempt: the construct's jobs queue accepts only it.
WEBHOOK_DELIVERY_JOB_TYPE = "webhook.deliver"

# -- long-running jobs (asyncstack.cdk.long_running_jobs -> asyncstack.runtime.long_running) ---------
LONG_RUNNING_JOBS_TABLE_NAME = "LONG_RUNNING_JOBS_TABLE_NAME"
LONG_RUNNING_RESULTS_BUCKET = "LONG_RUNNING_RESULTS_BUCKET"
# Given to functions that start jobs (the workflow that runs them).
LONG_RUNNING_STATE_MACHINE_ARN = "LONG_RUNNING_STATE_MACHINE_ARN"
# Left before the worker's deadline, on top of twice its slowest chunk (optional; milliseconds).
LONG_RUNNING_MARGIN_MS = "LONG_RUNNING_MARGIN_MS"
# What the workflow asks the worker to do, and the field of the answer it loops on.
LONG_RUNNING_RUN_ACTION = "run"
LONG_RUNNING_FAIL_ACTION = "fail"
LONG_RUNNING_DONE_FIELD = "done"

# -- tags ---------------------------------------------------------------------------------------
# Every dead-letter queue carries it, so tools (a local dashboard, an operator's script) find them all,
# including those no redrive policy names.
DEAD_LETTER_QUEUE_TAG = "asyncstack:dead-letter-queue"

# -- deploying ------------------------------------------------------------------------------------
# The context a local cloud's deploy sets: functions are then built for this machine's Python.
LOCAL_CLOUD_CONTEXT = "asyncstack:localCloud"
