"""The permission mutation run: does the local cloud catch a missing grant, and which grants does no
scenario need?

One enforced deploy and run of every demo scenario records each request it allowed. Each Allow statement the
stack grants (its roles' policies, its queue, topic, bucket and key policies, its Lambda permissions)
is then removed in turn, and the recorded requests are evaluated again against the policies without
it: the mutation is caught when a request a scenario made would be denied (the run up to that request
is the same, so that is the request that would fail). A sample of caught mutations is then applied to
the running stack for real (the policy rewritten through the IAM, SQS or SNS API) and its scenario run
again, to check that the denial does happen and names the action and resource.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.results import Metric, command, ratio
from demo import example
from demo.runner import run_demo
from demo.scenarios import SCENARIOS
from localcloud.cloud import LocalCloud
from localcloud.iam.enforcement import Recorded, resource_policy, role_policies
from localcloud.iam.policy import evaluate, listed, statements, wildcard_match
from localcloud.server import ACCOUNT, MOTO_LOCK, REGION, free_port

GROUP = "permissions"
STACK = "AsyncStack"
# Scenarios a real mutation may be replayed with: those that end soon when a call fails.
QUICK_SCENARIOS = (
    "fire-and-forget",
    "request-reply",
    "work-queue",
    "delayed-jobs",
    "saga",
    "polling-webhook",
)


def say(message: str) -> None:
    print(f"  [{GROUP}] {message}", flush=True)


@dataclass(frozen=True, eq=False)  # one per statement: compared (and hashed) by identity
class Mutation:
    """One Allow statement removed: from a role's policy (``owner`` a role ARN, ``policy`` its name) or
    from a resource's policy (``owner`` the resource ARN)."""

    kind: str  # "role" or "resource"
    owner: str
    policy: str
    index: int
    statement: dict[str, Any]

    def label(self) -> str:
        def shown(key: str) -> str:
            items = listed(self.statement.get(key, self.statement.get(f"Not{key}", "*")))
            return ", ".join(item.rsplit(":", 1)[-1] if key == "Resource" else item for item in items)

        who = self.owner.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        principal = self.statement.get("Principal")
        to = f" to {json.dumps(principal)}" if self.kind == "resource" else ""
        return f"{who} [{self.policy or 'resource policy'} #{self.index}]: {shown('Action')}{to} on {shown('Resource')}"


def _without(document: dict[str, Any], index: int) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    changed["Statement"] = [s for n, s in enumerate(statements(document)) if n != index]
    return changed


def _stack_arns(cloud: LocalCloud) -> tuple[list[str], list[str]]:
    """The stack's role ARNs, and the ARNs of its resources that can carry a policy."""
    resources = cloud.client("cloudformation").describe_stack_resources(StackName=STACK)["StackResources"]
    roles, owners = [], []
    for resource in resources:
        kind, physical = resource["ResourceType"], resource.get("PhysicalResourceId") or ""
        if kind == "AWS::IAM::Role":
            roles.append(cloud.client("iam").get_role(RoleName=physical)["Role"]["Arn"])
        elif kind == "AWS::SQS::Queue":
            owners.append(f"arn:aws:sqs:{REGION}:{ACCOUNT}:{physical.rsplit('/', 1)[-1]}")
        elif kind == "AWS::SNS::Topic":
            owners.append(physical)
        elif kind == "AWS::Lambda::Function":
            owners.append(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{physical}")
        elif kind == "AWS::S3::Bucket":
            owners.append(f"arn:aws:s3:::{physical}")
        elif kind == "AWS::KMS::Key":
            owners.append(f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{physical}")
    return roles, owners


def mutations(cloud: LocalCloud) -> list[Mutation]:
    """Every Allow statement of the stack's roles and resource policies."""
    roles, owners = _stack_arns(cloud)
    found: list[Mutation] = []
    with MOTO_LOCK:
        for role in roles:
            for name, document in role_policies(role):
                found += [
                    Mutation("role", role, name, n, s)
                    for n, s in enumerate(statements(document))
                    if s.get("Effect") == "Allow"
                ]
        for owner in owners:
            document = resource_policy(owner) or {}
            found += [
                Mutation("resource", owner, "", n, s)
                for n, s in enumerate(statements(document))
                if s.get("Effect") == "Allow"
            ]
    return found


def policy_owner(resource: str) -> str:
    """The ARN whose policy governs ``resource``: an object's bucket, a qualified function's function."""
    parts = resource.split(":")
    if len(parts) > 5 and parts[2] == "s3":
        return "arn:aws:s3:::" + parts[5].split("/", 1)[0]
    if len(parts) > 7 and parts[2] == "lambda":
        return ":".join(parts[:7])
    return resource


class Replay:
    """The recorded requests, evaluated again with one statement removed."""

    def __init__(self, recorded: list[Recorded]) -> None:
        self.recorded = recorded
        self._identity: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self._resource: dict[str, dict[str, Any] | None] = {}

    def identity(self, role: str) -> list[tuple[str, dict[str, Any]]]:
        if role not in self._identity:
            with MOTO_LOCK:
                self._identity[role] = role_policies(role)
        return self._identity[role]

    def resource(self, arn: str) -> dict[str, Any] | None:
        if arn not in self._resource:
            with MOTO_LOCK:
                self._resource[arn] = resource_policy(arn)
        return self._resource[arn]

    def denied(self, mutation: Mutation) -> Recorded | None:
        """The first recorded request the mutation would deny; None when every one stays allowed."""
        for entry in self.recorded:
            resource_owner = policy_owner(entry.request.resource)
            if mutation.kind == "role" and entry.role == mutation.owner:
                identity = [
                    (name, _without(doc, mutation.index) if name == mutation.policy else doc)
                    for name, doc in self.identity(mutation.owner)
                ]
                resource = self.resource(entry.request.resource)
            elif mutation.kind == "resource" and resource_owner == mutation.owner:
                identity = self.identity(entry.role) if entry.role else []
                found = self.resource(entry.request.resource)
                resource = None if found is None else _without(found, mutation.index)
            else:
                continue
            if not evaluate(entry.request, identity, resource).allowed:
                return entry
        return None


@contextmanager
def applied(cloud: LocalCloud, mutation: Mutation) -> Iterator[bool]:
    """The mutation made on the running stack through the AWS APIs, undone afterwards; yields False for a
    kind this run does not rewrite live (managed policies, Lambda permissions, bucket and key policies)."""
    if mutation.kind == "role":
        iam, name = cloud.client("iam"), mutation.owner.rsplit("/", 1)[-1]
        try:
            original = iam.get_role_policy(RoleName=name, PolicyName=mutation.policy)["PolicyDocument"]
        except cloud.client("iam").exceptions.NoSuchEntityException:
            yield False
            return
        iam.put_role_policy(
            RoleName=name,
            PolicyName=mutation.policy,
            PolicyDocument=json.dumps(_without(original, mutation.index)),
        )
        try:
            yield True
        finally:
            iam.put_role_policy(
                RoleName=name, PolicyName=mutation.policy, PolicyDocument=json.dumps(original)
            )
        return
    service = mutation.owner.split(":")[2]
    with MOTO_LOCK:
        original = resource_policy(mutation.owner)
    if original is None or service not in ("sqs", "sns"):
        yield False
        return
    changed = json.dumps(_without(original, mutation.index))
    if service == "sqs":
        sqs = cloud.client("sqs")
        url = sqs.get_queue_url(QueueName=mutation.owner.rsplit(":", 1)[-1])["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": changed})
        try:
            yield True
        finally:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(original)})
        return
    sns = cloud.client("sns")
    sns.set_topic_attributes(TopicArn=mutation.owner, AttributeName="Policy", AttributeValue=changed)
    try:
        yield True
    finally:
        sns.set_topic_attributes(
            TopicArn=mutation.owner, AttributeName="Policy", AttributeValue=json.dumps(original)
        )


