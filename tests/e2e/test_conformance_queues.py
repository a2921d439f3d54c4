"""Conformance of the local cloud's queues with AWS: SQS event source mappings and SNS-to-SQS delivery.

Each test reproduces one documented AWS behaviour against ConformanceStack (``conformance/app.py``),
deployed with the CDK CLI; the probe function records what it sees in the observation table.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from tests.e2e.conformance.observe import (
    Probe,
    body,
    holds_for,
    max_overlap,
    new_run,
    of_run,
    queue_depth,
    send,
    take,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def probe(cloud: LocalCloud, conformance: dict[str, str]) -> Probe:
    return Probe(cloud, conformance["TableName"])


def _receive_counts(probe: Probe, run: str, message: str) -> list[int]:
    return [r["receive_count"] for r in probe.deliveries(run, message)]


def test_partial_batch_response_deletes_only_the_records_not_reported_as_failed(
    cloud: LocalCloud, conformance: dict[str, str], probe: Probe
) -> None:
    """SQS event source mapping with ReportBatchItemFailures deletes only the records not reported as failed."""
    # Given four messages in the queue together, two of which the probe will report as failed
    run = new_run("partial")
    good, bad = ["ok-1", "ok-2"], ["bad-1", "bad-2"]
    send(
        cloud,
        conformance["PartialQueueUrl"],
        [body(run, "ok-1"), body(run, "bad-1", fail=True), body(run, "ok-2"), body(run, "bad-2", fail=True)],
    )

    # When the mapping delivers them and the failed records become visible again twice
    cloud.wait_until(
        lambda: all(len(_receive_counts(probe, run, m)) >= 3 for m in bad),
        60,
        "three deliveries of each failed record",
    )
    # (then they exhaust maxReceiveCount: collected from the DLQ so nothing is left behind)
    take(cloud, conformance["PartialQueueDlqUrl"], of_run(run), len(bad), what="failed records")

    # Then the first invocation carried all four records
    first = probe.invocations(run)[0]
    assert sorted(first["ids"]) == sorted(good + bad)
    # and only the records reported as failed came back, each time with a higher receive count
    for message in good:
        assert _receive_counts(probe, run, message) == [1], message
    for message in bad:
        assert _receive_counts(probe, run, message) == [1, 2, 3], message


def test_a_message_that_always_fails_moves_to_the_dead_letter_queue_after_max_receive_count(
    cloud: LocalCloud, conformance: dict[str, str], probe: Probe
) -> None:
    """An SQS message received maxReceiveCount times without being deleted moves to the queue's DLQ, same message id."""
    # Given a queue whose redrive policy allows maxReceiveCount receives, and a message the probe always fails
    max_receive_count = int(conformance["PartialMaxReceiveCount"])
    run = new_run("redrive")
    [message_id] = send(cloud, conformance["PartialQueueUrl"], [body(run, "poison", fail=True)])

    # When the mapping keeps failing it
    [dead] = take(
        cloud, conformance["PartialQueueDlqUrl"], of_run(run), 1, timeout=60, what="the poison message"
    )

    # Then the function saw it exactly maxReceiveCount times, its receive count growing by one each time
    assert _receive_counts(probe, run, "poison") == list(range(1, max_receive_count + 1))
    # and the DLQ holds the same message, its receive count carried over
    assert dead["MessageId"] == message_id
    assert json.loads(dead["Body"]) == {"run": run, "id": "poison", "fail": True}
    assert int(dead["Attributes"]["ApproximateReceiveCount"]) >= max_receive_count


def test_a_failed_message_is_not_redelivered_before_its_visibility_timeout(
    cloud: LocalCloud, conformance: dict[str, str], probe: Probe
) -> None:
    """A received SQS message stays invisible for the queue's visibility timeout before it is delivered again."""
    # Given a queue with a short visibility timeout, a warm probe (so no delivery pays a cold start)
    visibility = float(conformance["PartialVisibilitySeconds"])
    cloud.client("lambda").invoke(FunctionName=conformance["QueueProbeName"], Payload=b'{"action": "ok"}')
    run = new_run("visibility")

    # When a message the probe fails is delivered until it reaches the DLQ
    send(cloud, conformance["PartialQueueUrl"], [body(run, "late", fail=True)])
    cloud.wait_until(lambda: len(probe.deliveries(run, "late")) >= 3, 60, "three deliveries")
    take(cloud, conformance["PartialQueueDlqUrl"], of_run(run), 1, what="the failed message")

    # Then no delivery followed the one before it sooner than the visibility timeout
    times = [r["at"] for r in probe.deliveries(run, "late")]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) == 2
    # (measured between handler starts: receive-to-handler jitter of a few tens of ms either way)
    assert all(gap >= visibility - 0.3 for gap in gaps), gaps


