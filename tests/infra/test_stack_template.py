"""The synthesized AsyncStack template: queues, fan-out, functions and permissions, checked by value.

Every resource is reached through what it is wired to (the event source mapping's function and
queue, the queue's redrive policy, a function's environment), never by a hashed logical id.
"""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk.assertions import Capture, Match, Template

from tests.infra.template_model import (
    LAMBDA_DEFAULT_TIMEOUT,
    SQS_DEFAULT_RETENTION,
    Json,
    WorkQueueView,
    as_list,
    policy_documents,
    properties,
    referenced_ids,
    resources_of,
    role_statements,
    statements,
    target,
    type_of,
)

pytestmark = pytest.mark.infra

WORKERS = ("inventory", "email", "analytics", "signup", "jobs", "image_resize", "webhook_delivery")
# Functions invoked by workflows or the API, not fed by a queue.
WORKFLOW_STEPS = ("order_payments", "order_inventory", "order_notifications", "export_worker", "api")
# What infra/stack.py asks of each WorkQueue: batch size, batching window (s), mapping max concurrency.
MAPPING_SETTINGS = {
    "inventory": (10, 1, 5),
    "email": (10, 1, 2),
    "analytics": (100, 5, 5),
    "signup": (10, 1, 5),
    "jobs": (10, 1, 5),
    # Request-reply: a caller is waiting, so no batching window and one request per invocation.
    "image_resize": (1, 0, 5),
    # Deliveries of up to 30 s each (asyncstack/cdk/webhooks.py) to a 60 s function: two to a batch.
    "webhook_delivery": (2, 0, 5),
}
# The workers fed by a topic (the jobs worker is fed by SQS delays and schedules), and their filters.
FILTER_POLICIES = {
    "inventory": {"type": ["order.created"]},
    "email": {"type": ["order.created"]},
    "analytics": {"type": [{"prefix": "order."}]},
    "signup": {"type": ["user.signed_up", "user.converted"]},
}
TOPIC_OUTPUTS = {"inventory": "OrdersTopicArn", "email": "OrdersTopicArn", "analytics": "OrdersTopicArn",
                 "signup": "UsersTopicArn"}  # fmt: skip
# Beyond its own queue and DLQ, the queue a worker's role may reach: the signup worker schedules jobs.
# The image-resize worker answers on the reply queue.
EXTRA_QUEUES = {"signup": "JobsQueueUrl", "image_resize": "ImageResizeReplyQueueUrl",
                "webhook_delivery": "WebhookDeadLetterQueueUrl"}  # fmt: skip
FOURTEEN_DAYS = 14 * 24 * 3600
SERVICE_WILDCARD = re.compile(r"^([a-z0-9-]+:)?\*$")


def output_target(template_json: Json, output: str) -> str:
    """The logical id a stack output refers to."""
    found = target(template_json["Outputs"][output]["Value"])
    assert found is not None, output
    return found


def the_topic(template_json: Json, output: str = "OrdersTopicArn") -> str:
    topic_id = output_target(template_json, output)
    assert type_of(template_json, topic_id) == "AWS::SNS::Topic"
    return topic_id


def undeliverable_queue(template_json: Json, topic_id: str) -> str:
    """The queue the topic's subscriptions' RedrivePolicy sends undeliverable messages to."""
    dlqs = {
        target(subscription["RedrivePolicy"]["deadLetterTargetArn"])
        for subscription in resources_of(template_json, "AWS::SNS::Subscription").values()
        if "RedrivePolicy" in subscription and target(subscription["TopicArn"]) == topic_id
    }
    assert len(dlqs) == 1, f"the subscriptions do not share one dead-letter queue: {dlqs}"
    queue_id = dlqs.pop()
    assert queue_id is not None
    assert type_of(template_json, queue_id) == "AWS::SQS::Queue"
    return queue_id


# --- work queues -------------------------------------------------------------------------------


def test_the_stack_has_exactly_its_work_queues(queues: dict[str, WorkQueueView], template: Template) -> None:
    # Given the synthesized stack
    # When its SQS event source mappings are followed to their functions
    # Then there is one per worker, each with its own queue and its own DLQ
    assert sorted(queues) == sorted(WORKERS)
    queue_ids = [view.queue_id for view in queues.values()] + [view.dlq_id for view in queues.values()]
    assert len(set(queue_ids)) == 2 * len(WORKERS), f"work queues or DLQs are shared: {queue_ids}"
    template.resource_count_is("AWS::Lambda::EventSourceMapping", len(WORKERS))


