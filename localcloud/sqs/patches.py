"""Where moto's SQS must behave as AWS does: on the local clock, without invoking functions itself,
and without slowing down as queues fill."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_state: dict[str, Any] = {"clock": None}


def set_clock(clock: Any) -> None:
    """The local cloud's clock (``localcloud.clock.Clock``), or None for real time."""
    _state["clock"] = clock


def apply() -> None:
    _fifo_queue_names()
    _no_synchronous_sqs_trigger()
    _sqs_follows_the_clock()
    _cheap_retention_check()
    _sqs_scales_with_queue_depth()
    _waiting_receivers_hear_of_new_messages()


def _waiting_receivers_hear_of_new_messages() -> None:
    """Every message added to a queue, whatever the path (a send, SNS or EventBridge fan-out, an S3
    notification, a redrive), wakes the long polls waiting on that queue (``localcloud.server``)."""
    from moto.sqs.models import Queue

    from localcloud.server import message_added

    add_message = Queue.add_message

    def add_and_tell(self: Any, message: Any) -> None:
        add_message(self, message)
        message_added(self.name)

    Queue.add_message = add_and_tell  # type: ignore[method-assign]


def _fifo_queue_names() -> None:
    """CloudFormation names an unnamed FIFO queue with the ``.fifo`` suffix SQS requires; moto does not."""
    from moto.sqs.models import Queue

    create = Queue.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        properties = cloudformation_json.get("Properties") or {}
        if str(properties.get("FifoQueue")).lower() == "true" and not properties.get("QueueName"):
            resource_name = resource_name[:75] + ".fifo"
        return create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    Queue.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[assignment]


def _no_synchronous_sqs_trigger() -> None:
    """moto invokes the function inside ``SendMessage`` and ignores batching, concurrency and
    partial batch responses; the local runtime polls event source mappings itself, like Lambda."""
    from moto.sqs.models import Queue

    Queue.lambda_event_source_mappings = property(  # type: ignore[assignment]
        lambda self: {}, lambda self, value: None
    )


def _sqs_follows_the_clock() -> None:
    """SQS reads the local cloud's clock, as the scheduler does: advancing it expires visibility
    timeouts and delays at once, so a test or chaos run need not wait out a 3-minute timeout."""
    from moto.sqs import models

    real_unix_time = models.unix_time

    def unix_time(dt: Any = None) -> float:
        clock = _state["clock"]
        if dt is not None or clock is None:
            return float(real_unix_time(dt))
        return float(clock.timestamp())

    models.unix_time = unix_time
    models.unix_time_millis = lambda dt=None: unix_time(dt) * 1000.0


def _cheap_retention_check() -> None:
    """moto checks each received message's retention by building every queue attribute (three scans
    of the queue); reading the one attribute keeps ReceiveMessage from slowing as a queue grows."""
    from moto.sqs import models

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > models.unix_time())

    models.SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]


def _sqs_scales_with_queue_depth() -> None:
    """moto's SQS slows down as a queue fills: a send builds every queue attribute (three counts over
    all messages) to read one flag, a delete scans the messages twice, and listing the visible
    messages reads the clock twice per message. With 10,000 messages waiting that made draining a
    queue quadratic; these do the same work in one pass, with one reading of the clock."""
    import threading

    from moto.sqs import models
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    sending = threading.local()
    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    ):
        # Inside a send the attributes are built only for ContentBasedDeduplication: skip the counts.
        setattr(models.Queue, name, property(_unless(sending, getattr(models.Queue, name).fget)))

    send_message = models.SQSBackend.send_message

    def send_without_counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        sending.on = True
        try:
            return send_message(self, *args, **kwargs)
        finally:
            sending.on = False

    def messages(self: Any) -> list[Any]:
        now = models.unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and now >= m.delayed_until]

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # deleting twice succeeds, as in SQS
        for index, message in enumerate(self._messages):
            if message.had_receipt_handle(receipt_handle):
                del self._messages[index]
                self.pending_messages.discard(message)
                self.deleted_messages.update(message.all_receipt_handles)
                return
        raise ReceiptHandleIsInvalid()

    models.SQSBackend.send_message = send_without_counting  # type: ignore[method-assign]
    models.Queue.messages = property(messages)  # type: ignore[assignment,method-assign]
    models.Queue.delete_message = delete_message  # type: ignore[method-assign]


def _unless(sending: Any, count: Callable[[Any], int]) -> Callable[[Any], int]:
    def counted(queue: Any) -> int:
        return 0 if getattr(sending, "on", False) else count(queue)

    return counted