def test_a_batching_window_gathers_messages_sent_apart_into_one_invocation(
    cloud: LocalCloud, conformance: dict[str, str], probe: Probe
) -> None:
    """An SQS event source mapping with MaximumBatchingWindowInSeconds waits for more records before invoking."""
    # Given a mapping with batch size 10 and a batching window of a few seconds
    window = float(conformance["BatchingWindowSeconds"])
    run = new_run("window")
    ids = ["w-1", "w-2", "w-3"]

    # When three messages are sent over a second apart (all within the window)
    spacing = 1.2
    assert spacing * (len(ids) - 1) < window
    sqs = cloud.client("sqs")
    for message in ids:
        sqs.send_message(QueueUrl=conformance["BatchingQueueUrl"], MessageBody=body(run, message))
        time.sleep(spacing)  # the spacing is the stimulus, not a wait for anything
    cloud.wait_until(lambda: len(probe.records(run)) >= len(ids), 30, "the records")

    # Then they arrive in one invocation, in send order
    invocations = probe.invocations(run)
    assert len(invocations) == 1, invocations
    assert invocations[0]["ids"] == ids
    assert invocations[0]["batch_size"] == len(ids)


def test_maximum_concurrency_caps_concurrent_invocations_of_a_mapping(
    cloud: LocalCloud, conformance: dict[str, str], probe: Probe
) -> None:
    """An SQS event source mapping's ScalingConfig.MaximumConcurrency caps its concurrent invocations."""
    # Given a mapping with MaximumConcurrency 2 and batch size 1, and messages the probe takes a second each over
    limit = int(conformance["MaximumConcurrency"])
    run = new_run("concurrency")
    ids = [f"c-{i}" for i in range(6)]
    send(cloud, conformance["ConcurrencyQueueUrl"], [body(run, m, sleep=1.0) for m in ids])

    # When the mapping works through them
    cloud.wait_until(lambda: len(probe.invocations(run)) >= len(ids), 60, "one invocation per message")

    # Then never more than MaximumConcurrency invocations ran at once (and the cap was reached)
    invocations = probe.invocations(run)
    assert sorted(i for invocation in invocations for i in invocation["ids"]) == sorted(ids)
    assert max_overlap((i["start"], i["end"]) for i in invocations) == limit


def test_a_fifo_mapping_processes_each_message_group_in_send_order(
    cloud: LocalCloud, conformance: dict[str, str], probe: Probe
) -> None:
    """An SQS FIFO event source mapping delivers the messages of each message group in the order they were sent."""
    # Given messages of three groups, interleaved, sent one by one to a FIFO queue
    run = new_run("fifo")
    groups, per_group = ["g-a", "g-b", "g-c"], 4
    sqs = cloud.client("sqs")
    for seq in range(per_group):
        for group in groups:
            sqs.send_message(
                QueueUrl=conformance["FifoQueueUrl"],
                MessageBody=body(run, f"{group}-{seq}", seq=seq),
                MessageGroupId=group,
            )

    # When the mapping (two concurrent pollers) delivers them
    cloud.wait_until(lambda: len(probe.records(run)) >= len(groups) * per_group, 30, "every message")

    # Then each message was processed once, and within each group in send order
    records = probe.records(run)
    assert Counter(r["id"] for r in records) == {f"{g}-{s}": 1 for g in groups for s in range(per_group)}
    for group in groups:
        assert [r["seq"] for r in records if r["group"] == group] == list(range(per_group)), group


def _mapping_state(cloud: LocalCloud, uuid: str) -> str:
    return str(cloud.client("lambda").get_event_source_mapping(UUID=uuid)["State"])


def _set_enabled(cloud: LocalCloud, uuid: str, enabled: bool) -> None:
    cloud.client("lambda").update_event_source_mapping(UUID=uuid, Enabled=enabled)
    state = "Enabled" if enabled else "Disabled"  # AWS passes through Enabling / Disabling first
    cloud.wait_until(lambda: _mapping_state(cloud, uuid) == state, 30, f"the mapping to be {state}")


