"""The order saga: charge payment -> reserve inventory -> send confirmation, compensated in reverse.

Every step is a Lambda task with a timeout. Transient errors retry with exponential backoff,
a maximum delay and full jitter; anything else (a business rule, or retries exhausted) is
caught and runs the compensations of the steps already done, newest first (release inventory,
then refund), then tells the customer and fails with the original error and cause. When a step
failed without a business answer (it timed out, its retries ran out), it may have taken effect,
so its own compensation runs as well.

Standard, not Express: the execution name is the order id, and only Standard workflows refuse a
second execution of the same name. Charging a card must happen once per order.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from asyncstack.cdk.workflow import Workflow, step
from shared.order_saga import OutOfStockError
from shared.payments import InvalidOrderError, PaymentDeclinedError, PaymentProviderUnavailableError

# The workflow matches errors by class name (Lambda reports it as errorType): named from the classes,
# a rename cannot leave the workflow matching a name nothing raises.
RETRIED = (PaymentProviderUnavailableError.__name__,)
CHARGE_REFUSED = (PaymentDeclinedError.__name__, InvalidOrderError.__name__)
RESERVATION_REFUSED = (OutOfStockError.__name__, InvalidOrderError.__name__)


def saga_step(
    scope: Construct,
    construct_id: str,
    *,
    function: lambda_.IFunction,
    action: str,
    result_path: str | None,
    retries: int = 3,
    max_delay: Duration = Duration.seconds(8),
    extra_payload: dict[str, object] | None = None,
) -> tasks.LambdaInvoke:
    """One saga step: ``{"action": action, "order": $.order}`` to ``function``, retried when transient."""
    return step(
        scope,
        construct_id,
        function=function,
        payload={"action": action, "order": sfn.JsonPath.object_at("$.order"), **(extra_payload or {})},
        result_path=result_path,
        retries=retries,
        max_delay=max_delay,
        retry_on=RETRIED,
    )


class OrderSaga(Construct):
    """The order workflow over three step functions (payments, inventory, notifications)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        payments: lambda_.IFunction,
        inventory: lambda_.IFunction,
        notifications: lambda_.IFunction,
        timeout: Duration = Duration.minutes(15),
        alarm_actions: Sequence[cloudwatch.IAlarmAction] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        accept = sfn.Pass(self, "AcceptOrder", parameters={"order": sfn.JsonPath.entire_payload})
        charge = saga_step(self, "ChargePayment", function=payments, action="charge", result_path="$.payment")
        reserve = saga_step(
            self, "ReserveInventory", function=inventory, action="reserve", result_path="$.reservation"
        )
        confirm = saga_step(
            self, "SendConfirmation", function=notifications, action="confirm", result_path="$.confirmation"
        )

        # Compensations must eventually succeed: more, longer retries; if they still fail, an operator
        # has to finish the job, and the execution fails with a name that says so.
        def compensation(construct_id: str, function: lambda_.IFunction, action: str) -> tasks.LambdaInvoke:
            return saga_step(
                self,
                construct_id,
                function=function,
                action=action,
                result_path=None,
                retries=6,
                max_delay=Duration.seconds(30),
            )

        release = compensation("ReleaseInventory", inventory, "release")
        refund = compensation("RefundPayment", payments, "refund")
        notify = saga_step(
            self,
            "NotifyFailure",
            function=notifications,
            action="notify_failure",
            result_path=None,
            extra_payload={"failure": sfn.JsonPath.object_at("$.failure")},
        )
        failed = sfn.Fail(self, "OrderFailed", error_path="$.failure.Error", cause_path="$.failure.Cause")
        stuck = sfn.Fail(
            self,
            "CompensationFailed",
            error="CompensationFailed",
            cause="a compensating step kept failing: finish the refund or release by hand",
        )

        release.next(refund)
        refund.next(notify)
        notify.next(failed)
        for compensating in (release, refund):
            compensating.add_catch(stuck, errors=["States.ALL"], result_path="$.compensation_error")
        # The customer notice is best effort: the order has failed either way.
        notify.add_catch(failed, errors=["States.ALL"], result_path="$.notification_error")

        # A business error means the step did not happen: compensate the steps before it. Any other
        # failure (a timeout, retries exhausted) leaves it unknown whether the step took effect, so its
        # own compensation runs too; refund and release are idempotent and cost nothing when there is
        # nothing to undo, and a void stops a late charge from going through.
        charge.add_catch(notify, errors=list(CHARGE_REFUSED), result_path="$.failure")
        charge.add_catch(refund, errors=["States.ALL"], result_path="$.failure")
        reserve.add_catch(refund, errors=list(RESERVATION_REFUSED), result_path="$.failure")
        reserve.add_catch(release, errors=["States.ALL"], result_path="$.failure")
        confirm.add_catch(release, errors=["States.ALL"], result_path="$.failure")

        definition = accept.next(charge).next(reserve).next(confirm).next(sfn.Succeed(self, "OrderConfirmed"))
        self.workflow = Workflow(
            self,
            "Workflow",
            definition=definition,
            kind=sfn.StateMachineType.STANDARD,
            reason="Standard: one execution per order id (the execution name), so a card is charged once.",
            timeout=timeout,
            alarm_actions=alarm_actions,
        )
        self.workflow.acknowledge_invoked(payments, inventory, notifications)