def test_every_queue_is_encrypted_and_refuses_plain_http(template_json: Json, template: Template) -> None:
    # Given every SQS queue of the stack (work queues, their DLQs, the topics' undeliverable queues,
    # the schedules' dead-letter queues, the RPC reply queue, the webhook DLQ)
    all_queues = resources_of(template_json, "AWS::SQS::Queue")
    assert len(all_queues) == 2 * len(WORKERS) + 2 + 2 + 1 + 1
    for queue_id, queue in all_queues.items():
        # Then it is encrypted at rest with SQS-managed keys
        assert queue.get("SqsManagedSseEnabled") is True, f"{queue_id} is not SSE-SQS encrypted: {queue}"
        # And a queue policy on it denies any request made without TLS
        template.has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [{"Ref": queue_id}],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                    "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
                                }
                            )
                        ]
                    )
                },
            },
        )


@pytest.mark.parametrize("worker", WORKERS)
def test_poison_messages_move_to_the_dead_letter_queue_after_five_receives(
    queues: dict[str, WorkQueueView], template: Template, worker: str
) -> None:
    # Given the worker's queue
    view = queues[worker]
    # Then its redrive policy sends a message to the DLQ after 5 receives
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "RedrivePolicy": Match.exact(
                {"deadLetterTargetArn": {"Fn::GetAtt": [view.dlq_id, "Arn"]}, "maxReceiveCount": 5}
            ),
        },
    )
    assert view.queue["RedrivePolicy"]["maxReceiveCount"] == 5
    # And the DLQ is a terminal queue: it does not redrive anywhere itself
    assert "RedrivePolicy" not in view.dlq


@pytest.mark.parametrize("worker", WORKERS)
def test_the_dead_letter_queue_outlives_its_source(queues: dict[str, WorkQueueView], worker: str) -> None:
    # Given the worker's queue and its DLQ
    view = queues[worker]
    source_retention = view.queue.get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION)
    # Then the DLQ keeps messages for the maximum 14 days
    assert view.dlq["MessageRetentionPeriod"] == FOURTEEN_DAYS
    # And longer than the source keeps them (SQS keeps the original enqueue time on redrive)
    assert view.dlq["MessageRetentionPeriod"] > source_retention


@pytest.mark.parametrize("worker", WORKERS)
def test_visibility_timeout_is_six_times_the_function_timeout_plus_the_batching_window(
    queues: dict[str, WorkQueueView], worker: str
) -> None:
    # Given the worker's mapping, the function it invokes and the queue it polls
    view = queues[worker]
    timeout = view.function.get("Timeout", LAMBDA_DEFAULT_TIMEOUT)
    window = view.mapping.get("MaximumBatchingWindowInSeconds", 0)
    # Then the queue hides a received message for 6 x timeout + window, AWS's rule for Lambda consumers
    assert view.queue["VisibilityTimeout"] == 6 * timeout + window, (
        f"{worker}: visibility {view.queue['VisibilityTimeout']} s, timeout {timeout} s, window {window} s"
    )


@pytest.mark.parametrize("worker", WORKERS)
def test_the_event_source_mapping_reports_partial_batch_failures_and_is_bounded(
    queues: dict[str, WorkQueueView], template: Template, worker: str
) -> None:
    # Given the settings infra/stack.py asks for
    batch_size, window, max_concurrency = MAPPING_SETTINGS[worker]
    view = queues[worker]
    # Then the mapping from the worker's queue to its function has exactly those settings
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [view.queue_id, "Arn"]},
            "FunctionName": {"Ref": view.function_id},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BatchSize": batch_size,
            "MaximumBatchingWindowInSeconds": window,
            "ScalingConfig": {"MaximumConcurrency": max_concurrency},
        },
    )


@pytest.mark.parametrize("worker", WORKERS)
def test_alarms_watch_the_dead_letter_queue_and_the_oldest_message(
    queues: dict[str, WorkQueueView], template: Template, worker: str
) -> None:
    # Given the worker's queue and DLQ
    view = queues[worker]
    # Then one message in the DLQ raises an alarm
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [view.dlq_id, "QueueName"]}}],
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        },
    )
    # And so does a queue that falls behind (its oldest message grows old)
    threshold = Capture()
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateAgeOfOldestMessage",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [view.queue_id, "QueueName"]}}],
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold",
        },
    )
    # And that alarm fires before the message could expire from the queue
    assert 0 < threshold.as_number() < view.queue.get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION)


def alarm_topic(template_json: Json) -> str:
    topic_id = output_target(template_json, "AlarmTopicArn")
    assert type_of(template_json, topic_id) == "AWS::SNS::Topic"
    return topic_id


