"""The report export (shared/exports.py) on the framework's long-running jobs (asyncstack/runtime/long_running/),
on moto: DynamoDB, S3, Step Functions."""

from __future__ import annotations

import csv
import importlib
import io
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from asyncstack import contract
from asyncstack.runtime.errors import TransientError
from asyncstack.runtime.events import decode_event
from asyncstack.runtime.long_running import (
    CheckpointConflictError,
    InvalidJobIdError,
    UnknownActionError,
    UnknownJobError,
)
from asyncstack.runtime.long_running.progress import NOT_DONE_CAP
from shared import config
from shared.analytics import AnalyticsSink
from shared.events import EVENT_MODELS
from shared.exports import (
    COLUMNS,
    FAILURE_MESSAGES,
    ExportJobs,
    ExportRequest,
    fail_export,
    handle,
    new_job_id,
    part_key,
    report_key,
    run_export,
    start_export,
)
from tests.unit.builders import order_envelope
from tests.unit.conftest import REGION, AwsFaults, context, make_table

pytestmark = pytest.mark.unit

SOURCE = "analytics"
JOBS = "export-jobs"
BUCKET = "exports"
MARGIN_MS = 1_000
ROWS = 23
CHUNK = 5  # 23 rows: chunks of 5, 5, 5, 5, 3


# -- fakes -------------------------------------------------------------------------------------


class FakeClock:
    """Monotonic time that moves only when read: every reading is ``step`` seconds after the last.

    A chunk reads it three times (start, after the part, after the checkpoint), so with the default
    step a chunk takes 250 ms of processing and 500 ms in all, its "slowest chunk" for the budget.
    """

    def __init__(self, step: float = 0.25) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class FakeContext:
    """A Lambda context whose deadline is ``budget_ms`` after the invocation's clock started."""

    def __init__(self, budget_ms: float, clock: FakeClock) -> None:
        self.budget_ms = budget_ms
        self.clock = clock

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.budget_ms - self.clock.now * 1000))


class SimulatedCrash(Exception):
    """The process died here (Lambda timeout, out of memory): nothing after it runs."""


class Recorder:
    """A boto3 client wrapper that records calls; ``before`` runs a hook before the Nth call of an op."""

    def __init__(self, client: Any, before: dict[tuple[str, int], Callable[[], None]] | None = None) -> None:
        self._client = client
        self._before = before or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.responses: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            hook = self._before.get((name, len(self.of(name))))
            if hook is not None:
                hook()
            response = attribute(**kwargs)
            self.responses.append((name, response))
            return response

        return call

    def of(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for called, kwargs in self.calls if called == name]

    def returned(self, name: str) -> list[Any]:
        return [response for called, response in self.responses if called == name]


def crash() -> None:
    raise SimulatedCrash


# -- fixtures and helpers ----------------------------------------------------------------------


def _client(service: str) -> Any:
    make: Any = boto3.client
    return make(service, region_name=REGION)


@pytest.fixture
def export_env(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The analytics (source) table, the jobs table and the bucket, and the worker's environment."""
    make_table(SOURCE, "event_id")
    make_table(JOBS, "job_id")
    _client("s3").create_bucket(Bucket=BUCKET)
    for variable, value in {
        config.EXPORT_SOURCE_TABLE_NAME: SOURCE,
        contract.LONG_RUNNING_JOBS_TABLE_NAME: JOBS,
        contract.LONG_RUNNING_RESULTS_BUCKET: BUCKET,
        contract.LONG_RUNNING_MARGIN_MS: str(MARGIN_MS),
    }.items():
        monkeypatch.setenv(variable, value)


def seed(count: int, *, start: int = 0) -> None:
    """Analytics rows as the analytics worker writes them: orders and sign-ups, one with CSV specials."""
    events = []
    for i in range(start, start + count):
        if i % 3 == 2:
            body = {
                "event_id": f"evt-{i:03d}",
                "type": "user.signed_up",
                "source": "tests",
                "occurred_at": "2026-11-29T10:00:00+00:00",
                "data": {"user_id": f"user-{i}", "email": "ada@example.com", "name": "Ada"},
            }
        else:
            body = order_envelope(f"evt-{i:03d}", quantity=i % 4 + 1)
            if i == 0:
                body["data"]["customer_id"] = 'cus, "quoted"\nnewline'
        events.append(decode_event(json.dumps(body), EVENT_MODELS))
    assert AnalyticsSink(table=SOURCE).write(events) == {}


@pytest.fixture
def seeded(export_env: None) -> None:
    seed(ROWS)


def expected_rows() -> list[list[str]]:
    """Every source row as a CSV row, from the table itself (missing attributes empty)."""
    items = _client("dynamodb").scan(TableName=SOURCE)["Items"]
    return [[next(iter(item[c].values())) if c in item else "" for c in COLUMNS] for item in items]


def report(job_id: str) -> list[list[str]]:
    body = _client("s3").get_object(Bucket=BUCKET, Key=report_key(job_id))["Body"].read().decode("utf-8")
    return list(csv.reader(io.StringIO(body, newline="")))


def keys(prefix: str) -> list[str]:
    response = _client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in response.get("Contents", [])]


