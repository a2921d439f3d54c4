"""Where moto's S3 must behave as AWS does for bucket events to reach EventBridge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

# What S3 puts in an event's "reason" for each kind of notification (S3's "EventBridge message structure").
REASONS = {"Put": "PutObject", "Post": "POST Object", "Copy": "CopyObject", "Delete": "DeleteObject"}


def apply() -> None:
    _eventbridge_events_as_s3_sends_them()
    _bucket_policies_judged_with_their_conditions()


def _bucket_policies_judged_with_their_conditions() -> None:
    """moto applied a bucket policy's Deny statements with their conditions left out, so a TLS-only deny
    refused every object write. The endpoint authorises bucket and object calls with the whole policy
    (``localcloud.iam``); moto's own check stays neutral."""
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: Any, action: str, resource: str) -> Any:
        return PermissionResult.NEUTRAL

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


def _eventbridge_events_as_s3_sends_them() -> None:
    """With EventBridge notifications on, S3 puts each event on the account's default bus, as S3's
    message structure has it: ``time`` in ISO 8601, ``etag``, ``reason`` such as ``PutObject``, and
    targets' input transformers applied. moto stamped epoch seconds as a float, named the field
    ``eTag``, gave ``ObjectCreated`` as the reason, offered the event to the rules of every bus and
    skipped input transformers."""
    from moto.events.models import events_backends
    from moto.s3 import notifications

    def send(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        action = event_name.rsplit(":", maxsplit=1)[-1]
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": notifications._detail_type(event_name),
            "source": "aws.s3",
            "account": account_id,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": bucket.region_name,
            "resources": [bucket.arn],
            "detail": {
                "version": "0",
                "bucket": {"name": bucket.name},
                "object": {
                    "key": key.name,
                    "size": key.size,
                    "etag": key.etag.strip('"'),
                    **({"version-id": key.version_id} if key.version_id else {}),
                    "sequencer": f"{uuid.uuid4().int % 16**18:018X}",
                },
                "request-id": uuid.uuid4().hex[:16].upper(),
                "requester": account_id,
                "source-ip-address": "127.0.0.1",
                "reason": REASONS.get(action, action),
            },
        }
        bus = events_backends[account_id][bucket.region_name].event_buses.get("default")
        for rule in list(bus.rules.values()) if bus is not None else []:
            rule.send_to_targets(event)  # type: ignore[arg-type]  # moto types the event as its TypedDict

    notifications._send_event_bridge_message = send
