#!/usr/bin/env python3
"""The smallest app on asyncstack: a work queue, its dead-letter queue and alarms, and a worker."""

from aws_cdk import App, CfnOutput, Stack

from asyncstack.cdk import (
    AlarmTopic,
    LambdaPlatform,
    PythonFunction,
    WorkQueue,
    apply_rules,
    on_demand_table,
    target_for,
)

app = App()
stack = Stack(app, "MinimalApp")
platform = LambdaPlatform.create(stack, target=target_for(app))  # this machine's Python on a local cloud
greetings = on_demand_table(stack, "Greetings", "name")
worker = PythonFunction(
    stack,
    "Greeter",
    source="greeter",
    platform=platform,
    environment={"GREETINGS_TABLE": greetings.table_name},
)
greetings.grant(worker.function, "dynamodb:PutItem")
queue = WorkQueue(
    stack, "Requests", consumer=worker.function, alarm_actions=AlarmTopic(stack, "Alarms").actions
)
CfnOutput(stack, "QueueUrl", value=queue.queue.queue_url)
CfnOutput(stack, "GreetingsTableName", value=greetings.table_name)
apply_rules(app)  # the synth-time rules and cdk-nag's AwsSolutions checks
app.synth()
