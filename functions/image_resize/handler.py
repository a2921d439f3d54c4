"""Image-resize worker: answers ``image.resize`` RPC requests from SQS (reply queue or task token)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from asyncstack.runtime.observability import logger, metrics, tracer
from asyncstack.runtime.rpc import RpcServer
from shared.thumbnails import IMAGE_RESIZE, resize_image

server = RpcServer(actions={IMAGE_RESIZE: resize_image})


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return server.handle(event, context)