def create(job_id: str = "exp-test", chunk_size: int = CHUNK) -> str:
    ExportJobs().create(job_id, ExportRequest(chunk_size=chunk_size))
    return job_id


def run(job_id: str, *, budget_ms: float = 60_000, **clients: Any) -> dict[str, Any]:
    """One worker invocation with its own deadline and clock (and the margin the stack gives the handler)."""
    clock = FakeClock()
    return run_export(job_id, FakeContext(budget_ms, clock), clock=clock, margin_ms=MARGIN_MS, **clients)


def stored(job_id: str) -> dict[str, Any]:
    return _client("dynamodb").get_item(TableName=JOBS, Key={"job_id": {"S": job_id}}, ConsistentRead=True)[
        "Item"
    ]


def part_puts(s3: Recorder) -> list[str]:
    return [call["Key"] for call in s3.of("put_object") if "/parts/" in call["Key"]]


# -- the request and job ids -------------------------------------------------------------------


def test_export_request_defaults_and_bounds() -> None:
    assert ExportRequest().chunk_size == 100
    assert ExportRequest.model_validate({"chunk_size": 1000}).chunk_size == 1000
    for invalid in ({"chunk_size": 0}, {"chunk_size": 1001}, {"chunk_size": 10, "format": "xlsx"}):
        with pytest.raises(ValueError):
            ExportRequest.model_validate(invalid)


def test_new_job_ids_are_valid_execution_names() -> None:
    job_id = new_job_id()
    assert job_id.startswith("exp-")
    assert len(job_id) <= 80
    assert job_id != new_job_id()


# -- a whole export ----------------------------------------------------------------------------


def test_an_export_in_one_run_writes_every_row_exactly_once(seeded: None) -> None:
    # Given 23 analytics rows and a job exporting them 5 at a time
    job_id = create()
    # When the worker runs once with plenty of time
    outcome = run(job_id)
    # Then it is done, and the report holds the header and every row exactly once
    assert outcome["done"] is True
    assert outcome["status"] == "SUCCEEDED"
    rows = report(job_id)
    assert rows[0] == list(COLUMNS)
    assert Counter(map(tuple, rows[1:])) == Counter(map(tuple, expected_rows()))
    assert len(rows) - 1 == ROWS
    # And order rows carry their order fields, other events leave them empty
    by_id = {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]}
    assert by_id["evt-000"]["customer_id"] == 'cus, "quoted"\nnewline'  # quoted by the csv module
    assert (by_id["evt-001"]["total_cents"], by_id["evt-001"]["units"]) == ("1000", "2")
    assert by_id["evt-002"]["type"] == "user.signed_up"
    assert by_id["evt-002"]["order_id"] == by_id["evt-002"]["total_cents"] == ""
    # And the job records the result, and the parts are gone
    job = ExportJobs().get(job_id)
    assert job is not None
    size = len(_client("s3").get_object(Bucket=BUCKET, Key=report_key(job_id))["Body"].read())
    assert job["result"] == {"bucket": BUCKET, "key": report_key(job_id), "rows": ROWS, "bytes": size}
    assert job["progress"]["percent"] == 100.0
    assert (job["progress"]["current"], job["progress"]["total"]) == (ROWS, ROWS)
    assert job["runs"] == 1
    assert job["started_at"] and job["finished_at"]
    assert job["checkpoint"] == {"next_chunk": 5, "rows": ROWS}
    assert keys(f"exports/{job_id}/") == [report_key(job_id)]


def test_an_empty_table_exports_a_header_only(export_env: None) -> None:
    job_id = create()
    outcome = run(job_id)
    assert outcome["done"] is True
    assert report(job_id) == [list(COLUMNS)]
    assert outcome["progress"] == {**outcome["progress"], "current": 0, "total": 0, "percent": 100.0}


