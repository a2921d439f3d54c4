"""Request-reply over SQS, and the same worker behind a Step Functions ``.waitForTaskToken`` task.

Callers send to the request queue with ``reply_to`` and ``correlation_id`` attributes and wait on
their own reply queue (``asyncstack.runtime.rpc.RpcClient``). The worker answers only to the reply queues
declared here (``RPC_REPLY_QUEUE_URLS``): a request cannot make it write anywhere else.

The workflow variant sends the request with the task token instead of a reply queue; the worker
heartbeats while it works and ends the task with ``SendTaskSuccess`` or ``SendTaskFailure``.
Standard: Express workflows do not support ``.waitForTaskToken``.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from asyncstack import contract
from asyncstack.cdk.work_queue import WorkQueue, explain_sqs_managed_encryption
from asyncstack.cdk.workflow import Workflow


class RequestReply(Construct):
    """A request queue served by ``worker``, one reply queue per entry in ``clients``, and the task-token workflow."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        worker: lambda_.Function,
        action: str,
        clients: tuple[str, ...] = ("Default",),
        heartbeat: Duration = Duration.seconds(30),
        task_timeout: Duration = Duration.minutes(5),
        alarm_actions: Sequence[cloudwatch.IAlarmAction] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        # A caller is waiting: no batching window, and one request per invocation so that a slow request
        # (a large image) delays nobody else's reply; concurrency comes from the mapping's max concurrency.
        self.requests = WorkQueue(
            self, "Requests", consumer=worker, batch_size=1, max_batching_window=Duration.seconds(0),
            alarm_actions=alarm_actions,
        )  # fmt: skip
        self.reply_queues: dict[str, sqs.Queue] = {}
        for client in clients:
            queue = sqs.Queue(
                self,
                f"{client}Replies",
                # A reply nobody collected is useless after a minute; the caller drops late ones anyway.
                retention_period=Duration.seconds(60),
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
            )
            Validations.of(queue).acknowledge(
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-SQS3",
                    reason="A reply queue: its client deletes every reply it receives, and an unclaimed "
                    "reply expires after 60 s; a dead-letter queue would only collect replies nobody awaits.",
                )
            )
            explain_sqs_managed_encryption(queue)
            queue.grant_send_messages(worker)
            self.reply_queues[client] = queue
        worker.add_environment(
            contract.RPC_REPLY_QUEUE_URLS, ",".join(queue.queue_url for queue in self.reply_queues.values())
        )

        call = tasks.SqsSendMessage(
            self,
            "CallWorker",
            queue=self.requests.queue,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            message_body=sfn.TaskInput.from_object(
                {
                    contract.RPC_ACTION_FIELD: action,
                    contract.RPC_PAYLOAD_FIELD: sfn.JsonPath.entire_payload,
                    contract.RPC_TASK_TOKEN_FIELD: sfn.JsonPath.task_token,
                }
            ),
            heartbeat_timeout=sfn.Timeout.duration(heartbeat),
            task_timeout=sfn.Timeout.duration(task_timeout),
            result_path="$.result",
        )
        self.workflow = Workflow(
            self,
            "Workflow",
            definition=call.next(sfn.Succeed(self, "Answered")),
            kind=sfn.StateMachineType.STANDARD,
            reason="Standard: Express workflows cannot wait for a task token.",
            timeout=task_timeout.plus(Duration.minutes(1)),
            alarm_actions=alarm_actions,
        )
        self.workflow.state_machine.grant_task_response(worker)

    def grant_call(self, grantee: iam.IGrantable, client: str = "Default") -> None:
        """Let ``grantee`` send requests and collect its replies."""
        self.requests.queue.grant_send_messages(grantee)
        self.reply_queues[client].grant_consume_messages(grantee)
