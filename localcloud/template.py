"""Provision a synthesized CloudFormation template into moto, resource by resource.

Creates what the order pipeline needs to run (queues with their redrive policies, topics,
subscriptions with filter policies and raw delivery, tables) with the template's own
properties, and records the functions and event source mappings for the local runtime.
Resource types it does not create (IAM, alarms, log groups, policies, layers) are listed in
``Deployment.not_provisioned`` so nobody mistakes them for working locally.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.server import ACCOUNT, REGION, LocalCloudError, local_client


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout: int
    memory: int


@dataclass(frozen=True)
class MappingSpec:
    function: str
    queue_url: str
    queue_arn: str
    batch_size: int
    batching_window: int
    max_concurrency: int | None
    report_batch_item_failures: bool


@dataclass
class Deployment:
    outputs: dict[str, str] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    mappings: list[MappingSpec] = field(default_factory=list)
    queues: dict[str, str] = field(default_factory=dict)  # queue name -> url
    dead_letter_queues: dict[str, str] = field(default_factory=dict)  # source queue url -> DLQ url
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    not_provisioned: dict[str, int] = field(default_factory=dict)


class _Provisioner:
    def __init__(self, template: Mapping[str, Any], assembly_dir: Path, endpoint: str) -> None:
        self.resources: Mapping[str, Any] = template.get("Resources", {})
        self.outputs: Mapping[str, Any] = template.get("Outputs", {})
        self.assembly_dir = assembly_dir
        self.physical: dict[str, dict[str, str]] = {}
        self.sqs = local_client("sqs", endpoint)
        self.sns = local_client("sns", endpoint)
        self.dynamodb = local_client("dynamodb", endpoint)
        self.deployment = Deployment()

    # -- intrinsic functions -------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            return self._attribute(value["Ref"], "Ref")
        if "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            return self._attribute(logical_id, attribute)
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(str(self.resolve(p)) for p in parts)
        return {k: self.resolve(v) for k, v in value.items()}

    def _attribute(self, logical_id: str, attribute: str) -> str:
        pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                  "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "AsyncStack"}  # fmt: skip
        if logical_id in pseudo:
            return pseudo[logical_id]
        if logical_id not in self.physical:
            self._create(logical_id)
        try:
            return self.physical[logical_id][attribute]
        except KeyError:
            raise LocalCloudError(f"{logical_id}.{attribute} is not available locally") from None

    # -- resources -----------------------------------------------------------------------

    def run(self) -> Deployment:
        for logical_id in self.resources:
            if logical_id not in self.physical:
                self._create(logical_id)
        self.deployment.outputs = {name: str(self.resolve(o["Value"])) for name, o in self.outputs.items()}
        return self.deployment

    def _create(self, logical_id: str) -> None:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise LocalCloudError(f"the template references {logical_id}, which it does not define")
        kind = resource["Type"]
        props = resource.get("Properties", {})
        creator = {
            "AWS::SQS::Queue": self._queue,
            "AWS::SNS::Topic": self._topic,
            "AWS::SNS::Subscription": self._subscription,
            "AWS::DynamoDB::Table": self._table,
            "AWS::Lambda::Function": self._function,
            "AWS::Lambda::EventSourceMapping": self._mapping,
        }.get(kind)
        if creator is None:
            self.physical[logical_id] = {}
            self.deployment.not_provisioned[kind] = self.deployment.not_provisioned.get(kind, 0) + 1
            return
        self.physical[logical_id] = {}  # guards against reference cycles
        self.physical[logical_id] = creator(logical_id, props, resource)

    def _queue(self, logical_id: str, props: Mapping[str, Any], _: Any) -> dict[str, str]:
        fifo = bool(props.get("FifoQueue"))
        name = props.get("QueueName") or (logical_id[:75] + (".fifo" if fifo else ""))
        attributes: dict[str, str] = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize",
                    "ReceiveMessageWaitTimeSeconds", "KmsMasterKeyId"):  # fmt: skip
            if key in props:
                attributes[key] = str(self.resolve(props[key]))
        if fifo:
            attributes["FifoQueue"] = "true"
            attributes["ContentBasedDeduplication"] = str(
                bool(props.get("ContentBasedDeduplication"))
            ).lower()
        redrive = props.get("RedrivePolicy")
        if redrive:
            attributes["RedrivePolicy"] = json.dumps(self.resolve(redrive))
        url = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.deployment.queues[name] = url
        if redrive:
            dlq_arn = self.resolve(redrive)["deadLetterTargetArn"]
            self.deployment.dead_letter_queues[url] = self.sqs.get_queue_url(
                QueueName=dlq_arn.split(":")[-1]
            )["QueueUrl"]
        return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}

    def _topic(self, logical_id: str, props: Mapping[str, Any], _: Any) -> dict[str, str]:
        fifo = bool(props.get("FifoTopic"))
        name = props.get("TopicName") or (logical_id + (".fifo" if fifo else ""))
        attributes = (
            {"KmsMasterKeyId": str(self.resolve(props["KmsMasterKeyId"]))}
            if "KmsMasterKeyId" in props
            else {}
        )
        if fifo:
            attributes["FifoTopic"] = "true"
        arn = self.sns.create_topic(Name=name, Attributes=attributes)["TopicArn"]
        return {"Ref": arn, "TopicArn": arn, "TopicName": name}

    def _subscription(self, logical_id: str, props: Mapping[str, Any], _: Any) -> dict[str, str]:
        attributes: dict[str, str] = {}
        if props.get("RawMessageDelivery"):
            attributes["RawMessageDelivery"] = "true"
        for key in ("FilterPolicy", "RedrivePolicy"):
            if key in props:
                attributes[key] = json.dumps(self.resolve(props[key]))
        if "FilterPolicyScope" in props:
            attributes["FilterPolicyScope"] = props["FilterPolicyScope"]
        topic = self.resolve(props["TopicArn"])
        endpoint = self.resolve(props["Endpoint"])
        arn = self.sns.subscribe(
            TopicArn=topic, Protocol=props["Protocol"], Endpoint=endpoint, Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]  # fmt: skip
        self.deployment.subscriptions.append({"topic": topic, "endpoint": endpoint, **attributes})
        return {"Ref": arn}

    def _table(self, logical_id: str, props: Mapping[str, Any], _: Any) -> dict[str, str]:
        name = props.get("TableName") or logical_id
        self.dynamodb.create_table(
            TableName=name,
            KeySchema=props["KeySchema"],
            AttributeDefinitions=props["AttributeDefinitions"],
            BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
        )
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            self.dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
        return {"Ref": name, "Arn": arn}

    def _function(
        self, logical_id: str, props: Mapping[str, Any], resource: Mapping[str, Any]
    ) -> dict[str, str]:
        name = props.get("FunctionName") or logical_id
        asset = resource.get("Metadata", {}).get("aws:asset:path")
        if not asset:
            raise LocalCloudError(
                f"function {logical_id} has no local asset: synthesize with `make synth` first"
            )
        environment = {
            k: str(self.resolve(v)) for k, v in props.get("Environment", {}).get("Variables", {}).items()
        }
        self.deployment.functions[name] = FunctionSpec(
            logical_id=logical_id,
            name=name,
            code_dir=(self.assembly_dir / asset).resolve(),
            handler=props["Handler"],
            environment=environment,
            timeout=int(props.get("Timeout", 3)),
            memory=int(props.get("MemorySize", 128)),
        )
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        return {"Ref": name, "Arn": arn}

    def _mapping(self, logical_id: str, props: Mapping[str, Any], _: Any) -> dict[str, str]:
        queue_arn = self.resolve(props["EventSourceArn"])
        queue_url = self.sqs.get_queue_url(QueueName=queue_arn.split(":")[-1])["QueueUrl"]
        self.deployment.mappings.append(
            MappingSpec(
                function=self.resolve(props["FunctionName"]),
                queue_url=queue_url,
                queue_arn=queue_arn,
                batch_size=int(props.get("BatchSize", 10)),
                batching_window=int(props.get("MaximumBatchingWindowInSeconds", 0)),
                max_concurrency=(props.get("ScalingConfig") or {}).get("MaximumConcurrency"),
                report_batch_item_failures="ReportBatchItemFailures"
                in props.get("FunctionResponseTypes", []),
            )
        )
        return {"Ref": logical_id}


def provision(assembly_dir: Path, stack: str, endpoint: str) -> Deployment:
    """Create the resources of ``<assembly_dir>/<stack>.template.json`` in the moto at ``endpoint``."""
    template_file = assembly_dir / f"{stack}.template.json"
    if not template_file.is_file():
        raise LocalCloudError(f"{template_file} does not exist: synthesize first (`make synth`)")
    return _Provisioner(json.loads(template_file.read_text()), assembly_dir, endpoint).run()
