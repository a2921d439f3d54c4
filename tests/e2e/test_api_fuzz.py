"""The job API fuzzed from its own OpenAPI document (functions/api/openapi.json) with schemathesis,
against the local API that serves the deployed REST API (the `cloud` fixture).

* Every operation: examples, the coverage phase (boundary and invalid values, methods the document
  does not declare) and random requests (MAX_EXAMPLES), each answer checked against the document.
* The links of the document: the state machine starts exports and follows their 202 to
  GET /exports/{job_id}.
* Methods API Gateway does not route (TRACE, CONNECT, made-up ones): 403 Missing Authentication Token.

A failure names the check and the request (as a curl command) that found it.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import checks as builtin_checks
from schemathesis.specs.openapi import checks as openapi_checks

from localcloud.cloud import LocalCloud
from shared.api import OPENAPI_PATH
from shared.exports import ExportJobs

pytestmark = [
    pytest.mark.e2e,
    # schemathesis' own strategies draw from `random`; not this test's to fix
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

STAGE = "v1"
# Generated requests per operation in the fuzzing phase (the coverage phase makes its own, about 70
# an operation); small enough for the file to run in about two minutes. API_FUZZ_EXAMPLES for more.
MAX_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "300"))
STATEFUL_STEPS = 8
STATEFUL_EXAMPLES = 25
ENDED = {"SUCCEEDED", "FAILED"}

# What every answer is checked for.
CHECKS = [
    builtin_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.positive_data_acceptance,
    openapi_checks.negative_data_rejection,
    openapi_checks.unsupported_method,
]


# The document as committed; where the API is (a free port) only the `cloud` fixture knows.
schema = schemathesis.openapi.from_path(
    OPENAPI_PATH,
    config=schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
            "request-timeout": 30,
        }
    ),
)


@pytest.fixture(scope="module")
def target(cloud: LocalCloud) -> dict[str, Any]:
    """Where and how to call the local API: its stage URL and the local API key."""
    assert cloud.api is not None, "the local API is off"
    return {"base_url": f"{cloud.api.url}/{STAGE}", "headers": {"x-api-key": cloud.api_key}}


@pytest.fixture(scope="module")
def started(cloud: LocalCloud) -> Iterator[set[str]]:
    """The exports the fuzzing starts, deleted once they end. Their callback URLs name made-up hosts:
    left, the retries of those webhooks that wait on the local clock would all come due in the next
    test that moves it (test_job_api's), and hold up its own deliveries."""
    job_ids: set[str] = set()
    yield job_ids
    table = cloud.stack_outputs()["ExportJobsTableName"]
    jobs, client = ExportJobs(table, client=cloud.client("dynamodb")), cloud.client("dynamodb")
    running, deadline = set(job_ids), time.monotonic() + 120
    while running and time.monotonic() < deadline:
        running = {job_id for job_id in running if (jobs.get(job_id) or {}).get("status") not in ENDED}
        time.sleep(0.5)
    for job_id in job_ids:  # a delivery of a job that is gone is skipped
        client.delete_item(TableName=table, Key={"job_id": {"S": job_id}})


def _remember(started: set[str], case: schemathesis.Case, response: Any) -> None:
    if (case.method, case.operation.path, response.status_code) == ("POST", "/exports", 202):
        started.add(response.json()["job_id"])


@schema.parametrize()
def test_every_operation_answers_as_its_document_says(
    case: schemathesis.Case, target: dict[str, Any], started: set[str]
) -> None:
    response = case.call(**target)
    _remember(started, case, response)
    case.validate_response(response, checks=CHECKS, headers=target["headers"])


def test_started_jobs_can_be_followed_by_their_links(target: dict[str, Any], started: set[str]) -> None:
    """Stateful: POST /exports, then GET /exports/{job_id} through the 202's link, every answer checked."""
    links = schema.raw_schema["paths"]["/exports"]["post"]["responses"]["202"].get("links", {})
    assert [link["operationId"] for link in links.values()] == ["getExport"]

    class Checked(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return target

        def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
            _remember(started, case, response)
            case.validate_response(response, checks=CHECKS, headers=target["headers"])

    Checked.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.generate],
        )
    )


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "BREW", "QUERY"])
@pytest.mark.parametrize("path", ["/orders", "/exports", "/exports/exp-1", "/openapi.json", "/nowhere", "/"])
def test_a_method_api_gateway_does_not_route_is_403_missing_token(
    cloud: LocalCloud, method: str, path: str
) -> None:
    assert cloud.api is not None
    connection = http.client.HTTPConnection(cloud.api.host, cloud.api.port, timeout=30)
    try:
        connection.request(method, f"/{STAGE}{path}", headers={"x-api-key": cloud.api_key})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 403, body
    assert response.getheader("Content-Type") == "application/json"
    assert response.getheader("x-amzn-ErrorType") == "MissingAuthenticationTokenException"
    assert json.loads(body) == {"message": "Missing Authentication Token"}
