"""Webhook delivery worker: POSTs the signed event of an ended export job to its callback, with retries.

Each message is one delivery attempt, a delayed job of the "Webhooks" jobs queue; see
shared/webhook_delivery.py.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from asyncstack.runtime.consumer import EventConsumer
from asyncstack.runtime.observability import logger, metrics, tracer
from asyncstack.runtime.webhooks import DELIVERY_JOB_TYPE, DeliveryJob
from shared.webhook_delivery import deliver

consumer = EventConsumer(name="webhook-delivery", accepts={DELIVERY_JOB_TYPE: DeliveryJob}, process=deliver)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return consumer.handle(event, context)
