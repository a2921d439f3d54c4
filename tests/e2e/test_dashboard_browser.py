"""The dashboard in a real headless Chromium (Debian's), driven by Playwright, on the deployed stack.
Each test saves a screenshot of its view under test-output/dashboard/."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from demo.runner import run_demo
from demo.scenarios import api_request, seed_analytics, sign_up
from localcloud.cloud import LocalCloud
from localcloud.server import HookResponse
from shared.events import ORDER_CREATED, OrderLine
from shared.inventory import InventoryRepository
from tests.e2e.drive import inventory_outage, order_event, purge_queue

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and quiet on a machine without internet: no background connections Chromium would try.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "dashboard"
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, cloud: LocalCloud) -> Iterator[Page]:
    """The dashboard, open and live; the test fails on any script error or CSP violation."""
    assert cloud.dashboard is not None
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on(
        "console",
        lambda m: (
            errors.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None
        ),
    )
    opened.goto(cloud.dashboard.url)
    opened.wait_for_selector("#live.live")
    yield opened
    context.close()
    assert errors == []


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def show(page: Page, view: str) -> None:
    page.click(f"nav a[data-view={view}]")
    page.wait_for_selector(f"section#view-{view}.active")


def confirm_with_key(page: Page, key: str) -> None:
    page.wait_for_selector("dialog#confirm[open]")
    page.fill("#confirm-key", key)
    page.click("#confirm-ok")


def number(page: Page, selector: str) -> int:
    return int(page.inner_text(selector).strip().replace("\u2013", "0") or 0)


def test_the_page_loads_and_follows_the_demo_live(page: Page, cloud: LocalCloud) -> None:
    # Given the dashboard open on the functions view
    show(page, "functions")
    email = next(name for name in cloud.functions() if "EmailWorker" in name)
    cell = f"tr[data-function='{email}'] td[data-field=invocations]"
    before = number(page, cell)
    # When the demo runs in the background (pub-sub, then the saga)
    outcome: dict[str, Any] = {}
    demo = threading.Thread(
        target=lambda: outcome.update(
            ok=run_demo(cloud=cloud, patterns=["pub-sub", "saga"], events=60, say=lambda _: None)
        )
    )
    demo.start()
    try:
        # Then the page follows it without a reload: the email worker's invocations go up
        page.wait_for_function(
            "([selector, before]) => Number(document.querySelector(selector).textContent) > before",
            arg=[cell, before],
        )
        screenshot(page, "functions")
    finally:
        demo.join(timeout=300)
    assert outcome == {"ok": True}
    # And the workflows view shows the saga's compensated execution, its steps in order
    show(page, "workflows")
    saga = page.locator("div.machine", has_text="OrderSaga")
    saga.locator("tr[data-execution]", has_text="FAILED").first.click()
    page.wait_for_selector("#steps tr[data-step=OrderFailed]")
    steps = page.locator("#steps tr").evaluate_all("rows => rows.map(row => row.dataset.step)")
    assert steps == ["AcceptOrder", "ChargePayment", "ReserveInventory", "SendConfirmation",
                     "ReleaseInventory", "RefundPayment", "NotifyFailure", "OrderFailed"]  # fmt: skip
    compensating = page.locator("#steps tr.compensating").evaluate_all(
        "rows => rows.map(row => row.dataset.step)"
    )
    assert compensating == ["ReleaseInventory", "RefundPayment", "NotifyFailure", "OrderFailed"]
    screenshot(page, "workflows")


def test_a_poison_event_appears_in_the_dead_letter_queue_with_its_reason(
    page: Page, cloud: LocalCloud
) -> None:
    # Given the queues view
    show(page, "queues")
    dlq = cloud.stack_outputs()["InventoryDeadLetterQueueUrl"].rsplit("/", 1)[-1]
    # When a schema-invalid order event (no lines) is published
    event_id = f"evt-ui-poison-{uuid.uuid4().hex[:8]}"
    cloud.client("sns").publish(
        TopicArn=cloud.stack_outputs()["OrdersTopicArn"], Message=order_event(event_id, f"ord-{event_id}", []),
        MessageAttributes={"type": {"DataType": "String", "StringValue": ORDER_CREATED}},
    )  # fmt: skip
    # Then the inventory DLQ can be opened, and the message is there with its reason
    page.click(f"tr[data-queue='{dlq}'] button[data-action=open]")
    message = page.locator("#dead-letter-messages .message", has_text=event_id)
    message.wait_for()
    assert message.locator("[data-field=error]").inner_text().startswith("SchemaInvalid: ")
    assert json.loads(message.locator("[data-field=body]").inner_text())["event_id"] == event_id
    assert "error-type" in message.locator("dl").inner_text()
    screenshot(page, "queues")


def test_redrive_empties_the_dead_letter_queue_and_the_message_is_processed(
    page: Page, cloud: LocalCloud
) -> None:
    # Given two orders that the inventory function failed during an outage, now in its DLQ, the outage over
    outputs = cloud.stack_outputs()
    dlq = outputs["InventoryDeadLetterQueueUrl"].rsplit("/", 1)[-1]
    purge_queue(cloud, outputs["InventoryDeadLetterQueueUrl"])  # this test's messages only
    inventory = InventoryRepository(outputs["InventoryTableName"], client=cloud.client("dynamodb"))
    inventory.put_stock("SKU-UI", 10)
    run = uuid.uuid4().hex[:8]
    orders = [f"ord-ui-{run}-{n}" for n in range(2)]
    with inventory_outage(cloud):
        for n, order_id in enumerate(orders):
            cloud.client("sqs").send_message(
                QueueUrl=outputs["InventoryQueueUrl"],
                MessageBody=order_event(f"evt-ui-{run}-{n}", order_id, [OrderLine(sku="SKU-UI", quantity=1, unit_price_cents=100)]),
            )  # fmt: skip
        cloud.wait_until(
            lambda: cloud.queues()[dlq]["visible"] == 2, 90, "SQS to move both orders to the DLQ"
        )
    show(page, "queues")
    row = f"tr[data-queue='{dlq}']"
    page.wait_for_function(
        "s => document.querySelector(s + ' td[data-field=visible]').textContent === '2'", arg=row
    )
    page.click(f"{row} button[data-action=open]")
    first = page.locator("#dead-letter-messages .message", has_text=orders[0])
    first.wait_for()
    assert "no reason attached" in first.locator("[data-field=error]").inner_text()  # moved by SQS itself
    # When the first message is redriven from its own button, with a wrong key first
    first.locator("button[data-action=redrive-one]").click()
    confirm_with_key(page, "not-the-key")
    page.wait_for_selector("#toast.error:not([hidden])")
    assert "not the local key" in page.inner_text("#toast")
    assert number(page, f"{row} td[data-field=visible]") == 2
    first.locator("button[data-action=redrive-one]").click()
    confirm_with_key(page, cloud.dashboard_key)
    # Then it leaves the DLQ and the fixed function reserves stock for it
    first.wait_for(state="detached")
    cloud.wait_until(lambda: inventory.reservation(orders[0]) is not None, 60, "the first redriven order")
    # When the rest is redriven with "Redrive all" (the key is remembered)
    page.click(f"{row} button[data-action=redrive-all]")
    page.wait_for_selector("dialog#confirm[open]")
    assert page.input_value("#confirm-key") == cloud.dashboard_key
    page.click("#confirm-ok")
    # Then the DLQ is empty, and the second order is processed too
    page.wait_for_function(
        "s => document.querySelector(s + ' td[data-field=visible]').textContent === '0'", arg=row
    )
    cloud.wait_until(lambda: inventory.reservation(orders[1]) is not None, 60, "the second redriven order")
    assert cloud.queues()[dlq]["visible"] + cloud.queues()[dlq]["in_flight"] == 0
    screenshot(page, "queues-redriven")


def test_a_jobs_progress_bar_advances_to_100_percent(page: Page, cloud: LocalCloud) -> None:
    # Given rows to export, and each page of the export's scan held back a little so progress is visible
    seed_analytics(cloud, 300, f"ui-{uuid.uuid4().hex[:6]}")
    table = cloud.stack_outputs()["AnalyticsTableName"].encode()

    def slow_pages(call: tuple[str, str], environ: dict[str, Any], body: bytes) -> HookResponse | None:
        if call == ("dynamodb", "Scan") and table in body and b'"Limit"' in body:
            time.sleep(0.4)
        return None

    show(page, "jobs")
    with cloud.request_hook(slow_pages):
        # When an export starts through the local API
        status, _, accepted = api_request(cloud, "POST", "/v1/exports", {"chunk_size": 50})
        assert status == 202, accepted
        bar = page.locator(f"[data-job='{accepted['job_id']}'] [data-field=progress]")
        bar.wait_for()
        # Then its progress bar moves through values below 100% up to 100%
        seen: list[float] = []
        deadline = time.monotonic() + 120
        while (not seen or seen[-1] < 100) and time.monotonic() < deadline:
            percent = float(bar.get_attribute("data-percent") or 0)
            if not seen or percent != seen[-1]:
                seen.append(percent)
                if 30 <= percent < 90 and not any(30 <= p < 90 for p in seen[:-1]):
                    screenshot(page, "jobs")  # once, part-way
            time.sleep(0.05)
    assert seen[-1] == 100.0, seen
    assert any(0 < percent < 100 for percent in seen), seen
    assert seen == sorted(seen), seen
    assert page.inner_text(f"[data-job='{accepted['job_id']}'] [data-field=status]") == "SUCCEEDED"
    assert bar.evaluate("node => node.style.width") == "100%"


def test_a_pending_delayed_job_is_cancelled_from_the_schedules_view(page: Page, cloud: LocalCloud) -> None:
    # Given a user who signs up now on the local clock: two follow-up jobs wait days ahead
    user = f"u-ui-{uuid.uuid4().hex[:8]}"
    sign_up(cloud, user, cloud.clock.now())
    show(page, "schedules")
    reminder = page.locator(f"tr[data-job-key='{user}.signup-reminder']")
    reminder.wait_for()
    page.locator(f"tr[data-job-key='{user}.trial-expiry']").wait_for()
    screenshot(page, "schedules")
    # When the reminder is cancelled, with the confirmation
    reminder.locator("button[data-action=cancel]").click()
    confirm_with_key(page, cloud.dashboard_key)
    # Then it leaves the pending list, the other job stays, and the job is cancelled in the jobs table
    reminder.wait_for(state="detached")
    assert page.locator(f"tr[data-job-key='{user}.trial-expiry']").count() == 1
    item = cloud.client("dynamodb").get_item(
        TableName=cloud.stack_outputs()["JobsTableName"], Key={"job_key": {"S": f"{user}.signup-reminder"}}
    )["Item"]
    assert item["status"]["S"] == "cancelled"
