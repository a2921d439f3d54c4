"""Fires EventBridge rules that have a ``ScheduleExpression``, which moto stores but never runs.

On the local ``Clock``, as EventBridge does: ``rate()`` fires at the rule's creation (as this engine
first sees it) plus whole periods; ``cron()`` fires in UTC, to the minute. Each due time sends the
"Scheduled Event" EventBridge documents to the rule's targets, with their input (constant, path or
transformer), through the same delivery as events put on a bus. A DISABLED rule does not fire and does
not replay what it missed; after a jump of the clock over several due times, the latest
``catch_up_limit`` fire, in order.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from localcloud.clock import Clock, ClockLoop
from localcloud.scheduler.cron import Cron
from localcloud.scheduler.engine import every, rate_period

CREATED_AT = "localcloud_created_at"  # set on moto's rules when created (real time; events/patches.py)

POLL_SECONDS = 0.2
_CRON = re.compile(r"cron\((.+)\)")


def due_times(expression: str, created: datetime, after: datetime) -> Iterator[datetime]:
    """The due times of a rule's schedule expression strictly after ``after``, ascending."""
    expression = expression.strip()
    if period := rate_period(expression):
        return every(created, period, after)
    if match := _CRON.fullmatch(expression):
        return Cron.parse(match[1]).occurrences(after, UTC)
    raise ValueError(f"unsupported schedule expression {expression!r}: use rate(...) or cron(...)")


def scheduled_event(rule: Any, due: datetime) -> dict[str, Any]:
    """The event EventBridge sends a scheduled rule's targets."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": rule.account_id,
        "time": due.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": rule.region_name,
        "resources": [rule.arn],
        "detail": {},
    }


@dataclass
class _Tracked:
    created: datetime
    mark: datetime  # the last due time handled


@dataclass
class RuleScheduleStats:
    fired: int = 0
    skipped: int = 0


class RuleSchedules:
    """Fires the scheduled rules of moto's EventBridge; ``fire_due`` is one pass, ``start`` runs them."""

    def __init__(
        self,
        *,
        clock: Clock,
        lock: AbstractContextManager[Any],
        account_id: str,
        region: str,
        catch_up_limit: int = 10,
        log: Callable[[str], None] = print,
    ) -> None:
        self._clock = clock
        self._moto_lock = lock  # delivery reads and writes moto's backends, as PutEvents does
        self._account_id = account_id
        self._region = region
        self._catch_up_limit = max(1, catch_up_limit)
        self._log = log
        self._tracked: dict[str, _Tracked] = {}
        self._complained: set[tuple[str, str]] = set()
        self._loop = ClockLoop(clock, self.fire_due, name="scheduled rules", seconds=POLL_SECONDS, log=log)
        self.stats = RuleScheduleStats()

    def fire_due(self) -> int:
        """Send every due time not yet handled, as of clock.now(); how many were sent."""
        from moto.events.models import events_backends

        now = self._clock.now()
        sent = 0
        with self._moto_lock:
            rules = [
                rule
                for bus in list(events_backends[self._account_id][self._region].event_buses.values())
                for rule in list(bus.rules.values())
                if rule.scheduled_expression
            ]
            for rule in rules:
                try:
                    sent += self._fire_rule(rule, now)
                except Exception as error:
                    key = (rule.arn, str(rule.scheduled_expression))
                    if key not in self._complained:
                        self._complained.add(key)
                        self._log(f"events: skipping scheduled rule {rule.arn}: {error}")
            for arn in set(self._tracked) - {rule.arn for rule in rules}:
                del self._tracked[arn]
        return sent

    def _fire_rule(self, rule: Any, now: datetime) -> int:
        if rule.arn not in self._tracked:
            stamped = getattr(rule, CREATED_AT, None)  # seen after the clock moved: count from creation
            moment = self._clock.at_real(stamped) if stamped is not None else now
            created = datetime.fromtimestamp(
                round(moment.timestamp()), UTC
            )  # EventBridge counts whole seconds
            self._tracked[rule.arn] = _Tracked(created=created, mark=created)
        tracked = self._tracked[rule.arn]
        if rule.state != "ENABLED":
            tracked.mark = max(tracked.mark, now)  # what passes while disabled is not replayed
            return 0
        recent: deque[datetime] = deque(maxlen=self._catch_up_limit)
        count = 0
        for due in due_times(rule.scheduled_expression, tracked.created, tracked.mark):
            if due > now:
                break
            recent.append(due)
            count += 1
        if not count:
            return 0
        tracked.mark = recent[-1]
        if count > len(recent):
            self.stats.skipped += count - len(recent)
            self._log(f"events: {rule.arn} missed {count} due times; firing the latest {len(recent)}")
        for due in recent:
            rule.send_to_targets(scheduled_event(rule, due))
            self.stats.fired += 1
        return len(recent)

    def start(self) -> None:
        self._loop.start()

    def close(self) -> None:
        self._loop.close()
