"""Properties of the PNG size checks and decoding (shared/png.py) and of the image.resize action around them
(shared/thumbnails.py): any bytes give an image or ``ImageError``, a declared size over the limit is refused
from the header alone, and a valid PNG of any small size decodes to its real size and pixels. No AWS: the
action reads from a fake S3."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from asyncstack.runtime import settings as runtime_settings
from asyncstack.runtime.rpc import InvalidRequestError
from shared import png
from shared.png import Image, ImageError, ImageTooLargeError
from shared.thumbnails import MAX_EDGE, MAX_SOURCE_BYTES, InvalidImageError, resize_image, thumbnail_key
from tests.unit.example.test_png import CHANNELS, build_png, chunk, expand, ihdr

pytestmark = pytest.mark.unit

PURE = settings(max_examples=150, deadline=None)

# -- strategies --------------------------------------------------------------------------------------------

chunk_types = st.sampled_from([b"IHDR", b"IDAT", b"IEND", b"PLTE", b"tEXt", b"zzZz", b"ZzZz"]) | st.binary(
    min_size=4, max_size=4
)
header_bodies = st.builds(
    struct.pack,
    st.just(">IIBBBBB"),
    st.integers(0, 40) | st.integers(0, 2**32 - 1),
    st.integers(0, 40) | st.integers(0, 2**32 - 1),
    st.sampled_from([8, 8, 1, 16]),
    st.sampled_from([0, 2, 3, 4, 6, 5]),
    st.sampled_from([0, 0, 1]),
    st.sampled_from([0, 0, 1]),
    st.sampled_from([0, 0, 1]),
)
idat_bodies = st.binary(max_size=64) | st.binary(max_size=200).map(zlib.compress)


@st.composite
def png_like(draw: st.DrawFn) -> bytes:
    """The signature, then chunks with valid CRCs (an IHDR of any fields first, mostly), perhaps cut short."""
    chunks = [chunk(b"IHDR", draw(header_bodies))] if draw(st.booleans() | st.just(True)) else []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(chunk_types)
        chunks.append(chunk(kind, draw(idat_bodies if kind == b"IDAT" else st.binary(max_size=16))))
    if draw(st.booleans()):
        chunks.append(chunk(b"IEND", b""))
    data = png.SIGNATURE + b"".join(chunks)
    return data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


any_bytes = st.binary() | st.binary().map(lambda tail: png.SIGNATURE + tail) | png_like()


def decoded_or_refused(data: bytes, max_pixels: int = png.MAX_PIXELS) -> Image | ImageError:
    try:
        return png.decode(data, max_pixels=max_pixels)
    except ImageError as error:
        return error


def no_inflating() -> Any:
    """Fails the test if the decoder starts inflating pixel data."""
    return mock.patch.object(png.zlib, "decompressobj", side_effect=AssertionError("inflated"))


# -- any bytes ---------------------------------------------------------------------------------------------


@PURE
@given(data=any_bytes)
@example(data=png.SIGNATURE)
@example(data=png.SIGNATURE + ihdr(1, 1, 2) + chunk(b"IDAT", b"") + chunk(b"IEND", b""))
def test_any_bytes_decode_or_are_refused_with_image_error(data: bytes) -> None:
    # Given any bytes: random, after the PNG signature, or chunks with valid CRCs and any header fields
    # When they are decoded
    result = decoded_or_refused(data)
    # Then they are an image of a supported size, or refused with ImageError (never another exception)
    if isinstance(result, Image):
        assert 0 < result.width * result.height <= png.MAX_PIXELS
        assert len(result.pixels) == result.width * result.height * result.channels


@PURE
@given(
    width=st.integers(1, 2**31 - 1),
    height=st.integers(1, 2**31 - 1),
    colour_type=st.sampled_from(sorted(CHANNELS)),
    max_pixels=st.integers(1, 10_000) | st.just(png.MAX_PIXELS),
    rest=st.binary(max_size=64)
    | st.lists(st.tuples(chunk_types, st.binary(max_size=16))).map(
        lambda chunks: b"".join(chunk(kind, body) for kind, body in chunks)
    ),
)
@example(
    width=6000, height=5000, colour_type=6, max_pixels=png.MAX_PIXELS, rest=b"\x00\x00\x01\x00IDATgarbage"
)
def test_a_declared_size_over_the_limit_is_refused_from_the_header_alone(
    width: int, height: int, colour_type: int, max_pixels: int, rest: bytes
) -> None:
    # Given a valid header declaring width x height pixels, followed by anything at all (garbage, chunks
    # with bad lengths or CRCs, a truncated stream)
    data = png.SIGNATURE + ihdr(width, height, colour_type) + rest
    # When it is decoded with a pixel limit, nothing being inflated
    with no_inflating():
        result = decoded_or_refused(data, max_pixels=max_pixels)
    # Then over the limit it is refused as too large: what follows the header is never looked at
    if width * height > max_pixels:
        assert isinstance(result, ImageTooLargeError)
    else:
        assert not isinstance(result, ImageTooLargeError)


# -- valid PNGs --------------------------------------------------------------------------------------------


@st.composite
def valid_pngs(draw: st.DrawFn) -> tuple[bytes, int, int, int, bytes]:
    """A PNG written by the test's own encoder (tests/unit/example/test_png.py): any small size, colour type,
    mix of the five filters, IDAT split and ancillary chunks."""
    width, height = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    colour_type = draw(st.sampled_from(sorted(CHANNELS)))
    pixels = draw(
        st.binary(
            min_size=width * height * CHANNELS[colour_type], max_size=width * height * CHANNELS[colour_type]
        )
    )
    filters = draw(st.lists(st.integers(0, 4), min_size=1, max_size=height))
    extra = chunk(b"tEXt", b"Comment\x00made by hypothesis") if draw(st.booleans()) else b""
    data = build_png(
        width, height, colour_type, pixels, filters, idat_pieces=draw(st.integers(1, 4)), extra_chunks=extra
    )
    return data, width, height, colour_type, pixels


@PURE
@given(case=valid_pngs())
def test_a_valid_png_of_any_small_size_decodes_to_its_size_and_pixels(
    case: tuple[bytes, int, int, int, bytes],
) -> None:
    # Given a valid PNG of a random small size, colour type and filters
    data, width, height, colour_type, pixels = case
    # When it is decoded
    image = png.decode(data)
    # Then it has its real size, and its pixels as RGB or RGBA
    assert (image.width, image.height) == (width, height)
    assert (image.channels, image.pixels) == expand(colour_type, pixels)
    # And the pixel limit is inclusive: exactly its pixel count is allowed, one fewer is not
    assert png.decode(data, max_pixels=width * height).width == width
    with pytest.raises(ImageTooLargeError):
        png.decode(data, max_pixels=width * height - 1)


images = st.builds(
    lambda width, height, channels, data: Image(width, height, channels, (data * (width * height * channels))[: width * height * channels]),
    st.integers(1, 16), st.integers(1, 16), st.sampled_from([3, 4]), st.binary(min_size=1, max_size=64),
)  # fmt: skip


@PURE
@given(image=images, filter_type=st.sampled_from([png.FILTER_NONE, png.FILTER_UP]))
def test_an_encoded_image_decodes_to_itself(image: Image, filter_type: int) -> None:
    # Given any RGB or RGBA image, encoded
    # When the PNG is decoded
    # Then it is the same image
    assert png.decode(png.encode(image, filter_type=filter_type)) == image


# -- fitting and the image.resize action -------------------------------------------------------------------


@PURE
@given(
    width=st.integers(1, 100_000), height=st.integers(1, 100_000),
    max_width=st.integers(1, MAX_EDGE), max_height=st.integers(1, MAX_EDGE),
)  # fmt: skip
def test_a_fitted_size_is_inside_the_box_never_larger_and_keeps_the_aspect_ratio(
    width: int, height: int, max_width: int, max_height: int
) -> None:
    # Given any image size and any box the action accepts
    # When the thumbnail size is computed
    fitted_width, fitted_height = png.fit_size(width, height, max_width, max_height)
    # Then it is inside the box, no larger than the image, and an image that fits keeps its size
    assert 1 <= fitted_width <= min(width, max_width) and 1 <= fitted_height <= min(height, max_height)
    if width <= max_width and height <= max_height:
        assert (fitted_width, fitted_height) == (width, height)
    # And one side touches the box (or the image's own size), the other is the aspect ratio's, rounded
    scale = min(max_width / width, max_height / height, 1.0)
    assert abs(fitted_width - width * scale) <= 0.5 + 1e-9 or fitted_width == 1
    assert abs(fitted_height - height * scale) <= 0.5 + 1e-9 or fitted_height == 1


class FakeS3:
    """get_object answers ``body`` (its ContentLength may claim another size); put_object keeps what is written."""

    def __init__(self, body: bytes, content_length: int | None = None) -> None:
        self.body, self.content_length = body, len(body) if content_length is None else content_length
        self.reads = 0
        self.written: dict[str, bytes] = {}

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        fake = self

        class Body(io.BytesIO):
            def read(self, *args: Any) -> bytes:
                fake.reads += 1
                return super().read(*args)

        return {"Body": Body(self.body), "ContentLength": self.content_length}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, ContentType: str) -> dict[str, Any]:
        self.written[Key] = Body
        return {}


@pytest.fixture
def images_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("IMAGES_BUCKET_NAME", "images")
    runtime_settings.load.cache_clear()
    yield "images"
    runtime_settings.load.cache_clear()


small_box = st.integers(1, 24)


@settings(PURE, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=any_bytes | valid_pngs().map(lambda case: case[0]),
    max_width=small_box, max_height=small_box,
)  # fmt: skip
def test_the_resize_action_writes_a_fitting_thumbnail_or_refuses_the_image(
    images_bucket: str, body: bytes, max_width: int, max_height: int
) -> None:
    # Given a source object of any bytes (a PNG or not)
    s3 = FakeS3(body)
    payload = {"source_key": "in/picture.png", "max_width": max_width, "max_height": max_height}
    # When it is resized
    try:
        result = resize_image(payload, lambda: None, s3=s3)
    except InvalidImageError as error:
        assert "s3://images/in/picture.png" in str(error)
        assert s3.written == {}
        return  # Then it is refused as an invalid image, with nothing written ...
    # ... or the thumbnail written fits the box, and decodes to the size reported
    assert result["width"] <= max_width and result["height"] <= max_height
    assert result["key"] == thumbnail_key("in/picture.png", result["width"], result["height"])
    written = png.decode(s3.written[result["key"]])
    assert (written.width, written.height) == (result["width"], result["height"])


@settings(PURE, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(MAX_SOURCE_BYTES + 1, 2**40))
def test_a_source_larger_than_the_limit_is_refused_before_it_is_read(images_bucket: str, size: int) -> None:
    # Given a source object S3 says is larger than the limit
    s3 = FakeS3(b"never read", content_length=size)
    # When it is resized
    with pytest.raises(InvalidImageError, match=f"is {size} bytes"):
        resize_image({"source_key": "big.png", "max_width": 10, "max_height": 10}, lambda: None, s3=s3)
    # Then its body was never read
    assert s3.reads == 0


@PURE
@given(
    payload=st.dictionaries(
        st.sampled_from(["source_key", "max_width", "max_height", "other"]),
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    )
)
def test_any_payload_is_refused_as_invalid_before_anything_is_read(payload: dict[str, Any]) -> None:
    # Given any payload but a valid one (a valid one needs a non-empty key and two edges in 1..MAX_EDGE)
    s3 = FakeS3(b"")
    # When it is resized
    # Then it is refused as an invalid request, and nothing is read: not even the bucket's setting
    try:
        resize_image(payload, lambda: None, s3=s3)
    except InvalidRequestError:
        assert s3.reads == 0
    except Exception as error:  # only a valid payload gets as far as the settings or S3
        valid_edges = all(
            type(payload.get(k)) is int and 1 <= payload[k] <= MAX_EDGE for k in ("max_width", "max_height")
        )
        assert valid_edges and set(payload) == {"source_key", "max_width", "max_height"}, error


@pytest.mark.parametrize(
    "rest",
    [chunk(b"IDAT", b"garbage")[:-2], chunk(b"IDAT", b"garbage", crc=0), b"\xff\xff\xff\xffIDAT"],
    ids=["truncated", "bad-crc", "length-over-the-limit"],
)
def test_an_over_limit_header_is_refused_as_too_large_whatever_follows(rest: bytes) -> None:
    # Given a header claiming 30 megapixels, followed by a broken chunk (found by the property above: every
    # chunk was read and CRC-checked before the header was judged, so this was "truncated" or "corrupt")
    data = png.SIGNATURE + ihdr(6000, 5000, 6) + rest
    # When it is decoded
    # Then the header alone refuses it as too large
    with pytest.raises(ImageTooLargeError, match="30000000 pixels"):
        png.decode(data)
