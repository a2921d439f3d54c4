"""CDK constructs with safe defaults, the synth-time rules and the packaging of asyncstack apps.

Defaults follow AWS guidance and are computed, not hand-set: visibility timeouts from function
timeouts, batch sizes from the longest record, DLQs that outlive their sources, encryption at rest and
TLS-only policies everywhere, least-privilege grants, alarms that notify a topic. ``apply_rules(app)``
adds the checks that fail ``cdk synth`` on the mistakes that lose or duplicate messages.
"""

from asyncstack.cdk.alarms import AlarmsNotify, AlarmTopic
from asyncstack.cdk.buckets import access_log_bucket, private_bucket
from asyncstack.cdk.delayed_jobs import DelayedJobs
from asyncstack.cdk.fan_out_topic import FanOutTopic
from asyncstack.cdk.job_api import ApiAuth, JobApi
from asyncstack.cdk.long_running_jobs import LongRunningJobs
from asyncstack.cdk.packaging import LambdaTarget, PackagingError, deployed_locally, target_for
from asyncstack.cdk.python_function import LambdaPlatform, PythonFunction
from asyncstack.cdk.request_reply import RequestReply
from asyncstack.cdk.rules import QueueConsumerRules, apply_rules
from asyncstack.cdk.tables import on_demand_table
from asyncstack.cdk.webhooks import WebhookDelivery
from asyncstack.cdk.work_queue import WorkQueue
from asyncstack.cdk.workflow import Workflow

__all__ = [
    "AlarmTopic",
    "AlarmsNotify",
    "ApiAuth",
    "DelayedJobs",
    "FanOutTopic",
    "JobApi",
    "LambdaPlatform",
    "LambdaTarget",
    "LongRunningJobs",
    "PackagingError",
    "PythonFunction",
    "QueueConsumerRules",
    "RequestReply",
    "WebhookDelivery",
    "WorkQueue",
    "Workflow",
    "access_log_bucket",
    "apply_rules",
    "deployed_locally",
    "on_demand_table",
    "private_bucket",
    "target_for",
]