def _covers(statement: dict[str, Any], action: str, resource: str) -> bool:
    return any(
        wildcard_match(a, action, ignore_case=True) for a in listed(statement.get("Action", "*"))
    ) and any(wildcard_match(r, resource) for r in listed(statement.get("Resource", "*")))


def verify(cloud: LocalCloud, mutation: Mutation, expected: Recorded) -> tuple[bool, str | None]:
    """Run the scenario that made ``expected`` with the mutation applied: (whether it could be applied,
    the message of a denial the local cloud gave for something the removed statement granted)."""
    permissions = cloud.permissions
    with applied(cloud, mutation) as live:
        if not live:
            return False, None
        before = sum(permissions.denied.values())
        run_demo(patterns=[expected.scenario], cloud=cloud, say=lambda _: None)
        new = sum(permissions.denied.values()) - before
    recent = list(permissions.recent)[-new:] if new else []
    return True, next((d.message for d in recent if _covers(mutation.statement, d.action, d.resource)), None)


def run(*, quick: bool = False) -> tuple[list[Metric], list[str]]:
    with tempfile.TemporaryDirectory(prefix="bench-permissions-") as tmp:
        cloud = LocalCloud(port=free_port(), api_port=free_port(), workdir=Path(tmp) / "cloud", iam="enforce")
        with cloud:
            permissions = cloud.permissions
            recorded: list[Recorded] = []
            permissions.recorded, permissions.scenario = recorded, "deploy"  # custom resources act as roles
            example.deploy(cloud)
            for name in SCENARIOS:
                permissions.scenario = name
                if not run_demo(patterns=[name], cloud=cloud, say=lambda _: None):
                    say(f"the {name} scenario failed without any mutation: the run measures nothing")
            permissions.recorded = None
            found = mutations(cloud)
            replay = Replay(recorded)
            caught = {m: replay.denied(m) for m in found}
            hits = {m: r for m, r in caught.items() if r is not None}
            missed = [m for m, r in caught.items() if r is None]
            say(f"{len(recorded)} allowed requests recorded over the deploy and {len(SCENARIOS)} scenarios")
            say(
                f"{len(hits)} of {len(found)} Allow statements caught when removed; {len(missed)} no scenario needs"
            )
            # Live checks: the first caught mutation of each scenario that ends soon, resource policies
            # first, until `wanted` could be applied (KMS, bucket and managed policies are not rewritten).
            verified, tried, wanted, scenarios = 0, 0, 1 if quick else 4, set()
            for mutation, expected in sorted(hits.items(), key=lambda hit: hit[0].kind == "role"):
                if (
                    tried == wanted
                    or expected.scenario not in QUICK_SCENARIOS
                    or expected.scenario in scenarios
                ):
                    continue
                live, message = verify(cloud, mutation, expected)
                if not live:
                    continue
                scenarios.add(expected.scenario)
                tried += 1
                verified += message is not None
                say(f"live: {mutation.label()} removed -> {message or 'NO DENIAL'}")
        notes = [f"permission statement no scenario needs: {m.label()}" for m in missed]
        run_command = command(GROUP, quick=quick)
        metrics = [
            Metric(
                f"{GROUP}.mutations_caught", len(hits), "statements", "Allow statements the stack grants",
                len(found), ratio(len(hits), len(found)), run_command,
            ),
            Metric(
                f"{GROUP}.live_mutations_denied", verified, "mutations",
                "caught mutations applied to the running stack", tried, ratio(verified, tried), run_command,
            ),
        ]  # fmt: skip
        return metrics, notes