def test_the_total_is_counted_once_with_a_paginated_count_scan(seeded: None) -> None:
    # Given a job, and a client that records DynamoDB calls
    job_id = create()
    dynamodb = Recorder(_client("dynamodb"))
    # When the first run starts with almost no time (it still does one chunk: every run advances)
    first = run(job_id, budget_ms=0, dynamodb=dynamodb)
    # Then it counted the table with Select=COUNT and stored the total
    counts = [call for call in dynamodb.of("scan") if call.get("Select") == "COUNT"]
    assert len(counts) == 1
    assert first["progress"]["total"] == ROWS
    assert (first["done"], first["progress"]["current"]) == (False, CHUNK)
    # And the next run does not count again
    again = Recorder(_client("dynamodb"))
    run(job_id, budget_ms=0, dynamodb=again)
    assert [call for call in again.of("scan") if call.get("Select") == "COUNT"] == []


# -- the time budget and resuming --------------------------------------------------------------


def test_a_small_budget_stops_after_some_chunks_and_the_next_run_resumes(seeded: None) -> None:
    # Given a job of 5 chunks and invocations with 3 s each: a chunk takes 500 ms (the slowest),
    # so a run goes on while more than 1 s margin + 2 x 500 ms is left: 2 chunks, then 1.5 s left
    job_id = create()
    outcomes, scans, last_keys, puts = [], [], [], []
    for _ in range(3):
        dynamodb, s3 = Recorder(_client("dynamodb")), Recorder(_client("s3"))
        outcomes.append(run(job_id, budget_ms=3_000, dynamodb=dynamodb, s3=s3))
        scans.append([call for call in dynamodb.of("scan") if "Select" not in call])
        last_keys.append(dynamodb.returned("scan")[-1].get("LastEvaluatedKey"))
        puts.append(part_puts(s3))
    # Then each run wrote the next chunks' parts, picking up where the last stopped
    assert [o["done"] for o in outcomes] == [False, False, True]
    assert puts == [
        [part_key(job_id, 0), part_key(job_id, 1)],
        [part_key(job_id, 2), part_key(job_id, 3)],
        [part_key(job_id, 4)],
    ]
    # And each run's first Scan started from the key the previous run's last Scan returned
    assert "ExclusiveStartKey" not in scans[0][0]
    assert [len(s) for s in scans] == [2, 2, 1]
    assert scans[1][0]["ExclusiveStartKey"] == last_keys[0]
    assert scans[2][0]["ExclusiveStartKey"] == last_keys[1]
    assert last_keys[2] is None
    assert all(call["Limit"] == CHUNK for run_scans in scans for call in run_scans)
    # And progress rose between runs, and the report is whole
    assert [o["progress"]["current"] for o in outcomes] == [10, 20, ROWS]
    assert Counter(map(tuple, report(job_id)[1:])) == Counter(map(tuple, expected_rows()))
    assert stored(job_id)["runs"] == {"N": "3"}


def test_resume_after_a_crash_between_part_and_checkpoint_redoes_only_that_chunk(seeded: None) -> None:
    # Given a run that dies after writing chunk 1's part but before its checkpoint update
    # (update_item #1 marks RUNNING, #2 stores the total, #3 checkpoints chunk 0, #4 chunk 1)
    job_id = create()
    dying = Recorder(_client("dynamodb"), before={("update_item", 4): crash})
    first_s3 = Recorder(_client("s3"))
    with pytest.raises(SimulatedCrash):
        run(job_id, dynamodb=dying, s3=first_s3)
    assert part_puts(first_s3) == [part_key(job_id, 0), part_key(job_id, 1)]
    crashed_scan = dying.of("scan")[-1]
    # When the state machine retries the invocation
    dynamodb, s3 = Recorder(_client("dynamodb")), Recorder(_client("s3"))
    outcome = run(job_id, dynamodb=dynamodb, s3=s3)
    # Then it redoes chunk 1 from the same scan key, and only chunk 1, then carries on
    assert part_puts(s3) == [part_key(job_id, n) for n in range(1, 5)]
    assert dynamodb.of("scan")[0] == crashed_scan
    # And the report holds every row exactly once
    assert outcome["done"] is True
    rows = report(job_id)[1:]
    assert len(rows) == ROWS
    assert Counter(map(tuple, rows)) == Counter(map(tuple, expected_rows()))
    assert outcome["progress"]["current"] == ROWS
    assert stored(job_id)["runs"] == {"N": "2"}


