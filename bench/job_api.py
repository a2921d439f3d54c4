"""The job API on the local API and webhook delivery, each figure next to a same-run baseline.

1. ``POST /orders`` latency, p50 and p99 (warm, one client): the API publishes the event and answers
   202. Measured paced (four orders a second, which the consumers keep up with), and again back to
   back, with the consumers working through the backlog on the same two cores. Baseline: the same work done synchronously in the request, i.e. the inventory, email and
   analytics workers run one after the other on that order (synchronous invokes of the deployed
   functions with the SQS record they would get).
2. ``POST /exports`` latency, p50 and p99: the API records the job, starts its workflow and answers
   202 (each request after the previous export's webhook arrived). Baseline: the same export run to completion inside the request (``run_export`` in this
   process against the local endpoint).
3. Webhook delivery latency: from the job's ``finished_at`` to the receiver's verified receipt
   (first attempt accepted), p50. Baseline: a client polling ``GET /exports/{id}`` once a second,
   from ``finished_at`` to the poll that sees the job done.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.results import Metric, command, ratio
from bench.workflows import Unhurried, seed_analytics
from localcloud.cloud import LocalCloud
from localcloud.server import REGION, free_port
from localcloud.sqs.records import lambda_event
from localcloud.stats import percentile
from shared.exports import ExportJobs, ExportRequest, run_export

GROUP = "api"
PACE_SECONDS = 0.25


def _order(order_id: str) -> dict[str, Any]:
    return {
        "order_id": order_id, "customer_id": "cus-bench", "customer_email": "bench@example.com",
        "lines": [{"sku": "SKU-BENCH", "quantity": 1, "unit_price_cents": 100}], "currency": "EUR",
    }  # fmt: skip


def _post(cloud: LocalCloud, path: str, body: Any) -> tuple[float, dict[str, Any]]:
    assert cloud.api is not None
    request = urllib.request.Request(
        f"{cloud.api.url}/v1{path}", data=json.dumps(body).encode(), method="POST",
        headers={"x-api-key": cloud.api_key, "content-type": "application/json"},
    )  # fmt: skip
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    return (time.perf_counter() - started) * 1000, answer


def _get(cloud: LocalCloud, url: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"x-api-key": cloud.api_key})
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def _synchronous_order(cloud: LocalCloud, order_id: str) -> float:
    """The three consumers' work on one order, one after the other, as a request handler would do it."""
    envelope = {
        "event_id": f"evt-sync-{uuid.uuid4().hex}", "type": "order.created", "source": "bench",
        "occurred_at": "2026-11-29T10:00:00+00:00", "data": _order(order_id),
    }  # fmt: skip
    message = {
        "MessageId": str(uuid.uuid4()), "ReceiptHandle": "bench", "Body": json.dumps(envelope),
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
    }  # fmt: skip
    lambda_ = cloud.client("lambda")
    started = time.perf_counter()
    for worker in ("InventoryWorker", "EmailWorker", "AnalyticsWorker"):
        (name,) = [f for f in cloud.functions() if worker in f]
        queue = f"arn:aws:sqs:{REGION}:123456789012:{worker}"
        payload = json.dumps(lambda_event([message], queue_arn=queue, region=REGION)).encode()
        result = lambda_.invoke(FunctionName=name, Payload=payload)
        assert "FunctionError" not in result, result["Payload"].read()
    return (time.perf_counter() - started) * 1000


