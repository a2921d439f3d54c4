"""Signup worker: welcomes new users and schedules (or cancels) their follow-up emails."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from asyncstack.runtime.consumer import EventConsumer
from asyncstack.runtime.observability import logger, metrics, tracer
from shared.events import USER_CONVERTED, USER_SIGNED_UP, UserConverted, UserSignedUp
from shared.signup import handle_user_event

consumer = EventConsumer(
    name="signup",
    accepts={USER_SIGNED_UP: UserSignedUp, USER_CONVERTED: UserConverted},
    process=handle_user_event,
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return consumer.handle(event, context)
