"""AWS::Scheduler::ScheduleGroup and AWS::Scheduler::Schedule on moto's EventBridge Scheduler backend."""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from moto.core.common_models import CloudFormationModel
from moto.core.exceptions import JsonRESTError
from moto.scheduler.exceptions import ScheduleGroupNotFound, ScheduleNotFound
from moto.scheduler.models import EventBridgeSchedulerBackend, scheduler_backends

from ._base import CfnResource, changed, physical_name, properties, tag_map, to_epoch

NAME_LIMIT = 64


def _backend(account_id: str, region_name: str) -> EventBridgeSchedulerBackend:
    return scheduler_backends[account_id][region_name]


class SchedulerScheduleGroup(CfnResource, CloudFormationModel):
    """Ref is the group name; deleting the group deletes its schedules, as in AWS."""

    ATTRIBUTES: ClassVar[dict[str, str]] = {
        "Arn": "arn",
        "CreationDate": "creation_date",
        "LastModificationDate": "last_modification_date",
        "State": "state",
    }

    def __init__(self, name: str, arn: str, created: Any, props: dict[str, Any]) -> None:
        self.name = name
        self.arn = arn
        self.creation_date = self.last_modification_date = created
        self.state = "ACTIVE"
        self.props = props

    TYPE = "AWS::Scheduler::ScheduleGroup"
    NAME_PROPERTY = "Name"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> SchedulerScheduleGroup:
        props = properties(cloudformation_json)
        name = physical_name(resource_name, NAME_LIMIT)
        backend = _backend(account_id, region_name)
        if name in backend.schedule_groups:
            raise JsonRESTError("ConflictException", f"Schedule group {name} already exists.")
        group = backend.create_schedule_group(name, props.get("Tags") or [])
        return cls(name, group.arn, group.created_on, props)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: SchedulerScheduleGroup,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> SchedulerScheduleGroup:
        props = properties(cloudformation_json)
        if changed(original_resource.props, props, "Name"):
            replacement = cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )
            original_resource.delete(account_id, region_name)
            return replacement
        backend = _backend(account_id, region_name)
        old_tags = tag_map(original_resource.props.get("Tags"))
        backend.untag_resource(
            original_resource.arn, [key for key in old_tags if key not in tag_map(props.get("Tags"))]
        )
        backend.tag_resource(original_resource.arn, props.get("Tags") or [])
        original_resource.props = props
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        _backend(account_id, region_name).schedule_groups.pop(self.name, None)


class SchedulerSchedule(CfnResource, CloudFormationModel):
    """Ref is the schedule name; Name and GroupName changes replace it, everything else updates in place."""

    ATTRIBUTES: ClassVar[dict[str, str]] = {"Arn": "arn"}

    def __init__(self, name: str, group_name: str, arn: str, props: dict[str, Any]) -> None:
        self.name = name
        self.group_name = group_name
        self.arn = arn
        self.props = props

    TYPE = "AWS::Scheduler::Schedule"
    NAME_PROPERTY = "Name"

    @staticmethod
    def _arguments(props: dict[str, Any]) -> dict[str, Any]:
        window = dict(props["FlexibleTimeWindow"])
        if "MaximumWindowInMinutes" in window:
            window["MaximumWindowInMinutes"] = int(window["MaximumWindowInMinutes"])
        target = dict(props["Target"])
        if "RetryPolicy" in target:
            target["RetryPolicy"] = {key: int(value) for key, value in target["RetryPolicy"].items()}
        return {
            "description": props.get("Description"),
            "end_date": to_epoch(props.get("EndDate")),
            "flexible_time_window": window,
            "kms_key_arn": props.get("KmsKeyArn"),
            "schedule_expression": props["ScheduleExpression"],
            "schedule_expression_timezone": props.get("ScheduleExpressionTimezone"),
            "start_date": to_epoch(props.get("StartDate")),
            "state": props.get("State") or "ENABLED",
            "target": target,
        }

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> SchedulerSchedule:
        props = properties(cloudformation_json)
        name = physical_name(resource_name, NAME_LIMIT)
        group_name = props.get("GroupName") or "default"
        schedule = _backend(account_id, region_name).create_schedule(
            name=name,
            group_name=group_name,
            action_after_completion=props.get("ActionAfterCompletion"),
            **cls._arguments(props),
        )
        return cls(name, group_name, schedule.arn, props)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: SchedulerSchedule,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> SchedulerSchedule:
        props = properties(cloudformation_json)
        if changed(original_resource.props, props, "Name", "GroupName"):
            replacement = cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )
            original_resource.delete(account_id, region_name)
            return replacement
        schedule = _backend(account_id, region_name).update_schedule(
            name=original_resource.name, group_name=original_resource.group_name, **cls._arguments(props)
        )
        schedule.action_after_completion = props.get("ActionAfterCompletion")
        original_resource.props = props
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        with contextlib.suppress(ScheduleGroupNotFound, ScheduleNotFound):
            _backend(account_id, region_name).delete_schedule(self.group_name, self.name)