def test_a_crash_while_assembling_the_report_is_finished_by_the_retry(seeded: None) -> None:
    # Given a run that wrote every chunk and then died writing the report
    job_id = create()
    s3 = Recorder(_client("s3"), before={("put_object", 6): crash})  # parts 0-4, then the report
    with pytest.raises(SimulatedCrash):
        run(job_id, s3=s3)
    # When the retry runs
    retry = Recorder(_client("s3"))
    outcome = run(job_id, s3=retry)
    # Then it scans nothing again, assembles the report from the parts still there, and succeeds
    assert part_puts(retry) == []
    assert outcome["done"] is True
    assert Counter(map(tuple, report(job_id)[1:])) == Counter(map(tuple, expected_rows()))


def test_a_stale_run_gets_checkpoint_conflict_and_writes_nothing(seeded: None) -> None:
    # Given a run (the zombie) that is overtaken, just before its first checkpoint update, by a
    # retry that gets two chunks further
    job_id = create()
    overtaken: dict[str, Any] = {}

    def retry_overtakes() -> None:
        overtaken["outcome"] = run(job_id, budget_ms=3_000)

    zombie = Recorder(_client("dynamodb"), before={("update_item", 3): retry_overtakes})
    # When the zombie tries to record its chunk
    with pytest.raises(
        CheckpointConflictError, match="expected it RUNNING at chunk 0, found RUNNING at chunk 2"
    ):
        run(job_id, dynamodb=zombie)
    # Then the retry's checkpoint stands
    assert overtaken["outcome"]["progress"]["current"] == 10
    assert stored(job_id)["checkpoint"]["M"]["next_chunk"] == {"N": "2"}
    # And the job still finishes correctly
    assert run(job_id)["done"] is True
    assert Counter(map(tuple, report(job_id)[1:])) == Counter(map(tuple, expected_rows()))


def test_a_second_call_after_success_does_no_work(seeded: None) -> None:
    # Given a finished export
    job_id = create()
    finished = run(job_id)
    # When the state machine retries the last invocation (its result was lost)
    dynamodb, s3 = Recorder(_client("dynamodb")), Recorder(_client("s3"))
    again = run(job_id, dynamodb=dynamodb, s3=s3)
    # Then it reports done without scanning or writing, and without counting a run
    assert again == finished
    assert dynamodb.of("scan") == []
    assert s3.calls == []
    assert stored(job_id)["runs"] == {"N": "1"}


def test_progress_reaches_100_only_at_the_end(seeded: None) -> None:
    # Given a job run one chunk per invocation
    job_id = create()
    seen = []
    while True:
        outcome = run(job_id, budget_ms=0)
        seen.append(outcome["progress"])
        if outcome["done"]:
            break
    # Then percent rises below 100 until the last run, which reads exactly 100 with every row done
    percents = [p["percent"] for p in seen]
    assert percents == sorted(percents)
    assert all(p < 100 for p in percents[:-1])
    assert percents[-1] == 100.0
    assert (seen[-1]["current"], seen[-1]["total"], seen[-1]["eta_seconds"]) == (ROWS, ROWS, 0.0)
    # And the ETA is known from the first chunk on, from processing time (250 ms per 5 rows)
    assert seen[0]["eta_seconds"] == pytest.approx((ROWS - CHUNK) * 0.05)
    assert all(p["eta_seconds"] is not None for p in seen)
    assert stored(job_id)["processing_ms"]["N"] == str(5 * 250 + 250)  # chunks, then the report


def test_rows_added_during_the_export_raise_the_total_instead_of_passing_100(seeded: None) -> None:
    # Given a job that counted 23 rows in its first run
    job_id = create()
    first = run(job_id, budget_ms=0)
    assert first["progress"]["total"] == ROWS
    # When 10 rows arrive before the export has reached them
    seed(10, start=ROWS)
    outcomes = [run(job_id, budget_ms=0) for _ in range(8)]
    # Then progress never exceeds 100 % (the total follows current) and the end matches the report
    done = [o for o in outcomes if o["done"]]
    assert all(o["progress"]["percent"] <= NOT_DONE_CAP for o in outcomes if not o["done"])
    rows = report(job_id)[1:]
    assert done[0]["progress"]["current"] == done[0]["progress"]["total"] == len(rows)
    assert len(rows) == len({row[0] for row in rows})


# -- the jobs table ----------------------------------------------------------------------------


