"""Request-reply and long-running jobs on the local cloud, each figure next to a same-run baseline.

1. RPC round trip: ``RpcClient.call("image.resize")`` on a 32 x 32 PNG through the deployed request
   queue, worker and reply queue, p50 and p99. Baseline: the transport alone, the same two SQS hops
   with nobody working in between (send, receive, send the answer, receive it) on the same endpoint.
2. Progress tracking per chunk: an export run in this process against the local endpoint, the
   time of each chunk's progress-and-checkpoint write next to the chunk's own work (its Scan page
   and its part upload), and the DynamoDB writes per chunk (the design's floor is one).
3. Work redone after a crash: the deployed export workflow with the worker's process killed while
   it writes chunk 8; chunks read twice, against what a restart from zero would redo (the chunks
   finished before the crash).
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asyncstack.runtime.rpc import RpcClient
from bench.results import Metric, command, ratio
from localcloud.cloud import LocalCloud
from localcloud.server import free_port
from localcloud.stats import percentile
from shared.exports import ExportJobs, ExportRequest, run_export, start_export
from shared.png import encode, gradient

GROUP = "workflows"
CRASH_CHUNK = 8


class _Timed:
    """A boto3 client whose chosen operations are timed (milliseconds per call, in call order)."""

    def __init__(self, client: Any, timed: dict[str, Callable[[dict[str, Any]], bool]]) -> None:
        self._client = client
        self._timed = timed
        self.ms: dict[str, list[float]] = {name: [] for name in timed}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name not in self._timed:
            return method

        def timed(**kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(**kwargs)
            finally:
                if self._timed[name](kwargs):
                    self.ms[name].append((time.perf_counter() - started) * 1000)

        return timed


class Unhurried:
    """A Lambda context with all the time in the world: one run does the whole export."""

    def get_remaining_time_in_millis(self) -> int:
        return 15 * 60 * 1000


def _row(n: int) -> dict[str, Any]:
    return {
        "event_id": {"S": f"evt-bench-{n:06d}"}, "type": {"S": "order.created"},
        "occurred_at": {"S": "2026-11-29T10:00:00+00:00"}, "order_id": {"S": f"ord-{n:06d}"},
        "customer_id": {"S": "cus-1"}, "total_cents": {"N": str(n)}, "units": {"N": "1"},
    }  # fmt: skip


def seed_analytics(cloud: LocalCloud, table: str, rows: int) -> None:
    dynamodb = cloud.client("dynamodb")
    for start in range(0, rows, 25):
        batch = [{"PutRequest": {"Item": _row(n)}} for n in range(start, min(start + 25, rows))]
        dynamodb.batch_write_item(RequestItems={table: batch})


def _rpc(cloud: LocalCloud, outputs: dict[str, str], calls: int) -> tuple[list[float], list[float]]:
    s3 = cloud.client("s3")
    s3.put_object(Bucket=outputs["ImagesBucketName"], Key="uploads/bench.png", Body=encode(gradient(32, 32)))
    client = RpcClient(
        outputs["ImageResizeQueueUrl"], outputs["ImageResizeReplyQueueUrl"], sqs=cloud.client("sqs"),
        clock=cloud.clock.timestamp,
    )  # fmt: skip
    payload = {"source_key": "uploads/bench.png", "max_width": 16, "max_height": 16}
    client.call("image.resize", payload, timeout=30)  # the cold start is not a round trip
    rpc = []
    for _ in range(calls):
        started = time.perf_counter()
        client.call("image.resize", payload, timeout=30)
        rpc.append((time.perf_counter() - started) * 1000)

    sqs = cloud.client("sqs")
    there = sqs.create_queue(QueueName="bench-rpc-there")["QueueUrl"]
    back = sqs.create_queue(QueueName="bench-rpc-back")["QueueUrl"]

    def hop(url: str, body: str) -> None:
        sqs.send_message(QueueUrl=url, MessageBody=body)
        (message,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5, MaxNumberOfMessages=1)["Messages"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    transport = []
    for _ in range(calls):
        started = time.perf_counter()
        hop(there, json.dumps(payload))
        hop(back, json.dumps({"ok": True}))
        transport.append((time.perf_counter() - started) * 1000)
    return rpc, transport


def _progress_overhead(cloud: LocalCloud, outputs: dict[str, str], chunk_size: int) -> dict[str, float]:
    jobs_table = outputs["ExportJobsTableName"]
    dynamodb = _Timed(
        cloud.client("dynamodb"),
        {"update_item": lambda k: ":checkpoint" in k.get("ExpressionAttributeValues", {})},
    )
    source = _Timed(cloud.client("dynamodb"), {"scan": lambda k: k.get("Select") != "COUNT"})
    s3 = _Timed(cloud.client("s3"), {"put_object": lambda k: "/parts/" in k["Key"]})
    jobs = ExportJobs(jobs_table, client=dynamodb)  # type: ignore[arg-type]
    job_id = f"bench-{uuid.uuid4().hex[:10]}"
    jobs.create(job_id, ExportRequest(chunk_size=chunk_size))
    run_export(
        job_id, Unhurried(), jobs=jobs, source_table=outputs["AnalyticsTableName"],
        bucket=outputs["ExportBucketName"], s3=s3, dynamodb=source,  # type: ignore[arg-type]
    )  # fmt: skip
    job = jobs.get(job_id)
    assert job is not None and job["status"] == "SUCCEEDED", job
    chunks = int(job["checkpoint"]["next_chunk"])
    writes = dynamodb.ms["update_item"]
    work = [scan + put for scan, put in zip(source.ms["scan"], s3.ms["put_object"], strict=False)]
    return {
        "chunks": chunks,
        "writes_per_chunk": len(writes) / chunks,
        "write_ms": sum(writes) / len(writes),
        "work_ms": sum(work) / len(work),
    }


def _redone_after_crash(cloud: LocalCloud, outputs: dict[str, str], chunk_size: int) -> tuple[int, int]:
    """(chunks read twice, chunks a restart from zero would have redone) for one killed export."""
    sfn = cloud.client("stepfunctions")
    (worker_name,) = [name for name in cloud.functions() if "ExportWorker" in name]
    worker = cloud.runtime.function(worker_name)
    job_id = f"bench-crash-{uuid.uuid4().hex[:8]}"
    scans: list[int] = []
    killed: list[int] = []

    def hook(call: tuple[str, str], environ: dict[str, Any], body: bytes) -> None:
        if call == ("dynamodb", "Scan") and json.loads(body).get("Limit") == chunk_size:
            scans.append(1)
        if not killed and f"/exports/{job_id}/parts/{CRASH_CHUNK:06d}" in environ.get("PATH_INFO", ""):
            killed.append(worker.kill_running())

    jobs = ExportJobs(outputs["ExportJobsTableName"], client=cloud.client("dynamodb"))
    with cloud.request_hook(hook):
        start_export(job_id, ExportRequest(chunk_size=chunk_size), state_machine_arn=outputs["ExportWorkflowArn"],
                     jobs=jobs, sfn_client=sfn)  # fmt: skip
        cloud.wait_until(
            lambda: (jobs.get(job_id) or {}).get("status") in ("SUCCEEDED", "FAILED"), 180, "the export"
        )
    job = jobs.get(job_id)
    assert job is not None and job["status"] == "SUCCEEDED" and killed == [1], (job, killed)
    return len(scans) - int(job["checkpoint"]["next_chunk"]), CRASH_CHUNK


def run(*, quick: bool = False) -> tuple[list[Metric], list[str]]:
    calls = 30 if quick else 200
    rows, chunk_size = (1_000, 50) if quick else (5_000, 100)
    with tempfile.TemporaryDirectory(prefix="bench-workflows-") as workdir:
        cloud = LocalCloud(port=free_port(), api_port=None, workdir=Path(workdir)).start()
        try:
            outputs = cloud.deploy().outputs
            rpc, transport = _rpc(cloud, outputs, calls)
            seed_analytics(cloud, outputs["AnalyticsTableName"], rows)
            progress = _progress_overhead(cloud, outputs, chunk_size)
            redone, from_zero = _redone_after_crash(cloud, outputs, chunk_size)
        finally:
            cloud.close()

    cmd = command(GROUP, quick=quick)
    p50, p99 = percentile(rpc, 0.5), percentile(rpc, 0.99)
    b50, b99 = percentile(transport, 0.5), percentile(transport, 0.99)
    transport_baseline = "two SQS hops with no worker (send, receive, answer, receive) on the same endpoint"
    work_baseline = "the chunk's own work: its Scan page and its part upload"
    notes = [
        f"workflows: {calls} RPC calls p50 {p50:.0f} ms p99 {p99:.0f} ms (transport alone {b50:.0f}/{b99:.0f} ms); "
        f"{progress['chunks']:.0f} chunks of {chunk_size}: progress write {progress['write_ms']:.1f} ms vs chunk work "
        f"{progress['work_ms']:.1f} ms; {redone} chunk(s) redone after a crash at chunk {CRASH_CHUNK}"
    ]
    return [
        Metric("workflows.rpc_round_trip_p50_ms", round(p50, 1), "ms", transport_baseline, round(b50, 1),
               ratio(p50, b50), cmd),
        Metric("workflows.rpc_round_trip_p99_ms", round(p99, 1), "ms", transport_baseline, round(b99, 1),
               ratio(p99, b99), cmd),
        Metric("workflows.progress_write_ms_per_chunk", round(progress["write_ms"], 2), "ms", work_baseline,
               round(progress["work_ms"], 2), ratio(progress["write_ms"], progress["work_ms"]), cmd),
        Metric("workflows.progress_writes_per_chunk", round(progress["writes_per_chunk"], 3), "writes",
               "one write per chunk (progress and checkpoint together)", 1.0, ratio(progress["writes_per_chunk"], 1.0),
               cmd),
        Metric("workflows.chunks_redone_after_crash", redone, "chunks",
               f"a restart from zero after a crash at chunk {CRASH_CHUNK}", from_zero, ratio(redone, from_zero), cmd),
    ], notes  # fmt: skip
