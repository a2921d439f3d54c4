"""A pipe's target: sends the batch it is given, as one message, to the queue named in QUEUE_URL."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3


def handler(event: list[Any], context: Any) -> None:
    boto3.client("sqs").send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=json.dumps(event))