def test_every_alarm_notifies_the_alarm_topic(template_json: Json) -> None:
    """The defect this guards: none of the stack's alarms had an action, so an alarm notified nobody."""
    # Given the stack's alarm topic and every alarm of the template
    topic_id = alarm_topic(template_json)
    alarms = resources_of(template_json, "AWS::CloudWatch::Alarm")
    # Then there are alarms, and each one's only action is the topic
    assert len(alarms) >= 28
    assert {
        name: [target(action) for action in alarm.get("AlarmActions", [])] for name, alarm in alarms.items()
    } == {name: [topic_id] for name in alarms}


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(
    template_json: Json, template: Template
) -> None:
    # Given the alarm topic
    topic_id = alarm_topic(template_json)
    key_id = target(properties(template_json, topic_id)["KmsMasterKeyId"])
    assert key_id is not None and type_of(template_json, key_id) == "AWS::KMS::Key"
    key = properties(template_json, key_id)
    # Then its key rotates and lets CloudWatch (from this account) encrypt what it publishes
    assert key["EnableKeyRotation"] is True
    [cloudwatch] = [
        statement for statement in key["KeyPolicy"]["Statement"]
        if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]  # fmt: skip
    assert set(as_list(cloudwatch["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert "aws:SourceAccount" in cloudwatch["Condition"]["StringEquals"]
    # And the topic refuses plain HTTP
    policies = [
        statement
        for policy in resources_of(template_json, "AWS::SNS::TopicPolicy").values()
        if topic_id in referenced_ids(policy["Topics"])
        for statement in statements(policy["PolicyDocument"])
    ]
    assert any(
        st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for st in policies
    )


# --- webhooks ----------------------------------------------------------------------------------


def test_the_webhook_secret_is_generated_at_deploy_and_the_worker_may_only_read_it(
    template_json: Json, queues: dict[str, WorkQueueView]
) -> None:
    """The defects this guards: the worker wrote the secret's first value (and replaced a value it could not
    parse, so every receiver rejected every delivery), with write access it never needs."""
    secret_id = output_target(template_json, "WebhookSecretArn")
    generated = properties(template_json, secret_id)["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "current"
    assert generated["ExcludePunctuation"] is True and generated["PasswordLength"] == 44
    worker = queues["webhook_delivery"]
    actions = {
        action
        for statement in role_statements(template_json, worker.role_id)
        if secret_id in referenced_ids(statement["Resource"])
        for action in as_list(statement["Action"])
    }
    assert actions == {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}


def test_the_webhook_worker_budgets_each_record_at_its_worst_case(queues: dict[str, WorkQueueView]) -> None:
    worker = queues["webhook_delivery"]
    margin_ms = int(worker.environment["SHUTDOWN_MARGIN_MS"])
    timeout = worker.function["Timeout"]
    assert margin_ms == 30_000
    assert worker.mapping["BatchSize"] * margin_ms / 1000 <= timeout


# --- fan-out topic -----------------------------------------------------------------------------


@pytest.mark.parametrize("output", sorted(set(TOPIC_OUTPUTS.values())))
def test_the_topic_is_encrypted_and_refuses_plain_http(
    template_json: Json, template: Template, output: str
) -> None:
    # Given one of the stack's SNS topics
    topic_id = the_topic(template_json, output)
    # Then it is encrypted with a KMS key
    assert properties(template_json, topic_id).get("KmsMasterKeyId"), "the topic has no KmsMasterKeyId"
    # And its topic policy denies requests made without TLS
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": topic_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                "Resource": {"Ref": topic_id},
                            }
                        )
                    ]
                )
            },
        },
    )


@pytest.mark.parametrize("worker", sorted(FILTER_POLICIES))
def test_the_topic_delivers_raw_filtered_messages_to_each_work_queue(
    queues: dict[str, WorkQueueView], template_json: Json, template: Template, worker: str
) -> None:
    # Given the worker's topic, its queue and the topic's undeliverable queue
    topic_id = the_topic(template_json, TOPIC_OUTPUTS[worker])
    dead_letters = undeliverable_queue(template_json, topic_id)
    view = queues[worker]
    template.resource_count_is("AWS::SNS::Subscription", len(FILTER_POLICIES))
    # Then the queue's subscription is raw, filtered on the event type, with a dead-letter queue
    template.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "TopicArn": {"Ref": topic_id},
            "Endpoint": {"Fn::GetAtt": [view.queue_id, "Arn"]},
            "Protocol": "sqs",
            "RawMessageDelivery": True,
            "FilterPolicy": Match.exact(FILTER_POLICIES[worker]),
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [dead_letters, "Arn"]}},
        },
    )
    # And the queue lets this topic, and only through SNS, send to it
    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": view.queue_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Action": "sqs:SendMessage",
                                "Principal": {"Service": "sns.amazonaws.com"},
                                "Condition": {"ArnEquals": {"aws:SourceArn": {"Ref": topic_id}}},
                            }
                        )
                    ]
                )
            },
        },
    )


