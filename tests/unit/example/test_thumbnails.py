"""The image.resize action against moto S3: a real PNG in, a thumbnail out, typed business errors."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from asyncstack.runtime.rpc import ActionError, InvalidRequestError
from shared import png
from shared.thumbnails import (
    InvalidImageError,
    SourceNotFoundError,
    resize_image,
    thumbnail_key,
)
from tests.unit.conftest import REGION

pytestmark = pytest.mark.unit

BUCKET = "asyncstack-images"


class Beats:
    """A heartbeat that counts its calls."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def s3(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("IMAGES_BUCKET_NAME", BUCKET)
    return client


def upload(s3: Any, key: str, image: png.Image) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=png.encode(image), ContentType="image/png")


def block_mean(image: png.Image, left: int, top: int, channel: int, size: int = 4) -> float:
    values = [image.pixel(x, y)[channel] for y in range(top, top + size) for x in range(left, left + size)]
    return sum(values) / len(values)


def test_a_png_in_s3_is_resized_into_the_thumbnails_prefix(s3: Any) -> None:
    # Given a 400x300 PNG in the images bucket
    source = png.gradient(400, 300, alpha=True)
    upload(s3, "uploads/cat.png", source)
    beats = Beats()
    # When it is resized to fit 100x100
    result = resize_image({"source_key": "uploads/cat.png", "max_width": 100, "max_height": 100}, beats)
    # Then a 100x75 PNG is written under thumbnails/, and the result describes it
    stored = s3.get_object(Bucket=BUCKET, Key="thumbnails/uploads/cat-100x75.png")
    body = stored["Body"].read()
    assert result == {
        "bucket": BUCKET,
        "key": "thumbnails/uploads/cat-100x75.png",
        "width": 100,
        "height": 75,
        "bytes": len(body),
    }
    assert stored["ContentType"] == "image/png"
    thumbnail = png.decode(body)
    assert (thumbnail.width, thumbnail.height, thumbnail.mode) == (100, 75, "RGBA")
    # And each pixel is the mean of its 4x4 source block (within 1: alpha weights the colours)
    for x, y in [(0, 0), (50, 30), (99, 74)]:
        for channel in range(4):
            assert abs(thumbnail.pixel(x, y)[channel] - block_mean(source, x * 4, y * 4, channel)) <= 1
    # And the heartbeat ran between download, decode, resize, encode and upload
    assert beats.count == 4


def test_a_small_image_is_not_enlarged(s3: Any) -> None:
    upload(s3, "small.png", png.gradient(50, 40))
    result = resize_image({"source_key": "small.png", "max_width": 2048, "max_height": 2048}, Beats())
    assert (result["key"], result["width"], result["height"]) == ("thumbnails/small-50x40.png", 50, 40)


def test_a_missing_source_is_a_source_not_found_error(s3: Any) -> None:
    beats = Beats()
    with pytest.raises(SourceNotFoundError, match=f"s3://{BUCKET}/uploads/nope.png does not exist") as caught:
        resize_image({"source_key": "uploads/nope.png", "max_width": 10, "max_height": 10}, beats)
    assert caught.value.error_type == "SourceNotFound"
    assert beats.count == 0


def test_bytes_that_are_not_a_png_are_an_invalid_image_error(s3: Any) -> None:
    # Given a GIF stored under a .png key
    s3.put_object(Bucket=BUCKET, Key="fake.png", Body=b"GIF89a" + bytes(64))
    # When resized Then it is refused as an invalid image, naming the object and the reason
    with pytest.raises(InvalidImageError, match=r"s3://asyncstack-images/fake.png: not a PNG") as caught:
        resize_image({"source_key": "fake.png", "max_width": 10, "max_height": 10}, Beats())
    assert caught.value.error_type == "InvalidImage"
    # And no thumbnail was written
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="thumbnails/")["KeyCount"] == 0


def test_a_decompression_bomb_in_s3_is_an_invalid_image(s3: Any) -> None:
    # Given a tiny file whose header claims 6000x5000 pixels
    header = struct.pack(">IIBBBBB", 6000, 5000, 8, 6, 0, 0, 0)
    ihdr = struct.pack(">I", 13) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    s3.put_object(Bucket=BUCKET, Key="bomb.png", Body=png.SIGNATURE + ihdr)
    # Then it is refused from the header
    with pytest.raises(InvalidImageError, match="image too large: 6000x5000"):
        resize_image({"source_key": "bomb.png", "max_width": 10, "max_height": 10}, Beats())


@pytest.mark.parametrize(
    "payload",
    [
        {"max_width": 10, "max_height": 10},
        {"source_key": "a.png", "max_width": 0, "max_height": 10},
        {"source_key": "a.png", "max_width": 10, "max_height": 2049},
        {"source_key": "a.png", "max_width": "10", "max_height": 10},
        {"source_key": "a.png", "max_width": 10.5, "max_height": 10},
        {"source_key": "a.png", "max_width": 10, "max_height": 10, "quality": 90},
        {"source_key": "", "max_width": 10, "max_height": 10},
        {"source_key": "../etc/passwd.png", "max_width": 10, "max_height": 10},
        {"source_key": "/abs.png", "max_width": 10, "max_height": 10},
    ],
    ids=["no-key", "zero", "too-big", "string", "float", "extra", "empty-key", "dot-dot", "leading-slash"],
)
def test_an_invalid_payload_is_an_invalid_request(s3: Any, payload: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError, match=r"invalid image\.resize payload") as caught:
        resize_image(payload, Beats())
    assert caught.value.error_type == "InvalidRequest"
    assert isinstance(caught.value, ActionError)


def test_a_throttled_download_is_not_a_business_error(s3: Any) -> None:
    # Given S3 answering SlowDown
    class Throttled:
        def get_object(self, **_: Any) -> Any:
            raise ClientError(
                {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "GetObject"
            )

    # Then the ClientError propagates (the request is retried), it is not turned into an error reply
    with pytest.raises(ClientError, match="SlowDown"):
        resize_image({"source_key": "a.png", "max_width": 1, "max_height": 1}, Beats(), s3=Throttled())


def test_access_denied_on_the_source_is_reported_as_not_found(s3: Any) -> None:
    # Given S3 answering AccessDenied (a missing key without s3:ListBucket, or a key outside uploads/)
    class Denied:
        def get_object(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    # Then the caller is told at once instead of the request being retried into the DLQ
    with pytest.raises(SourceNotFoundError, match="does not exist or the worker may not read it"):
        resize_image({"source_key": "private/a.png", "max_width": 1, "max_height": 1}, Beats(), s3=Denied())


def test_the_bucket_must_be_configured(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMAGES_BUCKET_NAME", raising=False)
    with pytest.raises(RuntimeError, match="IMAGES_BUCKET_NAME"):
        resize_image({"source_key": "a.png", "max_width": 1, "max_height": 1}, Beats())


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("cat.png", "thumbnails/cat-64x48.png"),
        ("uploads/2026/cat.PNG", "thumbnails/uploads/2026/cat-64x48.png"),
        ("no-extension", "thumbnails/no-extension-64x48.png"),
        ("archive.tar.png", "thumbnails/archive.tar-64x48.png"),
    ],
)
def test_thumbnail_keys_keep_the_folders_so_names_cannot_collide(source: str, expected: str) -> None:
    assert thumbnail_key(source, 64, 48) == expected
