"""The signing secret's lifecycle: read it (cached), rotate it with a grace period.

The secrets live in one Secrets Manager secret (``WEBHOOK_SECRET_ARN``) as JSON
``{"current": ..., "previous": ..., "previous_valid_until": ...}``. Its first value is generated when
the stack is deployed (``current``: 44 random letters and digits, a base64 key, which receivers may
use with or without the ``whsec_`` prefix). The delivery worker only reads it: a value it cannot
read is an error that names the secret, never a reason to write a new one (every receiver would
then reject every delivery). Rotation is an operator's action (``python -m asyncstack.runtime.webhooks
rotate``) with the operator's credentials. After a rotation both keys sign until
``previous_valid_until``: receivers can switch to the new key whenever they like within that grace
period, as every delivery verifies with either. Warm environments cache the value for ``CACHE_TTL``,
so a rotation reaches them within that time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from pydantic import Field

from asyncstack import contract
from asyncstack.runtime import aws
from asyncstack.runtime.observability import logger
from asyncstack.runtime.settings import EnvironmentSettings, load
from asyncstack.runtime.timestamps import iso, utc_now
from asyncstack.runtime.webhooks.signing import (
    InvalidWebhookSecretError,
    check_secret,
    new_secret,
    with_prefix,
)

__all__ = [
    "CACHE_TTL",
    "DEFAULT_GRACE",
    "SigningKeys",
    "WebhookSecretSettings",
    "clear_secret_cache",
    "load_signing_keys",
    "main",
    "rotate_secret",
    "signing_secrets",
]

DEFAULT_GRACE = timedelta(hours=24)
CACHE_TTL = timedelta(minutes=5)

# Warm-environment cache: secret id -> (time.monotonic() when read, keys).
_cache: dict[str, tuple[float, SigningKeys]] = {}


class WebhookSecretSettings(EnvironmentSettings):
    """What ``asyncstack.cdk.WebhookDelivery`` tells its worker about the signing secret."""

    secret_arn: str = Field(validation_alias=contract.WEBHOOK_SECRET_ARN, min_length=1)


@dataclass(frozen=True)
class SigningKeys:
    """The secret's value: the key that signs, and the one it replaced while that is still honoured."""

    current: str
    previous: str | None = None
    previous_valid_until: datetime | None = None

    def active(self, now: datetime) -> list[str]:
        """What signs at ``now``: the current key, and the previous one during its grace period."""
        if self.previous and self.previous_valid_until and now < self.previous_valid_until:
            return [self.current, self.previous]
        return [self.current]

    def to_json(self) -> str:
        until = None if self.previous_valid_until is None else iso(self.previous_valid_until)
        return json.dumps({"current": self.current, "previous": self.previous, "previous_valid_until": until})

    @classmethod
    def parse(cls, text: str | None) -> SigningKeys:
        """The keys in ``text``; ``InvalidWebhookSecretError`` saying what is wrong if it is not our JSON."""
        try:
            data: Any = json.loads(text or "")
        except ValueError:
            raise InvalidWebhookSecretError("the value is not JSON") from None
        if not isinstance(data, Mapping):
            raise InvalidWebhookSecretError("the value is not a JSON object")
        current, previous, until = data.get("current"), data.get("previous"), data.get("previous_valid_until")
        if not isinstance(current, str):
            raise InvalidWebhookSecretError('"current" is missing or not a string')
        if not isinstance(previous, str | None):
            raise InvalidWebhookSecretError('"previous" is not a string')
        check_secret(current)
        if previous is not None:
            check_secret(previous)
        try:
            valid_until = None if until is None else datetime.fromisoformat(until)
        except (TypeError, ValueError):
            raise InvalidWebhookSecretError('"previous_valid_until" is not an ISO 8601 time') from None
        if valid_until is not None and valid_until.tzinfo is None:
            raise InvalidWebhookSecretError('"previous_valid_until" has no time zone (add Z or +00:00)')
        return cls(
            current=with_prefix(current),
            previous=None if previous is None else with_prefix(previous),
            previous_valid_until=valid_until,
        )


def _secret_id(secret_id: str | None) -> str:
    return secret_id or load(WebhookSecretSettings).secret_arn


def _token(purpose: str, version_id: str | None) -> str:
    """A ClientRequestToken derived from the version a change starts from: two workers making the same
    change from the same version write one version, the second gets ResourceExistsException."""
    return hashlib.sha256(f"{purpose}:{version_id or '-'}".encode()).hexdigest()


