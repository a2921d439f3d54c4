"""The long-running report export deployed with the CDK CLI: a worker killed in the middle of a chunk
resumes from its checkpoint (at most one chunk redone). Progress up to the report in S3 is the demo's
long-running-export scenario (test_demo.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from demo.scenarios import analytics_ids, finished_execution, history, report_rows, seed_analytics
from localcloud.cloud import LocalCloud
from shared.exports import ExportJobs, ExportRequest, start_export

pytestmark = pytest.mark.e2e

ROWS = 400
CHUNK = 25
TIMEOUT = 120.0


@pytest.fixture(scope="module")
def outputs(cloud: LocalCloud) -> dict[str, str]:
    """The stack's outputs, with ``ROWS`` order rows added to the analytics table (the report's source)."""
    seed_analytics(cloud, ROWS, prefix="export")
    return cloud.stack_outputs()


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


def test_a_worker_killed_mid_chunk_resumes_from_its_checkpoint(
    cloud: LocalCloud, outputs: dict[str, str], scans: list[int]
) -> None:
    # Given the analytics table, and a fault: the export worker's process dies while writing chunk 5
    expected = sorted(analytics_ids(cloud))
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
    assert sorted(row["event_id"] for row in report_rows(cloud, job["result"])) == expected
    # And at most one chunk was read twice (the one in flight when the process died)
    chunks = job["checkpoint"]["next_chunk"]
    assert chunks <= len(scans) <= chunks + 1, (len(scans), chunks)
