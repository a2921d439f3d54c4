"""RestIntegrationsStack: a REST API whose methods are not Lambda proxies, deployed with the CDK CLI by
``tests/e2e/test_rest_integrations.py``; runnable as a script from the repo root.

- POST /messages: an AWS service integration that sends the body to an SQS queue (SendMessage, with
  a form request template, as API Gateway-to-SQS apps do) and answers the message id.
- GET /health: a MOCK integration.
- POST /greet: a Lambda function without proxy; its "Invalid ..." errors become 400.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

GREETER = Path(__file__).resolve().parent / "greeter"
JSON = "application/json"


class RestIntegrationsStack(Stack):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        api = apigateway.RestApi(self, "Api", deploy_options=apigateway.StageOptions(stage_name="prod"))

        queue = sqs.Queue(self, "Messages")
        role = iam.Role(self, "ApiRole", assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"))
        queue.grant_send_messages(role)
        send = apigateway.AwsIntegration(
            service="sqs", path=f"{Aws.ACCOUNT_ID}/{queue.queue_name}", integration_http_method="POST",
            options=apigateway.IntegrationOptions(
                credentials_role=role, passthrough_behavior=apigateway.PassthroughBehavior.NEVER,
                request_parameters={"integration.request.header.Content-Type": "'application/x-www-form-urlencoded'"},
                request_templates={JSON: "Action=SendMessage&MessageBody=$util.urlEncode($input.body)"},
                integration_responses=[apigateway.IntegrationResponse(status_code="200", response_templates={
                    JSON: '{"id": "$input.path(\'$.SendMessageResponse.SendMessageResult.MessageId\')"}'
                })],
            ),
        )  # fmt: skip
        api.root.add_resource("messages").add_method(
            "POST", send, method_responses=[apigateway.MethodResponse(status_code="200")]
        )

        # The same integration with a role nothing was granted to: SQS refuses the role's call.
        ungranted = iam.Role(
            self, "UngrantedRole", assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com")
        )
        refused = apigateway.AwsIntegration(
            service="sqs", path=f"{Aws.ACCOUNT_ID}/{queue.queue_name}", integration_http_method="POST",
            options=apigateway.IntegrationOptions(
                credentials_role=ungranted,
                request_parameters={"integration.request.header.Content-Type": "'application/x-www-form-urlencoded'"},
                request_templates={JSON: "Action=SendMessage&MessageBody=$util.urlEncode($input.body)"},
                integration_responses=[apigateway.IntegrationResponse(status_code="200")],
            ),
        )  # fmt: skip
        api.root.add_resource("refused").add_method(
            "POST", refused, method_responses=[apigateway.MethodResponse(status_code="200")]
        )

        health = apigateway.MockIntegration(
            request_templates={JSON: '{"statusCode": 200}'},
            integration_responses=[apigateway.IntegrationResponse(
                status_code="200", response_templates={JSON: '{"status": "ok", "stage": "$context.stage"}'}
            )],
        )  # fmt: skip
        api.root.add_resource("health").add_method(
            "GET", health, method_responses=[apigateway.MethodResponse(status_code="200")]
        )

        greeter = lambda_.Function(
            self, "Greeter", runtime=lambda_.Runtime.PYTHON_3_11, handler="greeter.handler",
            code=lambda_.Code.from_asset(str(GREETER), exclude=["__pycache__"]), timeout=Duration.seconds(5),
        )  # fmt: skip
        greet = apigateway.LambdaIntegration(
            greeter, proxy=False,
            request_templates={JSON: '{"name": $input.json(\'$.name\')}'},
            integration_responses=[
                apigateway.IntegrationResponse(status_code="200"),
                apigateway.IntegrationResponse(
                    status_code="400", selection_pattern="Invalid.*",
                    response_templates={JSON: '{"error": "$util.escapeJavaScript($input.path(\'$.errorMessage\'))"}'},
                ),
            ],
        )  # fmt: skip
        api.root.add_resource("greet").add_method(
            "POST", greet,
            method_responses=[apigateway.MethodResponse(status_code="200"), apigateway.MethodResponse(status_code="400")],
        )  # fmt: skip

        CfnOutput(self, "RestApiId", value=api.rest_api_id)
        CfnOutput(self, "MessagesQueueUrl", value=queue.queue_url)
        CfnOutput(self, "UngrantedRoleArn", value=ungranted.role_arn)


app = App()
RestIntegrationsStack(app, "RestIntegrationsStack")
app.synth()
