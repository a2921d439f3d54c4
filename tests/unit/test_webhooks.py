"""Unit tests for Standard Webhooks signing and the signing secret (shared/webhooks.py), verified with the
reference receiver library ``standardwebhooks`` and moto's Secrets Manager."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared import webhooks
from shared.webhooks import (
    InvalidWebhookSecret,
    SigningKeys,
    clear_secret_cache,
    ensure_secret,
    headers_for,
    new_secret,
    rotate_secret,
    sign,
    signing_secrets,
)
from tests.unit.conftest import REGION

pytestmark = pytest.mark.unit

BODY = b'{"type":"export.completed","timestamp":"2030-01-01T12:00:00Z","data":{"job_id":"exp-1"}}'
MSG_ID = "msg_exp-1_SUCCEEDED"


def _secrets_client() -> Any:
    return boto3.client("secretsmanager", region_name=REGION)


class RacingClient:
    """A Secrets Manager client for a writer that another one overtakes: ``overtake`` runs (with the
    real client) just before this writer's own PutSecretValue."""

    def __init__(self, overtake: Callable[[Any], object]) -> None:
        self.client = _secrets_client()
        self.overtake = overtake

    def get_secret_value(self, **kwargs: Any) -> Any:
        return self.client.get_secret_value(**kwargs)

    def put_secret_value(self, **kwargs: Any) -> Any:
        self.overtake(self.client)
        return self.client.put_secret_value(**kwargs)


