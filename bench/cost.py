"""``python -m bench.cost``: the monthly AWS bill of the synthesized stack at a given volume.

Three inputs: the synthesized template (what is deployed: memory and architecture of each function,
alarms, secrets, recurring schedules), a profile measured by the benchmarks on the local cloud (what
one unit of work costs in requests, request units, invocations and durations) and the unit prices of
``prices.json``. ``estimate`` is pure arithmetic on those three, so it can be checked by hand.

The profile is ``bench/profile.json`` when ``python -m bench --only requests`` has written one on
this machine (untracked), otherwise the committed ``bench/reference_profile.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

from localcloud.scheduler.cron import Cron, CronError

DEFAULT_TEMPLATE = "cdk.out/AsyncStack.template.json"
# Written by `python -m bench --only requests` (untracked); the committed reference is used without it.
MEASURED_PROFILE = Path(__file__).with_name("profile.json")
REFERENCE_PROFILE = Path(__file__).with_name("reference_profile.json")
DEFAULT_PRICES = Path(__file__).with_name("prices.json")
MEASURE = ".venv/bin/python -m bench --only requests"

# The Gregorian calendar repeats every 400 years = 146,097 days = 4,800 months, a whole number of
# weeks: averaging over that cycle makes cron counts exact for any weekday, day-of-month and month choice.
CYCLE_START = date(2000, 1, 1)
CYCLE_DAYS = 146097
CYCLE_MONTHS = 4800
DAYS_PER_MONTH = CYCLE_DAYS / CYCLE_MONTHS  # 30.436875
ARCHITECTURES = ("arm64", "x86_64")
CONFIGURATIONS = ("stack", "naive")
# Services whose requests the profile counts but which are priced by another measure.
PRICED_OTHERWISE = {
    "dynamodb": "priced by request units",
    "lambda": "priced by invocations",
    "states": "priced by state transitions",
    "scheduler": "priced by invocations",
}
NOT_MODELLED = (
    "free tiers and volume discounts",
    "CloudWatch Logs ingestion and storage",
    "X-Ray traces",
    "CloudWatch custom metrics",
    "data transfer",
    "DynamoDB, PITR backup and S3 storage",
    "S3 and API Gateway requests",
    "KMS requests of encrypted topics",
    "Secrets Manager API calls",
    "empty receives of idle SQS pollers",
    "the work the recurring schedules start",
    "payloads over 64 KB (billed as several requests)",
)


class CostError(Exception):
    """Bad input; the message says what is wrong and how to fix it."""


# -- the template -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Function:
    memory_mb: int
    architecture: str


@dataclass(frozen=True)
class TemplateFacts:
    functions: Mapping[str, Function]
    alarm_metrics: int
    secrets: int
    standard_state_machines: int
    express_state_machines: int
    schedule_invocations_per_month: float
    fifo_queues: int


def _resources(template: Mapping[str, Any], kind: str) -> list[tuple[str, Mapping[str, Any]]]:
    """(logical id, Properties) of every resource of a type."""
    resources = template.get("Resources")
    if not isinstance(resources, dict):
        raise CostError("the template has no Resources section: run `make synth` again")
    return [
        (logical_id, resource.get("Properties") or {})
        for logical_id, resource in resources.items()
        if isinstance(resource, dict) and resource.get("Type") == kind
    ]


def _function(logical_id: str, properties: Mapping[str, Any]) -> Function:
    memory = properties.get("MemorySize", 128)
    architectures = properties.get("Architectures", ["x86_64"])
    if not isinstance(memory, int) or isinstance(memory, bool) or memory <= 0:
        raise CostError(f"function {logical_id}: MemorySize {memory!r} is not a number of MB")
    if (
        not isinstance(architectures, list)
        or len(architectures) != 1
        or architectures[0] not in ARCHITECTURES
    ):
        raise CostError(f"function {logical_id}: Architectures {architectures!r} is not [arm64] or [x86_64]")
    return Function(memory, architectures[0])


def _alarm_metrics(properties: Mapping[str, Any]) -> int:
    """A metric-math alarm is billed for each metric it reads, a plain alarm for its one metric."""
    metrics = properties.get("Metrics")
    if isinstance(metrics, list):
        return max(1, sum(1 for metric in metrics if isinstance(metric, dict) and "MetricStat" in metric))
    return 1


def _schedule_invocations(logical_id: str, properties: Mapping[str, Any]) -> float:
    if properties.get("State") == "DISABLED":
        return 0.0
    expression = properties.get("ScheduleExpression")
    if not isinstance(expression, str):
        raise CostError(f"schedule {logical_id}: ScheduleExpression {expression!r} is not a string")
    try:
        return monthly_invocations(expression)
    except CostError as error:
        raise CostError(f"schedule {logical_id}: {error}") from None


def load_template_facts(template: Mapping[str, Any]) -> TemplateFacts:
    """What the deployed stack is billed for, read from the synthesized CloudFormation template."""
    machines = [
        props.get("StateMachineType", "STANDARD")
        for _, props in _resources(template, "AWS::StepFunctions::StateMachine")
    ]
    return TemplateFacts(
        functions={
            lid: _function(lid, props) for lid, props in _resources(template, "AWS::Lambda::Function")
        },
        alarm_metrics=sum(
            _alarm_metrics(props) for _, props in _resources(template, "AWS::CloudWatch::Alarm")
        ),
        secrets=len(_resources(template, "AWS::SecretsManager::Secret")),
        standard_state_machines=sum(1 for kind in machines if kind != "EXPRESS"),
        express_state_machines=sum(1 for kind in machines if kind == "EXPRESS"),
        schedule_invocations_per_month=sum(
            _schedule_invocations(lid, props)
            for lid, props in _resources(template, "AWS::Scheduler::Schedule")
        ),
        fifo_queues=sum(
            1
            for _, props in _resources(template, "AWS::SQS::Queue")
            if props.get("FifoQueue") in (True, "true")
        ),
    )


# -- schedule expressions -----------------------------------------------------------------------

_RATE_MINUTES = {"minute": 1, "minutes": 1, "hour": 60, "hours": 60, "day": 1440, "days": 1440}


@functools.cache
def _cron_per_month(body: str) -> float:
    """Firings of ``cron(body)`` in an average month, parsed as the local cloud's scheduler parses it.

    Exact over the 400-year cycle for any minutes, hours, days of the month or of the week and months.
    The year field is not counted (the figure is for a month the schedule runs in), nor the schedule's
    time zone: a local time that daylight saving skips fires one time fewer a year.
    """
    try:
        cron = Cron.parse(body)
    except CronError as error:
        raise CostError(f"cron({body}): {error}") from None
    days = 0
    for offset in range(CYCLE_DAYS):
        day = CYCLE_START + timedelta(days=offset)
        if day.month not in cron.months:
            continue
        if cron.days_of_month is not None:
            days += day.day in cron.days_of_month
        elif cron.days_of_week is not None:
            days += day.isoweekday() % 7 + 1 in cron.days_of_week  # AWS numbers SUN=1 .. SAT=7
    return len(cron.minutes) * len(cron.hours) * days / CYCLE_MONTHS


def _rate_per_month(body: str) -> float:
    parts = body.split()
    # isascii: str.isdigit() also takes "²" (which int() refuses) and other scripts' digits.
    if (
        len(parts) != 2
        or not (parts[0].isascii() and parts[0].isdigit())
        or int(parts[0]) < 1
        or parts[1] not in _RATE_MINUTES
    ):
        raise CostError(f"rate({body}) is not rate(N minutes|hours|days)")
    return DAYS_PER_MONTH * 1440 / (int(parts[0]) * _RATE_MINUTES[parts[1]])


def monthly_invocations(expression: str) -> float:
    """Invocations of an EventBridge Scheduler expression in an average month; an at() one-off is 0."""
    kind, _, rest = expression.strip().partition("(")
    if not rest.endswith(")"):
        raise CostError(f"{expression!r} is not rate(...), cron(...) or at(...)")
    body = rest[:-1].strip()
    if kind == "at":
        return 0.0
    if kind == "rate":
        return _rate_per_month(body)
    if kind == "cron":
        return _cron_per_month(body)
    raise CostError(f"{expression!r} is not rate(...), cron(...) or at(...)")


# -- prices -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    usd: float
    per: float  # the quantity the price is for: 1,000,000 requests, 1 GB-s, ...
    unit: str

    def cost(self, quantity: float) -> float:
        return quantity * self.usd / self.per

    def label(self) -> str:
        """$0.20/1M, $0.025/1K, $0.0000133334: every digit of the price, at least the cents."""
        whole, _, cents = f"{Decimal(str(self.usd)):f}".partition(".")
        per = {1: "", 1000: "/1K", 1000000: "/1M"}.get(int(self.per), f"/{self.per:,g}")
        return f"${whole}.{cents.ljust(2, '0')}{per}"


PRICE_NAMES = (
    "lambda_requests",
    "lambda_duration_arm64",
    "lambda_duration_x86_64",
    "sqs_standard_requests",
    "sns_standard_publish_requests",
    "dynamodb_write_request_units",
    "dynamodb_read_request_units",
    "stepfunctions_standard_state_transitions",
    "scheduler_invocations",
    "cloudwatch_standard_alarm_metric_month",
    "secretsmanager_secret_month",
)


def load_prices(data: Mapping[str, Any]) -> dict[str, Price]:
    """The unit prices the model needs, from the ``prices`` object of prices.json."""
    table = data.get("prices")
    if not isinstance(table, dict):
        raise CostError("the prices file has no 'prices' object: restore bench/prices.json")
    prices: dict[str, Price] = {}
    for name in PRICE_NAMES:
        entry = table.get(name)
        if not isinstance(entry, dict):
            raise CostError(f"the prices file has no price {name!r}: add it to bench/prices.json")
        usd = _number(entry.get("usd"), f"prices.{name}.usd")
        per = _number(entry.get("per"), f"prices.{name}.per")
        if per == 0:
            raise CostError(f"prices.{name}.per is 0: give the quantity the price is for")
        prices[name] = Price(usd, per, str(entry.get("unit", "")))
    return prices


# -- the profile --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Volumes:
    events_per_month: int  # orders_pipeline units
    sagas_per_month: int = 0  # order_saga units

    def by_workload(self) -> dict[str, int]:
        return {"orders_pipeline": self.events_per_month, "order_saga": self.sagas_per_month}


@dataclass
class Usage:
    """Monthly quantities of one configuration, summed over the workloads."""

    requests: dict[str, float] = field(default_factory=dict)
    write_units: float = 0.0
    read_units: float = 0.0
    invocations: float = 0.0
    gb_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ARCHITECTURES, 0.0))
    transitions: float = 0.0
    scheduler_invocations: float = 0.0
    functions: set[str] = field(default_factory=set)
    fallbacks: list[str] = field(default_factory=list)  # workloads measured without this configuration


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise CostError(
            f"{where} is {value!r}, not a number >= 0: fix the file or re-measure with `{MEASURE}`"
        )
    return float(value)


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise CostError(f"{where} is missing or not an object: re-measure with `{MEASURE}`")
    return value


def _configuration(
    workload: Mapping[str, Any], name: str, configuration: str, usage: Usage
) -> Mapping[str, Any]:
    configurations = _object(workload.get("configurations"), f"profile workloads.{name}.configurations")
    if configuration not in configurations:
        usage.fallbacks.append(name)
        configuration = "stack"
    return _object(
        configurations.get(configuration), f"profile workloads.{name}.configurations.{configuration}"
    )


def _field(figures: Mapping[str, Any], key: str, where: str) -> float:
    return _number(figures.get(key), f"{where}.{key}")


def _add(usage: Usage, figures: Mapping[str, Any], units: int, facts: TemplateFacts, where: str) -> None:
    """Add ``units`` units of work with these per-unit figures to the month."""
    requests = _object(figures.get("requests_per_unit"), f"{where}.requests_per_unit")
    for service in requests:
        usage.requests[service] = usage.requests.get(service, 0.0) + _field(requests, service, where) * units
    request_units = _object(
        figures.get("dynamodb_request_units_per_unit"), f"{where}.dynamodb_request_units_per_unit"
    )
    usage.write_units += _field(request_units, "write", f"{where}.dynamodb_request_units_per_unit") * units
    usage.read_units += _field(request_units, "read", f"{where}.dynamodb_request_units_per_unit") * units
    for function_id, measured in _object(figures.get("functions"), f"{where}.functions").items():
        if function_id not in facts.functions:
            raise CostError(
                f"function {function_id} of the profile ({where}) is not in the template: "
                f"the profile is stale, re-measure with `{MEASURE}`"
            )
        function = facts.functions[function_id]
        at = f"{where}.functions.{function_id}"
        invocations = _field(_object(measured, at), "invocations_per_unit", at) * units
        seconds = _field(measured, "mean_duration_ms", at) / 1000
        usage.invocations += invocations
        usage.gb_seconds[function.architecture] += invocations * seconds * function.memory_mb / 1024
        usage.functions.add(function_id)
    usage.transitions += _field(figures, "state_transitions_per_unit", where) * units
    usage.scheduler_invocations += _field(figures, "scheduler_invocations_per_unit", where) * units


def _usage(facts: TemplateFacts, profile: Mapping[str, Any], volumes: Volumes, configuration: str) -> Usage:
    if configuration not in CONFIGURATIONS:
        raise CostError(f"configuration {configuration!r} is not one of {', '.join(CONFIGURATIONS)}")
    usage = Usage()
    workloads = _object(profile.get("workloads"), "profile workloads")
    for name, units in volumes.by_workload().items():
        if units == 0:
            continue
        if name not in workloads:
            raise CostError(f"the profile has no workload {name!r}: re-measure with `{MEASURE}`")
        workload = _object(workloads[name], f"profile workloads.{name}")
        figures = _configuration(workload, name, configuration, usage)
        _add(usage, figures, units, facts, f"profile workloads.{name}.{configuration}")
    return usage


# -- the estimate -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    service: str
    item: str
    quantity: float
    price: Price

    @property
    def usd(self) -> float:
        return self.price.cost(self.quantity)


@dataclass(frozen=True)
class Estimate:
    configuration: str
    lines: tuple[Line, ...]
    notes: tuple[str, ...]
    # Workloads priced with their stack figures for lack of this configuration.
    fallbacks: tuple[str, ...] = ()

    @property
    def total(self) -> float:
        return sum(line.usd for line in self.lines)


def _notes(facts: TemplateFacts, usage: Usage) -> list[str]:
    notes: list[str] = []
    other = sorted(
        service for service, count in usage.requests.items() if count and service not in ("sns", "sqs")
    )
    if other:
        why = ", ".join(f"{service} ({PRICED_OTHERWISE.get(service, 'not priced')})" for service in other)
        notes.append(f"requests counted but not priced as requests: {why}")
    idle = len(set(facts.functions) - usage.functions)
    if idle:
        notes.append(
            f"{idle} of the template's {len(facts.functions)} functions have no measured workload: their cost is 0 here"
        )
    if facts.fifo_queues:
        notes.append(
            f"the template has {facts.fifo_queues} FIFO queues: all SQS requests are priced as standard ones"
        )
    if usage.transitions and not facts.standard_state_machines:
        notes.append("the profile counts state transitions but the template has no Standard state machine")
    if facts.express_state_machines:
        notes.append(
            f"{facts.express_state_machines} Express state machines: their requests and duration are not priced"
        )
    return notes


def estimate(
    facts: TemplateFacts,
    profile: Mapping[str, Any],
    prices: Mapping[str, Any],
    volumes: Volumes,
    configuration: str = "stack",
) -> Estimate:
    """The monthly bill of one configuration: the profile's per-unit figures times the volumes, priced."""
    price = load_prices(prices)
    usage = _usage(facts, profile, volumes, configuration)
    sqs, sns = usage.requests.get("sqs", 0.0), usage.requests.get("sns", 0.0)
    scheduler = price["scheduler_invocations"]
    lines = (
        Line("Lambda", "requests", usage.invocations, price["lambda_requests"]),
        Line("Lambda", "duration arm64", usage.gb_seconds["arm64"], price["lambda_duration_arm64"]),
        Line("Lambda", "duration x86_64", usage.gb_seconds["x86_64"], price["lambda_duration_x86_64"]),
        Line("SQS", "standard queue requests", sqs, price["sqs_standard_requests"]),
        Line("SNS", "standard topic publishes", sns, price["sns_standard_publish_requests"]),
        Line("DynamoDB", "on-demand write units", usage.write_units, price["dynamodb_write_request_units"]),
        Line("DynamoDB", "on-demand read units", usage.read_units, price["dynamodb_read_request_units"]),
        Line(
            "Step Functions",
            "Standard transitions",
            usage.transitions,
            price["stepfunctions_standard_state_transitions"],
        ),
        Line("EventBridge Scheduler", "invocations per unit", usage.scheduler_invocations, scheduler),
        Line("EventBridge Scheduler", "recurring schedules", facts.schedule_invocations_per_month, scheduler),
        Line(
            "CloudWatch",
            "alarm metrics",
            facts.alarm_metrics,
            price["cloudwatch_standard_alarm_metric_month"],
        ),
        Line("Secrets Manager", "secrets", facts.secrets, price["secretsmanager_secret_month"]),
    )
    return Estimate(configuration, lines, tuple(_notes(facts, usage)), tuple(usage.fallbacks))