def test_create_is_idempotent(export_env: None) -> None:
    # Given a job created with chunk size 5
    first = ExportJobs().create("exp-same", ExportRequest(chunk_size=5))
    assert first["status"] == "QUEUED"
    # When the same job id is created again (a retried request)
    second = ExportJobs().create("exp-same", ExportRequest(chunk_size=50))
    # Then the existing job comes back, unchanged, and there is one item
    assert second == first
    assert second["params"] == {"chunk_size": 5}
    assert len(_client("dynamodb").scan(TableName=JOBS)["Items"]) == 1


def test_get_returns_plain_python_or_none(export_env: None) -> None:
    create("exp-plain")
    job = ExportJobs().get("exp-plain")
    assert job is not None
    assert job["progress"] == {
        "current": 0,
        "total": None,
        "percent": 0.0,
        "eta_seconds": None,
        "updated_at": job["created_at"],
    }
    assert (job["runs"], job["result"], job["error"], job["kind"]) == (0, None, None, "report_export")
    assert ExportJobs().get("exp-none") is None


def test_a_missing_job_is_unknown(export_env: None) -> None:
    with pytest.raises(UnknownJobError):
        run("exp-missing")
    with pytest.raises(UnknownJobError):
        fail_export("exp-missing", {"Error": "States.TaskFailed"})
    # And run_export created nothing
    assert _client("dynamodb").scan(TableName=JOBS)["Items"] == []


def test_fail_export_records_the_error_and_stops_further_runs(seeded: None) -> None:
    # Given a job part way through
    job_id = create()
    run(job_id, budget_ms=0)
    # When the state machine gives up and invokes "fail" with what it caught
    job = fail_export(job_id, {"Error": "Sandbox.Timedout", "Cause": "x" * 10_000})
    # Then the job is FAILED with the public form of the error
    assert job["status"] == "FAILED"
    assert job["error"] == {"code": "timeout", "message": "The export did not finish in time."}
    assert job["finished_at"]
    # And a late run does nothing, and failing again changes nothing
    dynamodb = Recorder(_client("dynamodb"))
    assert run(job_id, dynamodb=dynamodb)["done"] is True
    assert dynamodb.of("scan") == []
    assert fail_export(job_id, {"Error": "Other"})["error"]["code"] == "timeout"


def test_fail_export_does_not_undo_a_success(seeded: None) -> None:
    job_id = create()
    run(job_id)
    assert fail_export(job_id, {"Error": "States.Timeout"})["status"] == "SUCCEEDED"


# -- starting --------------------------------------------------------------------------------


@pytest.fixture
def state_machine(export_env: None) -> str:
    definition = {"StartAt": "Pass", "States": {"Pass": {"Type": "Pass", "End": True}}}
    return _client("stepfunctions").create_state_machine(
        name="export", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/export-sfn"
    )["stateMachineArn"]


def test_start_export_creates_the_job_and_starts_one_execution(state_machine: str) -> None:
    # Given a new job id
    job_id = new_job_id()
    # When the export is started twice (a retried request)
    first = start_export(job_id, ExportRequest(chunk_size=10), state_machine_arn=state_machine)
    second = start_export(job_id, {"chunk_size": 10}, state_machine_arn=state_machine)
    # Then there is one job and one execution, named after the job, with the job id as input
    assert first["status"] == second["status"] == "QUEUED"
    assert second["job_id"] == job_id
    sfn = _client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=state_machine)["executions"]
    assert [e["name"] for e in executions] == [job_id]
    described = sfn.describe_execution(executionArn=executions[0]["executionArn"])
    assert json.loads(described["input"]) == {"job_id": job_id}


def test_start_export_after_the_execution_ended_returns_the_job(state_machine: str) -> None:
    # Given an export whose execution has ended (StartExecution then answers ExecutionAlreadyExists)
    job_id = "exp-ended"
    start_export(job_id, ExportRequest(), state_machine_arn=state_machine)
    sfn = _client("stepfunctions")
    sfn.stop_execution(
        executionArn=sfn.list_executions(stateMachineArn=state_machine)["executions"][0]["executionArn"]
    )
    # When it is started again
    job = start_export(job_id, ExportRequest(), state_machine_arn=state_machine)
    # Then the job comes back without an error
    assert job["job_id"] == job_id


def test_start_export_refuses_an_invalid_job_id(state_machine: str) -> None:
    for job_id in ("", "has space", "x" * 81, "slash/y"):
        with pytest.raises(InvalidJobIdError):
            start_export(job_id, ExportRequest(), state_machine_arn=state_machine)
    assert _client("dynamodb").scan(TableName=JOBS)["Items"] == []


