"""Export worker: one step of a report export (run a slice of it, or record its failure).

The export state machine invokes it in a loop until the result says ``done``; see shared/exports.py.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from asyncstack.runtime.observability import logger, metrics, tracer
from shared.exports import handle


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
