"""The job API: an API Gateway REST API in front of one Lambda function (Lambda proxy integration).

Never open to anonymous writes: every method needs an API key (with a usage plan that throttles
it) or, with ``auth=ApiAuth.IAM``, a SigV4-signed request from a principal allowed to invoke it.
Access logs go to a log group of the API's own; throttling is set on the stage.
"""

from __future__ import annotations

from enum import Enum

from aws_cdk import Acknowledgment, RemovalPolicy, Validations
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from asyncstack.cdk.nag import explain_synchronous_invoker, skip_checkov
from asyncstack.cdk.python_function import LOGS_ENCRYPTED_BY_SERVICE

STAGE = "v1"


class ApiAuth(Enum):
    API_KEY = "api_key"
    IAM = "iam"


class JobApi(Construct):
    """``handler`` behind a REST API (every path and method) with the chosen authorisation."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: lambda_.IFunction,
        auth: ApiAuth = ApiAuth.API_KEY,
        rate_limit: int = 50,
        burst_limit: int = 100,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        skip_checkov(
            self.access_logs,
            "CKV_AWS_158",
            f"{LOGS_ENCRYPTED_BY_SERVICE} The access log holds request metadata (caller, source IP, method, "
            "path, status, latency), never request bodies, API keys or signatures.",
        )
        iam_auth = auth is ApiAuth.IAM
        self.api_key: apigateway.IApiKey | None = None
        self.api = apigateway.LambdaRestApi(
            self,
            "Api",
            handler=handler,
            proxy=True,
            # No Lambda permission for the console's test-invoke stage: only the deployed stage may invoke.
            integration_options=apigateway.LambdaIntegrationOptions(allow_test_invoke=False),
            description="asyncstack job API: POST /orders, POST /exports, GET /exports/{id}",
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            deploy_options=apigateway.StageOptions(
                stage_name=STAGE,
                access_log_destination=apigateway.LogGroupLogDestination(self.access_logs),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                throttling_rate_limit=rate_limit,
                throttling_burst_limit=burst_limit,
                tracing_enabled=True,
            ),
            default_method_options=apigateway.MethodOptions(
                api_key_required=not iam_auth,
                authorization_type=apigateway.AuthorizationType.IAM if iam_auth else None,
            ),
        )
        skip_checkov(
            self.api.deployment_stage,
            "CKV_AWS_120",
            "No response cache: a job's status changes from one second to the next, so cached GETs would "
            "serve stale state, POSTs are never cached, and a cache cluster is billed by the hour.",
        )
        explain_synchronous_invoker(
            handler,
            invoker=f"API Gateway's Lambda proxy integration of {self.api.node.path} (the caller gets the "
            "error response)",
            concurrency=f"the stage's throttling (rate {rate_limit} requests/s, burst {burst_limit}) caps "
            "the requests in flight",
        )
        cloud_watch_role = self.api.node.find_child("CloudWatchRole")
        Validations.of(cloud_watch_role).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                reason="The account-level role API Gateway assumes to write execution logs: AWS's managed policy "
                "is the documented one and allows only CloudWatch Logs writes.",
            )
        )
        if not iam_auth:
            plan = self.api.add_usage_plan(
                "UsagePlan",
                throttle=apigateway.ThrottleSettings(rate_limit=rate_limit, burst_limit=burst_limit),
                api_stages=[apigateway.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
            )
            self.api_key = self.api.add_api_key("ClientKey")
            plan.add_api_key(self.api_key)
        acknowledgments = {
            "AwsSolutions::AwsSolutions-APIG2": "Request bodies are validated by the function with pydantic, "
            "which answers RFC 9457 problem documents that a gateway model could not produce.",
            "AwsSolutions::AwsSolutions-APIG3": "A WAF web ACL is an account-level choice with its own cost; "
            "the stage is throttled and every method needs an API key or IAM signature.",
            "AwsSolutions::AwsSolutions-COG4": "Callers are services, authorised by API key with a usage plan "
            "or by IAM (SigV4); there is no end-user pool.",
        }
        if not iam_auth:
            acknowledgments["AwsSolutions::AwsSolutions-APIG4"] = (
                "Every method needs an API key bound to a throttled usage plan. A key identifies a calling "
                "service rather than proving it: deploy with -c asyncstack:apiAuth=iam for SigV4 instead."
            )
        for rule, reason in acknowledgments.items():
            Validations.of(self.api).acknowledge(Acknowledgment(id=rule, reason=reason))

    @property
    def url(self) -> str:
        return self.api.url