def saving(stack: Estimate, naive: Estimate) -> tuple[float, float]:
    """What the stack saves against the naive configuration: USD a month and percent of the naive bill."""
    usd = naive.total - stack.total
    return usd, (100 * usd / naive.total if naive.total else 0.0)


# -- the command line ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CostError(f"{message} (see python -m bench.cost --help)")


def _count(minimum: int) -> Any:
    def parse(text: str) -> int:
        if not text.strip().lstrip("-").isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= {minimum}")
        return int(text)

    return parse


def _read_json(path: Path, missing: str, fix: str) -> Mapping[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CostError(missing) from None
    except OSError as error:
        raise CostError(f"cannot read {path}: {error.strerror}; {fix}") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise CostError(f"{path} is not valid JSON ({error}); {fix}") from None
    if not isinstance(data, dict):
        raise CostError(f"{path} does not hold a JSON object; {fix}")
    return data


def _usd(amount: float) -> str:
    return "<0.01" if 0 < amount < 0.005 else f"{amount:,.2f}"


def _quantity(amount: float) -> str:
    return f"{amount:,.0f}" if amount == int(amount) or amount >= 1000 else f"{amount:,.2f}"


def _table(report: Estimate) -> list[str]:
    header = ("service", "item", "quantity", "unit", "unit price", "USD/month")
    rows = [
        (
            line.service,
            line.item,
            _quantity(line.quantity),
            line.price.unit,
            line.price.label(),
            _usd(line.usd),
        )
        for line in report.lines
    ]
    rows.append(("total", "", "", "", "", _usd(report.total)))
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    right = (False, False, True, False, True, True)
    return [
        "  ".join(
            cell.rjust(width) if r else cell.ljust(width)
            for cell, width, r in zip(row, widths, right, strict=True)
        ).rstrip()
        for row in [header, *rows]
    ]


def _as_json(report: Estimate) -> dict[str, Any]:
    return {
        "configuration": report.configuration,
        "lines": [
            {
                "service": line.service,
                "item": line.item,
                "quantity": line.quantity,
                "unit": line.price.unit,
                "unit_price_usd": line.price.usd,
                "unit_price_per": line.price.per,
                "monthly_usd": line.usd,
            }
            for line in report.lines
        ],
        "total_usd": report.total,
        "notes": list(report.notes),
        "workloads_without_this_configuration": list(report.fallbacks),
    }


def default_profile() -> Path:
    """The profile measured on this machine if there is one, else the committed reference."""
    return MEASURED_PROFILE if MEASURED_PROFILE.is_file() else REFERENCE_PROFILE


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when under it."""
    absolute = path.resolve()
    return str(absolute.relative_to(Path.cwd())) if absolute.is_relative_to(Path.cwd()) else str(path)


@dataclass(frozen=True)
class _Inputs:
    volumes: Volumes
    profile_path: Path
    profile: Mapping[str, Any]
    prices: Mapping[str, Any]
    stack: Estimate
    naive: Estimate


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m bench.cost",
        description="Estimate the monthly AWS bill (us-east-1, free tiers not applied) of the synthesized stack.",
    )
    parser.add_argument(
        "--events-per-month", type=_count(1), required=True, help="order.created events a month"
    )
    parser.add_argument("--sagas-per-month", type=_count(0), default=0, help="order saga executions a month")
    parser.add_argument(
        "--template", default=DEFAULT_TEMPLATE, help=f"synthesized template (default {DEFAULT_TEMPLATE})"
    )
    parser.add_argument(
        "--profile",
        default=None,
        help="measured profile (default bench/profile.json if measured here, else bench/reference_profile.json)",
    )
    parser.add_argument(
        "--prices", default=str(DEFAULT_PRICES), help="unit prices (default bench/prices.json)"
    )
    parser.add_argument("--naive", action="store_true", help="show the naive configuration's bill")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _inputs(args: argparse.Namespace) -> _Inputs:
    template = Path(args.template)
    facts = load_template_facts(
        _read_json(
            template,
            f"no synthesized template at {template}: run `make synth` first",
            "run `make synth` again",
        )
    )
    profile_path = Path(args.profile) if args.profile else default_profile()
    profile = _read_json(
        profile_path,
        f"no measured profile at {profile_path}: run `{MEASURE}` first",
        f"re-measure with `{MEASURE}`",
    )
    prices = _read_json(
        Path(args.prices), f"no prices at {args.prices}: restore bench/prices.json", "fix the file"
    )
    volumes = Volumes(args.events_per_month, args.sagas_per_month)
    return _Inputs(
        volumes,
        profile_path,
        profile,
        prices,
        estimate(facts, profile, prices, volumes, "stack"),
        estimate(facts, profile, prices, volumes, "naive"),
    )


def _print_json(inputs: _Inputs) -> None:
    saved, percent = saving(inputs.stack, inputs.naive)
    report = {
        "volumes": {
            "events_per_month": inputs.volumes.events_per_month,
            "sagas_per_month": inputs.volumes.sagas_per_month,
        },
        "profile": {
            "path": _shown(inputs.profile_path),
            "measured_on": inputs.profile.get("measured_on"),
            "command": inputs.profile.get("command"),
        },
        "prices": {
            "taken": inputs.prices.get("taken"),
            "region": inputs.prices.get("region"),
            "free_tiers_applied": False,
        },
        "stack": _as_json(inputs.stack),
        "naive": _as_json(inputs.naive),
        "saving": {"usd_per_month": saved, "percent_of_naive": percent},
        "not_modelled": list(NOT_MODELLED),
    }
    print(json.dumps(report, indent=2))


def _print_text(inputs: _Inputs, naive: bool) -> None:
    shown = inputs.naive if naive else inputs.stack
    volumes, profile, prices = inputs.volumes, inputs.profile, inputs.prices
    print(
        f"monthly AWS bill at {volumes.events_per_month:,} events and {volumes.sagas_per_month:,} saga executions a month, "
        f"configuration {shown.configuration}; profile {_shown(inputs.profile_path)} measured {profile.get('measured_on')} "
        f"by `{profile.get('command')}`; "
        f"prices of {prices.get('region')} taken {prices.get('taken')}, free tiers NOT applied"
    )
    print("\n".join(_table(shown)))
    saved, percent = saving(inputs.stack, inputs.naive)
    if naive:
        more = 100 * saved / inputs.stack.total if inputs.stack.total else 0.0
        print(f"the naive configuration costs ${saved:,.2f}/month MORE than the stack ({more:.1f}% more)")
    else:
        print(f"saving against the naive configuration: ${saved:,.2f}/month ({percent:.1f}%)")
    if saved < 0:
        print("note: the naive configuration is the cheaper one at this volume")
    if inputs.naive.fallbacks:
        print(f"note: no naive figures for {', '.join(inputs.naive.fallbacks)}: stack figures count for both")
    for note in shown.notes:
        print(f"note: {note}")
    print(f"not modelled: {', '.join(NOT_MODELLED)}")


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        inputs = _inputs(args)
    except CostError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        _print_json(inputs)
    else:
        _print_text(inputs, args.naive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