# -- the handler -----------------------------------------------------------------------------


def test_handle_dispatches_and_refuses_unknown_actions(seeded: None) -> None:
    job_id = create()
    assert handle({"action": "run", "job_id": job_id}, FakeContext(60_000, FakeClock()))["done"] is True
    with pytest.raises(UnknownActionError):
        handle({"action": "pause", "job_id": job_id}, FakeContext(60_000, FakeClock()))
    with pytest.raises(InvalidJobIdError):
        handle({"action": "run"}, FakeContext(60_000, FakeClock()))


def test_the_deployed_handler_runs_and_fails_the_sample_job(seeded: None, event_file: Any) -> None:
    # Given the sample job created from the sample request
    start, failure = event_file("export-start.json"), event_file("export-fail.json")
    ExportJobs().create(start["job_id"], ExportRequest.model_validate(event_file("export-request.json")))
    handler = importlib.reload(importlib.import_module("functions.export_worker.handler"))
    # When the handler is invoked as the state machine does, until done
    outcome = handler.handler(start, context(name="export-worker-fn"))
    # Then the export is done
    assert (outcome["done"], outcome["status"], outcome["progress"]["current"]) == (True, "SUCCEEDED", ROWS)
    # And the sample failure on a finished job changes nothing
    assert handler.handler(failure, context(name="export-worker-fn"))["status"] == "SUCCEEDED"
    # And an unknown action fails the invocation with a non-retryable error
    with pytest.raises(UnknownActionError):
        handler.handler({"action": "pause", "job_id": start["job_id"]}, context(name="export-worker-fn"))


def test_the_sample_failure_marks_a_running_job_failed(seeded: None, event_file: Any) -> None:
    failure = event_file("export-fail.json")
    create(failure["job_id"])
    run(failure["job_id"], budget_ms=0)
    job = handle(failure, FakeContext(60_000, FakeClock()))
    assert (job["status"], job["error"]["code"]) == ("FAILED", "timeout")


def test_a_failure_cause_reaches_the_log_and_never_the_job(
    seeded: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The defect this guards: the job stored Step Functions' Cause (the Lambda error and stack trace, with
    ARNs, the account id, table names and source paths), which GET /exports/{id} and export.failed showed."""
    # Given a running job, and the Cause a crashed worker leaves (its error message and stack trace)
    job_id = create()
    run(job_id, budget_ms=0)
    cause = json.dumps({
        "errorMessage": "An error occurred (AccessDeniedException) when calling the Scan operation: User: "
        "arn:aws:sts::123456789012:assumed-role/AsyncStack-ExportWorkerRole/fn is not authorized on "
        "arn:aws:dynamodb:us-east-1:123456789012:table/AsyncStack-AnalyticsTable-1X2Y3Z",
        "errorType": "ClientError",
        "stackTrace": ['  File "/var/task/shared/exports.py", line 700, in _scan_page\n'],
    })  # fmt: skip
    # When the workflow marks it failed
    job = fail_export(job_id, {"Error": "ClientError", "Cause": cause})
    stored = ExportJobs().get(job_id)
    # Then neither the job nor what callers see of it carries any of the cause; the log has it all
    assert stored is not None
    for shown in (json.dumps(job), json.dumps(stored)):
        for secret in (
            "123456789012",
            "arn:aws",
            "AnalyticsTable",
            "/var/task",
            "AccessDenied",
            "ClientError",
        ):
            assert secret not in shown
    assert job["error"] == {"code": "failed", "message": FAILURE_MESSAGES["failed"]}
    assert any("AnalyticsTable-1X2Y3Z" in str(getattr(r, "cause", "")) for r in caplog.records)


def test_an_export_run_whose_scan_is_throttled_is_retried_by_its_workflow(
    seeded: None, aws_faults: AwsFaults
) -> None:
    """The defect this guards: a throttled scan reached the workflow as `ClientError`, which the run's retry
    list does not name, so the export failed for good at its first throttle."""
    # Given a job, and the source table's scan throttled beyond the SDK's retries
    ExportJobs().create("exp-throttled", ExportRequest(chunk_size=10))
    aws_faults.fail("dynamodb", "Scan")
    # When the workflow runs a chunk
    with pytest.raises(TransientError):
        handle({"action": "run", "job_id": "exp-throttled"}, context())
    # Then the next run (the workflow's retry) goes on
    assert handle({"action": "run", "job_id": "exp-throttled"}, context())["status"] in (
        "RUNNING",
        "SUCCEEDED",
    )
