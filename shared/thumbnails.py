"""The ``image.resize`` action: a PNG from the images bucket, scaled to fit a box, written back.

Every failure the caller can do something about is an ``ActionError`` (answered, never retried):
an invalid payload, a source object that does not exist, bytes that are not a supported PNG.
Anything else (S3 throttling, a network error) propagates, and the request is retried.
S3's AccessDenied on the source counts as not found: without ``s3:ListBucket`` that is what S3
answers for a missing key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from asyncstack.runtime import aws
from asyncstack.runtime.observability import logger
from asyncstack.runtime.rpc import ActionError, Heartbeat, InvalidRequestError
from asyncstack.runtime.settings import load
from shared import png
from shared.config import ImagesSettings

__all__ = [
    "IMAGE_RESIZE",
    "MAX_EDGE",
    "MAX_SOURCE_BYTES",
    "THUMBNAIL_PREFIX",
    "InvalidImageError",
    "ResizeRequest",
    "SourceNotFoundError",
    "images_bucket",
    "resize_image",
    "thumbnail_key",
]

IMAGE_RESIZE = "image.resize"
THUMBNAIL_PREFIX = "thumbnails/"
MAX_EDGE = 2048
# Refused before download: larger PNGs would not decode within a Lambda's memory and time anyway.
MAX_SOURCE_BYTES = 64 * 1024 * 1024
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class SourceNotFoundError(ActionError):
    error_type = "SourceNotFound"


class InvalidImageError(ActionError):
    error_type = "InvalidImage"


class ResizeRequest(BaseModel):
    """The payload of ``image.resize``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_key: str = Field(min_length=1, max_length=1024)
    max_width: int = Field(ge=1, le=MAX_EDGE, strict=True)
    max_height: int = Field(ge=1, le=MAX_EDGE, strict=True)

    @field_validator("source_key")
    @classmethod
    def _plain_key(cls, value: str) -> str:
        # Empty, "." and ".." segments would make thumbnail keys that read like paths but are not.
        if any(segment in ("", ".", "..") for segment in value.split("/")):
            raise ValueError("must be an object key without empty, '.' or '..' path segments")
        return value


def images_bucket() -> str:
    """The bucket sources are read from and thumbnails written to (``IMAGES_BUCKET_NAME``)."""
    return load(ImagesSettings).images_bucket


def thumbnail_key(source_key: str, width: int, height: int) -> str:
    """``thumbnails/<key without extension>-<w>x<h>.png``; folders are kept so names cannot collide."""
    return f"{THUMBNAIL_PREFIX}{PurePosixPath(source_key).with_suffix('')}-{width}x{height}.png"


def resize_image(payload: Mapping[str, Any], heartbeat: Heartbeat, *, s3: Any = None) -> dict[str, Any]:
    """Write a thumbnail of ``source_key`` that fits ``max_width`` x ``max_height`` (never enlarged).

    ``heartbeat`` is called between the steps, so a Step Functions task with ``HeartbeatSeconds``
    knows a large image is still being worked on.
    """
    try:
        request = ResizeRequest.model_validate(payload)
    except ValidationError as error:
        raise InvalidRequestError(f"invalid image.resize payload: {_describe(error)}") from error
    bucket = images_bucket()
    client = s3 or aws.client("s3")
    data = _download(client, bucket, request.source_key)
    heartbeat()
    try:
        image = png.decode(data)
    except png.ImageError as error:
        raise InvalidImageError(f"s3://{bucket}/{request.source_key}: {error}") from error
    heartbeat()
    thumbnail = png.resize_to_fit(image, request.max_width, request.max_height)
    heartbeat()
    encoded = png.encode(thumbnail)
    heartbeat()
    key = thumbnail_key(request.source_key, thumbnail.width, thumbnail.height)
    client.put_object(Bucket=bucket, Key=key, Body=encoded, ContentType="image/png")
    return {
        "bucket": bucket,
        "key": key,
        "width": thumbnail.width,
        "height": thumbnail.height,
        "bytes": len(encoded),
    }


def _download(s3: Any, bucket: str, key: str) -> bytes:
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in _MISSING_CODES:
            raise SourceNotFoundError(f"s3://{bucket}/{key} does not exist") from error
        if code == "AccessDenied":
            # S3 answers AccessDenied for a missing key when the role lacks s3:ListBucket, and for a
            # key outside what the worker may read: to the caller both mean "no such source".
            logger.warning("S3 denied reading the source", extra={"bucket": bucket, "key": key})
            raise SourceNotFoundError(
                f"s3://{bucket}/{key} does not exist or the worker may not read it"
            ) from error
        raise
    size = int(response.get("ContentLength") or 0)
    if size > MAX_SOURCE_BYTES:
        response["Body"].close()
        raise InvalidImageError(f"s3://{bucket}/{key} is {size} bytes; the limit is {MAX_SOURCE_BYTES}")
    return bytes(response["Body"].read())


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'payload'}: {item['msg']}"
        for item in error.errors()
    )
