"""Order saga, payment step: charges the order, or refunds it when a later step fails."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from asyncstack.runtime.observability import logger, metrics, tracer
from shared.order_saga import run_payment_step


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_payment_step(event)
