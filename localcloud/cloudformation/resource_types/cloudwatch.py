"""AWS::CloudWatch::Alarm on moto's CloudWatch backend."""

from __future__ import annotations

from typing import Any, ClassVar

from moto.cloudwatch.models import (
    CloudWatchBackend,
    Dimension,
    Metric,
    MetricDataQuery,
    MetricStat,
    cloudwatch_backends,
)
from moto.core.common_models import CloudFormationModel

from ._base import CfnResource, changed, properties, to_bool, to_float, to_int


def _backend(account_id: str, region_name: str) -> CloudWatchBackend:
    return cloudwatch_backends[account_id][region_name]


def _queries(metrics: list[dict[str, Any]] | None) -> list[MetricDataQuery] | None:
    """The ``Metrics`` (metric math) property as the objects moto's PutMetricAlarm handler builds."""
    if not metrics:
        return None
    queries = []
    for query in metrics:
        stat = query.get("MetricStat")
        metric_stat = None
        if stat:
            metric = stat["Metric"]
            dimensions = [Dimension(d["Name"], d["Value"]) for d in metric.get("Dimensions", [])]
            metric_stat = MetricStat(
                metric=Metric(metric["MetricName"], metric.get("Namespace"), dimensions),
                period=to_int(stat.get("Period")),  # type: ignore[arg-type]
                stat=stat.get("Stat"),
                unit=stat.get("Unit"),
            )
        queries.append(
            MetricDataQuery(
                query_id=query["Id"],
                label=query.get("Label"),  # type: ignore[arg-type]
                period=to_int(query.get("Period")),  # type: ignore[arg-type]
                return_data=to_bool(query.get("ReturnData"), default=True),  # type: ignore[arg-type]
                expression=query.get("Expression"),
                metric_stat=metric_stat,
            )
        )
    return queries


class CloudWatchAlarm(CfnResource, CloudFormationModel):
    """Ref is the alarm name (generated from the stack and logical id when AlarmName is absent)."""

    ATTRIBUTES: ClassVar[dict[str, str]] = {"Arn": "arn"}

    def __init__(self, name: str, arn: str, props: dict[str, Any]) -> None:
        self.name = name
        self.arn = arn
        self.props = props

    TYPE = "AWS::CloudWatch::Alarm"
    NAME_PROPERTY = "AlarmName"

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> CloudWatchAlarm:
        props = properties(cloudformation_json)
        alarm = cls._put(resource_name, props, account_id, region_name)
        return cls(resource_name, alarm.alarm_arn, props)

    @staticmethod
    def _put(name: str, props: dict[str, Any], account_id: str, region_name: str) -> Any:
        return _backend(account_id, region_name).put_metric_alarm(
            name=name,
            namespace=props.get("Namespace"),  # type: ignore[arg-type]
            metric_name=props.get("MetricName"),  # type: ignore[arg-type]
            comparison_operator=props["ComparisonOperator"],
            evaluation_periods=int(props["EvaluationPeriods"]),
            period=to_int(props.get("Period")),  # type: ignore[arg-type]
            threshold=to_float(props.get("Threshold")),  # type: ignore[arg-type]
            statistic=props.get("Statistic"),  # type: ignore[arg-type]
            description=props.get("AlarmDescription"),  # type: ignore[arg-type]
            dimensions=props.get("Dimensions") or [],
            alarm_actions=props.get("AlarmActions") or [],
            metric_data_queries=_queries(props.get("Metrics")),
            datapoints_to_alarm=to_int(props.get("DatapointsToAlarm")),
            extended_statistic=props.get("ExtendedStatistic"),
            ok_actions=props.get("OKActions") or [],
            insufficient_data_actions=props.get("InsufficientDataActions") or [],
            unit=props.get("Unit"),
            actions_enabled=to_bool(props.get("ActionsEnabled"), default=True),
            treat_missing_data=props.get("TreatMissingData"),
            evaluate_low_sample_count_percentile=props.get("EvaluateLowSampleCountPercentile"),
            threshold_metric_id=props.get("ThresholdMetricId"),
            tags=props.get("Tags"),
        )

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: CloudWatchAlarm,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> CloudWatchAlarm:
        props = properties(cloudformation_json)
        if changed(original_resource.props, props, "AlarmName"):
            replacement = cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )
            original_resource.delete(account_id, region_name)
            return replacement
        cls._put(original_resource.name, props, account_id, region_name)
        original_resource.props = props
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        _backend(account_id, region_name).delete_alarms([self.name])
