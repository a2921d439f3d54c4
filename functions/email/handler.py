"""Email worker: sends one confirmation per ``order.created`` event."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from asyncstack.runtime.consumer import EventConsumer
from asyncstack.runtime.observability import logger, metrics, tracer
from shared.events import ORDER_CREATED, OrderCreated
from shared.mailer import send_confirmation

consumer = EventConsumer(name="email", accepts={ORDER_CREATED: OrderCreated}, process=send_confirmation)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return consumer.handle(event, context)
