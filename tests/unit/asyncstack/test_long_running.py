"""Long-running jobs (asyncstack/runtime/long_running/) for work that is not an export: an in-memory
``ChunkedWork`` over a list, the job store on moto DynamoDB."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from pydantic import BaseModel

from asyncstack import contract
from asyncstack.runtime.long_running import (
    DEFAULT_FAILURE_MESSAGES,
    Checkpoint,
    CheckpointConflictError,
    Chunk,
    InvalidJobIdError,
    LongRunningJobStore,
    Progress,
    UnknownActionError,
    UnknownJobError,
    fail_job,
    handle_action,
    run_job,
    view_of_item,
)
from tests.unit.conftest import REGION, make_table

pytestmark = pytest.mark.unit

TABLE = "jobs"
ROWS = list(range(10))


class Request(BaseModel):
    page: int = 3
    callback_url: str | None = None


@dataclass
class ListWork:
    """Copies ``ROWS`` page by page into ``outputs`` (chunk number -> rows); ``finish`` joins them."""

    page: int
    outputs: dict[int, list[int]] = field(default_factory=dict)
    starts: list[Any] = field(default_factory=list)
    cleaned: bool = False

    def count(self) -> int:
        return len(ROWS)

    def chunk(self, number: int, start: Any) -> Chunk:
        self.starts.append(start)
        offset = 0 if start is None else start["offset"]
        self.outputs[number] = ROWS[offset : offset + self.page]
        following = offset + self.page
        return Chunk(
            rows=len(self.outputs[number]), next_key={"offset": following} if following < len(ROWS) else None
        )

    def finish(self, chunks: int, rows: int) -> dict[str, Any]:
        return {"rows": rows, "sum": sum(sum(self.outputs[n]) for n in range(chunks))}

    def clean_up(self, chunks: int) -> None:
        self.cleaned = True


class Clock:
    """Every reading is 100 ms after the last: a chunk takes 200 ms in all (three readings)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.1
        return self.now


@dataclass
class Budget:
    """A Lambda context with ``ms`` left, whatever the clock says."""

    ms: int

    def get_remaining_time_in_millis(self) -> int:
        return self.ms


@pytest.fixture
def jobs(aws: None) -> LongRunningJobStore:
    return LongRunningJobStore(make_table(TABLE, "job_id"), kind="copy")


def run(
    jobs: LongRunningJobStore, work: ListWork, job_id: str = "job-1", budget_ms: int = 60_000
) -> dict[str, Any]:
    return run_job(
        job_id, Budget(budget_ms), lambda _id, params: work, jobs=jobs, clock=Clock(), margin_ms=1_000
    )


def test_a_job_runs_its_chunks_across_runs_and_records_its_result(jobs: LongRunningJobStore) -> None:
    # Given a job over 10 rows, 3 a chunk, and a worker with almost no time (one chunk a run)
    jobs.create("job-1", Request())
    work = ListWork(page=3)
    # When the workflow invokes it until it is done
    outcomes = [run(jobs, work, budget_ms=0) for _ in range(5)]
    # Then each run did one chunk from where the last stopped, and the run after the last chunk finished the job
    assert [o[contract.LONG_RUNNING_DONE_FIELD] for o in outcomes] == [False, False, False, False, True]
    assert work.starts == [None, {"offset": 3}, {"offset": 6}, {"offset": 9}]
    job = jobs.get("job-1")
    assert job is not None
    assert (job["status"], job["result"], job["runs"]) == ("SUCCEEDED", {"rows": 10, "sum": 45}, 5)
    assert job["progress"]["percent"] == 100.0 and job["checkpoint"] == {"next_chunk": 4, "rows": 10}
    assert work.cleaned is True
    # And a run after the end does nothing
    assert run(jobs, ListWork(page=3))["done"] is True


def test_a_run_with_time_goes_on_until_its_margin(jobs: LongRunningJobStore) -> None:
    jobs.create("job-1", Request())
    # 200 ms a chunk: a run goes on while more than 1 s margin + 2 x 200 ms is left
    assert run(jobs, ListWork(page=3), budget_ms=1_401)["done"] is True
    jobs.create("job-2", Request())
    outcome = run(jobs, ListWork(page=3), job_id="job-2", budget_ms=1_400)
    assert (outcome["done"], outcome["progress"]["current"]) == (False, 3)


