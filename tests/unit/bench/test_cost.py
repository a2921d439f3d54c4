"""The cost model (bench/cost.py): hand-computed monthly bills from a template, a profile and prices."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench import cost
from bench.cost import (
    DEFAULT_PRICES,
    REFERENCE_PROFILE,
    CostError,
    Volumes,
    default_profile,
    estimate,
    load_prices,
    load_template_facts,
    main,
    monthly_invocations,
    saving,
)

pytestmark = pytest.mark.unit

MEASURE = ".venv/bin/python -m bench --only requests"
# The us-east-1 prices of prices.json, repeated here so the expectations below do not move with it.
PRICES: dict[str, Any] = {
    "region": "us-east-1",
    "taken": "2026-11-29",
    "prices": {
        "lambda_requests": {"usd": 0.20, "per": 1_000_000, "unit": "requests"},
        "lambda_duration_arm64": {"usd": 0.0000133334, "per": 1, "unit": "GB-s"},
        "lambda_duration_x86_64": {"usd": 0.0000166667, "per": 1, "unit": "GB-s"},
        "sqs_standard_requests": {"usd": 0.40, "per": 1_000_000, "unit": "requests"},
        "sns_standard_publish_requests": {"usd": 0.50, "per": 1_000_000, "unit": "requests"},
        "dynamodb_write_request_units": {"usd": 0.625, "per": 1_000_000, "unit": "WRU"},
        "dynamodb_read_request_units": {"usd": 0.125, "per": 1_000_000, "unit": "RRU"},
        "stepfunctions_standard_state_transitions": {"usd": 0.025, "per": 1000, "unit": "transitions"},
        "scheduler_invocations": {"usd": 1.00, "per": 1_000_000, "unit": "invocations"},
        "cloudwatch_standard_alarm_metric_month": {"usd": 0.10, "per": 1, "unit": "alarm metric-months"},
        "secretsmanager_secret_month": {"usd": 0.40, "per": 1, "unit": "secret-months"},
    },
}
TEMPLATE: dict[str, Any] = {
    "Resources": {
        "ArmFunction": {
            "Type": "AWS::Lambda::Function",
            "Properties": {"MemorySize": 512, "Architectures": ["arm64"]},
        },
        "X86Function": {"Type": "AWS::Lambda::Function", "Properties": {}},  # 128 MB, x86_64 by default
        "QueueAlarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"MetricName": "Age"}},
        "MathAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "Metrics": [{"Id": "a", "MetricStat": {}}, {"Id": "b", "MetricStat": {}}, {"Id": "e"}]
            },
        },
        "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {}},
        "Daily": {
            "Type": "AWS::Scheduler::Schedule",
            "Properties": {"ScheduleExpression": "cron(0 6 * * ? *)"},
        },
        "Once": {
            "Type": "AWS::Scheduler::Schedule",
            "Properties": {"ScheduleExpression": "at(2030-01-01T00:00:00)"},
        },
        "Saga": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {}},
    }
}
EMPTY_TEMPLATE: dict[str, Any] = {"Resources": {}}  # no fixed monthly cost: totals are the per-unit part only


def figures(**values: Any) -> dict[str, Any]:
    """One configuration of a workload: nothing per unit unless given."""
    return {
        "requests_per_unit": {},
        "dynamodb_request_units_per_unit": {"write": 0.0, "read": 0.0},
        "functions": {},
        "state_transitions_per_unit": 0.0,
        "scheduler_invocations_per_unit": 0.0,
        **values,
    }


def profile(
    stack: dict[str, Any], naive: dict[str, Any] | None = None, saga: dict[str, Any] | None = None
) -> dict[str, Any]:
    pipeline = {"stack": stack} if naive is None else {"stack": stack, "naive": naive}
    return {
        "measured_on": "2026-11-29",
        "command": MEASURE,
        "workloads": {
            "orders_pipeline": {"unit": "order.created event", "configurations": pipeline},
            "order_saga": {"unit": "order saga execution", "configurations": {"stack": saga or figures()}},
        },
    }


def usd(report: Any, item: str) -> float:
    (line,) = [line for line in report.lines if line.item == item]
    return float(line.usd)


def quantity(report: Any, item: str) -> float:
    (line,) = [line for line in report.lines if line.item == item]
    return float(line.quantity)


def test_gb_seconds_are_priced_by_each_functions_memory_and_architecture() -> None:
    # Given a 512 MB arm64 function called 0.5 times per event for 100 ms, and a 128 MB x86_64 one
    # (the template defaults) called 2 times per event for 10 ms
    facts = load_template_facts(TEMPLATE)
    measured = figures(
        functions={
            "ArmFunction": {"invocations_per_unit": 0.5, "mean_duration_ms": 100.0},
            "X86Function": {"invocations_per_unit": 2.0, "mean_duration_ms": 10.0},
        }
    )
    # When a million events a month are priced
    report = estimate(facts, profile(measured), PRICES, Volumes(1_000_000))
    # Then each architecture has its GB-s and its price
    assert quantity(report, "duration arm64") == pytest.approx(25_000)  # 500,000 calls x 0.1 s x 0.5 GB
    assert usd(report, "duration arm64") == pytest.approx(0.333335)  # 25,000 GB-s x $0.0000133334
    assert quantity(report, "duration x86_64") == pytest.approx(2_500)  # 2,000,000 calls x 0.01 s x 0.125 GB
    assert usd(report, "duration x86_64") == pytest.approx(0.04166675)  # 2,500 GB-s x $0.0000166667
    assert usd(report, "requests") == pytest.approx(0.50)  # 2,500,000 invocations x $0.20 / 1M


def test_sqs_and_sns_requests_are_priced_per_million_and_other_requests_are_named() -> None:
    # Given 0.9 SQS, 0.1 SNS and 6 DynamoDB API requests per event
    facts = load_template_facts(TEMPLATE)
    measured = figures(requests_per_unit={"sqs": 0.9, "sns": 0.1, "dynamodb": 6.0})
    # When a million events a month are priced
    report = estimate(facts, profile(measured), PRICES, Volumes(1_000_000))
    # Then SQS and SNS requests have their lines and DynamoDB's requests are left to its request units
    assert usd(report, "standard queue requests") == pytest.approx(0.36)  # 900,000 x $0.40 / 1M
    assert usd(report, "standard topic publishes") == pytest.approx(0.05)  # 100,000 x $0.50 / 1M
    assert "requests counted but not priced as requests: dynamodb (priced by request units)" in report.notes


def test_dynamodb_is_priced_by_request_units() -> None:
    # Given 8.2 write and 0.5 read request units per event
    facts = load_template_facts(TEMPLATE)
    measured = figures(dynamodb_request_units_per_unit={"write": 8.2, "read": 0.5})
    # When a million events a month are priced
    report = estimate(facts, profile(measured), PRICES, Volumes(1_000_000))
    # Then
    assert usd(report, "on-demand write units") == pytest.approx(5.125)  # 8,200,000 WRU x $0.625 / 1M
    assert usd(report, "on-demand read units") == pytest.approx(0.0625)  # 500,000 RRU x $0.125 / 1M


def test_state_transitions_are_priced_per_thousand_for_the_saga_volume() -> None:
    # Given 9 state transitions per saga execution
    facts = load_template_facts(TEMPLATE)
    measured = profile(figures(), saga=figures(state_transitions_per_unit=9.0))
    # When 10,000 sagas a month are priced
    report = estimate(facts, measured, PRICES, Volumes(1, sagas_per_month=10_000))
    # Then
    assert quantity(report, "Standard transitions") == pytest.approx(90_000)  # 9 x 10,000
    assert usd(report, "Standard transitions") == pytest.approx(2.25)  # 90,000 x $0.025 / 1K


def test_the_template_gives_the_fixed_monthly_lines() -> None:
    # Given the template: 2 alarms (one reads 2 metrics), 1 secret, a daily and a one-off schedule
    facts = load_template_facts(TEMPLATE)
    # When nothing is measured
    report = estimate(facts, profile(figures()), PRICES, Volumes(1))
    # Then alarms, the secret and the daily schedule are billed every month, and every line is printed
    assert facts.functions["X86Function"].memory_mb == 128
    assert facts.functions["X86Function"].architecture == "x86_64"
    assert usd(report, "alarm metrics") == pytest.approx(0.30)  # (1 + 2) alarm metrics x $0.10
    assert usd(report, "secrets") == pytest.approx(0.40)  # 1 secret x $0.40
    assert quantity(report, "recurring schedules") == pytest.approx(
        30.436875
    )  # 1 a day x 146,097 / 4,800 days
    assert report.total == pytest.approx(0.30 + 0.40 + 30.436875 / 1_000_000)
    assert len(report.lines) == 12


@pytest.mark.parametrize(
    ("expression", "per_month"),
    [
        ("cron(0 6 * * ? *)", 30.436875),  # once a day x 30.436875 days (146,097 days / 4,800 months)
        ("rate(1 day)", 30.436875),  # the same
        ("rate(2 hours)", 365.2425),  # 12 a day x 30.436875
        ("rate(5 minutes)", 8765.82),  # 288 a day x 30.436875
        ("cron(*/15 * ? * 2 *)", 417.42),  # 4 x 24 on Mondays: 96 x 30.436875 / 7
        ("cron(0 9,17 1,15 * ? *)", 4.0),  # 2 times on 2 days of every month
        ("cron(30 0 31 * ? *)", 7 / 12),  # 7 months of 12 have a 31st
        (
            "cron(0 0 29 * ? *)",
            0.936875,
        ),  # all months but the 303 non-leap Februaries of 4,800: 4,497 / 4,800
        ("at(2030-01-01T00:00:00)", 0.0),  # a one-off costs nothing recurring
        # Weekdays, by name: 5 days of 7 x 30.436875 (the 400-year cycle is 20,871 whole weeks)
        ("cron(0 6 ? * MON-FRI *)", 21.740625),
        ("cron(0 6 ? * 2-6 *)", 21.740625),  # the same days by number (SUN=1)
        ("cron(0 0 1 1 ? *)", 1 / 12),  # once a year, on January 1st
        ("cron(0 0 ? JAN-MAR SUN *)", 1.074375),  # the 5,157 Sundays of 1,200 Januaries-to-Marches / 4,800
        ("cron(0 12 * * ? 2030)", 30.436875),  # the year field is not counted: a month the schedule runs in
    ],
)
def test_schedule_expressions_fire_an_average_month(expression: str, per_month: float) -> None:
    assert monthly_invocations(expression) == pytest.approx(per_month)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(0 0 L * ? *)", "cron(0 0 L * ? *): L, W and # are not supported"),
        ("cron(0 0 * * * *)", "cron(0 0 * * * *): exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 0 * *)", "cron(0 0 * *): cron needs 6 fields"),
        ("cron(0 25 * * ? *)", "cron(0 25 * * ? *): '25' is outside 0-23"),
        ("rate(0 minutes)", "rate(0 minutes) is not rate(N minutes|hours|days)"),
        ("every day", "is not rate(...), cron(...) or at(...)"),
    ],
)
def test_unsupported_schedule_expressions_are_refused(expression: str, message: str) -> None:
    with pytest.raises(CostError, match=re.escape(message)):
        monthly_invocations(expression)


def test_the_cost_model_accepts_every_cron_the_scheduler_accepts() -> None:
    # Given expressions the local cloud's scheduler parses (names, ranges, steps, months)
    for expression in (
        "cron(0 6 ? * MON-FRI *)",
        "cron(0/30 8-18 ? * SAT,SUN *)",
        "cron(15 4 1 JAN,JUL ? *)",
    ):
        # Then the cost model counts them too, with the same parser
        assert monthly_invocations(expression) > 0
    assert monthly_invocations("cron(0/30 8-18 ? * SAT,SUN *)") == pytest.approx(22 * 2 / 7 * 30.436875)
    assert monthly_invocations("cron(15 4 1 JAN,JUL ? *)") == pytest.approx(2 / 12)


def test_the_profile_is_the_measured_one_if_any_else_the_committed_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no profile measured on this machine
    measured = tmp_path / "profile.json"
    monkeypatch.setattr(cost, "MEASURED_PROFILE", measured)
    # Then the committed reference is used, and it is a profile of both workloads
    assert default_profile() == REFERENCE_PROFILE
    reference = json.loads(REFERENCE_PROFILE.read_text())
    assert set(reference["workloads"]) == {"orders_pipeline", "order_saga"}
    # And once `python -m bench --only requests` wrote one, that one is
    measured.write_text("{}")
    assert default_profile() == measured


def test_the_saving_is_the_difference_with_the_naive_configuration() -> None:
    # Given 0.9 SQS requests per event as deployed and 9 when naive, and no fixed cost
    facts = load_template_facts(EMPTY_TEMPLATE)
    measured = profile(figures(requests_per_unit={"sqs": 0.9}), naive=figures(requests_per_unit={"sqs": 9.0}))
    # When both are priced for a million events
    stack = estimate(facts, measured, PRICES, Volumes(1_000_000), "stack")
    naive = estimate(facts, measured, PRICES, Volumes(1_000_000), "naive")
    # Then
    assert stack.total == pytest.approx(0.36)  # 900,000 x $0.40 / 1M
    assert naive.total == pytest.approx(3.60)  # 9,000,000 x $0.40 / 1M
    usd_saved, percent = saving(stack, naive)
    assert usd_saved == pytest.approx(3.24)  # 3.60 - 0.36
    assert percent == pytest.approx(90.0)  # 3.24 / 3.60


def test_a_workload_without_a_naive_configuration_uses_its_stack_figures_for_both() -> None:
    # Given a saga measured only as deployed
    facts = load_template_facts(TEMPLATE)
    measured = profile(figures(), naive=figures(), saga=figures(state_transitions_per_unit=9.0))
    # When the naive configuration is priced
    naive = estimate(facts, measured, PRICES, Volumes(1, sagas_per_month=10_000), "naive")
    # Then the saga's stack transitions are there, and the fallback is said
    assert usd(naive, "Standard transitions") == pytest.approx(2.25)  # 90,000 x $0.025 / 1K
    assert naive.fallbacks == ("order_saga",)


def test_a_function_the_template_no_longer_has_means_a_stale_profile() -> None:
    facts = load_template_facts(TEMPLATE)
    measured = figures(functions={"GoneFunction": {"invocations_per_unit": 1.0, "mean_duration_ms": 5.0}})
    with pytest.raises(
        CostError,
        match=r"function GoneFunction of the profile .* is not in the template: the profile is stale",
    ):
        estimate(facts, profile(measured), PRICES, Volumes(1))


def test_the_shipped_prices_say_where_and_when_they_were_taken() -> None:
    data = json.loads(DEFAULT_PRICES.read_text())
    prices = load_prices(data)
    assert (data["region"], data["taken"], data["free_tiers_applied"]) == ("us-east-1", "2026-11-29", False)
    assert all(url.startswith("https://aws.amazon.com/") for url in data["sources"].values())
    assert all(isinstance(entry["confirmed"], bool) for entry in data["prices"].values())
    assert prices["dynamodb_write_request_units"].cost(1_000_000) == pytest.approx(0.625)
    assert prices["dynamodb_read_request_units"].cost(1_000_000) == pytest.approx(0.125)


def write(path: Path, data: dict[str, Any]) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def files(tmp_path: Path) -> list[str]:
    measured = profile(figures(requests_per_unit={"sqs": 0.9}), naive=figures(requests_per_unit={"sqs": 9.0}))
    return [
        "--template",
        write(tmp_path / "template.json", EMPTY_TEMPLATE),
        "--profile",
        write(tmp_path / "profile.json", measured),
        "--prices",
        write(tmp_path / "prices.json", PRICES),
    ]


def test_the_command_prints_the_breakdown_the_total_and_the_saving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a template, a profile and prices on disk
    # When the command runs for a million events
    code = main(["--events-per-month", "1000000", *files(tmp_path)])
    # Then
    out = capsys.readouterr().out
    assert code == 0
    header, *rest = out.splitlines()
    assert "1,000,000 events" in header
    assert "configuration stack" in header
    assert f"profile {tmp_path / 'profile.json'} measured 2026-11-29 by `{MEASURE}`" in header
    assert "prices of us-east-1 taken 2026-11-29, free tiers NOT applied" in header
    assert any(line.startswith("SQS") and line.endswith("0.36") for line in rest)  # 900,000 x $0.40 / 1M
    assert any(line.startswith("total") and line.endswith("0.36") for line in rest)
    assert "saving against the naive configuration: $3.24/month (90.0%)" in rest  # 3.60 - 0.36, of 3.60
    assert rest[-1].startswith("not modelled: free tiers")


def test_the_command_shows_the_naive_bill_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--events-per-month", "1000000", *files(tmp_path)]
    assert main([*arguments, "--naive"]) == 0
    # 3.24 more than 0.36 is 900% more
    assert (
        "the naive configuration costs $3.24/month MORE than the stack (900.0% more)"
        in capsys.readouterr().out
    )
    assert main([*arguments, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stack"]["total_usd"] == pytest.approx(0.36)
    assert report["naive"]["total_usd"] == pytest.approx(3.60)
    assert report["saving"] == {"usd_per_month": pytest.approx(3.24), "percent_of_naive": pytest.approx(90.0)}


def test_a_missing_template_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no synthesized template where the command looks by default
    missing = tmp_path / "cdk.out" / "AsyncStack.template.json"
    # When the command runs
    code = main(["--events-per-month", "1000", "--template", str(missing)])
    # Then one line says what to run
    assert code == 2
    assert capsys.readouterr().err == f"error: no synthesized template at {missing}: run `make synth` first\n"


@pytest.mark.parametrize(
    ("arguments", "starts"),
    [
        (["--events-per-month", "0"], "error: argument --events-per-month: '0' is not a whole number >= 1"),
        ([], "error: the following arguments are required: --events-per-month"),
        (["--events-per-month", "5", "--profile", "{missing}"], "error: no measured profile at"),
        (["--events-per-month", "5", "--profile", "{bad}"], "error: {bad} is not valid JSON"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], starts: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    paths = {"missing": str(tmp_path / "none.json"), "bad": str(bad)}
    template = ["--template", write(tmp_path / "template.json", EMPTY_TEMPLATE)]
    code = main([*(argument.format(**paths) for argument in arguments), *template])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(starts.format(**paths))
    assert err.count("\n") == 1
