"""HttpApiStack: an HTTP API (API Gateway v2) with Lambda proxy routes and a function URL, deployed with the CDK CLI by
``tests/e2e/test_http_api.py``; runnable as a script from the repo root."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, CfnOutput, Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_lambda as lambda_
from aws_cdk.aws_apigatewayv2_integrations import HttpLambdaIntegration
from constructs import Construct

HANDLER = Path(__file__).resolve().parent / "handler"


class HttpApiStack(Stack):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        echo = lambda_.Function(
            self, "Echo", runtime=lambda_.Runtime.PYTHON_3_11, handler="echo.handler",
            code=lambda_.Code.from_asset(str(HANDLER), exclude=["__pycache__"]), timeout=Duration.seconds(5),
        )  # fmt: skip
        v2 = HttpLambdaIntegration("EchoV2", echo)
        v1 = HttpLambdaIntegration(
            "EchoV1", echo, payload_format_version=apigwv2.PayloadFormatVersion.VERSION_1_0
        )
        api = apigwv2.HttpApi(self, "Api", default_integration=v2)
        api.add_routes(path="/items/{id}", methods=[apigwv2.HttpMethod.GET], integration=v2)
        api.add_routes(path="/items/special", methods=[apigwv2.HttpMethod.GET], integration=v2)
        api.add_routes(path="/files/{path+}", methods=[apigwv2.HttpMethod.ANY], integration=v2)
        api.add_routes(path="/legacy/{id}", methods=[apigwv2.HttpMethod.POST], integration=v1)
        CfnOutput(self, "HttpApiId", value=api.api_id)
        url = echo.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
        CfnOutput(self, "EchoUrl", value=url.url)


app = App()
HttpApiStack(app, "HttpApiStack")
app.synth()