def test_disabling_a_mapping_stops_deliveries_and_enabling_it_resumes_them(
    cloud: LocalCloud, conformance: dict[str, str], probe: Probe
) -> None:
    """UpdateEventSourceMapping Enabled=false stops an SQS mapping's deliveries; Enabled=true resumes them."""
    uuid, url = conformance["ToggleQueueMappingId"], conformance["ToggleQueueUrl"]
    run = new_run("toggle")
    ids = ["t-1", "t-2", "t-3"]
    try:
        # Given a disabled mapping
        _set_enabled(cloud, uuid, False)

        # When messages arrive right away
        cloud.client("sqs").send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": body(run, m)} for i, m in enumerate(ids)]
        )
        cloud.wait_until(lambda: queue_depth(cloud, url)[0] == len(ids), 30, "the messages to become visible")

        # Then they stay in the queue, undelivered (a receive already under way when the mapping was
        # disabled may hold them for an instant, and hands them back at once without an invocation)
        holds_for(
            lambda: sum(queue_depth(cloud, url)) == len(ids) and not probe.records(run),
            3.0,
            "the messages waiting in the queue",
        )

        # When the mapping is enabled again
        _set_enabled(cloud, uuid, True)

        # Then it delivers them, and the queue empties
        cloud.wait_until(lambda: len(probe.records(run)) >= len(ids), 30, "the delivery of the messages")
        cloud.wait_until(lambda: queue_depth(cloud, url) == (0, 0), 30, "the queue to empty")
        assert sorted(r["id"] for r in probe.records(run)) == ids
    finally:
        if _mapping_state(cloud, uuid) != "Enabled":
            _set_enabled(cloud, uuid, True)


def _envelope_of(message: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(message["Body"]))


def test_a_long_poll_returns_as_soon_as_a_message_arrives(cloud: LocalCloud) -> None:
    """ReceiveMessage with WaitTimeSeconds=20 waits for a message and returns when one arrives."""
    sqs = cloud.client("sqs")
    url = sqs.create_queue(QueueName=new_run("long-poll"))["QueueUrl"]
    # Given a message sent half a second after a 20-second long poll began
    timer = threading.Timer(0.5, lambda: sqs.send_message(QueueUrl=url, MessageBody="late"))
    timer.start()
    started = time.monotonic()
    # When the poll returns
    messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20).get("Messages", [])
    # Then it carries the message, long before the 20 seconds were up
    assert [m["Body"] for m in messages] == ["late"]
    assert time.monotonic() - started < 10
    timer.join()
    # (a queue left with a message in flight would keep the local cloud from ever being idle)
    sqs.delete_queue(QueueUrl=url)


def test_sns_delivers_raw_filtered_messages_and_enveloped_unfiltered_ones(
    cloud: LocalCloud, conformance: dict[str, str]
) -> None:
    """SNS applies a subscription's filter policy to message attributes, and RawMessageDelivery drops the JSON envelope."""
    # Given a topic with a raw queue subscription filtered on an attribute and an unfiltered enveloped one
    topic, attribute, value = (
        conformance["TopicArn"],
        conformance["FilterAttribute"],
        conformance["FilterValue"],
    )
    run = new_run("sns")
    sns = cloud.client("sns")

    # When one message with the matching attribute value and one with another value are published
    published: dict[str, str] = {}
    for kind in (value, "other"):
        published[kind] = sns.publish(
            TopicArn=topic,
            Message=json.dumps({"run": run, "kind": kind}),
            Subject=f"probe {kind}",
            MessageAttributes={attribute: {"DataType": "String", "StringValue": kind}},
        )["MessageId"]

    # Then the unfiltered queue receives both, each in the SNS notification envelope
    enveloped = take(cloud, conformance["EnvelopeQueueUrl"], of_run(run), 2, what="notifications")
    by_kind = {json.loads(_envelope_of(m)["Message"])["kind"]: m for m in enveloped}
    assert set(by_kind) == {value, "other"}
    for kind, notification in by_kind.items():
        envelope = _envelope_of(notification)
        assert envelope["Type"] == "Notification"
        assert envelope["MessageId"] == published[kind]
        assert envelope["TopicArn"] == topic
        assert envelope["Subject"] == f"probe {kind}"
        assert json.loads(envelope["Message"]) == {"run": run, "kind": kind}
        assert envelope["MessageAttributes"] == {attribute: {"Type": "String", "Value": kind}}
        assert envelope["SignatureVersion"] == "2"  # the topic's SignatureVersion
        assert {"Timestamp", "Signature", "SigningCertURL", "UnsubscribeURL"} <= set(envelope)
        assert not notification.get("MessageAttributes")  # the attributes travel inside the envelope
    # and the raw, filtered queue receives only the matching message: its body as published, its
    # attributes as SQS message attributes
    [raw] = take(cloud, conformance["RawQueueUrl"], of_run(run), 1, what="the raw message")
    assert json.loads(raw["Body"]) == {"run": run, "kind": value}
    assert raw["MessageAttributes"] == {attribute: {"StringValue": value, "DataType": "String"}}
    leftover = (
        cloud.client("sqs")
        .receive_message(QueueUrl=conformance["RawQueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
        .get("Messages", [])
    )
    assert not [m for m in leftover if run in m["Body"]]
