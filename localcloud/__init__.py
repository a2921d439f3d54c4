"""localcloud: a local AWS cloud for event-driven CDK apps, without Docker.

moto's server runs in this process; ``localcloud up`` deploys any CDK app to it with the app's own
CDK CLI, and the engine makes the deployed template run: Lambda functions in worker processes, SQS
event source mappings, EventBridge rules and Scheduler schedules, the local API, a dashboard. One
folder per service (``awslambda/``, ``sqs/``, ``scheduler/``, ``events/``, ``apigateway/``,
``cloudformation/``, ...); what it knows of a particular stack arrives through extensions
(``localcloud.extensions``).
"""