def verify(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    """What a receiver does: True if the delivery verifies with ``secret``."""
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


@pytest.fixture
def secret_arn(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An empty secret, as the stack creates it, named by WEBHOOK_SECRET_ARN; no cached keys."""
    arn = _secrets_client().create_secret(Name="webhook-signing")["ARN"]
    monkeypatch.setenv("WEBHOOK_SECRET_ARN", arn)
    clear_secret_cache()
    yield arn
    clear_secret_cache()


def stored(arn: str) -> dict[str, Any]:
    return json.loads(_secrets_client().get_secret_value(SecretId=arn)["SecretString"])


# -- signing -----------------------------------------------------------------------------------


def test_a_signed_delivery_verifies_with_the_reference_library() -> None:
    # Given a secret and a delivery signed now
    secret = new_secret()
    headers = headers_for([secret], MSG_ID, int(time.time()), BODY)
    # Then the headers are the three of the spec, and a receiver holding the secret accepts it
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == MSG_ID
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    # And a str body signs the same as its UTF-8 bytes
    assert sign([secret], MSG_ID, 1_700_000_000, BODY.decode()) == sign([secret], MSG_ID, 1_700_000_000, BODY)


def test_the_signature_is_hmac_sha256_of_id_timestamp_and_body() -> None:
    # Given a known key
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    # When a body is signed
    signature = sign([secret], "msg_1", 1_700_000_000, b"{}")
    # Then it is the spec's v1 signature, as the reference library computes it
    expected = Webhook(secret).sign("msg_1", datetime.fromtimestamp(1_700_000_000, UTC), "{}")
    assert signature == expected


def test_a_tampered_body_or_an_old_timestamp_fails_verification() -> None:
    # Given a secret
    secret = new_secret()
    now = int(time.time())
    # When the body is changed after signing
    headers = headers_for([secret], MSG_ID, now, BODY)
    # Then it does not verify
    assert not verify(secret, BODY.replace(b"exp-1", b"exp-2"), headers)
    # And a delivery signed 10 minutes ago (a replay) is refused though its signature is right
    assert not verify(secret, BODY, headers_for([secret], MSG_ID, now - 600, BODY))
    # And one signed with another secret is refused
    assert not verify(new_secret(), BODY, headers)


def test_new_secrets_are_random_whsec_keys_of_32_bytes() -> None:
    secrets = {new_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32


@pytest.mark.parametrize(
    ("secrets", "error"),
    [([], ValueError), ("whsec_abc", TypeError), (["whsec_not base64!"], InvalidWebhookSecret),
     (["whsec_"], InvalidWebhookSecret)],
    ids=["none", "one-string", "not-base64", "empty-key"],
)  # fmt: skip
def test_signing_refuses_missing_or_malformed_secrets(secrets: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        sign(secrets, MSG_ID, 1, BODY)


# -- the stored secret: initialisation ----------------------------------------------------------


def test_ensure_secret_initialises_an_empty_secret_once(secret_arn: str) -> None:
    # Given the stack's secret, which has no value yet
    # When it is ensured twice
    first = ensure_secret(secret_arn)
    second = ensure_secret(secret_arn)
    # Then it holds our JSON with one current key, which both calls return
    assert first == second
    assert stored(secret_arn) == {"current": first, "previous": None, "previous_valid_until": None}
    assert signing_secrets(secret_id=secret_arn, refresh=True) == [first]


def test_ensure_secret_replaces_a_value_that_is_not_ours(secret_arn: str) -> None:
    # Given a secret holding what Secrets Manager generated (a random password, not our JSON)
    _secrets_client().put_secret_value(SecretId=secret_arn, SecretString="x9!generated-password")
    # When the worker first signs (signing_secrets initialises it)
    secrets = signing_secrets()
    # Then the secret now holds a fresh key, the one used
    assert stored(secret_arn)["current"] == secrets[0]
    assert secrets[0].startswith("whsec_")


def test_two_workers_initialising_at_once_agree_on_one_key(secret_arn: str) -> None:
    # Given a worker whose write comes just after another worker initialised the secret
    racing = RacingClient(lambda client: ensure_secret(secret_arn, client=client))
    # When the racing worker initialises
    mine = ensure_secret(secret_arn, client=racing)
    # Then it uses the winner's key: the secret was written once
    assert mine == stored(secret_arn)["current"]
    versions = _secrets_client().list_secret_version_ids(SecretId=secret_arn)["Versions"]
    assert len(versions) == 1


# -- rotation -----------------------------------------------------------------------------------


def test_rotation_signs_with_both_keys_during_the_grace_period(secret_arn: str) -> None:
    # Given a receiver that has the original key
    old = ensure_secret(secret_arn)
    # When the secret is rotated with a 24 h grace period
    new = rotate_secret(secret_arn, grace=timedelta(hours=24))
    # Then the stored value keeps the old key as previous, valid for 24 h
    value = stored(secret_arn)
    assert (value["current"], value["previous"]) == (new, old)
    until = datetime.fromisoformat(value["previous_valid_until"])
    assert timedelta(hours=23, minutes=59) < until - datetime.now(UTC) <= timedelta(hours=24)
    # And a delivery now carries two signatures: receivers with either key alone accept it
    headers = headers_for(signing_secrets(refresh=True), MSG_ID, int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verify(old, BODY, headers)
    assert verify(new, BODY, headers)


def test_after_the_grace_period_only_the_new_key_signs(secret_arn: str) -> None:
    # Given a rotation whose grace period has passed
    old = ensure_secret(secret_arn)
    new = rotate_secret(secret_arn, grace=timedelta(hours=24))
    later = datetime.now(UTC) + timedelta(hours=24, seconds=1)
    # When a delivery is signed then
    secrets = signing_secrets(later, refresh=True)
    headers = headers_for(secrets, MSG_ID, int(time.time()), BODY)
    # Then only the new key signs: a receiver still on the old one refuses it
    assert secrets == [new]
    assert verify(new, BODY, headers)
    assert not verify(old, BODY, headers)


def test_rotating_an_empty_secret_initialises_it(secret_arn: str) -> None:
    new = rotate_secret(secret_arn)
    assert stored(secret_arn) == {"current": new, "previous": None, "previous_valid_until": None}


def test_two_rotations_from_the_same_version_make_one_new_key(secret_arn: str) -> None:
    # Given an initialised secret, and an operator whose rotation is overtaken by another one
    ensure_secret(secret_arn)
    other: dict[str, str] = {}

    def overtake(client: Any) -> None:
        if not other:
            other["new"] = rotate_secret(secret_arn, client=client)

    # When the overtaken rotation writes
    mine = rotate_secret(secret_arn, client=RacingClient(overtake))
    # Then it reports the winner's key instead of rotating a second time (which would drop the old key)
    assert mine == other["new"] == stored(secret_arn)["current"]


def test_the_keys_are_cached_per_environment_until_refreshed(
    secret_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given keys read once
    first = signing_secrets()
    # When another process rotates the secret
    _secrets_client().put_secret_value(
        SecretId=secret_arn, SecretString=SigningKeys(current=new_secret()).to_json()
    )
    # Then this environment keeps signing with its cached keys (no Secrets Manager call per delivery)
    assert signing_secrets() == first
    # And sees the new key when it refreshes, or once the cache has expired
    refreshed = signing_secrets(refresh=True)
    assert refreshed != first
    _secrets_client().put_secret_value(
        SecretId=secret_arn, SecretString=SigningKeys(current=new_secret()).to_json()
    )
    monkeypatch.setattr(webhooks, "CACHE_TTL", timedelta(0))
    assert signing_secrets() not in (first, refreshed)


def test_a_rotation_here_is_used_at_once_without_waiting_for_the_cache(secret_arn: str) -> None:
    ensure_secret(secret_arn)
    signing_secrets()
    new = rotate_secret(secret_arn)
    assert signing_secrets()[0] == new


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '{"current": 5}', '{"current": "whsec_%%%"}',
     '{"current": "whsec_AAAA", "previous_valid_until": "2030-01-01T00:00:00"}'],
    ids=["empty", "text", "list", "number", "bad-key", "naive-until"],
)  # fmt: skip
def test_values_that_are_not_our_json_are_not_keys(text: str) -> None:
    assert SigningKeys.parse(text) is None


def test_the_secret_arn_must_be_configured(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET_ARN", raising=False)
    clear_secret_cache()
    with pytest.raises(RuntimeError, match="WEBHOOK_SECRET_ARN"):
        signing_secrets()
