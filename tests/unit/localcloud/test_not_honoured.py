"""What the local cloud does not honour is listed, down to the property: nothing is silently skipped."""

from __future__ import annotations

import pytest

from localcloud.__main__ import not_honoured
from localcloud.cloudformation.resource_types import not_honoured_properties

pytestmark = pytest.mark.unit


def test_a_property_that_changes_what_runs_is_listed_with_what_will_not_happen() -> None:
    assert not_honoured_properties(
        "AWS::Lambda::Function", {"PackageType": "Image", "Runtime": "python3.13"}
    ) == [("PackageType", "container image functions are not run (only zip packages)")]
    assert not_honoured_properties("AWS::Lambda::EventSourceMapping", {"TumblingWindowInSeconds": 60}) == [
        ("TumblingWindowInSeconds", "tumbling windows are not supported")
    ]
    assert not_honoured_properties(
        "AWS::DynamoDB::Table", {"TimeToLiveSpecification": {"AttributeName": "expires", "Enabled": True}}
    ) == [("TimeToLiveSpecification", "items do not expire (no TTL)")]


def test_a_value_the_local_cloud_honours_is_not_listed() -> None:
    assert not_honoured_properties("AWS::Lambda::Function", {"PackageType": "Zip", "VpcConfig": {}}) == []
    assert not_honoured_properties("AWS::Lambda::EventSourceMapping", {"ParallelizationFactor": 4}) == []
    assert not_honoured_properties("AWS::ApiGatewayV2::Route", {"AuthorizationType": "NONE"}) == []
    assert not_honoured_properties("AWS::SQS::Queue", {"VisibilityTimeout": 30}) == []


def test_a_value_that_cannot_be_read_is_listed_as_possibly_not_honoured() -> None:
    assert not_honoured_properties("AWS::DynamoDB::Table", {"TimeToLiveSpecification": {"Ref": "P"}}) == [
        ("TimeToLiveSpecification", "items do not expire (no TTL) (if set)")
    ]


def test_the_cli_names_the_property_in_its_line() -> None:
    line = not_honoured(
        {"stack": "App", "resource": "Mapping", "type": "AWS::Lambda::EventSourceMapping",
         "property": "TumblingWindowInSeconds", "why": "tumbling windows are not supported"}
    )  # fmt: skip
    assert line == (
        "not honoured locally: App/Mapping (AWS::Lambda::EventSourceMapping) TumblingWindowInSeconds: "
        "tumbling windows are not supported"
    )


def test_a_tls_only_deny_statement_is_listed_as_never_matching() -> None:
    """The endpoint is plain HTTP and aws:SecureTransport is taken as true: no deny statement is skipped unlisted."""
    tls_only = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sqs:*", "Resource": "*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage", "Resource": "*"},
        ],
    }  # fmt: skip
    (listed,) = not_honoured_properties("AWS::SQS::QueuePolicy", {"PolicyDocument": tls_only})
    assert listed[0] == "PolicyDocument" and "TLS-only deny statements never match" in listed[1]
    allow_only = {"Statement": tls_only["Statement"][1:]}
    assert not_honoured_properties("AWS::S3::BucketPolicy", {"PolicyDocument": allow_only}) == []
