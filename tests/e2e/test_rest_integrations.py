"""REST API integrations that are not Lambda proxies, on the local API: an AWS service integration
(API Gateway to SQS), a MOCK and a Lambda function without proxy, each with its mapping templates.

The stack is ``tests/e2e/rest_integrations_app/app.py``, deployed with the CDK CLI, called at
LocalStack's path ``/restapis/{api_id}/prod/_user_request_/{path}``.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.e2e

APP = Path(__file__).resolve().parent / "rest_integrations_app" / "app.py"


@pytest.fixture(scope="module")
def outputs(cloud: LocalCloud) -> dict[str, str]:
    return cloud.deploy(["RestIntegrationsStack"], app=f"{sys.executable} {APP}").outputs


@pytest.fixture(scope="module")
def api(cloud: LocalCloud, outputs: dict[str, str]) -> str:
    return f"{cloud.api.url}/restapis/{outputs['RestApiId']}/prod/_user_request_"


def call(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_an_sqs_service_integration_sends_the_body_and_answers_the_message_id(
    cloud: LocalCloud, api: str, outputs: dict[str, str]
) -> None:
    # When a JSON body with characters a form must encode is posted
    order = {"order": "o-1", "note": "a&b=c + d"}
    status, answer = call(f"{api}/messages", "POST", order)
    # Then the queue holds it as sent, and the answer carries SQS's message id through the template
    assert status == 200
    messages = cloud.client("sqs").receive_message(
        QueueUrl=outputs["MessagesQueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=5
    )["Messages"]
    assert [json.loads(m["Body"]) for m in messages] == [order]
    assert answer == {"id": messages[0]["MessageId"]}


def test_an_aws_service_integration_calls_as_its_credentials_role(
    cloud: LocalCloud, api: str, outputs: dict[str, str]
) -> None:
    """API Gateway calls an AWS service as the integration's credentials role: SQS refuses a role that was
    granted nothing, and the queue stays empty (what the client then sees is the integration response's)."""
    sqs = cloud.client("sqs")
    sqs.purge_queue(QueueUrl=outputs["MessagesQueueUrl"])
    saved, cloud.permissions.mode = cloud.permissions.mode, "enforce"
    try:
        before = cloud.status()["iam"]["denied_by_action"].get("sqs:SendMessage", 0)
        call(f"{api}/refused", "POST", {"order": "o-2"})
        iam = cloud.status()["iam"]
    finally:
        cloud.permissions.mode = saved
    assert iam["denied_by_action"]["sqs:SendMessage"] == before + 1
    denial = [d for d in iam["recent_denials"] if d["action"] == "sqs:SendMessage"][-1]
    assert denial["role"] == outputs["UngrantedRoleArn"]
    assert "Messages" not in sqs.receive_message(QueueUrl=outputs["MessagesQueueUrl"], WaitTimeSeconds=1)


def test_a_mock_integration_answers_from_its_templates(api: str) -> None:
    assert call(f"{api}/health") == (200, {"status": "ok", "stage": "prod"})


def test_a_lambda_integration_without_proxy_maps_the_event_and_its_errors(api: str) -> None:
    assert call(f"{api}/greet", "POST", {"name": "Ada"}) == (200, {"greeting": "hello Ada"})
    assert call(f"{api}/greet", "POST", {"name": "4da"}) == (400, {"error": "Invalid name: 4da"})
