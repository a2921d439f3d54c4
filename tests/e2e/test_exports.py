"""The long-running report export deployed with the CDK CLI: progress after every chunk, a result in S3,
and a worker killed in the middle of a chunk that resumes from its checkpoint (at most one chunk redone)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from shared.exports import ExportJobs, ExportRequest, start_export
from tests.e2e.executions import finished_execution, history

pytestmark = pytest.mark.e2e

ROWS = 400
CHUNK = 25
TIMEOUT = 120.0


@pytest.fixture(scope="module")
def outputs(cloud: LocalCloud) -> dict[str, str]:
    """The stack's outputs, with ``ROWS`` order rows added to the analytics table (the report's source)."""
    outputs = cloud.stack_outputs()
    dynamodb = cloud.client("dynamodb")
    for start in range(0, ROWS, 25):
        dynamodb.batch_write_item(
            RequestItems={
                outputs["AnalyticsTableName"]: [
                    {
                        "PutRequest": {
                            "Item": {
                                "event_id": {"S": f"evt-export-{n:05d}"},
                                "type": {"S": "order.created"},
                                "occurred_at": {"S": "2026-11-29T10:00:00+00:00"},
                                "order_id": {"S": f"ord-export-{n:05d}"},
                                "customer_id": {"S": "cus-1"},
                                "total_cents": {"N": str(n * 10)},
                                "units": {"N": "1"},
                            }
                        }
                    }
                    for n in range(start, min(start + 25, ROWS))
                ]
            }
        )
    return outputs


def _jobs(cloud: LocalCloud, outputs: dict[str, str]) -> ExportJobs:
    return ExportJobs(outputs["ExportJobsTableName"], client=cloud.client("dynamodb"))


def _new_job_id() -> str:
    return f"exp-e2e-{uuid.uuid4().hex[:12]}"


def _start(cloud: LocalCloud, outputs: dict[str, str], job_id: str) -> str:
    start_export(
        job_id,
        ExportRequest(chunk_size=CHUNK),
        state_machine_arn=outputs["ExportWorkflowArn"],
        jobs=_jobs(cloud, outputs),
        sfn_client=cloud.client("stepfunctions"),
    )
    return job_id


def _execution_arn(outputs: dict[str, str], job_id: str) -> str:
    prefix, _, machine = outputs["ExportWorkflowArn"].rpartition(":stateMachine:")
    return f"{prefix}:execution:{machine}:{job_id}"


def _table_ids(cloud: LocalCloud, outputs: dict[str, str]) -> list[str]:
    pages = (
        cloud.client("dynamodb")
        .get_paginator("scan")
        .paginate(TableName=outputs["AnalyticsTableName"], ProjectionExpression="event_id")
    )
    return [item["event_id"]["S"] for page in pages for item in page["Items"]]


def _report(cloud: LocalCloud, result: dict[str, Any]) -> list[dict[str, str]]:
    body = cloud.client("s3").get_object(Bucket=result["bucket"], Key=result["key"])["Body"].read().decode()
    return list(csv.DictReader(io.StringIO(body)))


def _export_worker(cloud: LocalCloud) -> str:
    (name,) = [f for f in cloud.functions() if "ExportWorker" in f]
    return name


@pytest.fixture
def scans(cloud: LocalCloud, outputs: dict[str, str]) -> Iterator[list[int]]:
    """Counts the report's chunk reads (Scans of the analytics table, a chunk at a time)."""
    seen: list[int] = []

    def count(call: tuple[str, str], environ: dict[str, Any], body: bytes) -> None:
        if call == ("dynamodb", "Scan"):
            request = json.loads(body)
            if request.get("TableName") == outputs["AnalyticsTableName"] and request.get("Limit") == CHUNK:
                seen.append(1)

    with cloud.request_hook(count):
        yield seen


def test_an_export_reports_progress_and_ends_with_the_report_in_s3(
    cloud: LocalCloud, outputs: dict[str, str]
) -> None:
    # Given the analytics table with at least ROWS rows
    expected = sorted(_table_ids(cloud, outputs))
    # When an export is started and watched
    job_id = _start(cloud, outputs, _new_job_id())
    seen_percent: list[float] = []

    def done() -> bool:
        job = _jobs(cloud, outputs).get(job_id) or {}
        if job.get("progress"):
            seen_percent.append(float(job["progress"]["percent"]))
        return job.get("status") in ("SUCCEEDED", "FAILED")

    cloud.wait_until(done, TIMEOUT, f"export {job_id} to finish", poll=0.05)
    job = _jobs(cloud, outputs).get(job_id)
    assert job is not None
    # Then it succeeded and its progress went up to exactly 100 %
    assert job["status"] == "SUCCEEDED", job
    assert seen_percent == sorted(seen_percent) and seen_percent[-1] == 100
    assert job["progress"]["current"] == job["progress"]["total"] == len(expected)
    # And the report holds every row of the table exactly once
    report = _report(cloud, job["result"])
    assert sorted(row["event_id"] for row in report) == expected
    assert job["result"]["rows"] == len(expected)
    # And the chunk parts were cleaned up
    listed = cloud.client("s3").list_objects_v2(
        Bucket=job["result"]["bucket"], Prefix=f"exports/{job_id}/parts/"
    )
    assert listed.get("KeyCount", 0) == 0
    assert finished_execution(cloud, _execution_arn(outputs, job_id))["status"] == "SUCCEEDED"


def test_a_worker_killed_mid_chunk_resumes_from_its_checkpoint(
    cloud: LocalCloud, outputs: dict[str, str], scans: list[int]
) -> None:
    # Given the analytics table, and a fault: the export worker's process dies while writing chunk 5
    expected = sorted(_table_ids(cloud, outputs))
    worker = cloud.runtime.function(_export_worker(cloud))
    killed: list[int] = []
    job_id = _new_job_id()

    def crash(call: tuple[str, str], environ: dict[str, Any], body: bytes) -> None:
        if (
            not killed
            and environ.get("REQUEST_METHOD") == "PUT"
            and f"/exports/{job_id}/parts/000005" in environ.get("PATH_INFO", "")
        ):
            killed.append(worker.kill_running())

    # When the export runs
    with cloud.request_hook(crash):
        _start(cloud, outputs, job_id)
        execution = finished_execution(cloud, _execution_arn(outputs, job_id), TIMEOUT)
    # Then the worker was killed once, Step Functions retried the run, and the job still succeeded
    assert killed == [1]
    events = history(cloud, execution["executionArn"])
    assert [e["taskFailedEventDetails"]["error"] for e in events if e["type"] == "TaskFailed"] == [
        "Runtime.ExitError"
    ]
    assert execution["status"] == "SUCCEEDED"
    job = _jobs(cloud, outputs).get(job_id)
    assert job is not None and job["status"] == "SUCCEEDED" and job["runs"] == 2
    # And the report is right: every row exactly once
    assert sorted(row["event_id"] for row in _report(cloud, job["result"])) == expected
    # And at most one chunk was read twice (the one in flight when the process died)
    chunks = job["checkpoint"]["next_chunk"]
    assert chunks <= len(scans) <= chunks + 1, (len(scans), chunks)