def _read(secret_id: str, client: Any) -> tuple[SigningKeys, str]:
    """The stored keys and the current version id; ``InvalidWebhookSecretError`` if there are none to read."""
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        if aws.error_code(exc) != "ResourceNotFoundException":
            raise
        raise InvalidWebhookSecretError(
            f"webhook secret {secret_id} has no value: the stack generates one when it is deployed"
        ) from exc
    try:
        return SigningKeys.parse(response.get("SecretString")), response["VersionId"]
    except InvalidWebhookSecretError as exc:
        raise InvalidWebhookSecretError(
            f"webhook secret {secret_id} cannot be read ({exc}); nothing is signed with it until it is "
            "fixed: restore the previous version, or write a new value with "
            "`python -m asyncstack.runtime.webhooks rotate`"
        ) from None


def _write(secret_id: str, client: Any, keys: SigningKeys, token: str) -> bool:
    """Store ``keys`` as the current version; False if another writer made this change first."""
    try:
        client.put_secret_value(SecretId=secret_id, SecretString=keys.to_json(), ClientRequestToken=token)
    except ClientError as exc:
        if aws.error_code(exc) == "ResourceExistsException":
            return False
        raise
    return True


def _cached(secret_id: str, keys: SigningKeys) -> SigningKeys:
    _cache[secret_id] = (time.monotonic(), keys)
    return keys


def clear_secret_cache() -> None:
    """Forget cached keys (tests; a rotation done by another process is otherwise seen within CACHE_TTL)."""
    _cache.clear()


def load_signing_keys(
    secret_id: str | None = None, *, client: Any = None, refresh: bool = False
) -> SigningKeys:
    """The stored keys, from this environment's cache if read less than CACHE_TTL ago."""
    secret_id = _secret_id(secret_id)
    hit = _cache.get(secret_id)
    if hit is not None and not refresh and time.monotonic() - hit[0] < CACHE_TTL.total_seconds():
        return hit[1]
    keys, _ = _read(secret_id, client or aws.client("secretsmanager"))
    return _cached(secret_id, keys)


def signing_secrets(
    now: datetime | None = None, *, secret_id: str | None = None, client: Any = None, refresh: bool = False
) -> list[str]:
    """The secrets that sign a delivery at ``now``: [current], or [current, previous] during a grace period."""
    keys = load_signing_keys(secret_id, client=client, refresh=refresh)
    return keys.active(now or utc_now())


def rotate_secret(
    secret_id: str,
    *,
    grace: timedelta = DEFAULT_GRACE,
    client: Any = None,
    now: datetime | None = None,
) -> str:
    """Make a new current secret; the old current keeps signing for ``grace``. Returns the new secret.

    A previous key still in its grace period is dropped: rotate at most once per grace period. A value
    that cannot be read is refused (``InvalidWebhookSecretError``): fix or restore it first."""
    if grace < timedelta(0):
        raise ValueError(f"grace must not be negative, got {grace}")
    client = client or aws.client("secretsmanager")
    now = now or utc_now()
    keys, version = _read(secret_id, client)
    rotated = SigningKeys(current=new_secret(), previous=keys.current, previous_valid_until=now + grace)
    if not _write(secret_id, client, rotated, _token("rotate", version)):
        winner, _ = _read(secret_id, client)  # a concurrent rotation from the same version won
        return _cached(secret_id, winner).current
    logger.info(
        "webhook signing secret rotated",
        extra={"secret_id": secret_id, "previous_valid_until": iso(now + grace)},
    )
    return _cached(secret_id, rotated).current


def main(argv: list[str] | None = None) -> int:
    """``python -m asyncstack.runtime.webhooks rotate --secret-id ARN [--grace-hours H]``, with an operator's credentials."""
    parser = argparse.ArgumentParser(prog="python -m asyncstack.runtime.webhooks", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    rotate = commands.add_parser(
        "rotate", help="make a new signing key; the old one signs for the grace period"
    )
    rotate.add_argument("--secret-id", required=True, help="the stack output WebhookSecretArn")
    rotate.add_argument("--grace-hours", type=float, default=DEFAULT_GRACE.total_seconds() / 3600)
    args = parser.parse_args(argv)
    try:
        rotate_secret(args.secret_id, grace=timedelta(hours=args.grace_hours))
    except (InvalidWebhookSecretError, ClientError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    # The new key itself is not printed (it would land in terminal logs): receivers read it from the secret.
    print(f"rotated {args.secret_id}; the previous key signs for {args.grace_hours:g} more hours")
    return 0
