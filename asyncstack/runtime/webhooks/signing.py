"""Standard Webhooks signatures (https://www.standardwebhooks.com).

A delivery carries ``webhook-id`` (the same on every retry, so receivers can deduplicate),
``webhook-timestamp`` (unix seconds of this attempt, so receivers can refuse replays) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`` per secret,
separated by spaces. A secret is ``whsec_<base64 key>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as random_bytes
from collections.abc import Sequence

__all__ = [
    "SECRET_BYTES",
    "SECRET_PREFIX",
    "InvalidWebhookSecretError",
    "check_secret",
    "headers_for",
    "new_secret",
    "sign",
    "with_prefix",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes


class InvalidWebhookSecretError(ValueError):
    """A signing key that is not base64 (optionally after ``whsec_``), or a stored value that is not ours."""


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(random_bytes.token_bytes(SECRET_BYTES)).decode("ascii")


def check_secret(secret: str) -> bytes:
    """The key a secret encodes; ``InvalidWebhookSecretError`` if it is not base64 or empty."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidWebhookSecretError("a webhook secret must be base64, optionally after whsec_") from exc
    if not key:
        raise InvalidWebhookSecretError("a webhook secret must not be empty")
    return key


def with_prefix(secret: str) -> str:
    """The ``whsec_`` form of a secret (a deploy-time value is the bare base64 key)."""
    return secret if secret.startswith(SECRET_PREFIX) else SECRET_PREFIX + secret


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``webhook-signature`` value: one ``v1,<signature>`` per secret, space-separated."""
    if isinstance(secrets, str):  # a lone string would sign with each of its characters
        raise TypeError("sign() takes a sequence of secrets, not one string")
    if not secrets:
        raise ValueError("sign() needs at least one secret")
    payload = body.encode("utf-8") if isinstance(body, str) else body
    signed = f"{msg_id}.{int(timestamp)}.".encode() + payload
    return " ".join(
        "v1,"
        + base64.b64encode(hmac.new(check_secret(secret), signed, hashlib.sha256).digest()).decode("ascii")
        for secret in secrets
    )


def headers_for(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes | str) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign(secrets, msg_id, timestamp, body),
    }
