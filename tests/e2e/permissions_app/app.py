"""PermissionsStack: a function granted writes to one table and nothing else, deployed with the CDK CLI
by ``tests/e2e/test_permissions.py``; runnable as a script from the repo root."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

PROBE = Path(__file__).resolve().parent / "probe"


class PermissionsStack(Stack):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)

        def table(name: str) -> dynamodb.Table:
            return dynamodb.Table(
                self, name, partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, removal_policy=RemovalPolicy.DESTROY,
            )  # fmt: skip

        granted, other, queue = table("Granted"), table("Other"), sqs.Queue(self, "Ungranted")
        probe = lambda_.Function(
            self, "Probe", runtime=lambda_.Runtime.PYTHON_3_11, handler="probe.handler",
            code=lambda_.Code.from_asset(str(PROBE), exclude=["__pycache__"]), timeout=Duration.seconds(10),
        )  # fmt: skip
        granted.grant_write_data(probe)
        for name, value in {
            "ProbeName": probe.function_name, "ProbeRoleArn": probe.role.role_arn if probe.role else "",
            "GrantedTable": granted.table_name, "OtherTable": other.table_name, "QueueUrl": queue.queue_url,
        }.items():  # fmt: skip
            CfnOutput(self, name, value=value)


app = App()
PermissionsStack(app, "PermissionsStack")
app.synth()
