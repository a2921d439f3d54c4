"""Jobs worker: runs delayed and recurring jobs when they come due, each once."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from asyncstack.runtime.consumer import EventConsumer
from asyncstack.runtime.observability import logger, metrics, tracer
from shared.signup import DAILY_SUMMARY, SIGNUP_REMINDER, TRIAL_EXPIRY_WARNING, SummaryJob, UserJob, run_job

consumer = EventConsumer(
    name="jobs",
    accepts={SIGNUP_REMINDER: UserJob, TRIAL_EXPIRY_WARNING: UserJob, DAILY_SUMMARY: SummaryJob},
    process=run_job,
)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return consumer.handle(event, context)
