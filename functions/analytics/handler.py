"""Analytics worker: fire-and-forget tracking, one keyed row per event, written in bulk."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from asyncstack.runtime.consumer import EventConsumer
from asyncstack.runtime.observability import logger, metrics, tracer
from shared.analytics import AnalyticsSink
from shared.events import ORDER_CREATED, OrderCreated

consumer = EventConsumer(
    name="analytics", accepts={ORDER_CREATED: OrderCreated}, bulk=AnalyticsSink(), idempotent=False
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return consumer.handle(event, context)
