"""Fires the EventBridge Scheduler schedules that moto stores but never runs.

Each pass reads moto's scheduler backend and, on the local ``Clock``, reproduces what the service does:

- ``at()``, ``rate()`` and ``cron()`` expressions; ``ScheduleExpressionTimezone`` applies to at and cron
  (daylight saving as in ``localcloud.scheduler.cron``); StartDate/EndDate bound recurring schedules and are ignored
  for one-time ones, as AWS does. Rate schedules fire at StartDate (or the minute of creation) + k periods, k >= 1.
- Each due time is handled once: the engine keeps a per-schedule mark of the last due time handled. After
  a clock jump over several periods, AWS would have fired every one; the engine fires the most recent
  ``catch_up_limit`` (default 10) in order and logs how many older ones it skipped. A DISABLED schedule
  never fires, and re-enabling it does not replay the times it missed. A one-time schedule in the past
  fires once as soon as it is seen. FlexibleTimeWindow is ignored: targets are invoked at the due time.
- One-time schedules with ``ActionAfterCompletion: DELETE`` are deleted once their invocation has
  finished (delivered, dead-lettered or dropped); with NONE they stay and never fire again.
- A failed invocation is retried after ``retry_base_seconds * 2 ** (attempt - 1)`` clock seconds (capped
  at ``retry_max_seconds``, no jitter) while retries made < ``MaximumRetryAttempts`` (default 185) and the
  event, aged from its first attempt, stays within ``MaximumEventAgeInSeconds`` (default 86400). Then the
  rendered payload goes to ``DeadLetterConfig.Arn`` with the attributes Scheduler documents for
  dead-letter events, or is dropped with one log line.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from botocore import xform_name
from botocore.exceptions import ClientError
from moto.scheduler.models import Schedule, scheduler_backends

from localcloud.clock import Clock, ClockLoop
from localcloud.scheduler.cron import Cron

Outcome = Literal["delivered", "retrying", "dead-lettered", "dropped"]

DEFAULT_MAXIMUM_RETRY_ATTEMPTS = 185
DEFAULT_MAXIMUM_EVENT_AGE_SECONDS = 86400
POLL_SECONDS = 0.2

# ASCII digits only: \d alone would take any script's digits, which AWS does not.
_AT = re.compile(r"at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)", re.ASCII)
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", re.ASCII)
_CRON = re.compile(r"cron\((.+)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
# Universal-target service names that differ from boto3's.
_SDK_SERVICES = {"sfn": "stepfunctions"}


@dataclass(frozen=True)
class Firing:
    """One attempt at one due time of one schedule, and what came of it."""

    name: str
    group: str
    due: datetime
    attempt: int
    outcome: Outcome
    execution_id: str
    error: str | None = None


@dataclass
class SchedulerStats:
    fired: int = 0  # due times handed to their target (first attempts)
    delivered: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    skipped: int = 0  # missed due times beyond the catch-up limit


@dataclass
class _Tracked:
    creation_stamp: float  # moto's creation_date: a recreated schedule is a new schedule
    created: datetime  # the same instant on the clock
    mark: datetime | None = None  # due times at or before it are handled


@dataclass
class _Invocation:
    """One due time in flight: kept across retries with a snapshot of the target."""

    arn: str
    name: str
    group: str
    creation_stamp: float
    target: dict[str, Any]
    due: datetime
    first_attempt_at: datetime
    delete_after: bool
    execution_id: str
    attempt: int = 0
    next_at: datetime | None = None


def _instant(value: object) -> datetime | None:
    """StartDate/EndDate as moto stored them: epoch seconds from the SDK, or an ISO string."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return _instant(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def _every(anchor: datetime, period: timedelta, first: int) -> Iterator[datetime]:
    """``anchor + k * period`` for k >= ``first``, as far as ``datetime`` reaches (year 9999)."""
    for k in itertools.count(first):
        try:
            due = anchor + period * k
        except OverflowError:
            return
        yield due


