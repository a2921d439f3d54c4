"""Read a synthesized CloudFormation template by value.

Resources are found by what they are and what they point at (``Ref``/``Fn::GetAtt``, an
environment variable, a property), never by a hashed logical id, so the tests survive a
construct being renamed or moved and fail only when the wiring changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

# Lambda's and SQS's values when the template leaves the property out.
LAMBDA_DEFAULT_TIMEOUT = 3
SQS_DEFAULT_VISIBILITY_TIMEOUT = 30
SQS_DEFAULT_RETENTION = 4 * 24 * 3600


def target(value: Any) -> str | None:
    """The logical id a ``{"Ref": id}`` or ``{"Fn::GetAtt": [id, attr]}`` points at, else None."""
    if isinstance(value, dict):
        if isinstance(value.get("Ref"), str):
            return str(value["Ref"])
        get_att = value.get("Fn::GetAtt")
        if isinstance(get_att, list) and get_att:
            return str(get_att[0])
    return None


def referenced_ids(value: Any) -> set[str]:
    """Every logical id referenced anywhere inside ``value`` (through Ref, GetAtt, Join, Sub...)."""
    found: set[str] = set()
    if isinstance(value, dict):
        direct = target(value)
        if direct is not None:
            found.add(direct)
        for item in value.values():
            found |= referenced_ids(item)
    elif isinstance(value, list):
        for item in value:
            found |= referenced_ids(item)
    return found


def resources_of(template: Json, resource_type: str) -> dict[str, Json]:
    """Logical id -> properties of every resource of ``resource_type``."""
    return {
        logical_id: resource.get("Properties", {})
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def properties(template: Json, logical_id: str) -> Json:
    resource: Json = template["Resources"][logical_id]
    return resource.get("Properties", {})


def type_of(template: Json, logical_id: str) -> str:
    return str(template["Resources"][logical_id]["Type"])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class WorkQueueView:
    """One work queue as the template wires it: mapping -> function, mapping -> queue -> DLQ."""

    name: str  # the consumer's POWERTOOLS_SERVICE_NAME, e.g. "inventory"
    mapping_id: str
    mapping: Json
    function_id: str
    function: Json
    queue_id: str
    queue: Json
    dlq_id: str
    dlq: Json

    @property
    def environment(self) -> Json:
        variables: Json = self.function.get("Environment", {}).get("Variables", {})
        return variables

    @property
    def role_id(self) -> str:
        role = target(self.function["Role"])
        assert role is not None, (
            f"the {self.name} function's Role is not a reference: {self.function['Role']}"
        )
        return role


def work_queues(template: Json) -> dict[str, WorkQueueView]:
    """Every SQS event source mapping of the template, keyed by its consumer's service name."""
    views: dict[str, WorkQueueView] = {}
    for mapping_id, mapping in resources_of(template, "AWS::Lambda::EventSourceMapping").items():
        queue_id = target(mapping.get("EventSourceArn"))
        function_id = target(mapping.get("FunctionName"))
        if queue_id is None or function_id is None or type_of(template, queue_id) != "AWS::SQS::Queue":
            continue
        queue = properties(template, queue_id)
        function = properties(template, function_id)
        dlq_id = target(queue.get("RedrivePolicy", {}).get("deadLetterTargetArn"))
        assert dlq_id is not None, f"queue {queue_id} consumed by {function_id} has no dead-letter queue"
        name = (
            function.get("Environment", {}).get("Variables", {}).get("POWERTOOLS_SERVICE_NAME", function_id)
        )
        views[name] = WorkQueueView(
            name=name,
            mapping_id=mapping_id,
            mapping=mapping,
            function_id=function_id,
            function=function,
            queue_id=queue_id,
            queue=queue,
            dlq_id=dlq_id,
            dlq=properties(template, dlq_id),
        )
    return views


def policy_documents(template: Json) -> Iterator[tuple[str, Json]]:
    """(logical id, policy document) for every permission policy of the template.

    Identity policies (``AWS::IAM::Policy``, ``AWS::IAM::ManagedPolicy``, a role's inline
    ``Policies``) and resource policies (queue and topic policies). Trust policies
    (``AssumeRolePolicyDocument``) grant nothing and are left out.
    """
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind in {
            "AWS::IAM::Policy",
            "AWS::IAM::ManagedPolicy",
            "AWS::SQS::QueuePolicy",
            "AWS::SNS::TopicPolicy",
        }:
            yield logical_id, props["PolicyDocument"]
        elif kind == "AWS::IAM::Role":
            for inline in props.get("Policies", []):
                yield logical_id, inline["PolicyDocument"]


def statements(document: Json) -> list[Json]:
    return [statement for statement in as_list(document.get("Statement", [])) if isinstance(statement, dict)]


def role_statements(template: Json, role_id: str) -> list[Json]:
    """Every identity-policy statement that applies to the role ``role_id``."""
    found: list[Json] = []
    role = properties(template, role_id)
    for inline in role.get("Policies", []):
        found += statements(inline["PolicyDocument"])
    attached = {target(arn) for arn in role.get("ManagedPolicyArns", [])}
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy_id, policy in resources_of(template, kind).items():
            if policy_id in attached or role_id in {target(role) for role in policy.get("Roles", [])}:
                found += statements(policy["PolicyDocument"])
    return found