class _Receiver:
    """Accepts every delivery and notes when it arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                receiver.arrivals[body["data"]["job_id"]] = time.time()
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def has(self, job_id: str) -> Callable[[], bool]:
        return lambda: job_id in self.arrivals


def _finished_at(job: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(job["finished_at"]).replace("Z", "+00:00")).timestamp()


def run(*, quick: bool = False) -> tuple[list[Metric], list[str]]:
    orders, exports, sync_runs = (30, 10, 5) if quick else (200, 30, 15)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as workdir:
        cloud = LocalCloud(port=free_port(), api_port=free_port(), workdir=Path(workdir)).start()
        receiver = _Receiver()
        try:
            outputs = cloud.deploy().outputs
            seed_analytics(cloud, outputs["AnalyticsTableName"], 200)
            _post(cloud, "/orders", _order("ord-warmup"))  # cold starts are not what is measured
            # Paced as a client sending four orders a second (the consumers keep up) ...
            order_ms = []
            for i in range(orders):
                order_ms.append(_post(cloud, "/orders", _order(f"ord-{i}"))[0])
                time.sleep(max(0.0, PACE_SECONDS - order_ms[-1] / 1000))
            # ... and back to back, the consumers busy with the backlog on the same two cores
            loaded_ms = [_post(cloud, "/orders", _order(f"ord-load-{i}"))[0] for i in range(orders)]
            sync_order_ms = [_synchronous_order(cloud, f"ord-sync-{i}") for i in range(sync_runs)]

            jobs = ExportJobs(outputs["ExportJobsTableName"], client=cloud.client("dynamodb"))
            cloud.wait_until(cloud.idle, 120, "the order backlog to drain")
            export_ms, started = [], []
            seen_by_poll: dict[str, float] = {}
            for _ in range(exports):
                elapsed, answer = _post(cloud, "/exports", {"chunk_size": 50, "callback_url": receiver.url})
                export_ms.append(elapsed)
                started.append(answer)
                # The baseline client: polls the status URL once a second until the job is done
                while _get(cloud, answer["status_url"])["status"] != "SUCCEEDED":
                    time.sleep(1.0)
                seen_by_poll[answer["job_id"]] = time.time()
                cloud.wait_until(receiver.has(str(answer["job_id"])), 60, "the export's webhook")
            sync_export_ms = []
            for _ in range(sync_runs):
                job_id = f"bench-sync-{uuid.uuid4().hex[:8]}"
                begun = time.perf_counter()
                jobs.create(job_id, ExportRequest(chunk_size=50))
                run_export(
                    job_id, Unhurried(), jobs=jobs, source_table=outputs["AnalyticsTableName"],
                    bucket=outputs["ExportBucketName"], s3=cloud.client("s3"), dynamodb=cloud.client("dynamodb"),
                )  # fmt: skip
                sync_export_ms.append((time.perf_counter() - begun) * 1000)

            cloud.wait_until(lambda: len(receiver.arrivals) >= len(started), 120, "every webhook")
            finished = {a["job_id"]: _finished_at(jobs.get(a["job_id"]) or {}) for a in started}
            webhook_s = [receiver.arrivals[j] - finished[j] for j in finished]
            polling_s = [seen_by_poll[j] - finished[j] for j in finished if j in seen_by_poll]
        finally:
            receiver.server.shutdown()
            cloud.close()

    cmd = command(GROUP, quick=quick)
    sync_order = percentile(sync_order_ms, 0.5)
    sync_export = percentile(sync_export_ms, 0.5)
    o50, o99 = percentile(order_ms, 0.5), percentile(order_ms, 0.99)
    l50, l99 = percentile(loaded_ms, 0.5), percentile(loaded_ms, 0.99)
    e50, e99 = percentile(export_ms, 0.5), percentile(export_ms, 0.99)
    w50, p50 = percentile(webhook_s, 0.5), percentile(polling_s, 0.5)
    order_baseline = "the same order processed in the request: inventory, email and analytics workers invoked in turn (p50)"
    export_baseline = "the same export (200 rows, chunks of 50) run to completion in the request (p50)"
    notes = [
        f"api: POST /orders p50 {o50:.0f} ms p99 {o99:.0f} ms (back to back under load {l50:.0f}/{l99:.0f} ms) "
        f"vs {sync_order:.0f} ms synchronous; "
        f"POST /exports p50 {e50:.0f} ms p99 {e99:.0f} ms vs {sync_export:.0f} ms synchronous; "
        f"webhook {w50:.2f} s after completion vs {p50:.2f} s for a 1 s poller"
    ]
    return [
        Metric("api.post_orders_p50_ms", round(o50, 1), "ms", order_baseline, round(sync_order, 1), ratio(o50, sync_order), cmd),
        Metric("api.post_orders_p99_ms", round(o99, 1), "ms", order_baseline, round(sync_order, 1), ratio(o99, sync_order), cmd),
        Metric("api.post_orders_under_load_p50_ms", round(l50, 1), "ms", order_baseline, round(sync_order, 1),
               ratio(l50, sync_order), cmd),
        Metric("api.post_orders_under_load_p99_ms", round(l99, 1), "ms", order_baseline, round(sync_order, 1),
               ratio(l99, sync_order), cmd),
        Metric("api.post_exports_p50_ms", round(e50, 1), "ms", export_baseline, round(sync_export, 1), ratio(e50, sync_export), cmd),
        Metric("api.post_exports_p99_ms", round(e99, 1), "ms", export_baseline, round(sync_export, 1), ratio(e99, sync_export), cmd),
        Metric("api.webhook_latency_p50_s", round(w50, 3), "s",
               "a client polling GET /exports/{id} once a second, completion to the poll that sees it (p50)",
               round(p50, 3), ratio(w50, p50), cmd),
    ], notes  # fmt: skip
