"""WorkflowsConformanceStack: one probe function wired to Step Functions, EventBridge, Scheduler, API Gateway and SNS.

Deployed to the local cloud by ``tests/e2e/test_conformance_workflows.py`` with the CDK CLI
(``cdk deploy --app "python tests/e2e/workflows_app/app.py"``); runnable as a script from the repo root.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

PROBE = Path(__file__).resolve().parent / "probe"
EVENT_SOURCE = "conformance.workflows"
TRANSFORMED_SOURCE = "conformance.workflows.transformed"
STAGE = "conf"


class WorkflowsConformanceStack(Stack):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)

        table = dynamodb.Table(
            self,
            "ProbeTable",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            removal_policy=RemovalPolicy.DESTROY,
        )
        probe = lambda_.Function(
            self,
            "Probe",
            runtime=lambda_.Runtime.PYTHON_3_11,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(PROBE)),
            timeout=Duration.seconds(10),
            memory_size=128,
            environment={"TABLE_NAME": table.table_name},
        )
        table.grant_read_write_data(probe)

        # 1. Step Functions: Retry on TransientError, Catch BusinessError -> compensation -> Fail.
        work = tasks.LambdaInvoke(
            self,
            "Work",
            lambda_function=probe,
            payload=sfn.TaskInput.from_json_path_at("$"),
            output_path="$.Payload",
            retry_on_service_exceptions=False,
        )
        work.add_retry(
            errors=["TransientError"], interval=Duration.seconds(1), backoff_rate=1, max_attempts=3
        )
        compensate = tasks.LambdaInvoke(
            self,
            "Compensate",
            lambda_function=probe,
            payload=sfn.TaskInput.from_object(
                {
                    "action": "compensate",
                    "id": sfn.JsonPath.string_at("$.id"),
                    "error": sfn.JsonPath.string_at("$.failure.Error"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
            retry_on_service_exceptions=False,
        )
        rejected = sfn.Fail(
            self, "Rejected", error="OrderRejected", cause="a business rule rejected the order; compensated"
        )
        work.add_catch(compensate.next(rejected), errors=["BusinessError"], result_path="$.failure")
        machine = sfn.StateMachine(
            self,
            "Workflow",
            definition_body=sfn.DefinitionBody.from_chainable(work.next(sfn.Succeed(self, "Done"))),
            timeout=Duration.minutes(2),
        )

        # 1b. Nested executions: the workflow above started by a parent that waits for it (RUN_JOB:
        # startExecution.sync:2, associated with the parent) and by one that does not (REQUEST_RESPONSE).
        def start_child(construct_id: str, pattern: sfn.IntegrationPattern) -> sfn.StateMachine:
            start = tasks.StepFunctionsStartExecution(
                self,
                f"Start{construct_id}",
                state_machine=machine,
                integration_pattern=pattern,
                input=sfn.TaskInput.from_object(
                    {
                        "action": sfn.JsonPath.string_at("$.action"),
                        "id": sfn.JsonPath.string_at("$.id"),
                        "failures": sfn.JsonPath.number_at("$.failures"),
                    }
                ),
                associate_with_parent=True,
            )
            return sfn.StateMachine(
                self,
                construct_id,
                definition_body=sfn.DefinitionBody.from_chainable(start),
                timeout=Duration.minutes(2),
            )

        parent = start_child("ParentWorkflow", sfn.IntegrationPattern.RUN_JOB)
        starter = start_child("StarterWorkflow", sfn.IntegrationPattern.REQUEST_RESPONSE)

        # 2. EventBridge: rules on the default bus with SQS targets, one passing the event as is and one
        # with an input transformer (each on its own source, so a failing transformer affects no other test).
        events_queue = sqs.Queue(self, "EventsTargetQueue")
        events.Rule(
            self,
            "ConformanceRule",
            event_pattern=events.EventPattern(source=[EVENT_SOURCE]),
            targets=[targets.SqsQueue(events_queue)],
        )
        transformed_queue = sqs.Queue(self, "TransformedEventsQueue")
        events.Rule(
            self,
            "TransformingRule",
            event_pattern=events.EventPattern(source=[TRANSFORMED_SOURCE]),
            targets=[
                targets.SqsQueue(
                    transformed_queue,
                    message=events.RuleTargetInput.from_object(
                        {
                            "orderId": events.EventField.from_path("$.detail.orderId"),
                            "kind": events.EventField.detail_type,
                            "source": events.EventField.source,
                        }
                    ),
                )
            ],
        )

        # 3-5. EventBridge Scheduler: a group, a role, a target queue and a dead-letter queue.
        group = scheduler.CfnScheduleGroup(self, "ScheduleGroup")
        schedule_queue = sqs.Queue(self, "ScheduleTargetQueue")
        schedule_dlq = sqs.Queue(self, "ScheduleDeadLetterQueue")
        role = iam.Role(self, "SchedulerRole", assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"))
        schedule_queue.grant_send_messages(role)
        schedule_dlq.grant_send_messages(role)
        probe.grant_invoke(role)
        machine.grant_start_execution(role)

        # 6. API Gateway REST API: a {proxy+} resource and an API-key-protected method. CDK declares the
        # Deployment before the methods and orders them with DependsOn, which the deploy must honour.
        api = apigateway.RestApi(
            self, "Api", rest_api_name="workflows-conformance", cloud_watch_role=False,
            deploy_options=apigateway.StageOptions(stage_name=STAGE),
        )  # fmt: skip
        integration = apigateway.LambdaIntegration(probe)
        proxy = api.root.add_resource("items").add_proxy(default_integration=integration, any_method=False)
        proxy.add_method("ANY", integration)
        api.root.add_resource("secure").add_method("GET", integration, api_key_required=True)

        # 7. SNS -> Lambda subscription.
        topic = sns.Topic(self, "Topic")
        topic.add_subscription(subscriptions.LambdaSubscription(probe))

        outputs = {
            "ProbeTableName": table.table_name,
            "ProbeFunctionName": probe.function_name,
            "ProbeFunctionArn": probe.function_arn,
            "StateMachineArn": machine.state_machine_arn,
            "ParentStateMachineArn": parent.state_machine_arn,
            "StarterStateMachineArn": starter.state_machine_arn,
            "EventsQueueUrl": events_queue.queue_url,
            "EventSource": EVENT_SOURCE,
            "TransformedEventsQueueUrl": transformed_queue.queue_url,
            "TransformedEventSource": TRANSFORMED_SOURCE,
            "ScheduleGroupName": group.ref,
            "ScheduleGroupArn": group.attr_arn,
            "SchedulerRoleArn": role.role_arn,
            "ScheduleQueueUrl": schedule_queue.queue_url,
            "ScheduleQueueArn": schedule_queue.queue_arn,
            "ScheduleDeadLetterQueueUrl": schedule_dlq.queue_url,
            "ScheduleDeadLetterQueueArn": schedule_dlq.queue_arn,
            "ApiId": api.rest_api_id,
            "ApiStage": STAGE,
            "TopicArn": topic.topic_arn,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)


app = App()
WorkflowsConformanceStack(app, "WorkflowsConformanceStack")
app.synth()