@pytest.mark.parametrize("output", sorted(set(TOPIC_OUTPUTS.values())))
def test_sns_may_write_to_the_undeliverable_queue(
    template_json: Json, template: Template, output: str
) -> None:
    # Given the queue a topic's subscriptions redrive to
    topic_id = the_topic(template_json, output)
    dead_letters = undeliverable_queue(template_json, topic_id)
    # Then it is no work queue, keeps messages 14 days and is watched by an alarm
    assert properties(template_json, dead_letters)["MessageRetentionPeriod"] == FOURTEEN_DAYS
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dead_letters, "QueueName"]}}],
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        },
    )
    # And SNS may send the topic's undeliverable messages to it (else they are dropped)
    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": dead_letters}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Action": "sqs:SendMessage",
                                "Principal": {"Service": "sns.amazonaws.com"},
                                "Condition": {"ArnEquals": {"aws:SourceArn": {"Ref": topic_id}}},
                            }
                        )
                    ]
                )
            },
        },
    )


# --- functions ---------------------------------------------------------------------------------


def test_every_function_runs_python_3_14_on_arm64_with_tracing_and_the_layer(
    template_json: Json, template: Template
) -> None:
    # Given every Lambda function of the stack
    functions = resources_of(template_json, "AWS::Lambda::Function")
    template.resource_count_is("AWS::Lambda::Function", len(WORKERS) + len(WORKFLOW_STEPS))
    for function_id, function in functions.items():
        # Then it runs Python 3.14 on Graviton with active X-Ray tracing
        assert function["Runtime"] == "python3.14", function_id
        assert function["Architectures"] == ["arm64"], function_id
        assert function["TracingConfig"] == {"Mode": "Active"}, function_id
        # And it has a layer built for exactly that runtime and architecture
        layers = [target(layer) for layer in function.get("Layers", [])]
        assert layers, f"{function_id} has no layer"
        for layer_id in layers:
            assert layer_id is not None
            layer = properties(template_json, layer_id)
            assert function["Runtime"] in layer["CompatibleRuntimes"], (function_id, layer_id)
            assert function["Architectures"][0] in layer["CompatibleArchitectures"], (function_id, layer_id)


def test_every_function_has_a_role_of_its_own(template_json: Json) -> None:
    # Given every Lambda function of the stack
    functions = resources_of(template_json, "AWS::Lambda::Function")
    # When their execution roles are followed
    roles = {function_id: target(function["Role"]) for function_id, function in functions.items()}
    # Then no two functions share a role, and each role is one of this stack's, for Lambda only
    assert len(set(roles.values())) == len(functions), f"roles are shared between functions: {roles}"
    for function_id, role_id in roles.items():
        assert role_id is not None and type_of(template_json, role_id) == "AWS::IAM::Role", function_id
        trust = statements(properties(template_json, role_id)["AssumeRolePolicyDocument"])
        assert [statement["Principal"] for statement in trust] == [{"Service": "lambda.amazonaws.com"}]


@pytest.mark.parametrize("worker", WORKERS)
def test_each_function_is_told_its_queue_its_dlq_and_its_service_name(
    queues: dict[str, WorkQueueView], worker: str
) -> None:
    # Given the worker's function, found through the mapping of its queue
    view = queues[worker]
    # Then its environment names the queue it consumes and that queue's DLQ
    assert view.environment["QUEUE_URL"] == {"Ref": view.queue_id}
    assert view.environment["DEAD_LETTER_QUEUE_URL"] == {"Ref": view.dlq_id}
    # And its Powertools service name is the worker's
    assert view.environment["POWERTOOLS_SERVICE_NAME"] == worker


# --- least privilege ---------------------------------------------------------------------------