def test_a_stale_run_cannot_write_over_newer_progress(jobs: LongRunningJobStore) -> None:
    # Given a job whose checkpoint moved past chunk 0 (a retry overtook this run)
    jobs.create("job-1", Request())
    run(jobs, ListWork(page=3), budget_ms=0)
    # When the stale run records its own chunk 0
    stale = Checkpoint(next_chunk=1, last_key={"offset": 3}, rows=3)
    with pytest.raises(
        CheckpointConflictError, match="expected it RUNNING at chunk 0, found RUNNING at chunk 1"
    ):
        jobs.record_chunk(
            "job-1", expected_chunk=0, checkpoint=stale, progress=Progress(current=3), processing_ms=0
        )
    # Then the newer checkpoint stands
    job = jobs.get("job-1")
    assert job is not None and job["checkpoint"] == {"next_chunk": 1, "rows": 3}


def test_a_failure_keeps_only_its_public_form(jobs: LongRunningJobStore) -> None:
    # Given a running job
    jobs.create("job-1", Request())
    run(jobs, ListWork(page=3), budget_ms=0)
    # When the workflow fails it with what it caught
    cause = json.dumps({"errorMessage": "arn:aws:dynamodb:us-east-1:123456789012:table/secret-name is gone"})
    job = fail_job("job-1", {"Error": "States.Timeout", "Cause": cause}, jobs=jobs)
    # Then the job and its stored item say only the code and the generic sentence
    assert job["error"] == {"code": "timeout", "message": DEFAULT_FAILURE_MESSAGES["timeout"]}
    stored = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=TABLE, Key={"job_id": {"S": "job-1"}}
    )
    assert "123456789012" not in json.dumps(stored["Item"])
    # And failing a job that is not there is an error no retry fixes
    with pytest.raises(UnknownJobError):
        fail_job("job-none", {"Error": "States.Timeout"}, jobs=jobs)


def test_view_of_item_is_what_callers_see_of_a_stored_item(jobs: LongRunningJobStore) -> None:
    # Given a job part way through, with a callback, as DynamoDB stores it
    jobs.create("job-1", Request(callback_url="https://hooks.example.com/done"))
    run(jobs, ListWork(page=3), budget_ms=0)
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=TABLE, Key={"job_id": {"S": "job-1"}}
    )
    # When it is viewed
    view = view_of_item(item["Item"])
    # Then it is the store's view: plain numbers, the params, the webhook, no resume key
    assert view == jobs.get("job-1")
    assert view["kind"] == "copy" and view["params"] == {"page": 3}
    assert view["checkpoint"] == {"next_chunk": 1, "rows": 3}
    assert isinstance(view["progress"]["current"], int) and isinstance(view["progress"]["percent"], float)
    assert view["webhook"] == {
        "callback_url": "https://hooks.example.com/done", "status": "pending", "attempts": [], "delivered_at": None,
    }  # fmt: skip
    assert "offset" not in json.dumps(view)


def test_the_worker_entry_point_dispatches_on_the_action(jobs: LongRunningJobStore) -> None:
    calls: list[tuple[str, str]] = []

    def remember(action: str) -> Any:
        return lambda job_id, _arg: calls.append((action, job_id)) or {}

    def handle(event: Mapping[str, Any]) -> dict[str, Any]:
        return handle_action(event, Budget(1_000), run=remember("run"), fail=remember("fail"))

    handle({"action": contract.LONG_RUNNING_RUN_ACTION, "job_id": "job-1"})
    handle({"action": contract.LONG_RUNNING_FAIL_ACTION, "job_id": "job-2", "error": {"Error": "x"}})
    assert calls == [("run", "job-1"), ("fail", "job-2")]
    with pytest.raises(UnknownActionError):
        handle({"action": "pause", "job_id": "job-1"})
    with pytest.raises(InvalidJobIdError):
        handle({"action": contract.LONG_RUNNING_RUN_ACTION, "job_id": "no spaces"})
