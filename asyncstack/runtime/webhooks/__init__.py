"""Signed webhooks: Standard Webhooks ``signing``, the signing ``secret`` and its rotation, and the
``delivery`` engine (retries over hours as delayed jobs, SSRF-checked POSTs, a DLQ after the last
attempt) for anything a ``WebhookSubjects`` describes. ``asyncstack.cdk.webhooks.WebhookDelivery``
builds the secret, the delivery jobs and the DLQ.
"""

from asyncstack.runtime.webhooks.delivery import (
    DELIVERY_JOB_TYPE,
    FIRST_DELIVERY_DELAY,
    MAX_ATTEMPTS,
    MAX_DELIVERY_DURATION,
    RETRY_DELAYS,
    WEBHOOK_MAX_SQS_DELAY_SECONDS,
    DeliveryJob,
    DeliverySettings,
    Webhook,
    WebhookEvent,
    WebhookSubjects,
    deliver,
    delivery_job_key,
    delivery_scheduler,
    next_delay,
    queue_first_delivery,
)
from asyncstack.runtime.webhooks.secret import (
    CACHE_TTL,
    DEFAULT_GRACE,
    SigningKeys,
    WebhookSecretSettings,
    clear_secret_cache,
    load_signing_keys,
    rotate_secret,
    signing_secrets,
)
from asyncstack.runtime.webhooks.signing import (
    SECRET_PREFIX,
    InvalidWebhookSecretError,
    headers_for,
    new_secret,
    sign,
)
from asyncstack.runtime.webhooks.state import FINAL_STATUSES, DeliveryAttempt, WebhookState, WebhookStatus

__all__ = [
    "CACHE_TTL",
    "DEFAULT_GRACE",
    "DELIVERY_JOB_TYPE",
    "FINAL_STATUSES",
    "FIRST_DELIVERY_DELAY",
    "MAX_ATTEMPTS",
    "MAX_DELIVERY_DURATION",
    "RETRY_DELAYS",
    "SECRET_PREFIX",
    "WEBHOOK_MAX_SQS_DELAY_SECONDS",
    "DeliveryAttempt",
    "DeliveryJob",
    "DeliverySettings",
    "InvalidWebhookSecretError",
    "SigningKeys",
    "Webhook",
    "WebhookEvent",
    "WebhookSecretSettings",
    "WebhookState",
    "WebhookStatus",
    "WebhookSubjects",
    "clear_secret_cache",
    "deliver",
    "delivery_job_key",
    "delivery_scheduler",
    "headers_for",
    "load_signing_keys",
    "new_secret",
    "next_delay",
    "queue_first_delivery",
    "rotate_secret",
    "sign",
    "signing_secrets",
]