def test_no_policy_allows_every_action_or_every_action_of_a_service(template_json: Json) -> None:
    # Given every permission policy of the template (identity and resource policies)
    documents = list(policy_documents(template_json))
    assert documents, "the template has no policy at all"
    # Then no Allow statement grants "*" or "<service>:*", nor grants by exclusion (NotAction)
    # (the TLS-only Deny statements of queue policies use "sqs:*" on purpose: a Deny may be broad)
    offending: list[tuple[str, object]] = []
    for policy_id, document in documents:
        for statement in statements(document):
            if statement.get("Effect") != "Allow":
                continue
            if "NotAction" in statement:
                offending.append((policy_id, statement))
            for action in as_list(statement.get("Action", [])):
                if isinstance(action, str) and SERVICE_WILDCARD.match(action):
                    offending.append((policy_id, action))
    assert offending == []


def test_the_email_function_cannot_touch_the_inventory_table(
    queues: dict[str, WorkQueueView], template_json: Json
) -> None:
    # Given the inventory table, named in the inventory function's environment
    inventory_table = target(queues["inventory"].environment["INVENTORY_TABLE_NAME"])
    assert inventory_table is not None
    assert type_of(template_json, inventory_table) == "AWS::DynamoDB::Table"
    # When every statement of each role is searched for references to it
    referenced_by = {
        worker: set().union(
            *(referenced_ids(s.get("Resource")) for s in role_statements(template_json, view.role_id))
        )
        for worker, view in queues.items()
    }
    # Then the inventory role may use it (the search works) but the email role may not
    assert inventory_table in referenced_by["inventory"]
    assert inventory_table not in referenced_by["email"]
    assert inventory_table not in referenced_by["analytics"]


@pytest.mark.parametrize("function", WORKERS + WORKFLOW_STEPS)
def test_a_role_reaches_only_the_tables_its_function_is_configured_with(
    template_json: Json, function: str
) -> None:
    # Given the tables the function's environment names (the image resizer has none)
    (props,) = [
        f for f in resources_of(template_json, "AWS::Lambda::Function").values()
        if f["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == function
    ]  # fmt: skip
    tables = set(resources_of(template_json, "AWS::DynamoDB::Table"))
    configured = {target(value) for value in props["Environment"]["Variables"].values()} & tables
    assert configured or function == "image_resize", f"{function} is configured with no table"
    # When the resources its role's statements grant access to are collected
    role_id = target(props["Role"])
    assert role_id is not None
    granted = set().union(
        *(referenced_ids(s.get("Resource")) for s in role_statements(template_json, role_id))
    )
    # Then it is granted exactly those tables, no other
    assert granted & tables == configured


def test_each_role_reaches_only_its_own_queue_and_dead_letter_queue(
    queues: dict[str, WorkQueueView], template_json: Json
) -> None:
    # Given each worker's role
    all_queues = set(resources_of(template_json, "AWS::SQS::Queue"))
    for worker, view in queues.items():
        # When the queues its statements reach are collected
        reached = set().union(
            *(referenced_ids(s.get("Resource")) for s in role_statements(template_json, view.role_id))
        )
        # Then they are its own queue and its own DLQ (and the jobs queue for a scheduler), nothing else
        extra = {output_target(template_json, EXTRA_QUEUES[worker])} if worker in EXTRA_QUEUES else set()
        assert reached & all_queues == {view.queue_id, view.dlq_id} | extra, worker


# --- outputs -----------------------------------------------------------------------------------


def test_outputs_name_the_topic_and_every_queue(
    queues: dict[str, WorkQueueView], template_json: Json, template: Template
) -> None:
    # Given the stack outputs
    topic_id = the_topic(template_json)
    # Then they give the topic ARNs, the undeliverable queue and each work queue and DLQ URL
    template.has_output("OrdersTopicArn", {"Value": {"Ref": topic_id}})
    template.has_output(
        "OrdersUndeliverableQueueUrl", {"Value": {"Ref": undeliverable_queue(template_json, topic_id)}}
    )
    assert type_of(template_json, output_target(template_json, "UsersTopicArn")) == "AWS::SNS::Topic"
    for worker, view in queues.items():
        prefix = "".join(part.capitalize() for part in worker.split("_"))
        template.has_output(f"{prefix}QueueUrl", {"Value": {"Ref": view.queue_id}})
        template.has_output(f"{prefix}DeadLetterQueueUrl", {"Value": {"Ref": view.dlq_id}})


def test_only_the_deployed_api_stage_may_invoke_the_api_function(template_json: Json) -> None:
    """Least privilege: no Lambda permission for API Gateway's console test-invoke stage."""
    permissions = [
        json.dumps(resource["Properties"].get("SourceArn"))
        for resource in template_json["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Permission"
        and resource["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert permissions and not [arn for arn in permissions if "test-invoke-stage" in arn]