def rate_period(expression: str) -> timedelta | None:
    """The period of a ``rate(value unit)`` expression (Scheduler's and EventBridge rules'), None for another kind."""
    match = _RATE.fullmatch(expression)
    if match is None:
        return None
    try:
        period = timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2].rstrip("s")])
    except OverflowError as error:
        raise ValueError(f"rate is too long for any due time: {expression!r}") from error
    if not period:
        raise ValueError(f"rate must be positive: {expression!r}")
    return period


def every(anchor: datetime, period: timedelta, after: datetime) -> Iterator[datetime]:
    """``anchor + k * period`` for k >= 1, strictly after ``after``."""
    return _every(anchor, period, 1 if after < anchor else (after - anchor) // period + 1)


def _occurrences(schedule: Schedule, created: datetime, after: datetime | None) -> Iterator[datetime]:
    """Due times strictly after ``after`` (None: from creation on), ascending, within StartDate/EndDate."""
    expression = schedule.schedule_expression.strip()
    zone = ZoneInfo(schedule.schedule_expression_timezone or "UTC")
    if match := _AT.fullmatch(expression):
        try:
            when = datetime.fromisoformat(match[1]).replace(tzinfo=zone).astimezone(UTC)
        except OverflowError as error:  # year 1 or 9999, moved out of range by the zone's offset
            raise ValueError(f"{expression!r} is out of range in UTC") from error
        if after is None or when > after:
            yield when
        return
    start, end = _instant(schedule.start_date), _instant(schedule.end_date)
    lower = created if after is None else after
    if period := rate_period(expression):
        # Scheduler works to the minute: a rate counts from the minute of creation (or from StartDate).
        dues: Iterator[datetime] = every(start or created.replace(second=0, microsecond=0), period, lower)
    elif match := _CRON.fullmatch(expression):
        if start is not None and start - timedelta(microseconds=1) > lower:
            lower = start - timedelta(microseconds=1)
        dues = Cron.parse(match[1]).occurrences(lower, zone)
    else:
        raise ValueError(f"unsupported schedule expression {expression!r}")
    for due in dues:
        if end is not None and due > end:
            return
        yield due


def _error(error: Exception) -> tuple[str, str]:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return str(details.get("Code") or "ClientError"), str(details.get("Message") or error)
    return type(error).__name__, str(error) or type(error).__name__


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SchedulerEngine:
    """Invokes the targets of due schedules; ``fire_due`` is one deterministic pass, ``start`` runs them."""

    def __init__(
        self,
        *,
        clock: Clock,
        client: Callable[[str], Any],
        role_client: Callable[[str, str], Any] | None = None,
        account_id: str = "123456789012",
        region: str = "us-east-1",
        retry_base_seconds: float = 1.0,
        retry_max_seconds: float = 300.0,
        catch_up_limit: int = 10,
        log: Callable[[str], None] = print,
    ) -> None:
        self._clock = clock
        self._client_factory = client
        self._role_client = role_client  # (service, role ARN): a client acting as the schedule's role
        self._clients: dict[str, Any] = {}
        self._account_id = account_id
        self._region = region
        self._retry_base = retry_base_seconds
        self._retry_max = retry_max_seconds
        self._catch_up_limit = max(1, catch_up_limit)
        self._log = log
        self._lock = threading.RLock()
        self._tracked: dict[str, _Tracked] = {}
        self._retries: list[_Invocation] = []
        self._complained: set[tuple[str, float]] = set()
        self._loop = ClockLoop(clock, self.fire_due, name="scheduler", seconds=POLL_SECONDS, log=log)
        self.stats = SchedulerStats()

    # -- the pass --------------------------------------------------------------------------------

    def fire_due(self) -> list[Firing]:
        """Run the retries that are due, then fire every due time not yet handled, as of clock.now()."""
        with self._lock:
            now = self._clock.now()
            due = sorted((i for i in self._retries if i.next_at and i.next_at <= now), key=_retry_order)
            self._retries = [i for i in self._retries if not (i.next_at and i.next_at <= now)]
            firings = [self._attempt(invocation, now) for invocation in due]
            seen: set[str] = set()
            for schedule in self._schedules():
                seen.add(schedule.arn)
                try:
                    firings += self._fire_schedule(schedule, now)
                except Exception as error:
                    self._complain(schedule, error)
            for arn in set(self._tracked) - seen:
                del self._tracked[arn]
            return firings

    def pending(self) -> int:
        """How many enabled schedules will still fire (one-time ones not yet fired, recurring ones not ended)."""
        with self._lock:
            count = 0
            for schedule in self._schedules():
                if (schedule.state or "ENABLED") != "ENABLED":
                    continue
                tracked = self._track(schedule)
                try:
                    count += next(_occurrences(schedule, tracked.created, tracked.mark), None) is not None
                except Exception as error:
                    self._complain(schedule, error)
            return count

    def next_due(self) -> datetime | None:
        """When the next firing or retry is due on the clock, or None if nothing will fire."""
        with self._lock:
            due = [i.next_at for i in self._retries if i.next_at]
            for schedule in self._schedules():
                if (schedule.state or "ENABLED") != "ENABLED":
                    continue
                tracked = self._track(schedule)
                try:
                    first = next(_occurrences(schedule, tracked.created, tracked.mark), None)
                except Exception as error:
                    self._complain(schedule, error)
                    continue
                if first is not None:
                    due.append(first)
            return min(due, default=None)

    def _schedules(self) -> list[Schedule]:
        backend = scheduler_backends[self._account_id][self._region]
        schedules = [
            s for group in list(backend.schedule_groups.values()) for s in list(group.schedules.values())
        ]
        return sorted(schedules, key=lambda s: (s.group_name, s.name))

    def _track(self, schedule: Schedule) -> _Tracked:
        tracked = self._tracked.get(schedule.arn)
        if tracked is None or tracked.creation_stamp != schedule.creation_date:
            stamp = float(schedule.creation_date)
            tracked = self._tracked[schedule.arn] = _Tracked(stamp, self._clock.at_real(stamp))
        return tracked

    def _fire_schedule(self, schedule: Schedule, now: datetime) -> list[Firing]:
        tracked = self._track(schedule)
        if (schedule.state or "ENABLED") != "ENABLED":
            # Times that pass while disabled are not replayed when the schedule is enabled again.
            tracked.mark = max(tracked.mark or now, now)
            return []
        recent: deque[datetime] = deque(maxlen=self._catch_up_limit)
        count = 0
        for due in _occurrences(schedule, tracked.created, tracked.mark):
            if due > now:
                break
            recent.append(due)
            count += 1
        if not count:
            return []
        tracked.mark = recent[-1]
        if count > len(recent):
            self.stats.skipped += count - len(recent)
            self._log(
                f"scheduler: {schedule.group_name}/{schedule.name} missed {count} due times; "
                f"firing the latest {len(recent)}, skipping {count - len(recent)}"
            )
        one_time = _AT.fullmatch(schedule.schedule_expression.strip()) is not None
        firings = []
        for due in recent:
            invocation = _Invocation(
                arn=schedule.arn,
                name=schedule.name,
                group=schedule.group_name,
                creation_stamp=tracked.creation_stamp,
                target=copy.deepcopy(schedule.target),
                due=due,
                first_attempt_at=now,
                delete_after=one_time and schedule.action_after_completion == "DELETE",
                execution_id=str(uuid.uuid4()),
            )
            self.stats.fired += 1
            firings.append(self._attempt(invocation, now))
        return firings

    def _complain(self, schedule: Schedule, error: Exception) -> None:
        """Log a schedule the engine cannot handle once per version of it, then leave it alone."""
        key = (schedule.arn, float(schedule.last_modified_date))
        if key not in self._complained:
            self._complained.add(key)
            self._log(f"scheduler: skipping {schedule.group_name}/{schedule.name}: {error}")

    # -- one attempt -----------------------------------------------------------------------------

    def _attempt(self, invocation: _Invocation, now: datetime) -> Firing:
        invocation.attempt += 1
        try:
            self._deliver(invocation)
        except Exception as error:
            return self._failed(invocation, now, error)
        self.stats.delivered += 1
        self._complete(invocation)
        return self._record(invocation, "delivered")

    def _failed(self, invocation: _Invocation, now: datetime, error: Exception) -> Firing:
        self.stats.failed_attempts += 1
        code, message = _error(error)
        policy = invocation.target.get("RetryPolicy") or {}
        maximum_retries = int(policy.get("MaximumRetryAttempts", DEFAULT_MAXIMUM_RETRY_ATTEMPTS))
        maximum_age = int(policy.get("MaximumEventAgeInSeconds", DEFAULT_MAXIMUM_EVENT_AGE_SECONDS))
        condition = "MaximumRetryAttempts"
        if invocation.attempt <= maximum_retries:
            delay = min(self._retry_base * 2.0 ** min(invocation.attempt - 1, 64), self._retry_max)
            next_at = now + timedelta(seconds=delay)
            if (next_at - invocation.first_attempt_at).total_seconds() <= maximum_age:
                invocation.next_at = next_at
                self._retries.append(invocation)
                return self._record(invocation, "retrying", f"{code}: {message}; next attempt in {delay:g} s")
            condition = "MaximumEventAgeInSeconds"
        outcome = self._dead_letter(invocation, condition, code, message)
        self._complete(invocation)
        detail = f"{condition} exhausted: {code}: {message}"
        if outcome == "dropped":
            detail += "; no dead-letter queue took it"
        return self._record(invocation, outcome, detail)

    def _dead_letter(self, invocation: _Invocation, condition: str, code: str, message: str) -> Outcome:
        queue_arn = (invocation.target.get("DeadLetterConfig") or {}).get("Arn")
        if not queue_arn:
            self.stats.dropped += 1
            return "dropped"
        attributes = {
            "ERROR_CODE": code,
            "ERROR_MESSAGE": message,
            "EXECUTION_ID": invocation.execution_id,
            "EXHAUSTED_RETRY_CONDITION": condition,
            "IS_PAYLOAD_TRUNCATED": "false",
            "RETRY_ATTEMPTS": str(invocation.attempt - 1),
            "SCHEDULED_TIME": _stamp(invocation.due),
            "SCHEDULE_ARN": invocation.arn,
            "TARGET_ARN": invocation.target["Arn"],
        }
        try:
            self._client("sqs", invocation.target.get("RoleArn")).send_message(
                QueueUrl=self._queue_url(queue_arn),
                MessageBody=self._render(invocation),
                MessageAttributes={
                    name: {"DataType": "String", "StringValue": value or "-"}
                    for name, value in attributes.items()
                },
            )
        except Exception as error:
            self._log(f"scheduler: dead-letter queue {queue_arn} refused the event: {_error(error)}")
            self.stats.dropped += 1
            return "dropped"
        self.stats.dead_lettered += 1
        return "dead-lettered"

    def _complete(self, invocation: _Invocation) -> None:
        """ActionAfterCompletion DELETE: remove the one-time schedule (unless it was replaced meanwhile)."""
        if not invocation.delete_after:
            return
        backend = scheduler_backends[self._account_id][self._region]
        try:
            group = backend.schedule_groups.get(invocation.group)
            current = group.schedules.get(invocation.name) if group else None
            if current is not None and current.creation_date == invocation.creation_stamp:
                backend.delete_schedule(invocation.group, invocation.name)
        except Exception as error:
            self._log(f"scheduler: could not delete {invocation.group}/{invocation.name}: {error}")

    def _record(self, invocation: _Invocation, outcome: Outcome, detail: str | None = None) -> Firing:
        if outcome != "delivered":  # a line per delivery would bury everything else (stats count them)
            self._log(
                f"scheduler: {invocation.group}/{invocation.name} due {_stamp(invocation.due)} "
                f"attempt {invocation.attempt}: {outcome}" + (f" ({detail})" if detail else "")
            )
        return Firing(
            name=invocation.name,
            group=invocation.group,
            due=invocation.due,
            attempt=invocation.attempt,
            outcome=outcome,
            execution_id=invocation.execution_id,
            error=detail if outcome != "delivered" else None,
        )

    # -- targets ---------------------------------------------------------------------------------

    def _render(self, invocation: _Invocation) -> str:
        """Target.Input with Scheduler's context attributes substituted."""
        body = str(invocation.target.get("Input") or "{}")
        for name, value in {
            "schedule-arn": invocation.arn,
            "scheduled-time": _stamp(invocation.due),
            "execution-id": invocation.execution_id,
            "attempt-number": str(invocation.attempt),
        }.items():
            body = body.replace(f"<aws.scheduler.{name}>", value)
        return body

    def _deliver(self, invocation: _Invocation) -> None:
        """One templated (or universal) target call; any exception is a failed attempt."""
        target = invocation.target
        arn = str(target["Arn"])
        body = self._render(invocation)
        parts = arn.split(":", 5)
        if len(parts) != 6:
            raise ValueError(f"not an ARN: {arn!r}")
        service, resource = parts[2], parts[5]
        role = target.get("RoleArn")
        if service == "sqs":
            message: dict[str, Any] = {"QueueUrl": self._queue_url(arn), "MessageBody": body}
            if resource.endswith(".fifo"):
                group_id = (target.get("SqsParameters") or {}).get("MessageGroupId")
                message |= {"MessageDeduplicationId": invocation.execution_id}
                message |= {"MessageGroupId": group_id} if group_id else {}
            self._client("sqs", role).send_message(**message)
        elif service == "sns":
            self._client("sns", role).publish(TopicArn=arn, Message=body)
        elif service == "lambda":
            self._client("lambda", role).invoke(
                FunctionName=arn, InvocationType="Event", Payload=body.encode()
            )
        elif service == "states":
            self._client("stepfunctions", role).start_execution(
                stateMachineArn=arn, name=invocation.execution_id, input=body
            )
        elif service == "events":
            parameters = target.get("EventBridgeParameters") or {}
            entry = {
                "EventBusName": arn,
                "Source": parameters.get("Source", "aws.scheduler"),
                "DetailType": parameters.get("DetailType", "Scheduled Event"),
                "Detail": body,
            }
            response = self._client("events", role).put_events(Entries=[entry])
            if response.get("FailedEntryCount"):
                raise RuntimeError(f"put_events rejected the event: {response.get('Entries')}")
        elif service == "scheduler" and resource.startswith("aws-sdk:"):
            _, api_service, action = resource.split(":")
            client = self._client(_SDK_SERVICES.get(api_service, api_service), role)
            getattr(client, xform_name(action))(**json.loads(body))
        else:
            raise ValueError(f"unsupported target {arn}")

    def _queue_url(self, queue_arn: str) -> str:
        _, _, _, _, account, name = queue_arn.split(":", 5)
        response = self._client("sqs").get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
        return str(response["QueueUrl"])

    def _client(self, service: str, role: str | None = None) -> Any:
        """The client a target call goes out with: as the schedule's role when roles are given (Scheduler
        calls targets and the DLQ only as it), else the engine's own."""
        if self._role_client is not None and role:
            return self._role_client(service, role)  # not kept: the role's credentials are renewed
        if service not in self._clients:
            self._clients[service] = self._client_factory(service)
        return self._clients[service]

    # -- background thread -----------------------------------------------------------------------

    def start(self) -> None:
        """Fire due schedules about every POLL_SECONDS of real time, and at once when the clock moves."""
        self._loop.start()

    def close(self) -> None:
        self._loop.close()

    def __enter__(self) -> SchedulerEngine:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _retry_order(invocation: _Invocation) -> tuple[datetime, str, str]:
    assert invocation.next_at is not None
    return invocation.next_at, invocation.group, invocation.name
