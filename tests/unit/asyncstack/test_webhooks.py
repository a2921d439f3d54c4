"""Unit tests for Standard Webhooks signing and the signing secret (asyncstack/runtime/webhooks/signing.py and secret.py), verified with the
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

from asyncstack.runtime.webhooks import (
    InvalidWebhookSecretError,
    SigningKeys,
    clear_secret_cache,
    headers_for,
    new_secret,
    rotate_secret,
    sign,
    signing_secrets,
)
from asyncstack.runtime.webhooks import secret as stored_secret
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


# What CloudFormation generates for the stack's secret (asyncstack/cdk/webhooks.py): 44 letters and digits.
DEPLOYED_KEY = "Zm9yIHRoZSB0ZXN0czogYSBrZXkgb2YgMzMgYnl0ZXMh"


@pytest.fixture
def secret_arn(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The secret as the stack deploys it, named by WEBHOOK_SECRET_ARN; no cached keys."""
    value = json.dumps({"previous": None, "previous_valid_until": None, "current": DEPLOYED_KEY})
    arn = _secrets_client().create_secret(Name="webhook-signing", SecretString=value)["ARN"]
    monkeypatch.setenv("WEBHOOK_SECRET_ARN", arn)
    clear_secret_cache()
    yield arn
    clear_secret_cache()


def versions(arn: str) -> int:
    return len(_secrets_client().list_secret_version_ids(SecretId=arn)["Versions"])


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
    [([], ValueError), ("whsec_abc", TypeError), (["whsec_not base64!"], InvalidWebhookSecretError),
     (["whsec_"], InvalidWebhookSecretError)],
    ids=["none", "one-string", "not-base64", "empty-key"],
)  # fmt: skip
def test_signing_refuses_missing_or_malformed_secrets(secrets: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        sign(secrets, MSG_ID, 1, BODY)


# -- the stored secret ---------------------------------------------------------------------------


def test_the_deploy_time_key_signs_and_receivers_verify_with_it_with_or_without_the_prefix(
    secret_arn: str,
) -> None:
    # Given the value the stack generated at deploy time
    assert len(DEPLOYED_KEY) == 44 and DEPLOYED_KEY.isalnum()
    # When the worker signs a delivery with it
    [secret] = signing_secrets()
    headers = headers_for([secret], MSG_ID, int(time.time()), BODY)
    # Then it signs in the whsec_ form, and a receiver given either form of the stored key accepts it
    assert secret == "whsec_" + DEPLOYED_KEY
    assert verify(DEPLOYED_KEY, BODY, headers)
    assert verify("whsec_" + DEPLOYED_KEY, BODY, headers)
    assert versions(secret_arn) == 1  # read, never written


@pytest.mark.parametrize(
    ("text", "reason"),
    [(" ", "not JSON"), ("x9!generated-password", "not JSON"), ("[]", "not a JSON object"),
     ('{"current": 5}', '"current" is missing'), ('{"current": "whsec_%%%"}', "must be base64"),
     ('{"current": "whsec_AAAA", "previous": "whsec_AAAA", "previous_valid_until": "2030-01-01T00:00:00"}',
      "no time zone"),
     ('{"current": "whsec_AAAA", "previous": "whsec_AAAA", "previous_valid_until": "soon"}', "not an ISO 8601")],
    ids=["blank", "text", "list", "number", "bad-key", "naive-until", "bad-until"],
)  # fmt: skip
def test_an_unreadable_value_is_refused_loudly_and_never_replaced(
    secret_arn: str, text: str, reason: str
) -> None:
    """The defect this guards: a value the worker could not parse (a previous_valid_until without a time
    zone, say) was silently replaced by a fresh key, so every receiver then rejected every delivery."""
    # Given a stored value that is not valid signing keys (an operator's mistake)
    _secrets_client().put_secret_value(SecretId=secret_arn, SecretString=text)
    # When the worker reads it to sign
    with pytest.raises(InvalidWebhookSecretError) as refused:
        signing_secrets()
    # Then the error names the secret and what is wrong, and the value is left as it was
    assert secret_arn in str(refused.value) and reason in str(refused.value)
    assert _secrets_client().get_secret_value(SecretId=secret_arn)["SecretString"] == text
    assert versions(secret_arn) == 2


def test_a_secret_without_a_value_is_refused(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    arn = _secrets_client().create_secret(Name="webhook-empty")["ARN"]
    monkeypatch.setenv("WEBHOOK_SECRET_ARN", arn)
    clear_secret_cache()
    with pytest.raises(InvalidWebhookSecretError, match="has no value"):
        signing_secrets()
    assert versions(arn) == 0


# -- rotation -----------------------------------------------------------------------------------


def test_rotation_signs_with_both_keys_during_the_grace_period(secret_arn: str) -> None:
    # Given a receiver that has the original key
    [old] = signing_secrets()
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
    [old] = signing_secrets()
    new = rotate_secret(secret_arn, grace=timedelta(hours=24))
    later = datetime.now(UTC) + timedelta(hours=24, seconds=1)
    # When a delivery is signed then
    secrets = signing_secrets(later, refresh=True)
    headers = headers_for(secrets, MSG_ID, int(time.time()), BODY)
    # Then only the new key signs: a receiver still on the old one refuses it
    assert secrets == [new]
    assert verify(new, BODY, headers)
    assert not verify(old, BODY, headers)


def test_rotating_an_unreadable_value_is_refused(secret_arn: str) -> None:
    _secrets_client().put_secret_value(SecretId=secret_arn, SecretString="not json")
    with pytest.raises(InvalidWebhookSecretError, match="cannot be read"):
        rotate_secret(secret_arn)
    assert versions(secret_arn) == 2


def test_the_rotate_command_rotates_without_printing_the_key(
    secret_arn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stored_secret.main(["rotate", "--secret-id", secret_arn, "--grace-hours", "2"]) == 0
    value = stored(secret_arn)
    assert value["previous"] == "whsec_" + DEPLOYED_KEY
    printed = capsys.readouterr().out
    assert "2 more hours" in printed and value["current"] not in printed
    _secrets_client().put_secret_value(SecretId=secret_arn, SecretString="[]")
    assert stored_secret.main(["rotate", "--secret-id", secret_arn]) == 1
    assert "not a JSON object" in capsys.readouterr().err


def test_two_rotations_from_the_same_version_make_one_new_key(secret_arn: str) -> None:
    # Given the deployed secret, and an operator whose rotation is overtaken by another one
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
    monkeypatch.setattr(stored_secret, "CACHE_TTL", timedelta(0))
    assert signing_secrets() not in (first, refreshed)


def test_a_rotation_here_is_used_at_once_without_waiting_for_the_cache(secret_arn: str) -> None:
    signing_secrets()
    new = rotate_secret(secret_arn)
    assert signing_secrets()[0] == new


def test_the_secret_arn_must_be_configured(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET_ARN", raising=False)
    clear_secret_cache()
    with pytest.raises(RuntimeError, match="WEBHOOK_SECRET_ARN"):
        signing_secrets()
